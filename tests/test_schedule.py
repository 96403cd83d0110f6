"""Seeded schedules are pure and replayable; bad specs are clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infragym import CapabilityError, ConfigError
from infragym.nemesis import (
    FAULT_KINDS,
    Crash,
    FaultSpec,
    Partition,
    build_fault,
    random_schedule,
    require_supported,
)

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
