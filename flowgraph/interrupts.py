"""Ctrl-C and SIGTERM for a command-line run: the first drains, the second stops, and a run that still
has not ended a few seconds after the second is ended, naming what did not stop.

Why a thread of its own, waiting in ``sigwait``: a handler on the event loop (``add_signal_handler``)
never runs while a node blocks the loop, and Python's own handler raises ``KeyboardInterrupt`` into
whatever the main thread does, which left LoadGen's test thread waiting forever for answers. The
signals are blocked in every thread started inside the block (they inherit the mask), so only this
thread sees them. For the CLI only: a library does not take over a process's signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["Interrupts"]

_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_QUIT = signal.SIGUSR2  # sent by __exit__ to end the waiting thread


class Interrupts:
    """Call ``drain`` on the first Ctrl-C or SIGTERM and ``stop`` on the second, on ``loop``; if the
    process is still running ``grace_s`` after the second, write ``stuck()`` (what did not stop) to
    stderr and exit with status 1. Use as a context manager around the run."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        drain: Callable[[str], None],
        stop: Callable[[], None],
        stuck: Callable[[], str],
        grace_s: float = 3.0,
    ) -> None:
        self._loop = loop
        self._drain, self._stop, self._stuck = drain, stop, stuck
        self._grace_s = grace_s
        self._thread: threading.Thread | None = None
        self._old_mask: set[int | signal.Signals] = set()
        self.presses = 0

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "pthread_sigmask"
        ):
            return self  # not the main thread (a test harness), or no POSIX signals: leave them alone
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {*_SIGNALS, _QUIT})
        self._thread = threading.Thread(target=self._wait, name="flowgraph-interrupts", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread is None:
            return
        signal.pthread_kill(self._thread.ident or 0, _QUIT)
        self._thread.join()
        self._thread = None
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)

    def _wait(self) -> None:
        while True:
            received = signal.sigwait({*_SIGNALS, _QUIT})
            if received == _QUIT:
                return
            self.presses += 1
            name = "SIGTERM" if received == signal.SIGTERM else "Ctrl-C"
            if self.presses == 1:
                self._call(self._drain, name)
            else:
                self._call(self._stop)
                threading.Thread(target=self._deadline, name="flowgraph-deadline", daemon=True).start()

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the run is over
            self._loop.call_soon_threadsafe(fn, *args)

    def _deadline(self) -> None:
        """Runs only if the process outlives the grace period after the second press."""
        threading.Event().wait(self._grace_s)
        try:
            what = self._stuck()
        except Exception as exc:  # reading another thread's state: best effort
            what = f"(could not tell: {exc})"
        sys.stderr.write(f"\nstill running {self._grace_s:g} s after the second interrupt: {what}; exiting\n")
        sys.stderr.flush()
        os._exit(1)
