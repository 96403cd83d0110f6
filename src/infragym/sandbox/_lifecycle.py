"""What every sandbox resource with a lifecycle shares: removal at exit and on signals.

Clusters and workstations register here while they are alive. Strong references: a
resource nobody holds any more must still be removed at interpreter exit. A forked child
forgets them, so its exit never tears down its parent's resources. SIGTERM and SIGHUP are
made to unwind like Ctrl-C, and teardown holds all three back until it is over.

A stop signal unwinds once. ``timeout``, Slurm and a terminal's process group often
deliver it twice within microseconds; the repeat lands in the middle of the teardown the
first one started, so for ``REPEAT_GRACE_S`` repeats are ignored (raising into asyncio's
own teardown closes the loop with tasks still pending: their ``finally`` blocks then run
with no loop, and what they should remove is left to the exit handler). The signal never
raises inside an event loop's internals either: under :func:`run` it cancels the main task,
under any other loop running in the main thread it raises between two callbacks.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Iterator
from types import FrameType
from typing import Any, ClassVar, Protocol, Self, TypeVar

from .._errors import ResourceError
from ._state import RunRecord
from ._sys import require_root, require_tools


class Closable(Protocol):
    def close(self) -> None: ...


_LIVE: set[Closable] = set()
_atexit_installed = False
_signals_installed = False
_handlers_lock = threading.Lock()
_TEARDOWN_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
REPEAT_GRACE_S = 10.0  # how long a repeat of a stop signal is ignored: teardown's time

T = TypeVar("T")
_stop: tuple[int, float] | None = None  # the stop signal being handled and when it came
_main: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = None  # run()'s task


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
    global _stop
    now = time.monotonic()
    if _stop is not None and now - _stop[1] < REPEAT_GRACE_S:
        return  # the teardown the first one started is under way: let it finish
    _stop = (signum, now)
    main = _main
    if main is not None and not main[1].done():
        try:
            main[0].call_soon_threadsafe(main[1].cancel)
            return
        except RuntimeError:  # the loop is closed
            pass
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        try:
            loop.call_soon_threadsafe(_raise_stop, signum)
            return
        except RuntimeError:
            pass
    _raise_stop(signum)


def _raise_stop(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` for a program's entry point, with clean stop signals.

    SIGINT, SIGTERM and SIGHUP cancel ``main``, so everything it made is torn down on a
    live loop, and then raise ``KeyboardInterrupt`` (SIGINT) or ``SystemExit(128 + signal)``
    (exit codes 130, 143, 129); repeats during the teardown are ignored. Call it from the
    main thread; the handlers stay installed afterwards (a signal that comes after ``main``
    ended still exits the same way).
    """
    global _main, _stop
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("infragym's run() must be called from the main thread")
    install_handlers()
    signal.signal(signal.SIGINT, _on_signal)
    _stop = None
    with asyncio.Runner() as runner:
        loop = runner.get_loop()
        task = loop.create_task(main)
        _main = (loop, task)
        try:
            result = loop.run_until_complete(task)
        except asyncio.CancelledError:
            if _stop is None:
                raise
        finally:
            _main = None
    # the runner's teardown (other tasks, async generators, the executor) is over
    if _stop is not None:
        _raise_stop(_stop[0])
    return result


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
    hold SIGINT, SIGTERM and SIGHUP back while they change what exists. A teardown that
    raises marks the run record leaked: ``infragym cleanup`` then reclaims what is left
    even while this process lives on."""

    KIND: ClassVar[str]  # what the resource is called in messages
    run_id: str
    _record: RunRecord | None
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
            except BaseException:
                if self._record is not None:
                    with contextlib.suppress(Exception):
                        self._record.mark_leaked()
                raise
            finally:
                self._closed = True
                untrack(self)
