"""DiskFull: a host's data disk that takes no more writes."""

from __future__ import annotations

import os
import secrets
from typing import Any

from .._errors import ResourceError
from ..sandbox import Cluster
from ..sandbox.lowlevel import remount_tmpfs_size
from ._fault import OneHostFault


class DiskFull(OneHostFault):
    """Shrink a host's data tmpfs to what is already used, so every new write gets ENOSPC.

    Disk-full faults of one host overlap: the first fills the disk, the last to heal gives
    it back its original size (read once per host, before the first shrink).
    """

    kind = "disk-full"
    BALLAST = ".infragym-disk-full"

    def _inflict(self, cluster: Cluster) -> dict[str, Any]:
        host = cluster.host(self.victim)
        state = self._state(cluster)
        with state.lock:
            already = bool(state.disk_full) and self not in state.disk_full
            state.disk_full[self] = None
            if already:
                return {"already_full": True}
            st = os.statvfs(host.data_dir)
            if state.disk_size is None:
                state.disk_size = st.f_blocks * st.f_frsize
            used = (st.f_blocks - st.f_bfree) * st.f_frsize
            # tmpfs treats size=0 as unlimited, so keep one page and fill it with ballast
            remount_tmpfs_size(host.data_dir, max(used, st.f_frsize))
            st = os.statvfs(host.data_dir)
            free = st.f_bavail * st.f_frsize
            if free > 0:
                # the data disk belongs to the code under test, which must not be able to
                # point the ballast (written as root) at a file of the machine: a fresh
                # unpredictable name, created exclusively, never through a link
                state.ballast = f"{self.BALLAST}-{secrets.token_hex(8)}"
                try:
                    fd = os.open(
                        host.data_dir / state.ballast,
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                        0o600,
                    )
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(b"\0" * free)
                except OSError:
                    pass
            st = os.statvfs(host.data_dir)
            if st.f_bavail != 0:
                raise ResourceError(f"could not fill the data disk of {self.host}")
        return {"used_bytes": used}

    def _restore(self, cluster: Cluster) -> None:
        state = self._state(cluster)
        with state.lock:
            if self not in state.disk_full:
                return
            if len(state.disk_full) == 1:
                host = cluster.host(self.victim)
                if state.ballast is not None:
                    (host.data_dir / state.ballast).unlink(missing_ok=True)
                    state.ballast = None
                if state.disk_size is not None:
                    remount_tmpfs_size(host.data_dir, state.disk_size)
            del state.disk_full[self]
