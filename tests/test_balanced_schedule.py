"""The balanced fault schedule: rounds of kinds, one fault at a time with quiet gaps,
every host taken away at least once, distinct crash victims; a pure function of the seed."""

from __future__ import annotations

from collections import Counter

import pytest

from infragym import ConfigError
from infragym.checkers import faulted_hosts
from infragym.nemesis import Schedule, balanced_schedule, build_fault, taken_away

SEEDS = range(1, 201)


def hosts_taken_away(s: Schedule, hosts: list[str]) -> Counter[str]:
    """How often each host was taken away, by the faults the schedule really builds."""
    hit: Counter[str] = Counter()
    for f in s.faults:
        fault = build_fault(f.spec, f.label, hosts)
        blocked = getattr(fault, "blocked", {})
        detail = {"blocked": {k: sorted(v) for k, v in blocked.items()}}
        hit.update(faulted_hosts(f.spec.kind, f.spec.targets, detail))
    return hit


@pytest.mark.parametrize("n", [3, 4, 5])
def test_the_invariants_hold_on_every_seed(n: int) -> None:
    hosts = [f"n{i}" for i in range(1, n + 1)]
    for seed in SEEDS:
        s = balanced_schedule(seed, hosts)
        assert s == balanced_schedule(seed, hosts), "a pure function of the seed"
        assert s.seed == seed
        kinds = [f.spec.kind for f in s.faults]
        assert Counter(kinds) == {"crash": 2, "pause": 2, "partition": 2}, kinds
        for i in range(0, 6, 3):
            assert sorted(kinds[i : i + 3]) == ["crash", "partition", "pause"], "rounds"
        assert s.faults[0].at == 2.0
        for f, nxt in zip(s.faults, s.faults[1:], strict=False):
            gap = nxt.at - (f.at + f.duration)
            assert 0.8 - 1e-3 <= gap <= 1.2 + 1e-3, f"seed {seed}: one fault at a time"
        assert all(1.8 <= f.duration <= 2.6 for f in s.faults)
        assert [f.label for f in s.faults] == [f"{k}-{i + 1}" for i, k in enumerate(kinds)]
        assert set(hosts_taken_away(s, hosts)) == set(hosts), f"seed {seed}: {s}"
        crashed = [f.spec.targets[0] for f in s.faults if f.spec.kind == "crash"]
        assert len(set(crashed)) == 2, f"seed {seed}: one host crashed twice"
        for f in s.faults:
            assert set(f.spec.targets) <= set(hosts)
            if f.spec.kind == "partition" and f.spec.param("topology") != "isolate":
                assert sorted(f.spec.targets) == hosts, "a split names every host once"


def test_seeds_salts_and_parameters_change_the_schedule() -> None:
    hosts = ["n1", "n2", "n3"]
    base = balanced_schedule(1, hosts)
    assert base != balanced_schedule(2, hosts)
    assert base != balanced_schedule(1, hosts, salt="another-task")
    s = balanced_schedule(7, hosts, kinds=("pause",), rounds=4, first_at=1.0,
                          duration=(0.5, 0.5), gap=(0.2, 0.2))  # fmt: skip
    assert [f.spec.kind for f in s.faults] == ["pause"] * 4
    assert [f.at for f in s.faults] == pytest.approx([1.0, 1.7, 2.4, 3.1])
    assert set(hosts_taken_away(s, hosts)) == set(hosts)


def test_partitions_cover_every_host_with_the_topologies_given() -> None:
    hosts = ["n1", "n2", "n3", "n4", "n5"]
    for seed in range(1, 51):
        s = balanced_schedule(seed, hosts, kinds=("partition",), rounds=5, topologies=("bridge",))
        # bridges take no host away for certain: enough of them become isolations
        assert set(hosts_taken_away(s, hosts)) == set(hosts), f"seed {seed}: {s}"


def test_degrading_kinds_hit_a_host_without_counting_as_taken_away() -> None:
    hosts = ["n1", "n2", "n3"]
    s = balanced_schedule(3, hosts, kinds=("crash", "latency", "pause"), rounds=2)
    latency = [f for f in s.faults if f.spec.kind == "latency"]
    assert len(latency) == 2 and all(len(f.spec.targets) == 1 for f in latency)
    assert set(hosts_taken_away(s, hosts)) == set(hosts)
    assert taken_away("latency", "", 3) == 0 and taken_away("partition", "majority", 5) == 2
    assert taken_away("partition", "majority", 4) == 0, "an even split: no half for certain"


def test_impossible_schedules_say_what_to_change() -> None:
    with pytest.raises(ConfigError, match="cannot take away each of 5 hosts"):
        balanced_schedule(1, [f"n{i}" for i in range(5)], kinds=("crash", "pause"), rounds=2)
    with pytest.raises(ConfigError, match="more crash faults than hosts"):
        balanced_schedule(1, ["n1", "n2"], kinds=("crash",), rounds=3)
    with pytest.raises(ConfigError, match="unknown fault kinds"):
        balanced_schedule(1, ["n1"], kinds=("meteor",))
    with pytest.raises(ConfigError, match="unknown partition topologies"):
        balanced_schedule(1, ["n1", "n2"], topologies=("ring",))
    with pytest.raises(ConfigError, match="at least one kind, round and host"):
        balanced_schedule(1, ["n1"], rounds=0)
