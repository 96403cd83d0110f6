"""Task variants: ``[variants]`` in task.toml, the variant a seed draws, the instructions
as a template, ``[contract.env]`` naming variant keys, and what the Env and the grader
make of a variant. kv-replicated's graded rewards per variant are in the README; here its
instructions and functional tests are checked against many variants without a cluster."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from conftest import assert_no_leftovers, needs_root
from tinytask import tiny_task

from infragym import ConfigError
from infragym.env import SyncEnv, ToolCall, make
from infragym.grading import ExpectationFailed, HttpProbe, grade_workspace
from infragym.history import History
from infragym.tasks import Variant, find_task, load_task, validate_layout
from infragym.testing import check_task

KV = find_task("kv-replicated")

VARIANT_GRADER = """
from infragym.checkers import CheckResult, Verdict
from infragym.grading import GradeOutcome
from infragym.rubric import Criterion, Rubric


async def grade(ctx):
    res = CheckResult("answer", Verdict.PASS, 1.0, "answer")
    reward = Rubric([Criterion("answer")]).score({"answer": res})
    seen = {"variant": dict(ctx.variant), "hosts": list(ctx.variant.host_names)}
    return GradeOutcome(reward, 1.0, notes=["ctx.variant " + __import__("json").dumps(seen)])
"""

VARIANTS = """
[variants]
hosts = [1, 2]
host_prefix = ["a", "web"]
port = [8080, 9090, 7000]
"""

INSTRUCTIONS = """# tiny
Serve on port {{ port }} on {{ hosts }} host(s), {{host_names}}; a majority is
{{ majority }}; NODE_ID is e.g. {{ node_example }} at {{ address_example }}, PEERS e.g.
{{ peers_example }}. A literal {single} brace stays.
"""


def variant_task(
    root: Path,
    variants: str = VARIANTS,
    instructions: str = INSTRUCTIONS,
    contract: str = "",
    dev_hosts: int = 1,
) -> Path:
    d = tiny_task(root, dev_hosts=dev_hosts, grader=VARIANT_GRADER)
    toml = (d / "task.toml").read_text()
    if not variants.lstrip().startswith("["):  # a top-level key: before the tables
        toml, variants = variants + toml, ""
    (d / "task.toml").write_text(toml + variants + contract)
    (d / "instructions.md").write_text(instructions)
    return d


def seed_where(spec_variant, predicate) -> int:  # type: ignore[no-untyped-def]
    """The first seed whose variant satisfies ``predicate``."""
    return next(s for s in range(1, 1000) if predicate(spec_variant(s)))


# -- the draw ---------------------------------------------------------------------------

DRAW = (
    "import json; from infragym.tasks import find_task; s = find_task('kv-replicated')"
    ".spec; print(json.dumps([s.variant(n).to_dict() for n in range(40)]))"
)


def test_a_seed_draws_the_same_variant_in_every_process_whatever_the_hash_seed() -> None:
    here = [KV.spec.variant(n).to_dict() for n in range(40)]
    random.seed(123)  # the global random state plays no part
    assert [KV.spec.variant(n).to_dict() for n in range(40)] == here
    for hash_seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", DRAW],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        assert json.loads(out.stdout) == here, f"PYTHONHASHSEED={hash_seed}"


def test_seeds_cover_every_value_and_no_seed_is_the_default_variant() -> None:
    spec = KV.spec
    assert spec.variant_count == 2 * 3 * 4 * 3 * 3 == 216
    drawn = [spec.variant(s) for s in range(1, 301)]
    assert len({tuple(sorted(v.items())) for v in drawn}) > 60
    for key, values in spec.variants.items():
        assert {v[key] for v in drawn} == set(values), key
    default = spec.variant(None)
    assert default.to_dict() == {k: v[0] for k, v in spec.variants.items()}
    assert default.to_dict() == {
        "hosts": 3,
        "host_prefix": "n",
        "port": 8080,
        "max_key_len": 100,
        "max_value_bytes": 65536,
    }
    assert default.host_names == default.dev_host_names == ("n1", "n2", "n3")
    five = spec.variant(seed_where(spec.variant, lambda v: v["hosts"] == 5))
    prefix = five["host_prefix"]
    assert five.host_names == tuple(f"{prefix}{i}" for i in range(1, 6)) == five.dev_host_names


def test_a_variant_is_a_read_only_mapping() -> None:
    v = KV.spec.variant(4)
    assert isinstance(v, Variant) and dict(v) == v.to_dict()
    with pytest.raises(TypeError):
        v["port"] = 1  # type: ignore[index]
    copy = v.to_dict()
    copy["port"] = 1
    assert v["port"] != 1
    with pytest.raises(KeyError, match="'prot' is no variant key"):
        v["prot"]


# -- the table, checked when the task loads ---------------------------------------------


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ("variants = 3", "[variants] must be a table"),
        ("[variants]\nport = 8080", "variants.port must be a non-empty list"),
        ("[variants]\nport = []", "variants.port must be a non-empty list"),
        ("[variants]\nport = [[8080]]", "variants.port: [8080] is not a string, number or bool"),
        ("[variants]\nport = [{a = 1}]", "variants.port: {'a': 1} is not a string"),
        ('[variants]\nport = [8080, "9000"]', "variants.port mixes types"),
        ("[variants]\nport = [8080, 8080]", "variants.port lists 8080 twice"),
        ("[variants]\nhosts = [3, 40]", "variants.hosts: host counts are whole numbers 1-16"),
        ("[variants]\nhosts = [3.0]", "variants.hosts: host counts are whole numbers"),
        ('[variants]\nhost_prefix = ["n1"]', "variants.host_prefix: a host name prefix is"),
        ('[variants]\npeers = ["x"]', "variants.peers: 'peers' is a name the platform fills"),
        ("[variants]\nmajority = [1]", "variants.majority: 'majority' is a name the platform"),
        ("[variants]\nPort = [1]", "variants.Port: a key is 1-32 lowercase letters"),
    ],
)
def test_a_bad_variants_table_is_a_config_error_naming_the_key(
    tmp_path: Path, table: str, fragment: str
) -> None:
    d = variant_task(tmp_path, variants="\n" + table + "\n", instructions="Build it.\n")
    problems = "\n".join(validate_layout(d))
    assert fragment in problems, problems
    with pytest.raises(ConfigError, match="variants"):
        load_task(d)


def test_a_hosts_variant_sets_production_and_dev_topology(tmp_path: Path) -> None:
    t = load_task(variant_task(tmp_path / "a"))
    assert t.spec.variant_count == 12 and t.spec.topology.hosts == 1
    for seed in range(30):
        v = t.spec.variant(seed)
        assert len(v.host_names) == v["hosts"]
        assert v.host_names == v.dev_host_names
        assert v.host_names[0] == f"{v['host_prefix']}1"
    no_dev = load_task(variant_task(tmp_path / "b", dev_hosts=0))
    two = seed_where(no_dev.spec.variant, lambda v: v["hosts"] == 2)
    assert no_dev.spec.variant(two).dev_host_names == ()
    assert len(no_dev.spec.variant(two).host_names) == 2
    # [topology] states the default variant's: hosts 1 is the first value, 3 is not
    d = variant_task(tmp_path / "c", variants=VARIANTS.replace("[1, 2]", "[2, 1]"))
    assert "topology.hosts = 1, but [variants] hosts starts with 2" in "\n".join(validate_layout(d))


# -- the instructions template and the contract env -------------------------------------


def test_the_instructions_are_rendered_with_the_variant(tmp_path: Path) -> None:
    t = load_task(variant_task(tmp_path))
    seed = seed_where(t.spec.variant, lambda v: v["hosts"] == 2 and v["port"] != 8080)
    v = t.spec.variant(seed)
    text = t.instructions_for(seed)
    p = v["host_prefix"]
    assert text == (
        f"# tiny\nServe on port {v['port']} on 2 host(s), {p}1 and {p}2; a majority is\n"
        f"2; NODE_ID is e.g. {p}2 at 198.18.0.2, PEERS e.g.\n"
        f"{p}1=198.18.0.1,{p}2=198.18.0.2. A literal {{single}} brace stays.\n"
    )
    assert t.instructions == t.instructions_for(None) == t.render_instructions(t.spec.variant())
    assert "port 8080 on 1 host(s), a1;" in t.instructions


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("Serve on {{ prot }}.", "instructions.md line 2: unknown placeholder {{ prot }} (known:"),
        (
            "Serve on {{ port + 1 }}.",
            "instructions.md line 2: '{{ port + 1 }}' is not a placeholder",
        ),
        ("Serve on {{ node_id }}.", "unknown placeholder {{ node_id }}"),
    ],
)
def test_an_unknown_placeholder_fails_the_static_checks(
    tmp_path: Path, line: str, fragment: str
) -> None:
    d = variant_task(tmp_path, instructions=f"# tiny\n{line}\n")
    assert any(fragment in p for p in validate_layout(d)), validate_layout(d)
    # what `infragym validate` and check_task run first: nothing is graded
    with pytest.raises(ConfigError, match=r"unknown placeholder|is not a placeholder"):
        check_task(d)
    r = subprocess.run(
        [sys.executable, "-m", "infragym.cli.main", "validate", str(d)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1 and "placeholder" in r.stderr, r.stderr


def test_the_contract_env_names_variant_keys(tmp_path: Path) -> None:
    contract = '\n[contract.env]\nPORT = "{port}"\nN = "{hosts}"\nME = "{node_id}:{port}"\n'
    t = load_task(variant_task(tmp_path / "a", contract=contract))
    seed = seed_where(t.spec.variant, lambda v: v["hosts"] == 2 and v["port"] == 7000)
    v = t.spec.variant(seed)
    hosts = dict(zip(v.host_names, ("198.18.0.1", "198.18.0.2"), strict=True))
    assert t.spec.host_env(v.host_names[1], hosts, v) == {
        "PORT": "7000",
        "N": "2",
        "ME": f"{v.host_names[1]}:7000",
    }
    assert t.spec.host_env("x", {"x": "198.18.0.1"})["PORT"] == "8080"  # the default
    bad = variant_task(tmp_path / "b", contract='\n[contract.env]\nPORT = "{prot}"\n')
    assert any(
        "contract.env.PORT = '{prot}': unknown placeholder {prot}" in p
        for p in validate_layout(bad)
    )


# -- the grader and the Env get the variant ----------------------------------------------


@needs_root
def test_the_grader_receives_the_variant_of_the_seed_and_the_result_records_it(
    tmp_path: Path,
) -> None:
    t = load_task(variant_task(tmp_path / "task"))
    for seed in (
        seed_where(t.spec.variant, lambda v: v["hosts"] == 2),
        seed_where(t.spec.variant, lambda v: v["hosts"] == 1),
    ):
        v = t.spec.variant(seed)
        r = asyncio.run(grade_workspace(t, t.solution("robust"), seed, tmp_path / f"a{seed}"))
        assert r.error is None and r.variant == v.to_dict()
        (note,) = [n for n in r.notes if n.startswith("ctx.variant ")]
        seen = json.loads(note.removeprefix("ctx.variant "))
        assert seen == {"variant": v.to_dict(), "hosts": list(v.host_names)}
        assert History.read_jsonl(Path(r.history_path or "")).meta["variant"] == v.to_dict()


@needs_root
def test_an_episode_is_built_and_told_by_its_seeds_variant(tmp_path: Path) -> None:
    contract = '\n[contract.env]\nPORT = "{port}"\nNODE_ID = "{node_id}"\n'
    t = load_task(variant_task(tmp_path / "task", contract=contract))
    seed = seed_where(t.spec.variant, lambda v: v["hosts"] == 2 and v["port"] != 8080)
    v = t.spec.variant(seed)
    env = SyncEnv(make(str(t.path), artifacts_dir=tmp_path / "art"))
    try:
        assert env.env.dev_hosts == ("a1",)  # before a reset: the default variant's
        obs = env.reset(seed=seed)
        assert obs.variant == v.to_dict() and obs.dev_hosts == v.dev_host_names
        assert obs.instructions == t.instructions_for(seed) == env.env.instructions
        assert f"port {v['port']}" in obs.instructions
        cluster = env.env.dev_cluster
        assert cluster is not None and tuple(cluster.names) == v.host_names
        host_bash = next(x for x in obs.tools if x.name == "host_bash")
        assert host_bash.parameters["properties"]["host"]["enum"] == list(v.host_names)
        r = env.step(
            ToolCall("host_bash", {"host": v.host_names[1], "command": 'echo "got $PORT $NODE_ID"'})
        )
        assert f"got {v['port']} {v.host_names[1]}" in r.observation.content
        ids = [cluster.run_id]
        final = env.step(ToolCall("submit", {}))
        assert final.info["grade"].variant == v.to_dict()
    finally:
        env.close()
    for run_id in ids:
        assert_no_leftovers(run_id)


# -- kv-replicated's variants, without a cluster -----------------------------------------


def kv_grader() -> ModuleType:
    name = "kv_replicated_grader_variants"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, KV.grader_path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_kv_replicated_instructions_state_each_variants_figures() -> None:
    for seed in range(1, 41):
        v = KV.spec.variant(seed)
        text = KV.instructions_for(seed)
        names = v.host_names
        assert "{{" not in text and "}}" not in text
        for fragment in (
            f"runs on {v['hosts']} hosts",
            f"on `PORT` ({v['port']})",
            f"| `PORT` | `{v['port']}` |",
            f"1 to {v['max_key_len']} characters",
            f"0 to {v['max_value_bytes']} bytes",
            f"named {', '.join(names[:-1])} and {names[-1]}",
            f"| `NODE_ID` | `{names[1]}` |",
            f"`{names[0]}=198.18.0.1,",
            f"at least {v['hosts'] // 2 + 1} of\nthe {v['hosts']}",
        ):
            assert fragment in text, f"seed {seed}: {fragment!r} not in the instructions"
        # nothing of another variant is left in them
        if v["port"] != 8080:
            assert "8080" not in text, seed
        if v["max_value_bytes"] != 65536:
            assert "65536" not in text and "65,536" not in text, seed
        if v["max_key_len"] != 100:
            assert "1 to 100 " not in text, seed
        if v["hosts"] != 3:
            assert "3 hosts" not in text and f"{names[0][:-1]}4" in text, seed


class FakeKV(HttpProbe):
    """The grader's probe against an in-memory store that holds the variant's contract:
    only its hosts, keys up to its longest, values up to its largest (400 otherwise)."""

    def __init__(self, v: Variant) -> None:
        super().__init__(
            None,
            {n: f"http://{n}:{v['port']}" for n in v.host_names},  # type: ignore[arg-type]
            prefix="/kv/",
        )
        self.v = v
        self.store: dict[str, bytes] = {}
        self.keys: list[str] = []
        self.values: list[bytes] = []
        self.nodes_used: set[str] = set()

    async def request(
        self, method: str, node: str, path: str, body: bytes | None = None
    ) -> tuple[int, bytes]:
        if node not in self.urls:
            raise ExpectationFailed(f"no host {node} in this variant ({self.nodes})")
        self.nodes_used.add(node)
        if not 1 <= len(path) <= int(self.v["max_key_len"]):
            return 400, b"key too long"
        if method == "PUT":
            assert body is not None
            if len(body) > int(self.v["max_value_bytes"]):
                return 400, b"value too large"
            self.keys.append(path)
            self.values.append(body)
            self.store[path] = body
            return 204, b""
        return (200, self.store[path]) if path in self.store else (404, b"")


@pytest.fixture
def kv() -> Iterator[ModuleType]:
    yield kv_grader()


@pytest.mark.parametrize(
    "pick",
    [
        lambda v: v["hosts"] == 5 and v["max_key_len"] == 200 and v["max_value_bytes"] == 131072,
        lambda v: (
            v["hosts"] == 3
            and v["max_key_len"] == 64
            and v["max_value_bytes"] == 16384
            and v["host_prefix"] != "n"
        ),
    ],
    ids=["5-hosts-largest-limits", "3-hosts-smallest-limits"],
)
def test_kv_replicated_functional_tests_follow_the_variant(kv: ModuleType, pick) -> None:  # type: ignore[no-untyped-def]
    v = KV.spec.variant(seed_where(KV.spec.variant, pick))
    service = kv.service(v)
    assert service.contract.port == v["port"]
    probe = FakeKV(v)

    async def run_all() -> None:
        for name, test in service.functional.tests:
            try:
                await test(probe)
            except ExpectationFailed as exc:
                raise AssertionError(f"{name}: {exc}") from exc

    asyncio.run(run_all())
    # the longest key and the largest value are exactly the variant's, on its own hosts
    assert max(map(len, probe.keys)) == v["max_key_len"]
    assert max(map(len, probe.values)) == v["max_value_bytes"]
    assert probe.nodes_used == set(v.host_names)


def test_kv_replicated_deploys_with_the_contract_env_of_the_variant(kv: ModuleType) -> None:
    """Production hosts get what the dev hosts got in that variant (their names, port)."""
    from types import SimpleNamespace

    v = KV.spec.variant(seed_where(KV.spec.variant, lambda v: v["hosts"] == 5))
    names = list(v.host_names)
    hosts = [SimpleNamespace(name=n, address=f"198.18.4.{i}") for i, n in enumerate(names, 1)]
    env = kv.service(v).contract.env(SimpleNamespace(hosts=hosts, subnet="198.18.4.0/24"), hosts[3])
    assert env == KV.spec.host_env(names[3], {h.name: h.address for h in hosts}, v)
    assert env["PORT"] == str(v["port"]) and env["NODE_ID"] == names[3]
    assert env["PEERS"] == ",".join(f"{h.name}={h.address}" for h in hosts)
