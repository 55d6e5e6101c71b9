"""Starting, watching and stopping local HTTP services (any argv with a port and a health path).

``ServiceManager`` starts each service in its own session with its own log file, records it in
the pid registry, and waits for its health path to answer, polling every 20 ms and checking
whether the process died meanwhile. Stopping sends SIGTERM to the whole process tree, waits at
most a grace period, SIGKILLs what is left, and returns as soon as everything has exited.
Only processes the manager started (identified by pid *and* start time) are ever signalled.

Log tails are redacted: the values of secret-looking variables in each service's final
environment (``HF_TOKEN``, anything named like ``*TOKEN*``, ``*KEY*``, ``*SECRET*``,
``*PASSWORD*``) never appear in what the manager hands out.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psutil

from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.process.interrupts import ignore_sigint, sigint_deferred
from pytest_mlxstack.process.paths import default_home, safe_file_name
from pytest_mlxstack.process.ports import LOOPBACK, PortAllocator, http_status
from pytest_mlxstack.process.proctree import (
    MARKER_ENV,
    ProcessIdentity,
    TreeStopResult,
    collect_tree,
    listening_ports,
    terminate_tree,
)
from pytest_mlxstack.process.registry import Owner, PidRegistry, ServiceRecord
from pytest_mlxstack.text.redact import redact_text, registered_secrets
from pytest_mlxstack.text.secrets import (
    RedactedEnv,
    secret_values,
)

DEFAULT_GRACE_PERIOD_S = 10.0
DEFAULT_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.02
PROBE_TIMEOUT_S = 0.5
LOG_TAIL_LINES = 40
BIND_ATTEMPTS = 4
WATCHDOG_POLL_S = 0.2
STACK_EXTRA_HINT = "pip install 'pytest-mlxstack[stack]'"

_ADDRESS_IN_USE = re.compile(
    r"address already in use|EADDRINUSE|errno 98\b|errno 48\b|only one usage of each socket",
    re.IGNORECASE,
)


class ServiceStartError(MlxStackError, RuntimeError):
    """A service did not become ready: it exited, timed out, or could not be launched.

    The end of its log is ``log_tail`` (also ``detail``), never part of the message."""

    def __init__(
        self,
        problem: str,
        fix: str = "",
        *,
        name: str,
        exit_code: int | None = None,
        log_tail: str = "",
        log_path: Path | None = None,
    ) -> None:
        super().__init__(problem, fix, detail=log_tail)
        self.name = name
        self.exit_code = exit_code
        self.log_tail = log_tail
        self.log_path = log_path


class ServiceStartCancelled(ServiceStartError):
    """The start was called off (``cancel`` was set) before the service answered; it was
    stopped."""


class _PortStolen(Exception):
    """Another program took the port between allocation and the service's bind."""


@dataclass(frozen=True)
class ManagedService:
    """A running service as the caller sees it."""

    name: str
    port: int
    pid: int
    url: str
    log_path: Path
    argv: tuple[str, ...]


@dataclass
class _Running:
    service: ManagedService
    popen: subprocess.Popen[bytes]
    process: psutil.Process | None
    record: ServiceRecord
    allocated: bool  # whether the port came from our allocator (and goes back to it)


class ServiceManager:
    """Starts services and guarantees they are stopped: on ``stop``, on leaving the ``with``
    block (even by an exception), and at interpreter exit.

    ``home`` holds the pid registry (``run/``), the logs (``logs/``) and, unless a
    ``port_allocator`` is given, the port locks (``ports/``). Creating a manager first reaps
    services left running by sessions that died (``reap=False`` skips that).
    """

    def __init__(
        self,
        home: Path | str | None = None,
        *,
        grace_period: float = DEFAULT_GRACE_PERIOD_S,
        port_allocator: PortAllocator | None = None,
        owner: Owner | None = None,
        redact: Iterable[str] = (),
        reap: bool = True,
    ) -> None:
        if grace_period < 0:
            raise ValueError(f"grace_period must be >= 0 seconds, got {grace_period}")
        self.home = Path(home) if home is not None else default_home()
        self.grace_period = float(grace_period)
        self.ports = port_allocator or PortAllocator(self.home / "ports")
        self.owner = owner or Owner.current()
        self.registry = PidRegistry(self.home)
        self.log_dir = self.home / "logs"
        self._secrets: set[str] = {s for s in redact if s}
        self._running: dict[str, _Running] = {}
        self.history: list[ManagedService] = []  # every launch, stopped or not, for reports
        self._lock = threading.RLock()
        self.reaped: list[ServiceRecord] = []
        if reap:
            self.reaped = self.registry.reap_orphans(self.grace_period)
        _LIVE_MANAGERS.add(self)

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> ServiceManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    # -- queries ---------------------------------------------------------------------------

    @property
    def services(self) -> dict[str, ManagedService]:
        """The running services by name, in start order."""
        with self._lock:
            return {name: run.service for name, run in self._running.items()}

    def get(self, name: str) -> ManagedService:
        """The running service ``name``; ``KeyError`` if there is none."""
        with self._lock:
            try:
                return self._running[name].service
            except KeyError:
                raise KeyError(f"no running service named {name!r}") from None

    def log_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the service's log, secrets redacted."""
        return self._tail(self.get(name).log_path, lines)

    def add_secret(self, secret: str) -> None:
        """Redact ``secret`` from every log tail this manager hands out."""
        if secret:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        """``text`` with every known secret, and every secret-shaped string, redacted."""
        return redact_text(text, self._secrets)

    @property
    def secrets(self) -> frozenset[str]:
        """Every value this manager redacts (for redacting failure reports too)."""
        return frozenset(self._secrets)

    # -- starting --------------------------------------------------------------------------

    def start(
        self,
        name: str,
        argv: Sequence[str],
        port: int | None = None,
        *,
        health_path: str = "/health",
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        cwd: Path | str | None = None,
        labels: Mapping[str, str] | None = None,
        on_launch: Callable[[ManagedService], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ManagedService:
        """Launch ``argv`` and return once ``http://127.0.0.1:<port><health_path>`` answers 2xx.

        ``{port}`` in ``argv`` is replaced by the port. With ``port=None`` one is allocated,
        and if another program takes it before the service binds, the service is stopped and
        started again on a fresh port. ``labels`` are stored in the pid-registry record (for
        ``mlxstack status``). ``on_launch`` hears the service as soon as its process runs,
        before it is ready (again after a retry on a new port), so that whoever depends on
        its port can start meanwhile. Setting ``cancel`` (from another thread) stops a start
        still waiting and raises ``ServiceStartCancelled``. Raises ``ServiceStartError`` if
        the process exits during start-up (with its exit code and log tail) or does not answer
        in ``timeout``.
        """
        env = None if env is None else RedactedEnv(env)  # a caller's plain dict: not a local
        if isinstance(argv, (str, bytes)):
            raise TypeError(
                f"ServiceManager.start({name!r}, ...): argv is the string {argv!r}, not a list "
                "of arguments; pass a list such as shlex.split(command)"
            )
        if not argv:
            raise ValueError(f"service {name!r}: argv is empty; give the command to run")
        if not health_path.startswith("/"):
            raise ValueError(f"service {name!r}: health_path must start with '/'")
        with self._lock:
            if name in self._running:
                raise ValueError(f"a service named {name!r} is already running; stop it first")
        attempts = 1 if port is not None else BIND_ATTEMPTS
        stolen: list[int] = []
        for _ in range(attempts):
            _check_cancelled(cancel, name)
            chosen = port if port is not None else self.ports.allocate()
            try:
                return self._start_once(
                    name,
                    argv,
                    chosen,
                    allocated=port is None,
                    health_path=health_path,
                    env=env,
                    timeout=timeout,
                    cwd=cwd,
                    labels=labels,
                    on_launch=on_launch,
                    cancel=cancel,
                )
            except _PortStolen:
                stolen.append(chosen)
                if port is not None:
                    raise ServiceStartError(
                        f"service {name!r} could not use port {port}: another process holds it; "
                        "pass port=None to let the manager pick a free port",
                        name=name,
                    ) from None
        raise ServiceStartError(
            f"service {name!r}: ports {', '.join(map(str, stolen))} were each taken by another "
            f"process before the service could bind them; giving up after {attempts} tries",
            name=name,
        )

    def _start_once(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        *,
        allocated: bool,
        health_path: str,
        env: Mapping[str, str] | None,
        timeout: float,
        cwd: Path | str | None,
        labels: Mapping[str, str] | None,
        on_launch: Callable[[ManagedService], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ManagedService:
        final_argv = tuple(str(part).replace("{port}", str(port)) for part in argv)
        log_path = self.log_dir / f"{safe_file_name(name)}-{port}.log"
        marker = uuid.uuid4().hex
        # Never a plain dict: this frame's locals show in ``pytest -l`` tracebacks.
        child_env = RedactedEnv(os.environ)
        child_env.update(env or {})
        child_env[MARKER_ENV] = marker
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        self._secrets.update(secret_values(child_env))
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_file = open(log_path, "wb")  # noqa: SIM115 - closed once the child has it
        except OSError as exc:
            if allocated:
                self.ports.release(port)
            raise ServiceStartError(
                f"service {name!r}: cannot write its log {log_path}: {exc.strerror}; point "
                "--mlx-home (or MLXSTACK_HOME) at a writable directory",
                name=name,
            ) from None
        started_at = time.time()
        try:
            popen = subprocess.Popen(
                final_argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            if allocated:
                self.ports.release(port)
            raise ServiceStartError(
                f"service {name!r} could not be launched: {final_argv[0]}: {exc.strerror}; "
                "check that the program is installed and executable",
                name=name,
                log_path=log_path,
            ) from None
        finally:
            log_file.close()  # the child writes through its own copy
        process, identity = _identify(popen.pid, final_argv)
        url = f"http://{LOOPBACK}:{port}"
        record = ServiceRecord(
            name=name,
            pid=popen.pid,
            create_time=identity.create_time if identity else started_at,
            cmdline=identity.cmdline if identity else final_argv,
            port=port,
            url=url,
            log_path=str(log_path),
            owner=self.owner,
            marker=marker,
            started_at=started_at,
            labels=dict(labels or {}),
        )
        service = ManagedService(name, port, popen.pid, url, log_path, final_argv)
        running = _Running(service, popen, process, record, allocated)
        with self._lock:
            self._running[name] = running
            self.history.append(service)
        try:
            self.registry.add(record)
            if on_launch is not None:
                on_launch(service)
            self._wait_ready(running, health_path, timeout, cancel)
        except BaseException:
            self._stop_running(name)
            raise
        return service

    def _wait_ready(
        self,
        running: _Running,
        health_path: str,
        timeout: float,
        cancel: threading.Event | None = None,
    ) -> None:
        service = running.service
        deadline = time.monotonic() + timeout
        while True:
            _check_cancelled(cancel, service.name)
            code = running.popen.poll()
            if code is not None:
                self._raise_exited(running, code)
            # A short request timeout keeps the exit check frequent even when a server
            # accepts connections but answers slowly while loading.
            status = http_status(service.port, health_path, PROBE_TIMEOUT_S)
            if status is not None and 200 <= status < 300:
                if self._owns_listener(running):
                    return
                code = running.popen.poll()
                if code is not None:
                    self._raise_exited(running, code)
                raise _PortStolen()
            if time.monotonic() >= deadline:
                tail = self._tail(service.log_path, LOG_TAIL_LINES)
                raise ServiceStartError(
                    f"service {service.name!r} did not answer {service.url}{health_path} within "
                    f"{timeout:g} s (pid {service.pid}, log {service.log_path})",
                    name=service.name,
                    log_tail=tail,
                    log_path=service.log_path,
                )
            time.sleep(POLL_INTERVAL_S)

    def _raise_exited(self, running: _Running, code: int) -> None:
        __tracebackhide__ = True  # only raises; the frames above say where it happened
        service = running.service
        tail = self._tail(service.log_path, LOG_TAIL_LINES)
        if _ADDRESS_IN_USE.search(tail):
            raise _PortStolen()
        if code == 0:
            raise ServiceStartError(
                f"service {service.name!r} exited with code 0 during start-up, before it "
                f"answered: its command returned at once, as one that daemonises (goes to the "
                f"background) does (log {service.log_path})",
                "run the command so that it stays in the foreground (drop its daemon or "
                "background option): the manager must own the serving process to stop it",
                name=service.name,
                exit_code=code,
                log_tail=tail,
                log_path=service.log_path,
            )
        raise ServiceStartError(
            f"service {service.name!r} exited with code {code} during start-up "
            f"(log {service.log_path})",
            name=service.name,
            exit_code=code,
            log_tail=tail,
            log_path=service.log_path,
        )

    def _owns_listener(self, running: _Running) -> bool:
        """Whether the socket answering on the port belongs to the service's own tree."""
        service = running.service
        ports = listening_ports(collect_tree(running.process))
        if ports is None or service.port in ports:
            return True  # ours, or not inspectable here: do not call it stolen without proof
        # A daemonising child may have left the tree; look for it by its marker.
        tree = collect_tree(
            running.process, marker=running.record.marker, not_before=running.record.create_time
        )
        ports = listening_ports(tree)
        return ports is None or service.port in ports

    # -- stopping --------------------------------------------------------------------------

    def stop(self, name: str, *, grace_period: float | None = None) -> TreeStopResult:
        """Stop ``name`` and its whole process tree; ``KeyError`` if no such service runs."""
        with self._lock:
            if name not in self._running:
                raise KeyError(f"no running service named {name!r}")
        return self._stop_running(name, grace_period)

    def stop_all(self) -> None:
        """Stop every service, newest first. One failing stop does not keep the others
        running: the first error is raised after all were attempted."""
        with self._lock:
            names = list(reversed(self._running))
        errors: list[Exception] = []
        with sigint_deferred():  # Ctrl-C between two services must not skip the second
            for name in names:
                try:
                    self._stop_running(name)
                except KeyError:
                    continue  # stopped meanwhile by someone else
                except Exception as exc:
                    errors.append(exc)
        if errors:
            raise errors[0]

    def _stop_running(self, name: str, grace_period: float | None = None) -> TreeStopResult:
        # The service stays listed until it is really gone: if this is interrupted (a
        # KeyboardInterrupt from SIGTERM), stop_all at exit still finds and stops it.
        with self._lock:
            running = self._running[name]
        grace = self.grace_period if grace_period is None else grace_period
        with sigint_deferred():  # a Ctrl-C mid-wait would skip the SIGKILL
            tree = collect_tree(
                running.process,
                marker=running.record.marker,
                not_before=running.record.create_time,
            )
            result = terminate_tree(tree, grace)
            with contextlib.suppress(subprocess.TimeoutExpired):
                running.popen.wait(timeout=5.0)  # reap our direct child's zombie
            with self._lock:
                if self._running.get(name) is running:
                    del self._running[name]
            self.registry.remove(running.record)
            if running.allocated:
                self.ports.release(running.service.port)
        return result

    def detach(self) -> list[ServiceRecord]:
        """Leave every service running on purpose (``mlxstack up --detach``): their records
        become owned by nobody, so no session reaps them, and this manager forgets them (it
        will not stop them on exit). ``PidRegistry.stop`` stops them later."""
        with self._lock:
            detached = list(self._running.values())
            self._running.clear()
        records = []
        for running in detached:
            record = dataclasses.replace(running.record, owner=Owner.detached())
            self.registry.add(record)
            records.append(record)
        return records

    # -- helpers ---------------------------------------------------------------------------

    def _tail(self, path: Path, lines: int) -> str:
        return self.redact(read_tail(path, lines))


def _check_cancelled(cancel: threading.Event | None, name: str) -> None:
    if cancel is not None and cancel.is_set():
        raise ServiceStartCancelled(
            f"the start of service {name!r} was called off before it answered", name=name
        )


def read_tail(path: Path | str, lines: int = LOG_TAIL_LINES, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a text file (reading at most its last ``max_bytes``)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _identify(
    pid: int, argv: Sequence[str]
) -> tuple[psutil.Process | None, ProcessIdentity | None]:
    """The new process and its identity as the system reports it. Linux shows an empty
    command line for a few milliseconds after exec, so wait (briefly) for the real one: a
    script's is ``python /path/script ...``, not its argv, and reaping compares them."""
    try:
        proc = psutil.Process(pid)
        created = proc.create_time()
        cmdline = tuple(proc.cmdline())
        deadline = time.monotonic() + 1.0
        while not cmdline and time.monotonic() < deadline and proc.is_running():
            time.sleep(0.002)
            cmdline = tuple(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None, None
    return proc, ProcessIdentity(pid, created, cmdline or tuple(argv))


def find_script(name: str) -> str:
    """A console script next to the running interpreter (its venv), else on ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise ServiceStartError(
        f"{name} is not installed (looked next to {sys.executable} and on PATH); "
        f"install it with {STACK_EXTRA_HINT}",
        name=name,
    )


_LIVE_MANAGERS: weakref.WeakSet[ServiceManager] = weakref.WeakSet()


def known_secrets() -> set[str]:
    """Every secret the live managers of this process redact, and those of this process's own
    environment (``HF_TOKEN`` and the like)."""
    found = set(secret_values(os.environ)) | registered_secrets()
    for manager in list(_LIVE_MANAGERS):
        found |= manager.secrets
    return found


def stop_all_managers() -> None:
    """Stop the services of every live manager in this process (atexit, signal handlers)."""
    for manager in list(_LIVE_MANAGERS):
        with contextlib.suppress(Exception):
            manager.stop_all()


def _stop_at_exit() -> None:
    """The atexit cleanup: nothing is left to interrupt, so Ctrl-C no longer counts."""
    ignore_sigint()
    stop_all_managers()


atexit.register(_stop_at_exit)


class OwnerWatchdog:
    """Stops the services of every manager in this process once ``owner`` is gone.

    For a process working for another one, such as an xdist worker for its controller: when
    the controller is SIGKILLed the worker can linger for a minute, stuck in a test, with its
    services running. A daemon thread checks ``owner`` every ``poll_interval`` seconds; once
    it is gone, it stops every service, and keeps stopping any the lingering process starts.
    """

    def __init__(self, owner: Owner, *, poll_interval: float = WATCHDOG_POLL_S) -> None:
        self.owner = owner
        self.poll_interval = poll_interval
        self.fired = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlxstack-watchdog", daemon=True)

    def start(self) -> OwnerWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (the process is ending normally)."""
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.poll_interval):
            if self.fired.is_set() or not self.owner.is_alive():
                self.fired.set()
                with contextlib.suppress(RuntimeError):  # managers added meanwhile: next poll
                    stop_all_managers()
