"""Several blocking starts at once, none of them left behind.

``StartGroup`` runs callables (each typically a ``ServiceManager.start``) in threads of their
own. Whatever ends the caller's wait early (Ctrl-C, a SIGTERM turned into
``KeyboardInterrupt``, an error) sets the group's ``cancel`` event, which a
``ServiceManager.start`` given it honours by stopping the service it was waiting for; then
the caller waits, with SIGINT held back, until every thread has finished. So no thread
launches or keeps a process after the caller has moved on to its cleanup, and the cleanup
(``stop_all``) finds every service that did start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

from pytest_mlxstack.process.interrupts import sigint_deferred

T = TypeVar("T")


class Outcome(Generic[T]):
    """What one callable of a group returned or raised."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    @property
    def error(self) -> BaseException | None:
        return self._error

    def result(self) -> T:
        """Its return value; re-raises what it raised. Only once it is ``done``."""
        if not self.done.is_set():
            raise RuntimeError("the task has not finished; wait for its group first")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class StartGroup:
    """Callables run together; ``with StartGroup() as group: group.submit(...)`` waits for all
    of them on leaving the block, cancelling the rest first if the block is left by an
    exception. ``cancel`` is set then, or by any task that wants the others called off."""

    def __init__(
        self, name: str = "mlxstack-start", *, cancel: threading.Event | None = None
    ) -> None:
        self.name = name
        self.cancel = cancel or threading.Event()  # a caller's own: it can call the group off
        self._threads: list[threading.Thread] = []

    def submit(self, task: Callable[[], T]) -> Outcome[T]:
        outcome: Outcome[T] = Outcome()

        def run() -> None:
            try:
                outcome._value = task()
            except BaseException as exc:  # handed to whoever reads the outcome
                outcome._error = exc
            finally:
                outcome.done.set()

        thread = threading.Thread(target=run, name=f"{self.name}-{len(self._threads)}")
        self._threads.append(thread)
        thread.start()
        return outcome

    def wait(self) -> None:
        """Wait for every task; if the wait itself is interrupted, cancel and wait again."""
        try:
            for thread in self._threads:
                thread.join()
        except BaseException:
            self._cancel_and_drain()
            raise

    def _cancel_and_drain(self) -> None:
        self.cancel.set()
        with sigint_deferred():  # a second Ctrl-C must not leave a thread starting a process
            for thread in self._threads:
                thread.join()

    def __enter__(self) -> StartGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._cancel_and_drain()
        else:
            self.wait()
