"""Ctrl-C while services are being stopped must not leave half of them running.

A ``KeyboardInterrupt`` raised inside the wait for a stopping tree (the SIGKILL after the grace
period never comes) or between two services of ``stop_all`` (the next is never stopped) leaves
services running with their ports bound. While a stop runs, SIGINT is therefore only noted;
the previous handler gets it once the stop is over (so a single Ctrl-C during a stop still
interrupts the program, just after it), and repeated presses count as one. At interpreter exit
SIGINT is ignored outright: the only thing left to do is the cleanup.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold SIGINT back for the duration of the block (main thread only; elsewhere a no-op,
    since signals are only delivered to the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    try:
        previous = signal.signal(signal.SIGINT, note)
    except ValueError:  # pragma: no cover - not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(signal.SIGINT, None)  # once, however often it was pressed


def ignore_sigint() -> None:
    """Ignore SIGINT from now on (at interpreter exit, before the last cleanup)."""
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
