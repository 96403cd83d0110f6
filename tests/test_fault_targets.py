"""Fire-time targets: a fault whose host is chosen when it fires, by a function of the
live cluster (``nemesis.FaultTarget``), on a real cluster."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest
from conftest import assert_no_leftovers, needs_root, start_http

from infragym import ConfigError
from infragym.history import Clock, FaultAction, History
from infragym.nemesis import (
    Crash,
    FaultSpec,
    FaultTarget,
    Nemesis,
    Partition,
    Pause,
    Schedule,
    ScheduledFault,
    build_fault,
)
from infragym.sandbox import Cluster

HOSTS = ["n1", "n2", "n3"]


def claim(cluster: Cluster, primary: str) -> None:
    """Each host writes on its own data disk whether it is the primary."""
    for h in cluster.hosts:
        role = "primary" if h.name == primary else "backup"
        r = h.run(["sh", "-c", f"echo {role} > /srv/data/role"], timeout=10)
        assert r.returncode == 0, r.stderr


def primary(cluster: Cluster) -> str | None:
    """The host whose data disk says it is the primary now (as the hosts wrote it)."""
    for h in cluster.hosts:
        path = h.data_dir / "role"
        if path.is_file() and path.read_text().strip() == "primary":
            return h.name
    return None


def mark(cluster: Cluster, primary: str) -> None:
    """As :func:`claim`, written from outside the hosts (one of them may be frozen)."""
    for h in cluster.hosts:
        (h.data_dir / "role").write_text("primary\n" if h.name == primary else "backup\n")


def _events(history: History) -> list[tuple[str, FaultAction, tuple[str, ...], dict]]:  # type: ignore[type-arg]
    return [(e.label, e.action, e.targets, dict(e.detail)) for e in history.faults]


@needs_root
def test_a_scheduled_fault_hits_the_host_its_target_names_when_it_fires(cluster3: Cluster) -> None:
    claim(cluster3, "n1")
    sleepers = {h.name: h.spawn("sleeper", ["sleep", "600"], service=False) for h in cluster3.hosts}
    history = History()
    schedule = Schedule(
        (ScheduledFault(1.0, 0.3, FaultSpec("crash", ("@primary",)), "crash-primary"),)
    )
    nemesis = Nemesis(cluster3, history, Clock(), targets={"primary": FaultTarget(primary)})
    assert primary(cluster3) == "n1"  # the primary when the schedule is made and played

    async def failover_then_play() -> None:
        async with nemesis:
            play = asyncio.create_task(nemesis.run(schedule))
            await asyncio.sleep(0.1)  # well before the fault fires at 1 s
            await asyncio.to_thread(claim, cluster3, "n3")
            await play

    asyncio.run(failover_then_play())
    (apply, heal) = _events(history)
    assert apply[:3] == ("crash-primary", FaultAction.APPLY, ("n3",))
    assert apply[3]["target"] == "primary" and apply[3]["killed"] >= 1
    assert heal[:3] == ("crash-primary", FaultAction.HEAL, ("n3",))
    assert not sleepers["n3"].alive()
    assert sleepers["n1"].alive() and sleepers["n2"].alive()


@needs_root
def test_each_apply_asks_again_and_no_host_skips_the_fault(cluster3: Cluster) -> None:
    pause = Pause(FaultTarget(primary, "primary"), "pause-primary")
    assert pause.describe() == "pause(primary)" and pause.targets() == ()
    mark(cluster3, "n2")
    detail = pause.apply(cluster3)
    assert detail == {"target": "primary"} and pause.targets() == ("n2",)
    assert [h.cgroup.frozen() for h in cluster3.hosts] == [False, True, False]
    mark(cluster3, "n1")
    pause.heal(cluster3)
    assert not any(h.cgroup.frozen() for h in cluster3.hosts)
    pause.apply(cluster3)
    assert pause.targets() == ("n1",)
    assert [h.cgroup.frozen() for h in cluster3.hosts] == [True, False, False]
    pause.heal(cluster3)
    for h in cluster3.hosts:
        (h.data_dir / "role").unlink()
    crash = Crash(primary)  # a plain function is a target too
    sleeper = cluster3["n1"].spawn("sleeper", ["sleep", "600"], service=False)
    assert crash.apply(cluster3) == {"target": "primary", "skipped": "the target named no host"}
    assert crash.targets() == () and sleeper.alive()
    crash.heal(cluster3)  # nothing to heal
    assert not any(h.cgroup.frozen() for h in cluster3.hosts)


@needs_root
def test_an_isolating_partition_cuts_whichever_host_holds_the_address_now() -> None:
    with Cluster(3, net_admin=["n1", "n2"]) as c:
        for h in c.hosts:
            start_http(h)
        vip = c.free_addresses()[0]
        r = c["n2"].run(["ip", "addr", "add", f"{vip}/32", "dev", "eth0"], timeout=10)
        assert r.returncode == 0, r.stderr
        holder = FaultTarget.holding(vip)
        assert holder.resolve(c) == "n2"
        cut = Partition.isolate(holder, c.names, "isolate-vip")
        assert cut.describe() == f"partition(isolate holder of {vip})"
        assert cut.apply(c)["target"] == f"holder of {vip}"
        assert set(cut.targets()) == {"n1", "n2", "n3"}
        assert cut.blocked["n2"] == frozenset({"n1", "n3"})
        assert not c["n1"].can_connect(c["n2"].address, 8080, timeout=0.3)
        assert c["n1"].can_connect(c["n3"].address, 8080)
        cut.heal(c)
        assert c["n1"].can_connect(c["n2"].address, 8080)
        run_id = c.run_id
    assert_no_leftovers(run_id)


@needs_root
def test_a_target_naming_no_host_of_the_cluster_is_refused(cluster3: Cluster) -> None:
    history = History()

    async def apply() -> None:
        async with Nemesis(cluster3, history, Clock()) as nemesis:
            await nemesis.apply(Crash(FaultTarget(lambda c: "n9", "wrong"), "c"))

    with pytest.raises(ConfigError, match="target 'wrong' chose 'n9', which is no host"):
        asyncio.run(apply())
    # recorded as a failed apply, healed by the final heal with nothing to undo
    assert _events(history) == [
        ("c", FaultAction.APPLY, (), {"error": "apply failed"}),
        ("c", FaultAction.HEAL, (), {}),
    ]


def test_fire_time_targets_in_specs_are_checked_before_anything_runs() -> None:
    t = {"primary": FaultTarget(primary)}
    crash = build_fault(FaultSpec("crash", ("@primary",)), "c", HOSTS, t)
    assert isinstance(crash, Crash) and crash.target is t["primary"]
    iso = build_fault(FaultSpec("partition", ("@primary",)), "p", HOSTS, t)
    assert isinstance(iso, Partition) and iso.describe() == "partition(isolate primary)"
    with pytest.raises(ConfigError, match=r"no fire-time target 'leader'.*it has: primary"):
        build_fault(FaultSpec("crash", ("@leader",)), "c", HOSTS, t)
    with pytest.raises(ConfigError, match=r"the one host of a crash.*not of loss"):
        build_fault(FaultSpec("loss", ("@primary",), (("probability", 0.5),)), "l", HOSTS, t)
    with pytest.raises(ConfigError, match="not of partition"):
        build_fault(
            FaultSpec("partition", ("@primary", "n1"), (("topology", "bridge"),)), "p", HOSTS, t
        )
    with pytest.raises(ConfigError, match="needs a function of the cluster"):
        FaultTarget("n1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="fire-time target 'primary' must be a FaultTarget"):
        Nemesis(None, History(), Clock(), targets={"primary": primary})  # type: ignore[arg-type,dict-item]
    with pytest.raises(ConfigError, match="isolating a host needs a second one"):
        Partition.isolate(primary, ["n1"])


@needs_root
def test_a_host_cannot_steer_the_holder_target_onto_a_decoy() -> None:
    """The system under test may put the address on a host where no client reaches it (on
    ``lo`` or ``eth0``, answering no ARP for it): the holder is the one the clients reach,
    else a decoy listed first takes every fault meant for the real primary, which then
    never has to fail over."""
    with Cluster(3, net_admin=True) as c:
        vip = c.free_addresses()[0]
        quiet = [  # the host answers no ARP for the address
            ["nft", "add table arp quiet"],
            ["nft", "add chain arp quiet out { type filter hook output priority 0; }"],
            ["nft", f"add rule arp quiet out arp saddr ip {vip} drop"],
        ]
        for host, cmds in (
            ("n1", [*quiet, ["ip", "addr", "add", f"{vip}/32", "dev", "lo"]]),
            ("n2", [*quiet, ["ip", "addr", "add", f"{vip}/32", "dev", "eth0"]]),
            ("n3", [["ip", "addr", "add", f"{vip}/32", "dev", "eth0"]]),
        ):
            for cmd in cmds:
                r = c[host].run(cmd, timeout=10)
                assert r.returncode == 0, (cmd, r.stderr)
        start_http(c["n3"])
        assert FaultTarget.holding(vip).resolve(c) == "n3"
        assert FaultTarget.holding(vip, ["n1", "n2"]).resolve(c) is None
        run_id = c.run_id
    assert_no_leftovers(run_id)


def test_a_pick_that_never_returns_skips_the_fault_instead_of_stalling_the_grading() -> None:
    """A pick may ask the system under test (``cluster.run_client``), which may never
    answer: the apply, which a heal and the grading's cancellation wait for, must not."""
    release = threading.Event()

    def ask_the_primary(cluster: Cluster) -> str | None:
        release.wait(60)  # a request the system under test accepts and never answers
        return "n1"

    cluster = SimpleNamespace(names=HOSTS)
    try:
        crash = Crash(FaultTarget(ask_the_primary, "primary", timeout_s=0.2), "c")
        assert crash.apply(cluster) == {  # type: ignore[arg-type]
            "target": "primary",
            "skipped": "the target named no host within 0.2 s",
        }
        assert crash.targets() == ()
        iso = Partition.isolate(FaultTarget(ask_the_primary, timeout_s=0.2), HOSTS)
        assert iso.apply(cluster)["skipped"] == "the target named no host within 0.2 s"  # type: ignore[arg-type]
    finally:
        release.set()
    with pytest.raises(ConfigError, match="timeout_s must be a number of seconds > 0"):
        FaultTarget(ask_the_primary, timeout_s=0)
