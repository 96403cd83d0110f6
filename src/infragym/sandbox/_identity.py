"""Per-run identities: the uid and gid a run's hosts (and its workstation) run as.

The kernel counts some limits per user, not per namespace: inotify instances
(``fs.inotify.max_user_instances``), POSIX message queue bytes (``RLIMIT_MSGQUEUE``),
queued signals (``RLIMIT_SIGPENDING``), pipe buffer pages (``fs.pipe-user-pages-soft``)
and keyrings. Had every episode's sandboxes run as one user (``nobody``), one episode
exhausting them would starve every other one on the machine. So each run runs as a user
of its own.

The uid is derived from the run id, which the run's record holds exclusively
(:func:`._state.claim_record`): claiming the run id claims the uid, and removing the
record (at teardown or by ``infragym cleanup``) releases it, so there is no second pool to
leak. Nothing of the uid outlives the run: its processes die with the run's cgroups, the
files it may write lie in the run's directories (removed with them), System V and POSIX
IPC objects in each sandbox's own IPC namespace, and keyrings, which the kernel keeps per
uid beyond the last process and would hand to the next run that draws the same id, are
refused by the seccomp filter (:mod:`._seccomp`).

The range is ``ID_BASE`` .. ``ID_BASE + 2**24 - 1`` (run ids are 24 bits): above any
account a distribution makes (system and login users lie below 65536; subordinate ids for
containers are handed out from 100000, a few million at most), and below 2**31, so tools
that take a uid for a signed int still work. The run id is scrambled into it (a bijection
of 24 bits) so that ``id -u`` does not spell the run id out; it is no secret.

Servers that look up their own user (PostgreSQL refuses to start without a name for its
uid) find it in the ``/etc/passwd`` and ``/etc/group`` the view gets: the machine's, with
the run's user ``USER_NAME`` (home ``/tmp``) appended.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import _state

__all__ = ["ID_BASE", "ID_COUNT", "USER_NAME", "Identity", "identity_of"]

ID_BASE = 2_000_000_000
ID_COUNT = 1 << 24
USER_NAME = "sandbox"
_MULTIPLIER = 0x5BD1E9  # odd: multiplying by it permutes the integers mod 2**24
_MASK = 0xA5C3F0


@dataclass(frozen=True)
class Identity:
    """The user and group a run's sandboxed processes run as, with the ``/etc/passwd``
    and ``/etc/group`` their views show."""

    uid: int
    gid: int
    passwd: bytes
    group: bytes

    def view_files(self) -> list[tuple[bytes, str]]:
        """(content, path) pairs to copy into a sandbox's view."""
        return [(self.passwd, "/etc/passwd"), (self.group, "/etc/group")]


def run_uid(run_id: str) -> int:
    """The uid (and gid) of run ``run_id``: distinct for distinct run ids."""
    if not _state.valid_run_id(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return ID_BASE + ((int(run_id, 16) * _MULTIPLIER) % ID_COUNT ^ _MASK)


def is_run_uid(uid: int) -> bool:
    return ID_BASE <= uid < ID_BASE + ID_COUNT


def identity_of(run_id: str, etc: Path = Path("/etc")) -> Identity:
    """The identity of run ``run_id``, its files built from the machine's ``etc``."""
    uid = run_uid(run_id)
    passwd = _entries(etc / "passwd", uid, f"{USER_NAME}:x:{uid}:{uid}:sandbox:/tmp:/bin/sh")
    group = _entries(etc / "group", uid, f"{USER_NAME}:x:{uid}:")
    return Identity(uid, uid, passwd, group)


def _entries(path: Path, uid: int, own: str) -> bytes:
    """The machine's entries of ``path`` without any that would shadow the run's user (the
    same name, or a uid of the range), then the run's own."""
    try:
        lines = path.read_text(errors="surrogateescape").splitlines()
    except FileNotFoundError:
        lines = []
    kept = []
    for line in lines:
        fields = line.split(":")
        if fields[0] == USER_NAME:
            continue
        if len(fields) > 2 and fields[2].isdigit() and is_run_uid(int(fields[2])):
            continue
        kept.append(line)
    return "".join(f"{line}\n" for line in [*kept, own]).encode(errors="surrogateescape")
