"""ServiceManager against real processes: start, readiness, crashes, stubborn and forking
servers, lost bind races, and never touching a process it did not start."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import psutil
import pytest
from core_helpers import Foreign, answers, pids_in, running, toy_argv, wait_for

from pytest_mlxstack.process.ports import PortAllocator, port_is_free
from pytest_mlxstack.process.registry import PidRegistry
from pytest_mlxstack.process.services import ServiceManager, ServiceStartError
from pytest_mlxstack.stack.proxy_service import start_litellm


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_a_well_behaved_server_starts_answers_and_stops_leaving_its_port_free(
    manager: ServiceManager, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    service = manager.start("toy", toy_argv("behave", "--pid-file", str(pid_file)))

    assert get(f"{service.url}/health") == f"pid={service.pid}\n"
    assert service.log_path.is_file()
    assert service.argv[service.argv.index("--port") + 1] == str(service.port)
    assert manager.services == {"toy": service}
    assert [r.name for r in manager.registry.records()] == ["toy"]

    result = manager.stop("toy")

    assert result.killed == ()  # it went on SIGTERM
    assert not running(service.pid)
    assert port_is_free(service.port)
    assert manager.services == {}
    assert manager.registry.records() == []
    assert "listening on" in service.log_path.read_text()


def test_a_server_ignoring_sigterm_is_killed_after_the_grace_period(
    manager: ServiceManager,
) -> None:
    service = manager.start("stubborn", toy_argv("ignore-term"))

    result = manager.stop("stubborn")

    assert result.killed == (service.pid,)
    assert not running(service.pid)
    assert port_is_free(service.port)


@pytest.mark.parametrize("mode", ["fork-child", "daemon"])
def test_children_that_call_setsid_and_keep_the_port_are_stopped_too(
    manager: ServiceManager, tmp_path: Path, mode: str
) -> None:
    pid_file = tmp_path / "pids"
    service = manager.start(mode, toy_argv(mode, "--pid-file", str(pid_file)))
    assert wait_for(lambda: len(pids_in(pid_file)) == 2)
    server_pid = int(get(f"{service.url}/health").strip().removeprefix("pid="))
    assert server_pid != service.pid  # the port really belongs to a descendant

    manager.stop(mode)

    assert [pid for pid in pids_in(pid_file) if running(pid)] == []
    assert port_is_free(service.port)


def test_a_crash_during_start_up_reports_exit_code_and_log_tail(
    manager: ServiceManager,
) -> None:
    with pytest.raises(ServiceStartError) as info:
        manager.start("crashy", toy_argv("crash", "--exit-code", "7"))

    error = info.value
    assert error.exit_code == 7
    assert "exited with code 7 during start-up" in str(error)
    assert "fatal: configuration is broken" in error.log_tail
    assert error.detail == error.log_tail
    assert "\n" not in str(error), "the log tail is a field, never part of the sentence"
    assert manager.services == {}
    assert manager.registry.records() == []


def test_a_slow_server_is_waited_for(manager: ServiceManager) -> None:
    service = manager.start("slow", toy_argv("behave", "--delay", "1.0"), timeout=30)

    assert answers(service.port)


def test_a_server_that_never_gets_healthy_times_out_with_its_log_and_is_stopped(
    manager: ServiceManager,
) -> None:
    with pytest.raises(ServiceStartError) as info:
        manager.start("sick", toy_argv("health-503"), timeout=0.5)

    message = str(info.value)
    assert "did not answer" in message
    assert "/health within 0.5 s" in message
    assert '"GET /health HTTP/1.1" 503' in info.value.log_tail
    assert info.value.log_path is not None
    port = int(info.value.log_path.stem.rsplit("-", 1)[1])
    assert port_is_free(port)
    assert manager.registry.records() == []


def test_an_exception_inside_the_with_block_still_stops_everything(home: Path) -> None:
    started = []

    def run_and_fail() -> None:
        with ServiceManager(home, grace_period=1) as mgr:
            started.append(mgr.start("one", toy_argv()))
            started.append(mgr.start("two", toy_argv("ignore-term")))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_and_fail()

    assert len(started) == 2
    assert [s.pid for s in started if running(s.pid)] == []
    assert PidRegistry(home).records() == []


def test_a_program_that_does_not_exist_is_one_clear_error(manager: ServiceManager) -> None:
    with pytest.raises(ServiceStartError, match="could not be launched: /no/such/program"):
        manager.start("ghost", ["/no/such/program", "--port", "{port}"])


def test_starting_a_name_twice_is_refused(manager: ServiceManager) -> None:
    manager.start("toy", toy_argv())
    with pytest.raises(ValueError, match="already running"):
        manager.start("toy", toy_argv())


class SquattedFirst(PortAllocator):
    """An allocator whose first answer is a port another program grabbed meanwhile: the race
    between allocation and bind, made deterministic."""

    def __init__(self, state_dir: Path, squatted: int) -> None:
        super().__init__(state_dir)
        self.squatted: int | None = squatted
        self.handed: list[int] = []

    def allocate(self) -> int:
        port = self.squatted if self.squatted is not None else super().allocate()
        self.squatted = None
        self.handed.append(port)
        return port


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param((), id="bind-fails-address-in-use"),
        pytest.param(("--delay", "0.5"), id="foreign-answers-health-first"),
    ],
)
def test_a_port_taken_before_bind_is_retried_on_a_new_port(
    home: Path, foreign: Foreign, extra: tuple[str, ...]
) -> None:
    squatter_port = foreign.port
    allocator = SquattedFirst(home / "ports", squatter_port)
    with ServiceManager(home, grace_period=1, port_allocator=allocator) as mgr:
        service = mgr.start("toy", toy_argv("behave", *extra), timeout=30)

        assert allocator.handed[0] == squatter_port
        assert service.port == allocator.handed[1] != squatter_port
        assert get(f"{service.url}/health") == f"pid={service.pid}\n"
    assert foreign.alive


def test_a_fixed_port_held_by_a_foreign_process_is_reported_not_retried(
    manager: ServiceManager, foreign: Foreign
) -> None:
    port = foreign.port
    with pytest.raises(ServiceStartError) as info:
        manager.start("toy", toy_argv(), port=port, timeout=30)

    assert f"could not use port {port}: another process holds it" in str(info.value)
    assert foreign.alive
    assert answers(port)


def test_stop_all_never_signals_a_foreign_process(
    manager: ServiceManager, foreign: Foreign
) -> None:
    manager.start("one", toy_argv())
    manager.start("two", toy_argv())

    manager.stop_all()

    assert foreign.alive
    assert answers(foreign.port)


def test_log_tails_redact_secrets(home: Path) -> None:
    secret = "sk-toy-secret-123456"
    with ServiceManager(home, grace_period=1, redact=[secret]) as mgr:
        mgr.start("leaky", toy_argv("behave", "--echo-env", "TOY_KEY"), env={"TOY_KEY": secret})

        tail = mgr.log_tail("leaky")

    assert "TOY_KEY=[REDACTED]" in tail
    assert secret not in tail


def test_a_service_that_dies_later_is_still_cleaned_up(
    manager: ServiceManager, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    service = manager.start("fork", toy_argv("fork-child", "--pid-file", str(pid_file)))
    assert wait_for(lambda: len(pids_in(pid_file)) == 2)
    parent = service.pid
    psutil.Process(parent).kill()  # the launcher dies; its setsid child keeps serving
    assert wait_for(lambda: not running(parent))
    assert answers(service.port)

    manager.stop("fork")

    assert [pid for pid in pids_in(pid_file) if running(pid)] == []
    assert port_is_free(service.port)


def test_start_litellm_refuses_a_key_litellm_would_reject(manager: ServiceManager) -> None:
    with pytest.raises(ValueError, match="sk-1234"):
        start_litellm(manager, "proxy", "/dev/null", master_key="sk-1234")


def test_secrets_passed_in_env_or_set_after_the_manager_was_made_are_redacted(
    manager: ServiceManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    via_argument = "hf_secret_passed_to_start"
    via_environment = "sk-set-after-the-manager-existed"
    monkeypatch.setenv("MY_SERVICE_API_KEY", via_environment)  # a name that looks secret
    monkeypatch.setenv("MY_TOKEN_LIMIT", "1")  # too short to be a secret: left alone

    manager.start("a", toy_argv("behave", "--echo-env", "HF_TOKEN"), env={"HF_TOKEN": via_argument})
    manager.start("b", toy_argv("behave", "--echo-env", "MY_SERVICE_API_KEY"))
    manager.start("c", toy_argv("behave", "--echo-env", "MY_TOKEN_LIMIT"))

    assert "HF_TOKEN=[REDACTED]" in manager.log_tail("a")
    assert "MY_SERVICE_API_KEY=[REDACTED]" in manager.log_tail("b")
    assert "MY_TOKEN_LIMIT=1" in manager.log_tail("c")
    tails = manager.log_tail("a") + manager.log_tail("b")
    assert via_argument not in tails
    assert via_environment not in tails


@pytest.mark.parametrize("command", ["python -m http.server {port}", b"python server.py"])
def test_a_command_given_as_one_string_is_one_clear_type_error(
    manager: ServiceManager, command: str
) -> None:
    with pytest.raises(TypeError) as caught:
        manager.start("web", command)

    assert str(caught.value) == (
        f"ServiceManager.start('web', ...): argv is the string {command!r}, not a list of "
        "arguments; pass a list such as shlex.split(command)"
    )
    assert manager.services == {}
    assert manager.registry.records() == []
