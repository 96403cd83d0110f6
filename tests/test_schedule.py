"""Seeded schedules are pure and replayable; bad specs are clear errors."""

from __future__ import annotations

import asyncio
import random
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infragym import CapabilityError, ConfigError, ResourceError
from infragym.grading import StartAt, load_under_faults
from infragym.grading._together import DEFAULT_SHARES, LOAD_SHARES
from infragym.history import Clock, FaultAction, History
from infragym.nemesis import (
    FAULT_KINDS,
    SWEEP_KINDS,
    Bandwidth,
    ClockSkew,
    Crash,
    DiskFull,
    Fault,
    FaultSpec,
    Latency,
    Nemesis,
    PacketLoss,
    Partition,
    Pause,
    Schedule,
    ScheduledFault,
    build_fault,
    random_schedule,
    require_supported,
    sweep_length,
    sweep_schedule,
)
from infragym.nemesis import _runner as nemesis_runner
from infragym.nemesis._schedule import MAX_FAULTS, MIN_FAULT_S

HOSTS = ["n1", "n2", "n3", "n4", "n5"]


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 5))
def test_same_seed_same_schedule(seed: int, n: int) -> None:
    hosts = HOSTS[:n]
    a = random_schedule(seed, hosts, kinds=FAULT_KINDS, duration=30)
    b = random_schedule(seed, hosts, kinds=FAULT_KINDS, duration=30)
    assert a == b and a.to_json() == b.to_json()
    for f in a.faults:
        assert set(f.spec.targets) <= set(hosts)
        assert f.duration > 0 and f.at + f.duration <= 30
        build_fault(f.spec, f.label, hosts)  # every generated spec is buildable


def test_different_seeds_differ_and_faults_do_not_overlap() -> None:
    scheds = [random_schedule(s, HOSTS, duration=60) for s in range(10)]
    assert len({tuple(x.to_json().__repr__()) for x in scheds}) > 1
    for s in scheds:
        for a, b in zip(s.faults, s.faults[1:], strict=False):
            assert a.at + a.duration <= b.at


def test_compose_keeps_every_fault_with_distinct_labels() -> None:
    a = random_schedule(1, HOSTS, kinds=["crash"], duration=20)
    b = random_schedule(2, HOSTS, kinds=["partition"], duration=20)
    c = a.compose(b)
    assert len(c.faults) == len(a.faults) + len(b.faults)
    assert len({f.label for f in c.faults}) == len(c.faults)
    assert [f.at for f in c.faults] == sorted(f.at for f in c.faults)
    assert c.kinds() == {"crash", "partition"}


def test_partition_topologies_from_specs() -> None:
    p = build_fault(FaultSpec("partition", ("n1", "n2", "n3", "n4", "n5"),
                              (("topology", "majority"),)), "p", HOSTS)
    assert isinstance(p, Partition)
    assert p.blocked["n1"] == frozenset({"n3", "n4", "n5"})
    assert p.blocked["n3"] == frozenset({"n1", "n2"})
    br = build_fault(FaultSpec("partition", ("n1", "n2", "n3"), (("topology", "bridge"),)),
                     "b", HOSTS)
    assert isinstance(br, Partition)
    assert "n2" not in br.blocked and br.blocked["n1"] == frozenset({"n3"})
    iso = build_fault(FaultSpec("partition", ("n4",)), "i", HOSTS)
    assert isinstance(iso, Partition)
    assert iso.blocked["n4"] == frozenset({"n1", "n2", "n3", "n5"})


@pytest.mark.parametrize("spec, match", [
    (FaultSpec("teleport", ("n1",)), "unknown fault kind 'teleport'"),
    (FaultSpec("crash", ("n9",)), "unknown hosts"),
    (FaultSpec("crash", ()), "no target hosts"),
    (FaultSpec("partition", ("n1", "n2", "n3"), (("topology", "ring"),)), "topology"),
    (FaultSpec("loss", ("n1",), (("probability", 2.0),)), "probability"),
])
def test_bad_fault_specs(spec: FaultSpec, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_fault(spec, "x", HOSTS)


def test_bad_schedule_requests() -> None:
    with pytest.raises(ConfigError, match="unknown fault kinds"):
        random_schedule(1, HOSTS, kinds=["crash", "meteor"])
    with pytest.raises(ConfigError):
        random_schedule(1, [], kinds=["crash"])
    with pytest.raises(ConfigError):
        random_schedule(1, HOSTS, fault_duration=(5, 1))


def test_unknown_capability_is_an_error() -> None:
    with pytest.raises(CapabilityError, match="meteor: unknown fault kind"):
        require_supported(["crash", "meteor"])


def test_fault_describe() -> None:
    assert Crash("n1").describe() == "crash(n1)"


def test_single_host_schedules_skip_link_faults() -> None:
    s = random_schedule(2, ["n1"], kinds=["crash", "partition"], duration=60)
    assert s.kinds() == {"crash"}
    with pytest.raises(ConfigError, match="at least 2 hosts"):
        random_schedule(2, ["n1"], kinds=["partition", "latency"])


# -- schedule inputs that used to loop forever or give the wrong error -------------------


class _BoundedRandom(random.Random):
    """Fails a generator that keeps drawing (before it can eat the machine's memory)."""

    def __init__(self, seed: Any = None) -> None:
        self.draws = 0
        super().__init__(seed)

    def uniform(self, a: float, b: float) -> float:
        self.draws += 1
        if self.draws > 100_000:
            raise AssertionError("random_schedule does not terminate")
        return super().uniform(a, b)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kwargs", [
    {"fault_duration": (0.0001, 0.0004), "gap": (0.0, 0.0)},  # rounds to 0 s: never ended
    {"fault_duration": (0.0, 0.0), "gap": (0.0, 0.0)},
    {"duration": float("inf")},
    {"duration": float("nan")},
    {"fault_duration": (1.0, float("inf"))},
    {"gap": (float("nan"), 1.0)},
    {"start": float("nan")},
    {"duration": 1e7, "fault_duration": (0.01, 0.01), "gap": (0.0, 0.0)},  # 1e9 faults
])
def test_schedules_that_cannot_end_are_config_errors(
    kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "Random", _BoundedRandom)
    with pytest.raises(ConfigError):
        random_schedule(1, HOSTS, **kwargs)


@settings(max_examples=50, deadline=None)
@given(lo=st.floats(0, 0.5), width=st.floats(0, 0.5), glo=st.floats(0, 0.1),
       seed=st.integers(0, 2**32))
def test_every_generated_fault_lasts_and_the_count_is_bounded(
    lo: float, width: float, glo: float, seed: int
) -> None:
    with mock.patch.object(random, "Random", _BoundedRandom):
        if lo < MIN_FAULT_S:
            with pytest.raises(ConfigError, match="fault_duration"):
                random_schedule(seed, HOSTS, duration=5, fault_duration=(lo, lo + width),
                                gap=(glo, glo))
            return
        s = random_schedule(seed, HOSTS, duration=5, fault_duration=(lo, lo + width),
                            gap=(glo, glo))
    assert 0 < len(s.faults) <= MAX_FAULTS
    assert all(f.duration >= MIN_FAULT_S and f.at + f.duration <= 5 for f in s.faults)


@pytest.mark.parametrize("spec, match", [
    (FaultSpec("bandwidth", ("n1",), (("rate_bps", "fast"),)), "'bw-x'.*rate_bps"),
    (FaultSpec("bandwidth", ("n1",), (("rate_bps", float("inf")),)), "'bw-x'.*rate_bps"),
    (FaultSpec("bandwidth", ("n1",), (("rate_bps", 10**30),)), "'bw-x'.*rate_bps"),
    (FaultSpec("loss", ("n1",), (("probability", None),)), "'bw-x'.*probability"),
    (FaultSpec("loss", ("n1",), (("probability", "0.5"),)), "'bw-x'.*probability"),
    (FaultSpec("latency", ("n1",), (("delay_s", "slow"),)), "'bw-x'.*delay_s"),
    (FaultSpec("latency", ("n1",), (("jitter_s", [1]),)), "'bw-x'.*jitter_s"),
    (FaultSpec("latency", ("n1",), (("include_client", "yes"),)), "'bw-x'.*include_client"),
    (FaultSpec("clock-skew", ("n1",), (("offset_s", float("nan")),)), "'bw-x'.*offset_s"),
    (FaultSpec("clock-skew", ("n1",), (("offset_s", 1e300),)), "'bw-x'.*offset_s"),
    (FaultSpec("loss", ("n1",), (("probabilty", 0.5),)), "'bw-x'.*probabilty"),
    (FaultSpec("crash", ("n1",), (("rate_bps", 1),)), "unknown parameters"),
    (FaultSpec("loss", ("n1",), ("probability",)), "bw-x.*params"),  # type: ignore[arg-type]
    (FaultSpec("loss", ("n1", "n1")), "bw-x.*twice"),
])
def test_bad_params_are_config_errors_naming_fault_and_parameter(
    spec: FaultSpec, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        build_fault(spec, "bw-x", HOSTS)


@pytest.mark.parametrize("kind", ["crash", "pause", "disk-full", "clock-skew", "partition"])
def test_single_host_faults_refuse_several_targets(kind: str) -> None:
    with pytest.raises(ConfigError, match=r"exactly one host.*one fault per host"):
        build_fault(FaultSpec(kind, ("n1", "n2")), "x", HOSTS)


@pytest.mark.parametrize("make", [
    lambda: Crash(["n1", "n2"]),  # type: ignore[arg-type]
    lambda: Pause(("n1",)),  # type: ignore[arg-type]
    lambda: DiskFull(["n1"]),  # type: ignore[arg-type]
    lambda: ClockSkew(["n1"], 5.0),  # type: ignore[arg-type]
    lambda: ClockSkew("n1", float("inf")),
    lambda: Bandwidth("n1", 1_000_000),
    lambda: Bandwidth(["n1"], "1mbit"),  # type: ignore[arg-type]
    lambda: PacketLoss(["n1"], "0.2"),  # type: ignore[arg-type]
    lambda: Latency(["n1"], "0.1"),  # type: ignore[arg-type]
])
def test_fault_constructors_reject_bad_input_as_config_errors(make: Any) -> None:
    with pytest.raises(ConfigError):
        make()


# -- the nemesis runner, with faults that are test doubles (no cluster needed) -----------


class _Stub:
    """The part of a Cluster the runner touches when faults are doubles."""

    def __init__(self) -> None:
        self.names = HOSTS
        self.hosts: list[Any] = []
        self.faketime = False


class FakeFault(Fault):
    """Records what happened to it; heal fails ``heal_failures`` times, takes ``heal_s``."""

    kind = "fake"

    def __init__(self, label: str, heal_failures: int = 0, heal_s: float = 0.0) -> None:
        super().__init__(label)
        self.heal_failures = heal_failures
        self.heal_s = heal_s
        self.heal_calls = 0
        self.healed = False

    def targets(self) -> tuple[str, ...]:
        return ("n1",)

    def apply(self, cluster: Any) -> dict[str, Any]:
        return {}

    def heal(self, cluster: Any) -> None:
        raise AssertionError("the runner heals through heal_async")

    async def heal_async(self, cluster: Any) -> None:
        self.heal_calls += 1
        if self.heal_s:
            await asyncio.sleep(self.heal_s)
        if self.heal_calls <= self.heal_failures:
            raise ResourceError(f"{self.label} would not heal")
        self.healed = True


def _nemesis() -> tuple[Nemesis, History]:
    history = History()
    return Nemesis(_Stub(), history, Clock(), check_capabilities=False), history  # type: ignore[arg-type]


def _actions(history: History) -> list[tuple[str, FaultAction]]:
    return [(e.label, e.action) for e in history.faults]


def test_a_failed_heal_stays_active_and_the_final_heal_retries_it() -> None:
    async def scenario() -> tuple[Nemesis, History, FakeFault]:
        nem, history = _nemesis()
        f = FakeFault("flaky", heal_failures=1)
        async with nem:
            await nem.apply(f)
            with pytest.raises(ResourceError, match="would not heal"):
                await nem.heal(f)
            assert nem.active == {"flaky": f}, "a failed heal must keep the fault active"
            assert _actions(history) == [("flaky", FaultAction.APPLY)]
            assert len(nem.errors) == 1 and "flaky" in nem.errors[0]
        return nem, history, f

    nem, history, f = asyncio.run(scenario())
    assert f.healed and f.heal_calls == 2 and nem.active == {}
    assert _actions(history) == [("flaky", FaultAction.APPLY), ("flaky", FaultAction.HEAL)]


def test_final_heal_raises_after_trying_every_fault_when_one_cannot_be_healed() -> None:
    nem, history = _nemesis()
    ok_old, stuck, ok_new = FakeFault("a"), FakeFault("stuck", heal_failures=99), FakeFault("c")

    async def scenario() -> None:
        async with nem:
            for f in (ok_old, stuck, ok_new):
                await nem.apply(f)

    with pytest.raises(ResourceError, match="stuck"):
        asyncio.run(scenario())
    assert ok_old.healed and ok_new.healed and not stuck.healed
    assert stuck.heal_calls == 2, "the final heal retries once"
    assert list(nem.active) == ["stuck"]
    heals = [label for label, a in _actions(history) if a is FaultAction.HEAL]
    assert heals == ["c", "a"]


def test_final_heal_finishes_through_a_second_cancellation() -> None:
    faults = [FakeFault(f"f{i}", heal_s=0.1) for i in range(3)]
    nem, history = _nemesis()

    async def body() -> None:
        async with nem:
            for f in faults:
                await nem.apply(f)
            await asyncio.sleep(30)

    async def scenario() -> None:
        task = asyncio.create_task(body())
        await asyncio.sleep(0.05)
        task.cancel()  # first: leaves the block, the final heal starts
        await asyncio.sleep(0.05)
        task.cancel()  # second: lands in the middle of the final heal
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert all(f.healed for f in faults) and nem.active == {}
    assert [label for label, a in _actions(history) if a is FaultAction.HEAL] == [
        "f2", "f1", "f0"
    ]


def test_a_cancelled_heal_still_completes_once() -> None:
    f = FakeFault("slow", heal_s=0.2)
    nem, history = _nemesis()

    async def scenario() -> None:
        async with nem:
            await nem.apply(f)
            t = asyncio.create_task(nem.heal(f))
            await asyncio.sleep(0.05)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t

    asyncio.run(scenario())
    assert f.healed and f.heal_calls == 1
    assert _actions(history) == [("slow", FaultAction.APPLY), ("slow", FaultAction.HEAL)]


def test_duplicate_label_is_a_config_error() -> None:
    async def scenario() -> None:
        nem, _ = _nemesis()
        async with nem:
            await nem.apply(FakeFault("x"))
            with pytest.raises(ConfigError, match="'x' is already active"):
                await nem.apply(FakeFault("x"))

    asyncio.run(scenario())


@pytest.mark.timeout(20)
@pytest.mark.parametrize("at, duration", [
    (0.0, float("inf")), (float("nan"), 1.0), (0.0, -1.0), (-1.0, 1.0),
])
def test_run_refuses_schedules_that_never_end(at: float, duration: float) -> None:
    sched = Schedule((ScheduledFault(at, duration, FaultSpec("crash", ("n1",)), "c"),))

    async def scenario() -> None:
        nem, history = _nemesis()
        async with nem:
            with pytest.raises(ConfigError, match="finite"):
                await asyncio.wait_for(nem.run(sched), 5)
        assert history.faults == []

    asyncio.run(scenario())


def test_clock_skew_without_faketime_is_refused_before_anything_runs() -> None:
    sched = Schedule((
        ScheduledFault(0.0, 0.1, FaultSpec("crash", ("n1",)), "c"),
        ScheduledFault(0.2, 0.1, FaultSpec("clock-skew", ("n2",), (("offset_s", 5.0),)), "k"),
    ))

    async def scenario() -> None:
        nem, history = _nemesis()
        async with nem:
            with pytest.raises(CapabilityError, match="faketime=True"):
                await nem.run(sched)
            with pytest.raises(CapabilityError, match="faketime=True"):
                await nem.apply(ClockSkew("n1", 5.0))
            assert nem.active == {}
        assert history.faults == []

    asyncio.run(scenario())


def test_run_goes_on_after_a_failed_heal_and_the_final_heal_retries_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doubles = {"a": FakeFault("a", heal_failures=1), "b": FakeFault("b")}
    monkeypatch.setattr(nemesis_runner, "build_fault", lambda spec, label, *rest: doubles[label])
    sched = Schedule((
        ScheduledFault(0.0, 0.05, FaultSpec("crash", ("n1",)), "a"),
        ScheduledFault(0.1, 0.05, FaultSpec("crash", ("n2",)), "b"),
    ))
    nem, history = _nemesis()

    async def scenario() -> None:
        async with nem:
            await nem.run(sched)
            assert list(nem.active) == ["a"] and len(nem.errors) == 1

    asyncio.run(scenario())
    assert doubles["a"].healed and doubles["b"].healed and nem.active == {}
    assert _actions(history) == [
        ("a", FaultAction.APPLY), ("b", FaultAction.APPLY),
        ("b", FaultAction.HEAL), ("a", FaultAction.HEAL),
    ]


# -- the fault sweep: every host failed by every kind in turn -----------------------------


def test_sweep_gives_every_host_every_kind_one_at_a_time() -> None:
    hosts = ["n1", "n2", "n3"]
    s = sweep_schedule(hosts, fault_s=3.0, gap_s=2.0, start=1.0)
    assert s == sweep_schedule(hosts, fault_s=3.0, gap_s=2.0, start=1.0)  # deterministic
    got = [(f.spec.kind, f.spec.targets) for f in s.faults]
    assert got == [(k, (h,)) for k in SWEEP_KINDS for h in hosts]
    assert [f.label for f in s.faults[:4]] == ["crash-n1", "crash-n2", "crash-n3", "pause-n1"]
    assert [f.label for f in s.faults[-3:]] == ["isolate-n1", "isolate-n2", "isolate-n3"]
    assert all(dict(f.spec.params) == {"topology": "isolate"} for f in s.faults[-3:])
    assert s.faults[0].at == 1.0
    assert all(f.duration == 3.0 for f in s.faults)
    for a, b in zip(s.faults, s.faults[1:], strict=False):
        assert b.at - (a.at + a.duration) == pytest.approx(2.0)  # no overlap, the quiet gap
    assert s.end == pytest.approx(sweep_length(3, 3, 3.0, 2.0, 1.0))
    assert s.end == pytest.approx(1.0 + 9 * 3.0 + 8 * 2.0)
    for f in s.faults:  # every fault is one the nemesis can build on this cluster
        build_fault(f.spec, f.label, hosts)


def test_sweep_kinds_and_bounds() -> None:
    s = sweep_schedule(["a", "b"], kinds=["pause", "clock-skew"], fault_s=1.0, gap_s=0.0)
    assert [f.label for f in s.faults] == ["pause-a", "pause-b", "clock-skew-a", "clock-skew-b"]
    assert [f.at for f in s.faults] == [2.0, 3.0, 4.0, 5.0]
    assert len(sweep_schedule(["solo"], kinds=["crash", "pause"]).faults) == 2
    bad: list[dict[str, Any]] = [
        {"hosts": []},
        {"hosts": ["a", "a"]},
        {"hosts": ["a", "b"], "kinds": ["crash", "crash"]},
        {"hosts": ["a", "b"], "kinds": ["meteor"]},
        {"hosts": ["solo"]},  # isolating needs a second host
        {"hosts": ["a", "b"], "fault_s": 0.0},
        {"hosts": ["a", "b"], "gap_s": -1.0},
        {"hosts": ["a", "b"], "start": float("nan")},
        {"hosts": ["a", "b"], "fault_s": "long"},
        {"hosts": [f"h{i}" for i in range(MAX_FAULTS)], "kinds": ["crash", "pause"]},
    ]
    for kw in bad:
        with pytest.raises(ConfigError):
            sweep_schedule(**kw)


def test_a_schedule_counts_from_the_instant_it_is_given_not_from_after_its_checks() -> None:
    """A grader starts its load and its faults at one instant. The nemesis's checks can
    take seconds on a busy machine: counted from after them, the last fault fell past the
    load's end (the window then held 3 operations and a correct service scored 0.25).
    Given the instant, a fault applied late is late against it, which the health check's
    fault lag sees; checked beforehand with ``prepare``, the faults start on time."""
    sched = Schedule((ScheduledFault(0.2, 0.1, FaultSpec("crash", ("n1",)), "c"),))

    async def scenario(prepared: bool) -> tuple[float, History]:
        probed: list[bool] = []

        async def slow_checks(kinds: set[str]) -> None:  # slow once, then cached, as the probe
            if not probed:
                probed.append(True)
                await asyncio.sleep(0.5)

        nem, history = _nemesis()
        def build(_spec: object, label: str, *_: object) -> FakeFault:
            return FakeFault(label)

        with mock.patch.object(nemesis_runner, "build_fault", build):
            nem._check_supported = slow_checks  # type: ignore[method-assign]
            async with nem:
                if prepared:
                    await nem.prepare(sched)
                at = nem.clock.now()
                await nem.run(sched, at=at)
        return at, history

    for prepared in (False, True):
        at, history = asyncio.run(scenario(prepared))
        apply, heal = history.faults
        assert apply.detail["scheduled"] == pytest.approx(at + 0.2)
        assert heal.detail["scheduled"] == pytest.approx(at + 0.3)
        lag = apply.time - apply.detail["scheduled"]
        if prepared:
            assert lag < 0.2, lag
        else:
            assert lag > 0.25, lag  # the checks' 0.5 s, against the shared instant


class _ClientStub(_Stub):
    """A cluster stub whose client thread runs ``fn`` in its own event loop, as a real
    cluster's does (in its client namespace)."""

    def __init__(self) -> None:
        super().__init__()
        self.shares: list[int] = []

    def run_client(self, fn: Any) -> Any:
        return asyncio.run(fn())

    def set_cpu_shares(self, shares: int) -> None:
        self.shares.append(shares)


def test_load_under_faults_starts_load_and_faults_at_one_instant_once_both_are_ready() -> None:
    """Every graded task with load and faults uses ``load_under_faults``. Its contract: the
    nemesis's checks (0.5 s here, seconds on a busy machine) and the load's client opening
    (0.4 s here) both come before the one instant both count from, so a fault at 0.2 s
    lands 0.2 s into the load whatever either cost. Started each "now" on its own (the old
    graders), the faults would count from before the load's client was open, or the load
    from before the checks ended. While both run the hosts weigh more than other runs'
    (which may be building or checking, untimed); the default again after. A load that
    fails before it is ready plays no fault (one that ends without asking when to start is
    an error: its grading would have had no fault); one that fails later lets the
    schedule finish (every fault healed) and then raises."""
    sched = Schedule(
        (
            ScheduledFault(0.2, 0.1, FaultSpec("crash", ("n1",)), "a"),
            ScheduledFault(0.4, 0.1, FaultSpec("crash", ("n1",)), "b"),
        )
    )

    def build(_spec: object, label: str, *_: object) -> FakeFault:
        return FakeFault(label)

    async def scenario(fail: str | None) -> tuple[float, list[float], History, Exception | None]:
        history = History()
        nem = Nemesis(_ClientStub(), history, Clock(), check_capabilities=False)  # type: ignore[arg-type]
        probed: list[bool] = []

        async def slow_checks(kinds: set[str]) -> None:  # slow once, then cached, as the probe
            if not probed:
                probed.append(True)
                await asyncio.sleep(0.5)

        nem._check_supported = slow_checks  # type: ignore[method-assign]
        seen: list[float] = []  # [when the load was ready, the instant it was given]
        shares: list[int] = []  # the weights set by the time the load started
        t0 = nem.clock.now()

        async def load(start_at: StartAt) -> None:
            await asyncio.sleep(0.4)  # opening its client
            if fail == "before":
                raise OSError("could not open the client")
            if fail == "never":
                return  # a load that forgot to await start_at
            seen.append(nem.clock.now())
            seen.append(await start_at())
            shares.extend(nem.cluster.shares)  # type: ignore[attr-defined]
            if fail == "after":
                raise OSError("the load broke")
            await asyncio.sleep(max(0.0, seen[1] + 0.6 - nem.clock.now()))

        err: Exception | None = None
        with mock.patch.object(nemesis_runner, "build_fault", build):
            async with nem:
                try:
                    await load_under_faults(nem.cluster, nem, sched, nem.clock, load, lead_s=0.1)
                except (OSError, RuntimeError) as exc:
                    err = exc
        after = nem.cluster.shares  # type: ignore[attr-defined]
        if fail in ("before", "never"):
            assert after == [], "no load ran: the weight never changed"
        else:
            assert shares == [LOAD_SHARES], "the load runs weighted"
            assert after == [LOAD_SHARES, DEFAULT_SHARES], "the default again once it ended"
        return t0, seen, history, err

    t0, (ready, at), history, err = asyncio.run(scenario(None))
    assert err is None
    assert ready - t0 >= 0.85, "the load opens its client after the nemesis's checks"
    assert at == pytest.approx(ready + 0.1, abs=0.05), "the instant follows readiness"
    applies = [e for e in history.faults if e.action is FaultAction.APPLY]
    assert [e.label for e in applies] == ["a", "b"]
    for e, offset in zip(applies, (0.2, 0.4), strict=True):
        assert e.detail["scheduled"] == pytest.approx(at + offset), "faults count from `at`"
        assert e.time - e.detail["scheduled"] < 0.1

    _, _, history, err = asyncio.run(scenario("before"))
    assert isinstance(err, OSError) and "open the client" in str(err)
    assert history.faults == [], "a load that never started plays no fault"
    _, _, history, err = asyncio.run(scenario("never"))
    assert isinstance(err, RuntimeError) and "start_at" in str(err), err
    assert history.faults == [], "nor does one that never asked when to start"

    _, _, history, err = asyncio.run(scenario("after"))
    assert isinstance(err, OSError) and "broke" in str(err)
    assert _actions(history) == [
        ("a", FaultAction.APPLY), ("a", FaultAction.HEAL),
        ("b", FaultAction.APPLY), ("b", FaultAction.HEAL),
    ]  # fmt: skip
