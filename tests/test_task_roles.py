"""Roles: ``[topology.roles]`` in task.toml (named hosts with their own resources,
capabilities and contract environment), the variant's ``roles``, and clusters built so,
for grading (``ctx.cluster()``) and for the agent's dev hosts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import assert_no_leftovers, needs_root
from tinytask import tiny_task

from infragym import ConfigError
from infragym.env import SyncEnv, ToolCall, make
from infragym.grading import GradeContext
from infragym.nemesis import Partition, build_fault, sweep_schedule
from infragym.sandbox import Cluster, Limits
from infragym.tasks import find_task, load_task, validate_layout

ROLES = """
[variants]
lb_hosts = [2, 3]
app_prefix = ["app", "web"]
port = [8080, 9000]

[topology.roles.lb]
hosts = "{lb_hosts}"
cores = 0.5
memory_mb = 256
disk_mb = 32
net_admin = true

[topology.roles.lb.env]
BACKENDS = "{app_addresses}"
LB_PEERS = "{lb_peers}"

[topology.roles.app]
hosts = 2
prefix = "{app_prefix}"
memory_mb = 128

[contract.env]
ROLE = "{role}"
PORT = "{port}"
"""

INSTRUCTIONS = """# roles
Load balancers {{ lb_names }} ({{ lb_hosts }}) in front of {{ app_hosts }} apps,
{{ app_names }}, on port {{ port }}; all hosts: {{ host_names }}.
"""


def role_task(root: Path, roles: str = ROLES, dev_hosts: int = 1) -> Path:
    d = tiny_task(root, dev_hosts=dev_hosts)
    toml = (d / "task.toml").read_text().replace("hosts = 1\n", "", 1)
    if dev_hosts == 1:
        toml = toml.replace("dev_hosts = 1\n", "")
    (d / "task.toml").write_text(toml + roles)
    (d / "instructions.md").write_text(INSTRUCTIONS)
    return d


def seed_where(spec, predicate) -> int:  # type: ignore[no-untyped-def]
    return next(s for s in range(1, 1000) if predicate(spec.variant(s)))


# -- the spec and the variant -------------------------------------------------------------


def test_roles_name_the_hosts_from_the_variant(tmp_path: Path) -> None:
    t = load_task(role_task(tmp_path))
    v = t.spec.variant()
    assert v.host_names == ("lb1", "lb2", "app1", "app2") == v.dev_host_names
    assert v.roles == {"lb": ("lb1", "lb2"), "app": ("app1", "app2")}
    assert t.spec.topology.hosts == 4
    v3 = t.spec.variant(
        seed_where(t.spec, lambda v: v["lb_hosts"] == 3 and v["app_prefix"] == "web")
    )
    assert v3.host_names == ("lb1", "lb2", "lb3", "web1", "web2")
    assert v3.role_of("web2") == "app" and v3.role_of("lb3") == "lb"
    assert v3.hosts_of("app", "lb") == ("web1", "web2", "lb1", "lb2", "lb3")
    with pytest.raises(ConfigError, match=r"no role 'db'.*lb, app"):
        v3.hosts_of("db")
    with pytest.raises(ConfigError, match="'app1' has no role"):
        v3.role_of("app1")
    # the instructions name the roles' hosts of the episode's variant
    text = t.render_instructions(v3)
    assert "Load balancers lb1, lb2 and lb3 (3) in front of 2 apps,\nweb1 and web2" in text
    # no dev hosts: none, but the production hosts keep their roles
    none = load_task(role_task(tmp_path / "b", dev_hosts=0)).spec.variant()
    assert none.dev_host_names == () and none.roles["lb"] == ("lb1", "lb2")


def test_each_role_gets_its_own_contract_env_and_the_others_addresses(tmp_path: Path) -> None:
    t = load_task(role_task(tmp_path))
    v = t.spec.variant()
    hosts = {n: f"198.18.0.{i}" for i, n in enumerate(v.host_names, 1)}
    assert t.spec.host_env("lb2", hosts, v) == {
        "ROLE": "lb",
        "PORT": "8080",
        "BACKENDS": "198.18.0.3,198.18.0.4",
        "LB_PEERS": "lb1=198.18.0.1,lb2=198.18.0.2",
    }
    assert t.spec.host_env("app1", hosts, v) == {"ROLE": "app", "PORT": "8080"}
    assert t.spec.contract_names() == ["ROLE", "PORT", "BACKENDS", "LB_PEERS"]


def test_the_contract_may_name_the_clusters_subnet_and_its_addresses(tmp_path: Path) -> None:
    vip = '[topology.roles.lb.env]\nVIP = "{subnet[vip_host]}/{prefixlen}"\n'
    roles = ROLES.replace("port = ", "vip_host = [200, 7]\nport = ", 1)
    roles = roles.replace('ROLE = "{role}"', 'ROLE = "{role}"\nNET = "{subnet} .{subnet[9]}"')
    t = load_task(role_task(tmp_path, roles.replace("[topology.roles.lb.env]\n", vip)))
    v = t.spec.variant(seed_where(t.spec, lambda v: v["vip_host"] == 7))
    hosts = {n: f"198.18.6.{i}" for i, n in enumerate(v.host_names, 1)}
    lb = t.spec.host_env("lb1", hosts, v, "198.18.6.0/24")
    assert lb["VIP"] == "198.18.6.7/24" and lb["NET"] == "198.18.6.0/24 .198.18.6.9"
    assert t.spec.host_env("app1", hosts, v, "198.18.6.0/24")["NET"] == lb["NET"]
    # the subnet is the cluster's: without it the contract cannot be filled in
    with pytest.raises(ConfigError, match=r"names \{subnet\}: give host_env the cluster's"):
        t.spec.host_env("lb1", hosts, v)


@pytest.mark.parametrize(
    "value, message",
    [
        ("{subnet[0]}", "{subnet[...]}: an address's number is 1-254, not 0"),
        ("{subnet[255]}", "an address's number is 1-254, not 255"),
        ("{subnet[port]}", "an address's number is 1-254, not 8080"),
        ("{subnet[app_prefix]}", "an address's number is 1-254, not 'app'"),
        ("{subnet[gateway]}", "'gateway' is neither a number nor a variants key"),
        ("{subnet[]}", "'' is neither a number nor a variants key"),
        ("{subnet:>20}", "unknown placeholder {subnet}"),
        ("{net[3]}", "unknown placeholder {net[3]}"),
    ],
)
def test_bad_subnet_addresses_are_rejected(tmp_path: Path, value: str, message: str) -> None:
    roles = ROLES.replace('ROLE = "{role}"', f'ROLE = "{{role}}"\nVIP = "{value}"')
    problems = validate_layout(role_task(tmp_path, roles))
    assert any(message in p for p in problems), problems


def test_cluster_options_carry_each_roles_resources(tmp_path: Path) -> None:
    v = load_task(role_task(tmp_path)).spec.variant()
    opts = v.cluster_options(base=Limits(pids=64))
    assert opts["net_admin"] == ["lb1", "lb2"]
    assert opts["data_sizes"] == {"lb1": 32 << 20, "lb2": 32 << 20}
    lb, app = opts["host_limits"]["lb1"], opts["host_limits"]["app2"]
    assert (lb.cpu, lb.memory_bytes, lb.pids) == (0.5, 256 << 20, 64)
    assert (app.cpu, app.memory_bytes, app.pids) == (0.0, 128 << 20, 64)
    assert v.cluster_options(["app1"])["net_admin"] == []


def test_tasks_without_roles_keep_their_meaning() -> None:
    kv = find_task("kv-replicated").spec
    v = kv.variant(seed_where(kv, lambda v: v["hosts"] == 5 and v["host_prefix"] == "kv"))
    assert v.host_names == ("kv1", "kv2", "kv3", "kv4", "kv5") == v.dev_host_names
    assert v.roles == {} and kv.topology.roles == ()
    assert v.cluster_options() == {"host_limits": {}, "data_sizes": {}, "net_admin": []}


BAD = [
    ('[topology.roles.lb]\nprefix = "lb"\n', "topology.roles.lb: hosts is missing"),
    (
        "[topology.roles.lb]\nhosts = 0\n",
        "topology.roles.lb.hosts: a host count is a whole number 1-16, not 0",
    ),
    ('[topology.roles.lb]\nhosts = "2"\n', "topology.roles.lb.hosts: a host count"),
    ('[topology.roles.lb]\nhosts = "{lb_count}"\n', "no variants key 'lb_count'"),
    (
        '[variants]\nn = ["a", "b"]\n[topology.roles.lb]\nhosts = "{n}"\n',
        "topology.roles.lb.hosts = '{n}': variants.n: a host count is a whole number 1-16, not 'a'",
    ),
    ('[topology.roles.lb]\nhosts = "{ lb }"\n', 'a reference is "{key}" of a variants key'),
    (
        '[topology.roles.lb]\nhosts = 1\nprefix = "LB"\n',
        "a host name prefix is 1-6 lowercase letters",
    ),
    (
        '[topology.roles.lb]\nhosts = 1\nprefix = "lb1"\n',
        "prefix is 1-6 lowercase letters, not 'lb1'",
    ),
    ("[topology.roles.web_app]\nhosts = 1\n", "web_app: give a prefix"),
    ("[topology.roles.LB]\nhosts = 1\n", "topology.roles.LB: a role name is 1-16 lowercase"),
    ("[topology.roles.lb]\nhosts = 1\ncpus = 1\n", "topology.roles.lb: unknown key 'cpus'"),
    ("[topology.roles.lb]\nhosts = 1\ncores = 0\n", "cores is a CPU quota of 0.01-64 cores, not 0"),
    ("[topology.roles.lb]\nhosts = 1\nmemory_mb = 8\n", "memory_mb is a whole number of MiB 16-"),
    ("[topology.roles.lb]\nhosts = 1\ndisk_mb = 0.5\n", "disk_mb is a whole number of MiB 1-"),
    (
        '[topology.roles.lb]\nhosts = 1\nnet_admin = "yes"\n',
        "net_admin is true or false, not 'yes'",
    ),
    ("[topology.roles]\n", "[topology.roles] must be a table of roles"),
    ("[topology.roles]\nlb = 2\n", "topology.roles.lb must be a table"),
    (
        '[topology.roles.a]\nhosts = 1\nprefix = "n"\n'
        '[topology.roles.b]\nhosts = 1\nprefix = "n"\n',
        "roles a and b can both use the prefix 'n'",
    ),
    (
        '[variants]\np = ["x", "y"]\nq = ["y", "z"]\n'
        '[topology.roles.a]\nhosts = 1\nprefix = "{p}"\n'
        '[topology.roles.b]\nhosts = 1\nprefix = "{q}"\n',
        "roles a and b can both use the prefix 'y'",
    ),
    (
        "[variants]\nn = [9, 10]\n"
        '[topology.roles.a]\nhosts = "{n}"\n[topology.roles.b]\nhosts = 7\n',
        "can make 17 hosts in all",
    ),
    (
        "[variants]\nhosts = [1, 2]\n[topology.roles.a]\nhosts = 1\n",
        "variants.hosts cannot be used with [topology.roles]",
    ),
    (
        "[variants]\na_names = [1, 2]\n[topology.roles.a]\nhosts = 1\n",
        "variants.a_names: 'a_names' is a name of role a's names",
    ),
    (
        "[variants]\nsubnet = [1, 2]\n[topology.roles.a]\nhosts = 1\n",
        "variants.subnet: 'subnet' is a name the platform fills in itself",
    ),
    (
        "[variants]\nrole = [1, 2]\n[topology.roles.a]\nhosts = 1\n",
        "'role' is a name of the host's role",
    ),
    (
        '[topology.roles.a]\nhosts = 1\n[topology.roles.a.env]\nX = "{db_addresses}"\n',
        "topology.roles.a.env.X = '{db_addresses}': unknown placeholder {db_addresses}",
    ),
    (
        '[topology.roles.a]\nhosts = 1\n[contract.env.a]\nX = "1"\n',
        "contract.env.a is a table: a role's own variables go in [topology.roles.a.env]",
    ),
    (
        "[topology.roles.a]\nhosts = 1\n[topology.roles.a.env]\nX = 3\n",
        "topology.roles.a.env.X must be a string",
    ),
    (  # a NUL cannot reach a process's environment: exec would fail at every deploy
        '[topology.roles.a]\nhosts = 1\n[topology.roles.a.env]\nX = "a\\u0000b"\n',
        "topology.roles.a.env.X holds a NUL character",
    ),
    (
        '[topology.roles.a]\nhosts = 1\n[contract.env]\nX = "\\u0000"\n',
        "contract.env.X holds a NUL",
    ),
    (
        '[variants]\nname = ["a", "b\\u0000"]\n[topology.roles.a]\nhosts = 1\n',
        "variants.name: 'b\\x00' holds a NUL character",
    ),
    (  # longer than the kernel takes for one environment string (E2BIG at exec)
        '[topology.roles.a]\nhosts = 1\n[topology.roles.a.env]\nX = "' + "x" * 70000 + '"\n',
        "topology.roles.a.env.X is 70000 characters long; at most 65536",
    ),
]


@pytest.mark.parametrize("roles, message", BAD)
def test_malformed_roles_are_rejected_clearly(tmp_path: Path, roles: str, message: str) -> None:
    problems = validate_layout(role_task(tmp_path, roles))
    assert any(message in p for p in problems), problems


def test_topology_counts_must_agree_with_the_roles(tmp_path: Path) -> None:
    d = role_task(tmp_path)
    (d / "task.toml").write_text(
        (d / "task.toml")
        .read_text()
        .replace("[topology]\n", "[topology]\nhosts = 3\ndev_hosts = 2\n")
    )
    problems = validate_layout(d)
    assert any("topology.hosts = 3, but the roles make 4" in p for p in problems), problems
    assert any("topology.dev_hosts = 2: with a hosts variant or roles" in p for p in problems)


def test_cluster_per_host_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="host_limits names hosts this cluster does not have: n9"):
        Cluster(2, host_limits={"n9": Limits()})
    with pytest.raises(ConfigError, match="limits must be a Limits"):
        Cluster(2, host_limits={"n1": 5})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="a data size must be a whole number of bytes >= 1 MiB"):
        Cluster(2, data_sizes={"n2": 1000})


# -- clusters built by the roles ----------------------------------------------------------


def _cgroup(host, controller: str, name: str) -> str:  # type: ignore[no-untyped-def]
    return (host.cgroup.dirs[controller] / name).read_text().strip()


def _data_disk_mb(host) -> float:  # type: ignore[no-untyped-def]
    st = os.statvfs(host.data_dir)
    return st.f_blocks * st.f_frsize / (1 << 20)


def _can_add_address(cluster: Cluster, name: str) -> bool:
    vip = cluster.free_addresses()[0]
    r = cluster[name].run(
        ["sh", "-c", f"ip addr add {vip}/32 dev eth0 && ip addr del {vip}/32 dev eth0"], timeout=10
    )
    return r.returncode == 0


def _assert_built_by_roles(c: Cluster, lb: str, app: str) -> None:
    assert _cgroup(c[lb], "cpu", "cpu.cfs_quota_us") == "50000"
    assert _cgroup(c[lb], "cpu", "cpu.cfs_period_us") == "100000"
    assert _cgroup(c[app], "cpu", "cpu.cfs_quota_us") == "-1"
    assert _cgroup(c[lb], "memory", "memory.limit_in_bytes") == str(256 << 20)
    assert _cgroup(c[app], "memory", "memory.limit_in_bytes") == str(128 << 20)
    assert _data_disk_mb(c[lb]) == 32
    assert _data_disk_mb(c[app]) == c.data_size >> 20
    assert _can_add_address(c, lb) and not _can_add_address(c, app)


@needs_root
def test_grading_builds_each_host_with_its_roles_resources(tmp_path: Path) -> None:
    t = load_task(role_task(tmp_path))
    v = t.spec.variant(
        seed_where(t.spec, lambda v: v["lb_hosts"] == 3 and v["app_prefix"] == "web")
    )
    (tmp_path / "ws").mkdir()
    ctx = GradeContext("roles", 1, tmp_path / "ws", tmp_path / "art", 60.0, variant=v)
    try:
        c = ctx.cluster()
        assert c.names == ["lb1", "lb2", "lb3", "web1", "web2"]
        _assert_built_by_roles(c, "lb3", "web1")
        # what a grader gives replaces what the roles say
        plain = ctx.cluster(["lb1"], net_admin=False, host_limits={})
        assert _cgroup(plain["lb1"], "cpu", "cpu.cfs_quota_us") == "-1"
        assert _data_disk_mb(plain["lb1"]) == 32 and not _can_add_address(plain, "lb1")
        ids = [c.run_id, plain.run_id]
    finally:
        ctx.close()
    for run_id in ids:
        assert_no_leftovers(run_id)


@needs_root
def test_dev_hosts_follow_the_roles(tmp_path: Path) -> None:
    t = load_task(role_task(tmp_path))
    seed = seed_where(t.spec, lambda v: v["lb_hosts"] == 2 and v["port"] == 9000)
    v = t.spec.variant(seed)
    env = SyncEnv(make(str(t.path), artifacts_dir=tmp_path / "art"))
    try:
        obs = env.reset(seed=seed)
        assert obs.dev_hosts == v.host_names
        c = env.env.dev_cluster
        assert c is not None
        _assert_built_by_roles(c, "lb2", v.hosts_of("app")[0])
        r = env.step(
            ToolCall("host_bash", {"host": "lb1", "command": 'echo "$ROLE $PORT $BACKENDS"'})
        )
        apps = ",".join(c[n].address for n in v.hosts_of("app"))
        assert f"lb 9000 {apps}" in r.observation.content
        host_bash = next(x for x in obs.tools if x.name == "host_bash")
        assert "BACKENDS" in host_bash.description and "LB_PEERS" in host_bash.description
        ids = [c.run_id]
    finally:
        env.close()
    for run_id in ids:
        assert_no_leftovers(run_id)


def test_a_sweep_limited_to_a_role_fails_only_its_hosts(tmp_path: Path) -> None:
    v = load_task(role_task(tmp_path)).spec.variant()
    sweep = sweep_schedule(v.hosts_of("lb"))
    assert [f.label for f in sweep.faults] == [
        f"{kind}-{h}" for kind in ("crash", "pause", "isolate") for h in ("lb1", "lb2")
    ]
    # an isolated load balancer is cut from every host of the cluster, apps included
    last = sweep.faults[-1]
    cut = build_fault(last.spec, last.label, v.host_names)
    assert isinstance(cut, Partition)
    assert cut.blocked["lb2"] == frozenset({"lb1", "app1", "app2"})
