"""The drift colleague's plan (pure, replayable) and its drifts on a real host."""

from __future__ import annotations

import pytest

from infragym import ConfigError
from infragym.history import Clock, History
from infragym.nemesis import (
    DRIFT_FAULT,
    DRIFT_KINDS,
    Colleague,
    DriftTargets,
    drift_schedule,
    listening_ports,
)
from infragym.sandbox import Cluster


def test_schedule_is_replayable_and_covers_every_kind_and_host() -> None:
    hosts = ["a", "b", "c", "d"]
    plan = drift_schedule(7, hosts, count=12, start=2.0, gap=2.5, salt="t")
    assert plan == drift_schedule(7, hosts, count=12, start=2.0, gap=2.5, salt="t")
    assert plan != drift_schedule(8, hosts, count=12, start=2.0, gap=2.5, salt="t")
    assert [d.at for d in plan] == [2.0 + 2.5 * i for i in range(12)]
    assert sorted(d.kind for d in plan) == sorted(DRIFT_KINDS * 2)
    # no host drifted twice before every host once
    first_round = [d.host for d in plan[:4]]
    assert sorted(first_round) == hosts


def test_schedule_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="unknown drift kinds"):
        drift_schedule(1, ["a"], count=1, start=0, gap=1, kinds=("melt",))
    with pytest.raises(ConfigError):
        drift_schedule(1, [], count=1, start=0, gap=1)


@pytest.mark.timeout(120)
def test_drifts_show_on_a_live_host() -> None:
    with Cluster(["n1"]) as cluster:
        host = cluster.host("n1")
        managed = "/srv/etc/app/app.conf"
        (host.etc_dir / "app").mkdir()
        (host.etc_dir / "app" / "app.conf").write_bytes(b"k = 1\n")
        import os

        os.chown(host.etc_dir / "app", host.identity.uid, host.identity.gid)
        os.chown(host.etc_dir / "app" / "app.conf", host.identity.uid, host.identity.gid)
        host.spawn("svc", ["/bin/sleep", "600"], service=True)
        history = History()
        targets = DriftTargets(
            files=lambda _h: [managed],
            service="/bin/sleep",
            ports=[6399],
            stale=lambda _h: (managed, b"k = 0\n"),
            reload=["/bin/true"],
        )
        colleague = Colleague(cluster, history, Clock(), targets)
        try:
            plan = {d.kind: d for d in drift_schedule(1, ["n1"], count=6, start=0, gap=1)}
            colleague.apply(plan["edit-file"])
            assert (host.etc_dir / "app" / "app.conf").read_bytes().endswith(b"colleague\n")
            colleague.apply(plan["chmod-file"])
            assert (host.etc_dir / "app" / "app.conf").stat().st_mode & 0o777 in (0o666, 0o604)
            colleague.apply(plan["stale-config"])
            assert (host.etc_dir / "app" / "app.conf").read_bytes() == b"k = 0\n"
            colleague.apply(plan["delete-file"])
            assert not (host.etc_dir / "app" / "app.conf").exists()
            colleague.apply(plan["start-listener"])
            assert 6399 in listening_ports(host), history.faults[-1].detail
            colleague.apply(plan["kill-service"])
        finally:
            colleague.close()
        events = [e for e in history.faults if e.fault == DRIFT_FAULT]
        assert [e.detail["kind"] for e in events] == [
            "edit-file",
            "chmod-file",
            "stale-config",
            "delete-file",
            "start-listener",
            "kill-service",
        ]
        assert all("skipped" not in e.detail for e in events), [e.detail for e in events]
        assert events[-1].detail["killed"] >= 1
