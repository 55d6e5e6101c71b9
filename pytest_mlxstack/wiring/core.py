"""Pytest wiring for the core area: options, markers, fixtures, log sections, clean shutdown.

Kept thin: the logic lives in ``ports``, ``registry``, ``services`` and ``cache``. Other wiring
modules read the resolved settings through ``settings(config)`` and make session-long service
managers with ``new_service_manager(config)``, so that their services are reaped, shown in
failure reports and stopped on SIGTERM like the ones of the ``service_manager`` fixture.

Under xdist the controller hands each worker its identity and a port session in
``workerinput``: registry records name the controller, so services are orphans as soon as it
is gone; a watchdog in each worker stops its services when the controller dies; and no port
is handed out twice in the session, even after it was released.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_mlxstack.process.cache import ModelCache
from pytest_mlxstack.process.leftovers import remove_session_leftovers
from pytest_mlxstack.process.paths import (
    CACHE_ENV,
    HOME_ENV,
)
from pytest_mlxstack.process.ports import PortAllocationError, PortAllocator, PortSession
from pytest_mlxstack.process.registry import Owner, PidRegistry
from pytest_mlxstack.process.services import (
    OwnerWatchdog,
    ServiceManager,
    known_secrets,
    read_tail,
    stop_all_managers,
)
from pytest_mlxstack.text.secrets import SECRET_ENV_VARS
from pytest_mlxstack.text.terminal import plain
from pytest_mlxstack.wiring.core_shutdown import SigtermShutdown, announce_worker
from pytest_mlxstack.wiring.options import (
    add_settings,
    hand_over,
    handover,
    is_worker,
    read_setting,
)
from pytest_mlxstack.wiring.report_redaction import hub_token, redact_report

SESSION_KEY = "session"  # handed to workers: the controller's identity and port session
MARKERS = {
    "catalog_validation": "validates a model catalog (structure and Hub metadata) without "
    "starting any model.",
    "smoke": "tier 2: each model straight to its vllm-mlx server (inference, streaming, "
    "tool calling, thinking).",
    "integration": "tier 3: the tiers behind LiteLLM (routing by tier name, model listing, "
    "concurrency, master key, shutdown).",
    "harness": "tier 4: the OpenAI Python client through LiteLLM, as a coding agent uses it.",
}


@dataclass(frozen=True)
class Settings:
    """The core settings of a run, resolved as option > ini > environment > default."""

    home: Path
    cache_dir: Path
    matrix_dir: Path
    grace_period: float


@dataclass
class _CoreState:
    settings: Settings
    session_owner: Owner | None = None  # on an xdist worker: its controller
    port_session: PortSession | None = None  # on an xdist controller, once workers start
    port_session_id: str | None = None
    watchdog: OwnerWatchdog | None = None
    port_allocator: PortAllocator | None = None
    managers: weakref.WeakSet[ServiceManager] = field(default_factory=weakref.WeakSet)
    shutdown: SigtermShutdown = field(default_factory=SigtermShutdown)
    reaped: int = 0
    leftovers: int = 0  # folders of gone sessions removed at session start


_STATE = pytest.StashKey[_CoreState]()
_FUNCTION_MANAGER = pytest.StashKey[ServiceManager]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_mlxstack.wiring import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_settings(
        parser,
        "mlx_home",
        "mlx_cache_dir",
        "mlx_matrix_dir",
        "mlx_grace_period",
        "mlx_log_lines",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    registered = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in _markers(config)}
    for name, description in MARKERS.items():
        if name not in registered:  # another area may have registered its own already
            config.addinivalue_line("markers", f"{name}: {description}")
    state = _CoreState(settings=_resolve(config))
    config.stash[_STATE] = state
    state.shutdown.install()
    if is_worker(config):
        announce_worker(config)
        _join_session(state, handover(config).get(SESSION_KEY))
    elif config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(
            state.shutdown.controller_plugin(), "mlxstack-core-xdist-shutdown"
        )
        config.pluginmanager.register(_SessionHandover(state), "mlxstack-core-xdist-session")


class _SessionHandover:
    """On the xdist controller: tells each worker who runs the session and its port session."""

    def __init__(self, state: _CoreState) -> None:
        self.state = state
        self.me = Owner.current("pytest")

    def pytest_configure_node(self, node: Any) -> None:
        state = self.state
        if state.port_session is None:
            with contextlib.suppress(PortAllocationError):  # workers' allocations will say why
                state.port_session = PortSession(state.settings.home / "ports")
        session = {
            "owner": self.me.to_json(),
            "ports": state.port_session.id if state.port_session else None,
        }
        hand_over(node, SESSION_KEY, session)


def _join_session(state: _CoreState, data: Any) -> None:
    """On an xdist worker: work for the controller, and stop every service once it is gone."""
    if not isinstance(data, dict):
        return
    state.session_owner = Owner.from_json(data["owner"])
    state.port_session_id = data.get("ports")
    state.watchdog = OwnerWatchdog(state.session_owner).start()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Reap services that sessions killed earlier left running (the controller does it once)."""
    config = session.config
    if is_worker(config):
        return
    state = config.stash[_STATE]
    with contextlib.suppress(OSError):
        reaped = PidRegistry(state.settings.home).reap_orphans(state.settings.grace_period)
        state.reaped = len(reaped)
    # Their services are stopped now; the folders such sessions left can go too.
    state.leftovers = len(remove_session_leftovers(state.settings.home))


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    for manager in list(state.managers):
        # Normally empty by now (fixtures stopped them); the atexit hook retries on failure.
        with contextlib.suppress(Exception):
            manager.stop_all()
    if state.port_allocator is not None:
        state.port_allocator.release_all()
    if state.port_session is not None:
        state.port_session.close()
    if state.watchdog is not None:
        state.watchdog.stop()
    state.shutdown.restore()


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash[_STATE]
    lines = [f"mlxstack home: {state.settings.home}, model cache: {state.settings.cache_dir}"]
    if state.reaped:
        lines.append(f"mlxstack: stopped {state.reaped} service(s) left by an earlier session")
    if state.leftovers:
        lines.append(
            f"mlxstack: removed {state.leftovers} folder(s) left by a session that was killed"
        )
    return lines


# -- settings ------------------------------------------------------------------------------


def settings(config: pytest.Config) -> Settings:
    """The resolved core settings of this run (for other wiring modules)."""
    return config.stash[_STATE].settings


def _resolve(config: pytest.Config) -> Settings:
    return Settings(
        home=read_setting(config, "mlx_home"),
        cache_dir=read_setting(config, "mlx_cache_dir"),
        matrix_dir=read_setting(config, "mlx_matrix_dir"),
        grace_period=read_setting(config, "mlx_grace_period"),
    )


def _markers(config: pytest.Config) -> list[str]:
    value = config.getini("markers")
    return [str(line) for line in value] if isinstance(value, list) else []


# -- managers, ports and shutdown ------------------------------------------------------------


def report_progress(config: pytest.Config, message: str) -> None:
    """One ``mlxstack: ...`` line on the terminal while a long set-up works (which model is
    loading, a download, a tier ready), shown even though output is captured. xdist workers
    have no terminal of their own, so they stay quiet."""
    if is_worker(config):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    suspended = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with suspended:
        reporter.ensure_newline()
        reporter.write_line(f"mlxstack: {message}")


def port_allocator_for(config: pytest.Config) -> PortAllocator:
    """This process's port allocator. All processes with the same home (xdist workers of one
    session, other sessions, ``mlxstack up``) share its lock directory, so no port is held
    twice."""
    state = config.stash[_STATE]
    if state.port_allocator is None:
        state.port_allocator = PortAllocator(
            state.settings.home / "ports", session=state.port_session_id
        )
    return state.port_allocator


def new_service_manager(
    config: pytest.Config, home: Path | None = None, **kwargs: Any
) -> ServiceManager:
    """A ``ServiceManager`` wired into the session: shared ports, the configured grace
    period, log tails on failed tests (secrets redacted), stopped on SIGTERM and at the end of
    the session. Its registry and logs live in the session's home unless ``home`` is given."""
    state = config.stash[_STATE]
    kwargs.setdefault("grace_period", state.settings.grace_period)
    kwargs.setdefault("port_allocator", port_allocator_for(config))
    kwargs.setdefault("owner", Owner.current("pytest", session=state.session_owner))
    kwargs.setdefault("reap", False)  # the controller reaps once, at session start
    manager = ServiceManager(home or state.settings.home, **kwargs)
    state.managers.add(manager)
    return manager


# -- failure reports -------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report: pytest.TestReport = yield
    secrets = known_secrets() | {token for token in [hub_token()] if token}
    state = item.config.stash.get(_STATE, None)
    if not report.failed or state is None:
        redact_report(report, secrets)  # -rP shows a passing test's output too
        return report
    lines: int = read_setting(item.config, "mlx_log_lines")
    if lines == 0:
        return report
    seen: set[Path] = set()
    managers = list(state.managers)
    own = item.stash.get(_FUNCTION_MANAGER, None)
    for manager in managers:
        services = manager.history if manager is own else list(manager.services.values())
        for service in services:
            if service.log_path in seen:
                continue
            seen.add(service.log_path)
            tail = plain(manager.redact(read_tail(service.log_path, lines)))
            report.sections.append(
                (f"mlxstack log: {service.name} (port {service.port}, {service.log_path})", tail)
            )
        secrets |= manager.secrets
    redact_report(report, secrets)
    return report


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def port_allocator(pytestconfig: pytest.Config) -> PortAllocator:
    """Loopback ports no other test, xdist worker or session holds at the same time."""
    return port_allocator_for(pytestconfig)


@pytest.fixture
def service_manager(request: pytest.FixtureRequest) -> Iterator[ServiceManager]:
    """A ``ServiceManager`` whose services are stopped when the test ends; their log tails
    are attached to the report of a failed test. When the test also uses ``mlx_home``, the
    services' registry records and logs live there (ports stay unique across the session)."""
    home: Path | None = None
    if "mlx_home" in request.fixturenames:
        home = request.getfixturevalue("mlx_home")
    manager = new_service_manager(request.config, home)
    request.node.stash[_FUNCTION_MANAGER] = manager
    session_registry = PidRegistry(settings(request.config).home)
    if home is not None:
        # The session's registry follows the test's home: a SIGKILLed session's services
        # there are reaped by the next session like any other.
        with contextlib.suppress(OSError):
            session_registry.link(home, manager.owner)
    try:
        with manager:
            yield manager
    finally:
        if home is not None:
            session_registry.unlink(home)


@pytest.fixture(scope="session")
def session_service_manager(pytestconfig: pytest.Config) -> Iterator[ServiceManager]:
    """A ``ServiceManager`` for services shared by the whole session (or xdist worker)."""
    with new_service_manager(pytestconfig) as manager:
        yield manager


@pytest.fixture(scope="session")
def model_cache_dir(pytestconfig: pytest.Config) -> Path:
    """The persistent model cache directory (kept across runs)."""
    path = settings(pytestconfig).cache_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def model_cache(model_cache_dir: Path) -> ModelCache:
    """``model_cache.pull(repo, revision=None)`` downloads into the persistent cache once."""
    return ModelCache(model_cache_dir)


@pytest.fixture
def mlx_home(
    tmp_path_factory: pytest.TempPathFactory,
    model_cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """An empty mlxstack home for this test (``MLXSTACK_HOME`` points at it) that still uses
    the persistent model cache (``MLXSTACK_CACHE_DIR``, and a ``models`` link inside)."""
    home = tmp_path_factory.mktemp("mlx-home")
    (home / "models").symlink_to(model_cache_dir, target_is_directory=True)
    monkeypatch.setenv(HOME_ENV, str(home))
    monkeypatch.setenv(CACHE_ENV, str(model_cache_dir))
    return home


__all__ = [
    "MARKERS",
    "SECRET_ENV_VARS",
    "Settings",
    "new_service_manager",
    "port_allocator_for",
    "settings",
    "stop_all_managers",
]
