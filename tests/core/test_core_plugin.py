"""The core plugin as users meet it: markers, options and ini keys, skips and their reasons,
log sections on failure, xdist, and cleanup when pytest is interrupted or killed."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from core_helpers import TOY_SERVER, pids_in, running, wait_for

from pytest_mlxstack.process.registry import PidRegistry
from pytest_mlxstack.wiring.core import MARKERS
from pytest_mlxstack.wiring.skips import check_memory_or_skip, skip_insufficient_memory


@pytest.fixture
def home(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every inner run gets its own mlxstack home (and model cache) through the environment.
    Whatever an inner session leaves running, even when a test here fails, is reaped."""
    path = pytester.path / "mlxhome"
    monkeypatch.setenv("MLXSTACK_HOME", str(path))
    monkeypatch.setenv("MLXSTACK_CACHE_DIR", str(pytester.path / "models-env"))
    monkeypatch.delenv("MLXSTACK_GRACE_PERIOD", raising=False)
    monkeypatch.delenv("MLXSTACK_MATRIX_DIR", raising=False)
    yield path
    PidRegistry(path).reap_orphans(grace_period=1)


def test_markers_are_documented_by_pytest_markers(pytester: pytest.Pytester, home: Path) -> None:
    result = pytester.runpytest("--markers")

    for name, description in MARKERS.items():
        matching = [line for line in result.outlines if line.startswith(f"@pytest.mark.{name}:")]
        assert len(matching) == 1, f"marker {name} should be listed exactly once"
        # The catalog area registers catalog_validation with its own wording first.
        explained = matching[0].split(":", 1)[1].strip()
        assert explained == description or name == "catalog_validation"
        assert len(explained) > 20


def test_the_four_markers_pass_strict_markers(pytester: pytest.Pytester, home: Path) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.catalog_validation
        @pytest.mark.smoke
        @pytest.mark.integration
        @pytest.mark.harness
        def test_marked():
            pass

        @pytest.mark.smok
        def test_typo():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*'smok' not found in `markers` configuration option*"])


SETTINGS_TEST = """
import json, os
from pathlib import Path
from pytest_mlxstack.wiring.core import settings

def test_settings(pytestconfig):
    s = settings(pytestconfig)
    Path(os.environ["SETTINGS_OUT"]).write_text(json.dumps({
        "home": str(s.home), "cache_dir": str(s.cache_dir),
        "matrix_dir": str(s.matrix_dir), "grace_period": s.grace_period,
    }))
"""


def read_settings(pytester: pytest.Pytester, *args: str) -> dict[str, object]:
    out = pytester.path / "settings.json"
    os.environ["SETTINGS_OUT"] = str(out)
    try:
        pytester.runpytest(*args).assert_outcomes(passed=1)
    finally:
        del os.environ["SETTINGS_OUT"]
    return dict(json.loads(out.read_text()))


def test_options_beat_ini_which_beats_environment_which_beats_defaults(
    pytester: pytest.Pytester, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_settings=SETTINGS_TEST)
    root = pytester.path
    monkeypatch.setenv("MLXSTACK_MATRIX_DIR", str(root / "matrix-env"))
    monkeypatch.setenv("MLXSTACK_GRACE_PERIOD", "4")

    from_env = read_settings(pytester)
    assert from_env == {
        "home": str(home),
        "cache_dir": str(root / "models-env"),
        "matrix_dir": str(root / "matrix-env"),
        "grace_period": 4.0,
    }

    pytester.makeini(
        """
        [pytest]
        mlx_home = home-ini
        mlx_cache_dir = models-ini
        mlx_matrix_dir = matrix-ini
        mlx_grace_period = 2.5
        """
    )
    from_ini = read_settings(pytester)
    assert from_ini == {
        "home": str(root / "home-ini"),
        "cache_dir": str(root / "models-ini"),
        "matrix_dir": str(root / "matrix-ini"),
        "grace_period": 2.5,
    }

    from_options = read_settings(
        pytester,
        f"--mlx-home={root / 'home-opt'}",
        "--mlx-cache-dir=models-opt",
        "--mlx-matrix-dir=matrix-opt",
        "--mlx-grace-period=0.5",
    )
    assert from_options == {
        "home": str(root / "home-opt"),
        "cache_dir": str(root / "models-opt"),
        "matrix_dir": str(root / "matrix-opt"),
        "grace_period": 0.5,
    }


def test_defaults_without_any_setting(
    pytester: pytest.Pytester, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_settings=SETTINGS_TEST)
    for name in ("MLXSTACK_HOME", "MLXSTACK_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    user_home = Path.home()

    assert read_settings(pytester) == {
        "home": str(user_home / ".mlxstack"),
        "cache_dir": str(user_home / ".cache" / "mlxstack" / "models"),
        "matrix_dir": "matrices",
        "grace_period": 10.0,
    }


@pytest.mark.parametrize(
    ("args", "ini", "source"),
    [
        (["--mlx-grace-period=soon"], "", "--mlx-grace-period: 'soon' is not a finite number"),
        ([], "mlx_grace_period = -1", "ini option mlx_grace_period: '-1' is negative"),
        (["--mlx-grace-period=nan"], "", "--mlx-grace-period: 'nan' is not a finite number"),
    ],
)
def test_a_bad_grace_period_is_one_usage_error_sentence(
    pytester: pytest.Pytester, home: Path, args: list[str], ini: str, source: str
) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_nothing(): pass")

    result = pytester.runpytest(*args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"ERROR: {source}")
    assert errors[0].endswith("; give a number of seconds, 0 or more, such as 10.")
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(
    ("how", "source", "problem"),
    [
        ("--mlx-home=afile", "--mlx-home", "{root}/afile is a file, not a directory"),
        ("ini", "ini option mlx_home", "{root}/afile is a file, not a directory"),
        ("env", "environment variable MLXSTACK_HOME", "{root}/afile is a file, not a directory"),
        (
            "--mlx-cache-dir=afile/models",
            "--mlx-cache-dir",
            "{root}/afile/models cannot be a directory: {root}/afile is a file",
        ),
    ],
)
def test_a_directory_setting_that_names_a_file_is_one_usage_error_sentence(
    pytester: pytest.Pytester,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    source: str,
    problem: str,
) -> None:
    (pytester.path / "afile").write_text("not a directory")
    pytester.makepyfile("def test_nothing(): pass")
    args = [how] if how.startswith("--") else []
    if how == "ini":
        pytester.makeini("[pytest]\nmlx_home = afile\n")
    if how == "env":
        monkeypatch.setenv("MLXSTACK_HOME", str(pytester.path / "afile"))

    result = pytester.runpytest(*args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert errors == [
        f"ERROR: {source}: {problem.format(root=pytester.path)}; point it at a "
        "directory (it is created if missing)."
    ]
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8", "takes a number of GiB, got str '8'; write it as a number"),
        (None, "takes a number of GiB, got NoneType None; write it as a number"),
        (True, "takes a number of GiB, got bool True; write it as a number"),
        (-5, "takes a positive number of GiB, got -5; write it as a positive number"),
        (float("nan"), "takes a positive number of GiB, got nan; write it as a positive number"),
    ],
)
def test_a_memory_size_that_is_not_a_positive_number_is_one_clear_sentence(
    value: object, message: str
) -> None:
    for name, check in [
        ("skip_insufficient_memory", skip_insufficient_memory),
        ("check_memory_or_skip", check_memory_or_skip),
    ]:
        with pytest.raises((TypeError, ValueError)) as caught:
            check(value)  # type: ignore[arg-type]
        assert str(caught.value) == f"{name} {message}, such as {name}(8)"


@pytest.mark.skipif(
    sys.platform == "darwin" and platform.machine() == "arm64",
    reason="on an Apple Silicon Mac skip_not_darwin does not skip; run this test elsewhere",
)
def test_skip_not_darwin_says_where_the_test_can_run_instead(
    pytester: pytest.Pytester, home: Path
) -> None:
    pytester.makepyfile(
        """
        from pytest_mlxstack import skip_not_darwin

        @skip_not_darwin
        def test_metal():
            pass
        """
    )
    result = pytester.runpytest("-rs")

    result.assert_outcomes(skipped=1)
    reasons = [line.split(": ", 1)[1] for line in result.outlines if line.startswith("SKIPPED")]
    assert reasons == [
        f"needs macOS on Apple Silicon (Metal); this is {sys.platform} {platform.machine()}; "
        "run it on an Apple Silicon Mac, or use skip_no_mlx_backend instead to run it on Linux "
        "with mlx[cpu]"
    ]


def test_skip_reasons_say_what_is_missing_and_how_to_get_it(
    pytester: pytest.Pytester, home: Path
) -> None:
    pytester.makepyfile(
        """
        from pytest_mlxstack import (
            check_memory_or_skip, skip_insufficient_memory, skip_no_litellm,
            skip_no_mlx_backend, skip_no_openai, skip_no_vllm,
        )

        @skip_insufficient_memory(100_000)
        def test_needs_a_huge_machine():
            pass

        def test_needs_a_lot_of_free_memory():
            check_memory_or_skip(100_000)

        @skip_insufficient_memory(0.1)
        def test_needs_little():
            check_memory_or_skip(0.01)

        @skip_no_vllm
        @skip_no_litellm
        @skip_no_openai
        @skip_no_mlx_backend
        def test_the_real_stack_is_installed_here():
            pass
        """
    )
    result = pytester.runpytest("-rs")

    # On this machine (Linux with mlx[cpu], the stack and harness extras) the stack can run.
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines_random(
        [
            "*needs 100000 GiB of RAM, this machine has * GiB; run it on a machine with more "
            "memory or pick a smaller model",
            "*needs 100000 GiB of free RAM, only * GiB are available; close other programs*",
        ]
    )


# Makes some modules look uninstalled, and mlx look like plain `mlx` without `[cpu]` on Linux.
HIDE_MODULES = """
import importlib.abc, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"vllm_mlx", "litellm", "openai"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        if name == "mlx.core":
            raise ImportError("libmlx.so: cannot open shared object file: No such file")
        return None

sys.meta_path.insert(0, Hide())
"""


def test_skip_reasons_when_the_stack_is_missing(
    pytester: pytest.Pytester, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLXSTACK_REQUIRE_STACK", raising=False)  # CI's: here skips are the point
    site = pytester.mkdir("fake_site")
    (site / "sitecustomize.py").write_text(HIDE_MODULES)
    pytester.makepyfile(
        """
        from pytest_mlxstack import (
            skip_no_litellm, skip_no_mlx_backend, skip_no_openai, skip_no_vllm,
        )

        @skip_no_vllm
        def test_vllm(): pass

        @skip_no_litellm
        def test_litellm(): pass

        @skip_no_openai
        def test_openai(): pass

        @skip_no_mlx_backend
        def test_mlx(): pass
        """
    )
    env_path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", env_path)
        result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider")

    result.assert_outcomes(skipped=4)
    stack_hint = "install it with: pip install 'pytest-mlxstack[stack]'"
    reasons = [line.split(": ", 1)[1] for line in result.outlines if line.startswith("SKIPPED")]
    assert sorted(reasons) == sorted(
        [
            "MLX is installed but cannot run here: 'import mlx.core' failed (libmlx.so: cannot "
            "open shared object file: No such file); on Linux the CPU backend needs mlx[cpu], "
            "which pip install 'pytest-mlxstack[stack]' selects",
            f"the LiteLLM proxy is not installed (missing: litellm); {stack_hint}",
            "the openai client is not installed; install it with: pip install "
            "'pytest-mlxstack[harness]'",
            f"vllm-mlx is not installed; {stack_hint}",
        ]
    )


def test_a_failed_test_shows_each_service_log_with_secrets_redacted(
    pytester: pytest.Pytester, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-inner-secret-abcdef"
    monkeypatch.setenv("LITELLM_MASTER_KEY", secret)
    pytester.makepyfile(
        f"""
        import sys

        TOY = [sys.executable, {str(TOY_SERVER)!r}, "--port", "{{port}}"]

        def test_fails(service_manager):
            service_manager.start("leaky", TOY + ["--echo-env", "LITELLM_MASTER_KEY"])
            service_manager.start("quiet", TOY)
            assert 1 == 2

        def test_passes(service_manager):
            service_manager.start("fine", TOY)
        """
    )
    result = pytester.runpytest()

    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*- mlxstack log: leaky (port *, *leaky-*.log) -*",
            "LITELLM_MASTER_KEY=[[]REDACTED[]]",
            "*- mlxstack log: quiet (port *) -*",
        ]
    )
    assert secret not in output
    assert "mlxstack log: fine" not in output  # passing tests carry no sections


CHATTY_SERVER = r"""
import runpy
import sys

for number in range(50):
    print(f"\x1b[32mline {number}\x1b[0m", flush=True)
sys.argv = ["toy", "--port", sys.argv[2]]
runpy.run_path(TOY, run_name="__main__")
"""


def test_log_sections_keep_the_last_lines_asked_for_without_terminal_codes(
    pytester: pytest.Pytester, home: Path
) -> None:
    """A banner with colours (as LiteLLM's): shown as plain text, and ``--mlx-log-lines=3``
    attaches the last three lines only."""
    chatty = pytester.path / "chatty.py"
    chatty.write_text(CHATTY_SERVER.replace("TOY", repr(str(TOY_SERVER))))
    pytester.makepyfile(
        test_chatty=f"""
import sys

def test_fails(service_manager):
    service_manager.start("chatty", [sys.executable, {str(chatty)!r}, "--port", "{{port}}"])
    assert False
"""
    )

    def section(lines: int) -> list[str]:
        result = pytester.runpytest(f"--mlx-log-lines={lines}")
        result.assert_outcomes(failed=1)
        after = result.stdout.str().split("mlxstack log: chatty", 1)[1].splitlines()[1:]
        end = next(i for i, line in enumerate(after) if line[:3] in ("===", "---", "___"))
        return after[:end]

    whole = section(60)
    assert "line 49" in whole
    assert "line 20" in whole  # the coloured banner, shown as plain text
    assert not [line for line in whole if "\x1b" in line or "[32m" in line]
    short = section(3)
    assert len(short) == 3
    assert short[0].split(" pid=")[0] == whole[-3].split(" pid=")[0]  # the same last lines


def test_mlx_home_is_isolated_and_keeps_the_persistent_cache(
    pytester: pytest.Pytester, home: Path
) -> None:
    cache = pytester.path / "models-opt"
    pytester.makepyfile(
        f"""
        import os
        from pathlib import Path

        def test_home(mlx_home, model_cache_dir, model_cache):
            assert os.environ["MLXSTACK_HOME"] == str(mlx_home)
            assert mlx_home != Path({str(home)!r})
            assert list(p.name for p in mlx_home.iterdir()) == ["models"]
            assert (mlx_home / "models").resolve() == model_cache_dir.resolve()
            assert model_cache_dir == Path({str(cache)!r})
            assert os.environ["MLXSTACK_CACHE_DIR"] == str(model_cache_dir)
            assert model_cache.root == model_cache_dir
        """
    )
    pytester.runpytest(f"--mlx-cache-dir={cache}").assert_outcomes(passed=1)
    assert cache.is_dir()


def test_secrets_given_to_start_or_set_during_the_test_never_reach_a_log_section(
    pytester: pytest.Pytester, home: Path
) -> None:
    passed, set_later = "hf_passed-to-start-0123456789", "sk-set-during-the-test-0123456789"
    pytester.makepyfile(
        f"""
        import sys

        TOY = [sys.executable, {str(TOY_SERVER)!r}, "--port", "{{port}}"]

        def test_env_argument(service_manager):
            service_manager.start(
                "passed", TOY + ["--echo-env", "HF_TOKEN"], env={{"HF_TOKEN": {passed!r}}}
            )
            assert 1 == 2

        def test_set_during_the_test(service_manager, monkeypatch):
            monkeypatch.setenv("MY_GATEWAY_API_KEY", {set_later!r})
            service_manager.start("later", TOY + ["--echo-env", "MY_GATEWAY_API_KEY"])
            assert 1 == 2
        """
    )
    recorder = pytester.inline_run()

    # (The traceback quotes the test's source, literals included; the log sections must not.)
    reports = [r for r in recorder.getreports("pytest_runtest_logreport") if r.when == "call"]
    sections = {
        title.split(" (")[0]: text
        for report in reports
        for title, text in report.sections
        if title.startswith("mlxstack log:")
    }
    assert sorted(sections) == ["mlxstack log: later", "mlxstack log: passed"]
    assert "HF_TOKEN=[REDACTED]" in sections["mlxstack log: passed"].splitlines()
    assert "MY_GATEWAY_API_KEY=[REDACTED]" in sections["mlxstack log: later"].splitlines()
    assert not any(passed in text or set_later in text for text in sections.values())


def test_service_manager_keeps_records_and_logs_in_mlx_home_when_a_test_uses_it(
    pytester: pytest.Pytester, home: Path
) -> None:
    pytester.makepyfile(
        f"""
        import sys
        from pathlib import Path
        from pytest_mlxstack.process.registry import PidRegistry

        TOY = [sys.executable, {str(TOY_SERVER)!r}, "--port", "{{port}}"]
        SESSION_HOME = Path({str(home)!r})

        def test_own_home(mlx_home, service_manager):
            service = service_manager.start("toy", TOY)
            assert service_manager.home == mlx_home
            assert service.log_path.parent == mlx_home / "logs"
            assert [r.name for r in PidRegistry(mlx_home).records()] == ["toy"]
            assert PidRegistry(SESSION_HOME).records() == []
            # followed by the session's registry, so a SIGKILLed session's services are reaped
            assert len(list(PidRegistry(SESSION_HOME).links_dir.iterdir())) == 1

        def test_session_home(service_manager):
            service = service_manager.start("toy", TOY)
            assert service.log_path.parent == SESSION_HOME / "logs"
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)

    assert list(PidRegistry(home).links_dir.iterdir()) == []


def test_ports_are_unique_across_xdist_workers(pytester: pytest.Pytester, home: Path) -> None:
    out = pytester.mkdir("ports")
    pytester.makepyfile(
        f"""
        import os, sys
        import pytest

        TOY = [sys.executable, {str(TOY_SERVER)!r}, "--port", "{{port}}"]

        @pytest.mark.parametrize("n", range(12))
        def test_take_ports(n, port_allocator, service_manager):
            worker = os.environ.get("PYTEST_XDIST_WORKER", "none")
            ports = [port_allocator.allocate() for _ in range(3)]  # held until the end
            ports.append(service_manager.start("toy", TOY).port)
            port_allocator.release(ports[0])  # released early: still never handed out again
            with open(os.path.join({str(out)!r}, f"{{worker}}-{{n}}"), "w") as handle:
                handle.write(" ".join(map(str, ports)))
            session = service_manager.owner.session
            with open(os.path.join({str(out)!r}, f"session-{{worker}}"), "w") as handle:
                handle.write(f"{{port_allocator.session}} {{session.pid}} {{os.getppid()}}")
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=12)
    files = [f for f in out.iterdir() if f.name.startswith("gw")]
    ports = [int(p) for f in files for p in f.read_text().split()]
    assert {f.name.split("-")[0] for f in files} == {"gw0", "gw1"}
    assert len(ports) == 48
    assert len(set(ports)) == 48
    # Both workers shared one port session and named the controller (their parent) as the
    # session's owner; the session's ledger is gone with the session.
    sessions = {f.read_text() for f in out.iterdir() if f.name.startswith("session-")}
    assert len(sessions) == 1
    port_session, controller, parent = sessions.pop().split()
    assert port_session != "None"
    assert controller == parent
    assert list((home / "ports" / "sessions").iterdir()) == []


INTERRUPTED_SESSION = """
import os, sys, time
from pathlib import Path

TOY = [sys.executable, {toy!r}, "--port", "{{port}}"]

def test_hangs(service_manager, session_service_manager):
    pid_file = os.environ["PID_FILE"]
    service_manager.start("fork", TOY + ["--mode", "fork-child", "--pid-file", pid_file])
    session_service_manager.start("shared", TOY + ["--pid-file", pid_file])
    session_service_manager.start("stubborn", TOY + ["--mode", "ignore-term",
                                                      "--pid-file", pid_file])
    Path(os.environ["READY_FILE"]).write_text("ready")
    time.sleep(600)
"""


SIGINT_IGNORED = "<sigint ignored>"


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture
def hanging_session(
    pytester: pytest.Pytester, home: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """An inner pytest session hanging in a test with three services up (one forked);
    indirect parameters are extra pytest arguments (``-n 2``), and ``SIGINT_IGNORED`` starts
    it with SIGINT ignored, as a background job of a non-interactive shell is."""
    extra = list(getattr(request, "param", ()))
    sigint_ignored = SIGINT_IGNORED in extra
    extra = [arg for arg in extra if arg != SIGINT_IGNORED]
    pytester.makepyfile(test_hang=INTERRUPTED_SESSION.format(toy=str(TOY_SERVER)))
    pid_file, ready = pytester.path / "pids", pytester.path / "ready"
    env = dict(os.environ, PID_FILE=str(pid_file), READY_FILE=str(ready))
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mlx-grace-period=1", *extra],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=ignore_sigint if sigint_ignored else None,
    )
    if not wait_for(ready.exists, timeout=60):
        session.kill()
        pytest.fail("the inner pytest session never got its services running")
    assert wait_for(lambda: len(pids_in(pid_file)) == 4)  # fork-child counts twice
    yield session, pid_file
    if session.poll() is None:
        session.kill()
        session.wait()


@pytest.mark.parametrize(
    "hanging_session",
    [pytest.param((), id="one-process"), pytest.param(("-n", "2"), id="xdist-workers")],
    indirect=True,
)
def test_sigterm_to_pytest_stops_every_service(
    hanging_session: tuple[subprocess.Popen[bytes], Path], home: Path
) -> None:
    session, pid_file = hanging_session

    session.send_signal(signal.SIGTERM)

    assert session.wait(timeout=60) == pytest.ExitCode.INTERRUPTED
    assert [pid for pid in pids_in(pid_file) if running(pid)] == []
    assert PidRegistry(home).records() == []


def test_the_next_session_reaps_what_a_sigkilled_session_left(
    pytester: pytest.Pytester, hanging_session: tuple[subprocess.Popen[bytes], Path], home: Path
) -> None:
    session, pid_file = hanging_session
    session.kill()
    session.wait()
    assert all(running(pid) for pid in pids_in(pid_file)), "its services should be orphans"

    (pytester.path / "test_hang.py").unlink()
    pytester.makepyfile(test_next="def test_nothing(): pass")
    result = pytester.runpytest_subprocess("--mlx-grace-period=1", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["mlxstack: stopped 3 service(s) left by an earlier session"])
    assert [pid for pid in pids_in(pid_file) if running(pid)] == []
    assert PidRegistry(home).records() == []


XDIST = pytest.param(("-n", "2"), id="xdist-workers")


@pytest.mark.parametrize("hanging_session", [XDIST], indirect=True)
def test_after_a_sigkilled_xdist_controller_the_next_session_leaves_nothing_running(
    pytester: pytest.Pytester, hanging_session: tuple[subprocess.Popen[bytes], Path], home: Path
) -> None:
    session, pid_file = hanging_session
    records = PidRegistry(home).records()
    assert len(records) == 3
    # Owned by the worker, which can outlive the controller; orphans once the controller is gone.
    assert {r.owner.pid for r in records}.isdisjoint({session.pid})
    assert {r.owner.session.pid for r in records if r.owner.session} == {session.pid}
    session.kill()
    session.wait()

    (pytester.path / "test_hang.py").unlink()
    pytester.makepyfile(test_next="def test_nothing(): pass")
    result = pytester.runpytest_subprocess("--mlx-grace-period=1", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    # Whether the worker's watchdog or this session's reaper stopped them does not matter.
    assert [pid for pid in pids_in(pid_file) if running(pid)] == []
    assert PidRegistry(home).records() == []


@pytest.mark.parametrize(
    "hanging_session",
    [pytest.param(("-n", "2", SIGINT_IGNORED), id="xdist-workers-sigint-ignored")],
    indirect=True,
)
def test_a_worker_stops_its_services_when_its_controller_is_sigkilled(
    hanging_session: tuple[subprocess.Popen[bytes], Path], home: Path
) -> None:
    session, pid_file = hanging_session
    workers = psutil.Process(session.pid).children()
    assert len(workers) == 2

    session.kill()
    session.wait()

    # No later session runs, and execnet's SIGINT to an orphaned worker is ignored here, so
    # no teardown runs either: the worker's watchdog must stop its services. (Without it they
    # outlive the worker, which execnet ends with os._exit.)
    try:
        assert wait_for(lambda: not any(running(pid) for pid in pids_in(pid_file)), timeout=30)
        assert wait_for(lambda: PidRegistry(home).records() == [], timeout=10)
    finally:
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()


def test_start_errors_carry_only_the_log_tail(pytester: pytest.Pytester, home: Path) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_chatty(service_manager):
            argv = [sys.executable, "-c", "import sys\\nfor i in range(500): print('line', i)\\n"
                    "sys.exit(5)"]
            service_manager.start("chatty", argv)
        """
    )
    result = pytester.runpytest()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*exited with code 5 during start-up*", "*line 499"])
    assert "line 100\n" not in result.stdout.str()
