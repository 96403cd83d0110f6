"""The kv-replicated task validates: robust scores high, naive low, broken and no-op zero.

Every grading here is real: a fresh 3-host cluster, the reference solution deployed by the
task's contract, open-loop load under a seeded nemesis, and the task's checkers and rubric.
Results are cached per (tier, seed) so the spread tests reuse the per-seed gradings.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import assert_no_leftovers, needs_root, recording_clusters
from histories import HistoryBuilder

from infragym.checkers import CheckResult, Verdict, faulted_hosts
from infragym.grading import GradeResult, grade_workspace
from infragym.history import History
from infragym.nemesis import build_fault
from infragym.tasks import Task, find_task, load_task, validate_layout

TASK = find_task("kv-replicated")
# seed 1 of every tier is graded by tests/test_builtin_tasks.py (check_task, against the
# bands of task.toml); these seeds add the quality, spread and offline-check assertions
SEEDS = (2, 3)
TIERS = ("broken", "naive", "robust")
MAX_SPREAD = 0.05
_results: dict[tuple[str, int], GradeResult] = {}


def grader_module() -> ModuleType:
    name = "kv_replicated_grader_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TASK.grader_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def grade(task: Task, workspace: Path, seed: int, artifacts: Path) -> GradeResult:
    """Grade for real, recording every cluster the grader builds, and check none is left."""
    with recording_clusters() as run_ids:
        result = asyncio.run(grade_workspace(task, workspace, seed, artifacts))
    assert run_ids, "the grader built no cluster"
    for run_id in run_ids:
        assert_no_leftovers(run_id)
    return result


def graded(tier: str, seed: int, tmp_root: Path) -> GradeResult:
    key = (tier, seed)
    if key not in _results:
        ws = TASK.workspace if tier == "starter" else TASK.solution(tier)
        result = grade(TASK, ws, seed, tmp_root / f"{tier}-{seed}")
        assert result.error is None, f"{tier} seed {seed}: platform error {result.error}"
        _results[key] = result
    return _results[key]


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("kv-replicated")


# -- the task folder, schedule and rubric (no cluster needed) ----------------------------


def test_the_task_folder_is_valid() -> None:
    assert validate_layout(TASK.path) == []
    assert set(TASK.solutions()) >= set(TIERS)
    text = TASK.instructions
    for needle in (
        "NODE_ID",
        "NODE_ADDRESS",
        "PEERS",
        "PORT",
        "DATA_DIR",
        "/srv/app/start.sh",
        "PUT /kv/{key}",
        "GET /kv/{key}",
        "404",
        "503",
        "/usr/bin/python3",
    ):
        assert needle in text, f"the instructions do not mention {needle!r}"  # fmt: skip
    starter = (TASK.workspace / "start.sh").read_text()
    assert "exit 1" in starter
    for tier in TIERS:
        assert (TASK.solution(tier) / "start.sh").is_file()
        assert (TASK.solution(tier) / "server.py").is_file()


def test_the_fault_schedule_is_seeded_and_balanced() -> None:
    g = grader_module()
    hosts = ["n1", "n2", "n3"]
    for seed in range(1, 21):
        s = g.fault_schedule(seed, hosts)
        assert s == g.fault_schedule(seed, hosts)
        kinds = [f.spec.kind for f in s.faults]
        assert sorted(kinds) == ["crash", "crash", "partition", "partition", "pause", "pause"]
        crashed = [f.spec.targets[0] for f in s.faults if f.spec.kind == "crash"]
        assert len(set(crashed)) == 2, "two different hosts crash in every run"
        ends = [f.at + f.duration for f in s.faults]
        assert all(e < nxt.at for e, nxt in zip(ends, s.faults[1:], strict=False))
        assert s.faults[0].at >= 2.0 and s.end <= 25.0
    assert g.fault_schedule(1, hosts) != g.fault_schedule(2, hosts)


def test_write_once_keys_are_written_all_through_the_load_and_inside_fault_windows() -> None:
    """A write acknowledged before a majority held it, then lost, hides behind any later
    write of its key: only keys written once expose it, so some must be written while a
    fault is active, on every seed (a helper's cheat that acknowledged early escaped while
    the write-once keys were all written before the first fault)."""
    g = grader_module()
    urls = {n: f"http://198.18.0.{i}:8080" for i, n in enumerate(("n1", "n2", "n3"), 1)}
    for seed in range(1, 6):
        schedule = g.fault_schedule(seed, list(urls))
        duration = schedule.end + 1.5
        streams = g.workload(urls, 7, duration, schedule)
        (cold,) = [s for s in streams if s.generator.name == "cold"]
        bursts = [s for s in streams if s.generator.name.startswith("cold-f")]
        assert len(bursts) == len(schedule.faults)
        for f, b in zip(schedule.faults, bursts, strict=True):
            at = [b.start + i / b.rate for i in range(b.max_ops or 0)]
            assert sum(f.at - 0.3 <= t < f.at for t in at) >= 8, "new keys just before it"
            assert any(f.at <= t for t in at), "and as it starts"
        every = [op.key for s in (cold, *bursts) for op in s.generator.ops()]
        assert len(set(every)) == len(every), "no write-once key is written twice"
        # lost-writes' evidence (min_judged) is the write-once keys alone, not hot overwrites
        (hot,) = [s for s in streams if s not in (cold, *bursts)]
        hot_keys = {op.key for op, _ in zip(hot.generator.ops(), range(500), strict=False)}
        assert all(re.fullmatch(g.WRITE_ONCE, k) for k in every)
        assert hot_keys and not any(re.fullmatch(g.WRITE_ONCE, k) for k in hot_keys)
        (lost_writes,) = [c for c in g.checkers() if c.name == "lost-writes"]
        assert lost_writes.counted == g.WRITE_ONCE
        ops = list(cold.generator.ops())
        keys = [op.key for op in ops]
        assert len(set(keys)) == len(keys), "each write-once key is written once"
        starts = [i / cold.rate for i in range(len(ops))]
        assert starts[-1] >= duration - 0.5, "the writes go on to the end of the load"
        inside = [
            t for t in starts for f in schedule.faults if f.at <= t < f.at + f.duration
        ]
        assert len(inside) >= 3 * len(schedule.faults), (seed, len(inside))
        assert {op.target.node for op in ops} == set(urls), "round-robin over every host"


def _result(name: str, verdict: Verdict, score: float, **metrics: Any) -> CheckResult:
    return CheckResult(name, verdict, score, "synthetic", metrics)


def _all_pass(**overrides: CheckResult) -> dict[str, CheckResult]:
    results = {
        "functional": _result("functional", Verdict.PASS, 1.0),
        "linearizable": _result("linearizable", Verdict.PASS, 1.0),
        "lost-writes": _result("lost-writes", Verdict.PASS, 1.0),
        "stale-reads": _result("stale-reads", Verdict.PASS, 1.0),
        "availability": _result("availability", Verdict.PASS, 1.0, worst_availability=1.0),
        "serving": _result("serving", Verdict.PASS, 1.0),
        "no-spof": _result("no-spof", Verdict.PASS, 1.0),
    }
    results.update(overrides)
    return results


def test_the_rubric_gates_the_contract_then_consistency() -> None:
    rubric = grader_module().rubric()
    assert rubric.score(_all_pass()).reward == pytest.approx(1.0)
    # one failed functional test: nothing, however good the rest
    functional = _result("functional", Verdict.FAIL, 10 / 11)
    assert rubric.score(_all_pass(functional=functional)).reward == 0.0
    # not linearizable (or undecided): at most 0.25, however available
    for verdict in (Verdict.FAIL, Verdict.UNKNOWN):
        lin = _result("linearizable", verdict, 0.5)
        r = rubric.score(_all_pass(linearizable=lin))
        assert r.reward == pytest.approx(0.25) and r.capped_by == "linearizable"
    # one lost acknowledged write: at most the naive level, however available
    lost = _result("lost-writes", Verdict.FAIL, 0.999)
    r = rubric.score(_all_pass(**{"lost-writes": lost}))
    assert r.reward == pytest.approx(0.25) and r.capped_by == "lost-writes"
    # availability: 0 at a worst window of 50 %, full at 99 %, linear between
    for worst, reward in ((0.5, 0.6), (0.3, 0.6), (0.745, 0.8), (0.99, 1.0)):
        avail = _result("availability", Verdict.FAIL, worst, worst_availability=worst)
        assert rubric.score(_all_pass(availability=avail)).reward == pytest.approx(reward)


def test_the_rubric_gates_on_serving_and_on_a_single_point_of_failure() -> None:
    rubric = grader_module().rubric()
    # refusing outside faults: nothing, however consistent it looks
    serving = _result("serving", Verdict.FAIL, 0.3)
    r = rubric.score(_all_pass(serving=serving))
    assert r.reward == 0.0 and r.capped_by == "serving"
    # the healthy hosts below 50 % in some fault window: at most the naive level
    for verdict in (Verdict.FAIL, Verdict.UNKNOWN):
        spof = _result("no-spof", verdict, 0.0)
        r = rubric.score(_all_pass(**{"no-spof": spof}))
        assert r.reward == pytest.approx(0.25) and r.capped_by == "no-spof"
    # a linearizability check that judged (almost) nothing is no pass
    lin = CheckResult("linearizable", Verdict.PASS, 1.0, "all keys linearizable", judged=3)
    r = rubric.score(_all_pass(linearizable=lin))
    assert r.reward == pytest.approx(0.25) and r.vacuous == ["linearizable"]


def _leader_crash(back_after: float | None) -> History:
    """n1 crashed from 2 s to 4 s; the healthy n2 and n3 fail every request until
    ``back_after`` seconds into the window (never, when None), then serve."""
    b = HistoryBuilder()
    b.fault("crash-1", 2.0, 4.0, fault="crash", targets=("n1",))
    for i in range(120):  # 20 requests a second to each healthy host, 1 s to 4 s
        t = 1.0 + i / 40
        ok = t < 2.0 or (back_after is not None and t >= 2.0 + back_after)
        node = ("n2", "n3")[i % 2]
        b.op("read", "k", t=t, done=t + 0.01, outcome="ok" if ok else "fail", node=node)
    return b.build()


def test_a_correct_failover_is_no_single_point_of_failure_but_a_spof_is() -> None:
    """A leader-based design that fails over 1.2 s into a 2 s window (40 % there) pays in
    the availability weight; only a service that never serves while a host is away (a
    single point of failure) is held at the naive level."""
    g = grader_module()
    (spof_check,) = [c for c in g.checkers() if c.name == "no-spof"]
    assert spof_check.check(_leader_crash(1.2)).verdict is Verdict.PASS
    never = spof_check.check(_leader_crash(None))
    assert never.verdict is Verdict.FAIL, never.explanation


def _taken_away(g: ModuleType, seed: int, hosts: list[str]) -> Counter[str]:
    hit: Counter[str] = Counter()
    for f in g.fault_schedule(seed, hosts).faults:
        fault = build_fault(f.spec, f.label, hosts)
        blocked = getattr(fault, "blocked", {})
        detail = {"blocked": {k: sorted(v) for k, v in blocked.items()}}
        hit.update(faulted_hosts(f.spec.kind, f.spec.targets, detail))
    return hit


@pytest.mark.parametrize("n", [3, 5])
def test_the_fault_schedule_takes_every_host_away_on_every_seed(n: int) -> None:
    """No seed spares the host a single point of failure lives on (before: ~8.6 % of seeds
    never faulted n1, ~19.8 % spared some host)."""
    g = grader_module()
    hosts = [f"n{i}" for i in range(1, n + 1)]
    for seed in range(1, 201):
        s = g.fault_schedule(seed, hosts)
        assert s == g.fault_schedule(seed, hosts)
        assert len(s.faults) == 6 and s.end <= 25.0
        assert set(_taken_away(g, seed, hosts)) == set(hosts), f"seed {seed}: {s}"
        crashed = [f.spec.targets[0] for f in s.faults if f.spec.kind == "crash"]
        assert len(set(crashed)) == 2


def test_the_service_never_receives_the_seed() -> None:
    """The seed only chooses the fault schedule; tags and workload come from fresh
    randomness (recorded in the artifacts), so no seed -> schedule table can be learnt."""
    source = TASK.grader_path.read_text()
    uses = [line.strip() for line in source.splitlines() if "ctx.seed" in line]
    assert uses == ["schedule = fault_schedule(ctx.seed, cluster.names)"], uses
    assert 'f"s{' not in source


# -- real gradings -----------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("tier", TIERS)
def test_reference_solutions_score_by_quality(tier: str, seed: int, tmp_root: Path) -> None:
    r = graded(tier, seed, tmp_root)
    assert r.reward is not None and r.functional is not None and r.detail is not None
    assert r.timings["total_s"] < 60.0, r.timings
    if tier == "broken":
        assert r.functional < 1.0
        assert r.reward <= 0.05
        assert "functional" in r.detail.gates_failed
    elif tier == "naive":
        # passes everything an agent can test by hand, and is still not production grade
        assert r.functional == 1.0
        assert r.reward <= 0.40
        assert r.detail.criterion("linearizable").verdict is Verdict.FAIL
        assert r.breakdown["availability"] >= 0.9, "naive is available; that is not its flaw"
    else:
        assert r.functional == 1.0
        assert r.reward >= 0.85, r.notes
        for name in ("linearizable", "lost-writes", "stale-reads"):
            assert r.detail.criterion(name).verdict is Verdict.PASS, r.notes
    assert (Path(r.artifacts_dir or "") / "history.jsonl").is_file()


@needs_root
@pytest.mark.parametrize("tier", TIERS)
def test_rewards_are_stable_across_seeds(tier: str, tmp_root: Path) -> None:
    rewards = [graded(tier, seed, tmp_root).reward for seed in SEEDS]
    assert all(r is not None for r in rewards)
    values = [r for r in rewards if r is not None]
    assert max(values) - min(values) <= MAX_SPREAD, f"{tier}: rewards {values} over seeds"


@needs_root
def test_a_no_op_agent_gets_zero(tmp_root: Path) -> None:
    r = graded("starter", 1, tmp_root)
    assert r.reward == 0.0
    assert r.functional == 0.0
    assert any("not implemented" in n for n in r.notes), r.notes
    assert r.timings["total_s"] < 15.0, "a service that never starts is judged fast"


FAILING_GRADER = """
from infragym.grading import GradeContext, GradeOutcome


async def grade(ctx: GradeContext) -> GradeOutcome:
    ctx.cluster(1)
    raise RuntimeError("grader bug")
"""


@needs_root
def test_a_platform_failure_is_an_error_not_a_reward(tmp_path: Path) -> None:
    d = tmp_path / "kv-broken-grader"
    (d / "workspace").mkdir(parents=True)
    (d / "solutions" / "robust").mkdir(parents=True)
    (d / "task.toml").write_text(
        'name = "kv-broken-grader"\nsummary = "A grader that fails."\n[grading]\nbudget_s = 30\n'
    )
    (d / "instructions.md").write_text("Nothing to do.\n")
    (d / "grader.py").write_text(textwrap.dedent(FAILING_GRADER))
    r = grade(load_task(d), d / "workspace", 1, tmp_path / "artifacts")
    assert r.reward is None
    assert r.error is not None and "grader bug" in r.error


# -- hack probes and offline re-checks (real gradings, reusing the cached ones) -----------

PROBES = {"probe-single-leader": 0.30}


@needs_root
@pytest.mark.parametrize("probe", sorted(PROBES))
def test_hack_probes_earn_next_to_nothing(probe: str, tmp_root: Path) -> None:
    """Every host forwarding to one leader (0.6, and 1.0 on seeds that never fault the
    leader) must pass the functional tests and stay at the naive level. One seed, to keep
    the suite cheap; the catalogue's refuse-after-start (0.6 before the serving gate) is
    graded by check_task, which also holds it to passing the functional tests."""
    r = graded(probe, 1, tmp_root)
    assert r.functional == 1.0, f"the probe must pass the functional tests: {r.notes}"
    assert r.reward is not None and r.reward <= PROBES[probe], r.notes
    assert r.detail is not None and r.detail.gates_failed, r.notes


@needs_root
@pytest.mark.parametrize("tier", TIERS)
def test_an_offline_check_of_the_stored_history_gives_the_grade(tier: str, tmp_root: Path) -> None:
    r = graded(tier, SEEDS[0], tmp_root)
    assert r.history_path is not None and r.detail is not None
    out = subprocess.run(
        [sys.executable, "-m", "infragym.cli.main", "check", r.history_path, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr
    data = json.loads(out.stdout)
    assert data["task"] == "kv-replicated"
    assert data["reward"] == pytest.approx(r.reward)
    verdicts = {c["name"]: c["verdict"] for c in data["breakdown"]}
    assert verdicts == {c.name: c.verdict.value for c in r.detail.breakdown}
    if tier != "broken":
        # the workload came from fresh randomness, recorded so the history can be replayed
        meta = History.read_jsonl(Path(r.history_path)).meta
        streams = {w["name"]: w["seed"] for w in meta["workload"]}
        assert streams["kv"] == meta["workload_seed"] != r.seed
        workload = json.loads((Path(r.artifacts_dir or "") / "workload.json").read_text())
        assert workload["seed"] == meta["workload_seed"]
