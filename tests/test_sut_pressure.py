"""The graded hosts' own CPU pressure (their cgroup v2 group's ``cpu.pressure``): how long
the system under test waited for a CPU, which the machine's pressure cannot tell apart
from the harness's or another grading's waits. Recorded in every grading's health."""

from __future__ import annotations

import time

import pytest
from conftest import needs_root

from infragym.sandbox import Cluster, _cgroup

pytestmark = pytest.mark.skipif(
    not _cgroup.unified_available(), reason="no cgroup v2 mounted beside v1 on this machine"
)

BUSY = ["/bin/sh", "-c", "while :; do :; done"]


def _stall_share(cluster: Cluster, seconds: float) -> float:
    s0, t0 = cluster.cpu_stall_s(), time.monotonic()
    time.sleep(seconds)
    s1, t1 = cluster.cpu_stall_s(), time.monotonic()
    assert s0 is not None and s1 is not None
    return (s1 - s0) / (t1 - t0)


@needs_root
def test_a_host_with_more_busy_processes_than_cores_waits_for_a_cpu(cluster3: Cluster) -> None:
    assert _stall_share(cluster3, 1.0) < 0.2  # nothing runs: nothing waits
    host = cluster3.hosts[0]
    for i in range(4):  # four busy loops on two cores: one always waits
        host.spawn(f"busy{i}", BUSY)
    assert _stall_share(cluster3, 1.5) > 0.5
    us = host.cgroup.cpu_stall_us()
    assert us is not None and us > 0
    assert cluster3.hosts[1].cgroup.cpu_stall_us() == 0  # its neighbour waited for nothing


@needs_root
def test_a_runs_v2_groups_go_with_it() -> None:
    with Cluster(2) as c:
        run_id = c.run_id
        assert any(p.parts[-3] == _cgroup.UNIFIED for p in _cgroup.run_cgroups(run_id))
    assert _cgroup.run_cgroups(run_id) == []


@needs_root
def test_every_hosts_cpu_is_counted_together_and_kept_after_they_go() -> None:
    """The CPU every run's hosts used, for the health check's "work outside any host":
    a busy host's seconds show in it, and stay once its run is gone."""
    before = _cgroup.all_hosts_cpu_s()
    assert before is not None
    with Cluster(1) as c:
        c.hosts[0].spawn("busy", BUSY)
        time.sleep(1.0)
        used = c.hosts[0].cgroup.cpu_usage_s()
    after = _cgroup.all_hosts_cpu_s()
    assert used is not None and used > 0.5 and after is not None
    assert after - before >= used * 0.99
