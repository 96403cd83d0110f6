"""A Ray cluster's processes for the tests that run one on this machine
(tests/test_ray_backend.py, tests/test_serve_ray.py): a temp dir of its own, and nothing of
it left afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def ray_pids(marker: str) -> list[int]:
    """Processes whose command line names ``marker`` (the Ray temp dir of one test)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
    return found


@contextlib.contextmanager
def ray_tmpdir() -> Iterator[str]:
    """A short Ray temp dir for this test (Ray's socket paths must stay short), named in
    every Ray process's command line; afterwards no such process may be left."""
    tmp = tempfile.mkdtemp(prefix="igray", dir="/tmp")
    old = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = tmp
    try:
        yield tmp
    finally:
        if old is None:
            del os.environ["RAY_TMPDIR"]
        else:
            os.environ["RAY_TMPDIR"] = old
        deadline = time.monotonic() + 30
        while ray_pids(tmp) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = ray_pids(tmp)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"
