"""What of the machine untrusted code may see: system directories, read-only, and no more.

Everything that runs on a host (in grading: the agent's system) or in the agent's
workstation is untrusted. This machine's repositories, home directories and virtualenvs
are world-readable and hold every task's grader and reference solutions (in git objects
too), so untrusted code sees only ``/usr`` and ``/etc`` (with the merged-/usr links) of
the machine, and even there the data root, the run state and whatever the caller hides
(the task folders, which may be installed under ``/usr``) are emptied.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from . import _state

__all__ = ["system_view"]

SYSTEM_DIRS = ("/usr", "/etc")
MERGED_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def system_view(hidden: Sequence[Path] = ()) -> list[str]:
    """bubblewrap arguments mounting the system read-only, with ``hidden`` paths emptied.

    The data root and the run state are always hidden; a hidden path matters only where it
    lies under a visible directory (elsewhere nothing shows it anyway).
    """
    view: list[str] = []
    visible: list[Path] = []
    for d in SYSTEM_DIRS:
        if os.path.isdir(d):
            view += ["--ro-bind", d, d]
            visible.append(Path(d).resolve())
    for d in MERGED_DIRS:
        if os.path.islink(d):
            view += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            view += ["--ro-bind", d, d]
            visible.append(Path(d).resolve())
    for p in [*hidden, _state.DATA_ROOT, _state.STATE_DIR]:
        rp = Path(p).resolve()
        if rp.exists() and any(rp.is_relative_to(v) for v in visible):
            view += ["--tmpfs", str(rp)] if rp.is_dir() else ["--ro-bind", "/dev/null", str(rp)]
    return view
