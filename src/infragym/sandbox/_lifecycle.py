"""What every sandbox resource with a lifecycle shares: removal at exit and on signals.

Clusters and workstations register here while they are alive. Strong references: a
resource nobody holds any more must still be removed at interpreter exit. A forked child
forgets them, so its exit never tears down its parent's resources. SIGTERM and SIGHUP are
made to unwind like Ctrl-C, and teardown holds all three back until it is over.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from types import FrameType
from typing import ClassVar, Protocol, Self

from .._errors import ResourceError
from ._sys import require_root, require_tools


class Closable(Protocol):
    def close(self) -> None: ...


_LIVE: set[Closable] = set()
_atexit_installed = False
_signals_installed = False
_handlers_lock = threading.Lock()
_TEARDOWN_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def track(resource: Closable) -> None:
    _LIVE.add(resource)


def untrack(resource: Closable) -> None:
    _LIVE.discard(resource)


def _close_all() -> None:
    for r in list(_LIVE):
        with contextlib.suppress(Exception):
            r.close()


os.register_at_fork(after_in_child=_LIVE.clear)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def blocked_signals() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back (main thread only: Python handles them there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _TEARDOWN_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def install_handlers() -> None:
    """Close live resources at exit; make SIGTERM and SIGHUP unwind like Ctrl-C does.

    Signal handlers can only be set from the main thread: a resource started elsewhere
    leaves them for the next call from the main thread (callers that build resources in
    worker threads call this from the main thread first).
    """
    global _atexit_installed, _signals_installed
    with _handlers_lock:
        if not _atexit_installed:
            atexit.register(_close_all)
            _atexit_installed = True
        if _signals_installed or threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)
        _signals_installed = True


class Lifecycle(ABC):
    """The start and close that clusters and workstations share. ``start`` claims a run
    id recorded on disk before anything is made, then builds, and tears down whatever was
    made if building fails; ``close`` tears down once, whoever calls it and whenever. Both
    hold SIGINT, SIGTERM and SIGHUP back while they change what exists."""

    KIND: ClassVar[str]  # what the resource is called in messages
    run_id: str
    _started: bool
    _closed: bool
    _lock: threading.Lock

    @abstractmethod
    def _claim(self) -> None:
        """Take a run id no other run holds (it may differ from the one asked for)."""

    @abstractmethod
    def _build(self, bwrap: str, setpriv: str) -> None:
        """Make everything; a failure is followed by ``close``."""

    @abstractmethod
    def _teardown(self) -> None:
        """Remove everything that exists of this resource."""

    def start(self) -> Self:
        if self._started:
            raise ResourceError(f"{self.KIND} {self.run_id} was already started")
        require_root(f"building a {self.KIND}")
        tools = require_tools("ip", "bwrap", "setpriv")
        install_handlers()
        with blocked_signals():
            self._claim()
            self._started = True
            track(self)
        try:
            self._build(tools["bwrap"], tools["setpriv"])
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Remove everything. Idempotent; a concurrent call waits for this one."""
        with self._lock, blocked_signals():
            if self._closed or not self._started:
                self._closed = True
                return
            try:
                self._teardown()
            finally:
                self._closed = True
                untrack(self)
