"""Sweep what killed runs left behind: processes, cgroups, mounts, namespaces, links and
the switch's nft tables in the machine's namespace.

A run whose owner process is still alive is left alone unless ``everything`` is set, or
unless its record says the owner is done with it (``leaked``: its teardown failed), so a
long training process does not keep what a failed teardown left until it exits. Orphans
with no run record (the owner died before writing it, or the record was lost) are
recognised by the run id in their names and removed too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from . import _cgroup, _state
from ._switch import delete_run_tables, run_tables
from ._sys import abort_sockets, ip_batch, list_links, list_netns, mounts_under, umount
from ._tree import remove_tree


@dataclass
class CleanupReport:
    runs: list[str] = field(default_factory=list)
    processes: int = 0
    cgroups: int = 0
    mounts: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    skipped_live: list[str] = field(default_factory=list)
    leaked_by_live: list[str] = field(default_factory=list)  # of runs: owner alive, done
    errors: list[str] = field(default_factory=list)

    @property
    def removed_anything(self) -> bool:
        return bool(
            self.runs
            or self.processes
            or self.cgroups
            or self.mounts
            or self.namespaces
            or self.links
            or self.tables
            or self.directories
        )

    def summary(self) -> str:
        if not self.removed_anything:
            text = "nothing to clean up"
        else:
            text = (
                f"removed {len(self.runs)} run(s): {self.processes} process(es), "
                f"{self.cgroups} cgroup(s), {len(self.mounts)} mount(s), "
                f"{len(self.namespaces)} namespace(s), {len(self.links)} link(s), "
                f"{len(self.tables)} nft table(s), "
                f"{len(self.directories)} directory tree(s)"
            )
        if self.leaked_by_live:
            text += (
                f" ({len(self.leaked_by_live)} of them left by a failed teardown in a "
                "process that still runs)"
            )
        if self.skipped_live:
            text += f"; left {len(self.skipped_live)} live run(s) alone"
        if self.errors:
            text += f"; {len(self.errors)} error(s): " + "; ".join(self.errors)
        return text


def _stray_files() -> list[Path]:
    """Temporary files of writers killed mid-write, and locks whose owner is unreadable."""
    out: list[Path] = []
    if _state.STATE_DIR.exists():
        out += [
            p
            for p in _state.STATE_DIR.iterdir()
            if p.is_file() and (p.name.startswith(".") or p.suffix == ".tmp")
        ]
    subnets = _state.STATE_DIR / "subnets"
    if subnets.exists():
        out += [p for p in subnets.iterdir() if p.name.startswith(".")]
        for p in subnets.iterdir():
            try:
                if not p.name.startswith(".") and not _state.valid_run_id(p.read_text().strip()):
                    out.append(p)
            except OSError:
                continue
    return out


def _candidate_runs() -> set[str]:
    ids = {r.run_id for r in _state.all_records()}
    ids |= _cgroup.all_run_ids()
    ids |= {r for n in list_netns() if (r := _state.run_id_of_netns(n))}
    ids |= {r for n in list_links() if (r := _state.run_id_of_link(n))}
    ids |= {r for n in run_tables() if (r := _state.run_id_of_table(n))}
    if _state.DATA_ROOT.exists():
        ids |= {p.name for p in _state.DATA_ROOT.iterdir() if p.is_dir()}
    ids |= set(_state.subnet_owners().values())
    # never act on anything that is not exactly a run id: an empty or odd name would
    # otherwise make the sweep touch DATA_ROOT itself or someone else's objects
    return {i for i in ids if _state.valid_run_id(i)}


def cleanup(
    everything: bool = False, *, owner_pid: int | None = None, owner_start: int | None = None
) -> CleanupReport:
    """Remove the leftovers of dead runs and of runs whose teardown failed, even in a
    process that still runs (of all runs if ``everything``). With
    ``owner_pid``, only those of the runs that process owned (by their records), e.g. of
    one killed run, leaving everyone else's alone; with ``owner_start`` too, only if the
    record's owner started then (a later process that reused the pid is not that owner)."""
    report = CleanupReport()
    for path in _stray_files() if owner_pid is None else []:
        if _owner_dead_long_enough(path):
            path.unlink(missing_ok=True)
            report.directories.append(str(path))
    for run_id in sorted(_candidate_runs()):
        rec = _state.RunRecord.load(run_id)
        if owner_pid is not None and (rec is None or rec.owner_pid != owner_pid):
            continue
        if owner_start is not None and (rec is None or rec.owner_start != owner_start):
            continue
        if rec is not None and rec.in_use() and not everything:
            report.skipped_live.append(run_id)
            continue
        if rec is not None and rec.state == _state.LEAKED and rec.owner_alive():
            report.leaked_by_live.append(run_id)
        _sweep_run(run_id, report)
        report.runs.append(run_id)
        if rec is not None:
            rec.remove()
        for subnet, owner in _state.subnet_owners().items():
            if owner == run_id:
                _state.release_subnet(f"{subnet}/{_state.SUBNET_PREFIX}")
    return report


def _owner_dead_long_enough(path: Path) -> bool:
    """A stray file may belong to a writer that is about to rename it: leave fresh ones."""
    try:
        return time.time() - path.stat().st_mtime > 10.0
    except OSError:
        return False


def _sweep_run(run_id: str, report: CleanupReport) -> None:
    if not _state.valid_run_id(run_id):
        raise ValueError(f"refusing to sweep {run_id!r}: not a run id")
    try:
        n_cg = len(_cgroup.run_cgroups(run_id))
        report.processes += _cgroup.remove_run_tree(run_id)
        report.cgroups += n_cg
    except Exception as exc:
        report.errors.append(f"cgroups of {run_id}: {exc}")
    root = _state.DATA_ROOT / run_id
    try:
        for mp in mounts_under(str(root)):
            if umount(mp):
                report.mounts.append(mp)
    except Exception as exc:
        report.errors.append(f"mounts of {run_id}: {exc}")
    ns = [n for n in list_netns() if _state.run_id_of_netns(n) == run_id]
    links = [n for n in list_links() if _state.run_id_of_link(n) == run_id]
    try:
        abort_sockets(ns)  # the processes are dead: their orphans would keep the links
        ip_batch([f"netns del {n}" for n in ns], check=False)
        report.namespaces += ns
        remaining = set(list_links())
        ip_batch([f"link del {n}" for n in links if n in remaining], check=False)
        report.links += links
    except Exception as exc:
        report.errors.append(f"network of {run_id}: {exc}")
    try:
        report.tables += delete_run_tables(run_id)
    except Exception as exc:
        report.errors.append(f"nft tables of {run_id}: {exc}")
    if root.exists():
        remove_tree(root)  # however deep the tree a run's code left
        report.directories.append(str(root))
