"""Fault figures: orphans after each way a session can end, requests lost in bursts, secrets
found in failure reports.

    PYTHONPATH=. .venv/bin/python benchmarks/faults.py [--trials 20] [--skip-stack]

1. Orphans: real pytest sessions hold real services (the toy server of tests/servers, every
   process of which writes its pid to a file) and end in each of 11 ways: pass, fail, fixture
   error, Ctrl-C, repeated Ctrl-C (7 SIGINTs at random moments within 0.8 s, ``--trials``
   times), SIGTERM, SIGKILL then the next session, crash at start, SIGTERM ignored by a
   service, a service that forks a child, ``-n 2`` SIGKILL then the next session. Printed:
   the trials, how many left a process running or a port bound, and the exit codes.
2. Requests lost: bursts of 16, 64 and 128 concurrent chat completions to a real stack
   (vllm-mlx with the fixture model behind LiteLLM), through the proxy and direct; a request
   is lost unless it gets HTTP 200 with an answer.
3. Secrets: inner sessions that fail (a service that does not start, LiteLLM that does not
   start, a request through the proxy that fails) with a fake HF_TOKEN set, under ``-l``,
   ``-l -vv``, ``-l --tb=long`` and ``-l --full-trace``, each with junit XML; printed: how
   many times HF_TOKEN or a master key appear in the terminal output and the XML.
4. Reaping: how long the next session's reap of 1, 2 and 4 orphans that ignore SIGTERM takes
   (grace period 2 s): about one grace period whatever their number.

On demand only (never part of the test suite, which asserts behaviour, not figures).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "servers" / "toy_server.py"
FAKE_TOKEN = "hf_FakeTokenForTheFaultBenchmark0123"
BURSTS = (16, 64, 128)
REPORTING = (("-l",), ("-l", "-vv"), ("-l", "--tb=long"), ("-l", "--full-trace"))

HEADER = f"""
import os, sys, time
from pathlib import Path
import pytest

TOY = [sys.executable, {str(TOY)!r}, "--port", "{{port}}"]
PIDS = os.environ["PID_FILE"]


def toy(manager, name, mode="behave"):
    service = manager.start(name, TOY + ["--mode", mode, "--pid-file", PIDS])
    with open(os.environ["PORTS_FILE"], "a") as handle:
        handle.write(f"{{service.port}}\\n")
    return service


def ready():
    Path(os.environ["READY_FILE"]).write_text("ready")
"""

BODIES = {
    "pass": """
def test_it(service_manager, session_service_manager):
    toy(service_manager, "fn"); toy(session_service_manager, "shared"); ready()
""",
    "fail": """
def test_it(service_manager, session_service_manager):
    toy(service_manager, "fn"); toy(session_service_manager, "shared"); ready()
    assert False, "the test fails"
""",
    "fixture error": """
@pytest.fixture
def broken(service_manager, session_service_manager):
    toy(service_manager, "fn"); toy(session_service_manager, "shared"); ready()
    raise RuntimeError("the fixture breaks after starting its services")

def test_it(broken):
    pass
""",
    "hang": """
def test_it(service_manager, session_service_manager):
    toy(service_manager, "fn"); toy(session_service_manager, "shared"); ready()
    time.sleep(600)
""",
    "hang, SIGTERM ignored": """
def test_it(service_manager, session_service_manager):
    toy(service_manager, "fn", "ignore-term"); toy(session_service_manager, "shared"); ready()
    time.sleep(600)
""",
    "crash at start": """
def test_it(service_manager, session_service_manager):
    toy(session_service_manager, "shared"); ready()
    try:
        service_manager.start("crash", TOY + ["--mode", "crash", "--delay", "0.2"])
    finally:
        with open(PIDS, "a") as handle:
            handle.writelines(f"{s.pid}\\n" for s in service_manager.history)
""",
    "forking child": """
def test_it(service_manager, session_service_manager):
    toy(service_manager, "fn", "fork-child"); toy(session_service_manager, "shared"); ready()
""",
    "xdist hang": """
@pytest.mark.parametrize("n", range(2))
def test_it(n, service_manager, session_service_manager):
    toy(service_manager, f"fn{n}"); toy(session_service_manager, f"shared{n}")
    if n == 1:
        ready()
    time.sleep(600)
""",
}


@dataclass
class Outcome:
    """What trials of one scenario left behind."""

    trials: int = 0
    with_orphans: int = 0  # trials after which a process was still running
    with_ports: int = 0  # trials after which a port still answered
    exit_codes: list[int] = field(default_factory=list)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Session:
    """One inner pytest session in its own folder, sharing the scenario's home."""

    def __init__(self, folder: Path, home: Path, body: str, *extra: str) -> None:
        folder.mkdir(parents=True)
        (folder / "test_fault.py").write_text(HEADER + body)
        self.folder = folder
        self.pid_file, self.ready = folder / "pids", folder / "ready"
        self.ports_file = folder / "ports"
        env = dict(
            os.environ,
            MLXSTACK_HOME=str(home),
            PORTS_FILE=str(self.ports_file),
            PID_FILE=str(self.pid_file),
            READY_FILE=str(self.ready),
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--mlx-grace-period=1",
                *extra,
            ],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def pids(self) -> list[int]:
        text = self.pid_file.read_text() if self.pid_file.exists() else ""
        return [int(pid) for pid in text.split()]

    def ports(self) -> list[int]:
        text = self.ports_file.read_text() if self.ports_file.exists() else ""
        return [int(port) for port in text.split()]

    def wait_ready(self, services: int) -> None:
        if not wait_for(lambda: self.ready.exists() and len(self.pids()) >= services, 90):
            self.process.kill()
            raise SystemExit(f"{self.folder.name}: the inner session never got its services up")

    def finish(self, timeout: float = 120) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def next_session(folder: Path, home: Path) -> None:
    Session(folder, home, "def test_nothing():\n    pass\n").finish()


def scenario(name: str, trials: int, root: Path, rng: random.Random) -> Outcome:
    outcome = Outcome()
    for trial in range(trials):
        home = root / f"{name}-{trial}" / "home"
        folder = root / f"{name}-{trial}" / "session"
        if name in ("pass", "fail", "fixture error", "crash at start", "forking child"):
            session = Session(folder, home, BODIES[name])
            code = session.finish()
        elif name == "xdist SIGKILL, then next session":
            session = Session(folder, home, BODIES["xdist hang"], "-n", "2", "-p", "xdist")
            session.wait_ready(4)
            session.process.send_signal(signal.SIGKILL)
            code = session.finish()
            next_session(folder.parent / "next", home)
        else:
            body = BODIES["hang, SIGTERM ignored" if name == "SIGTERM ignored" else "hang"]
            session = Session(folder, home, body)
            session.wait_ready(2)
            if name == "Ctrl-C":
                session.process.send_signal(signal.SIGINT)
            elif name == "repeated Ctrl-C":
                begun = time.monotonic()
                for moment in sorted(rng.uniform(0, 0.8) for _ in range(7)):
                    time.sleep(max(0.0, begun + moment - time.monotonic()))
                    if session.process.poll() is None:
                        session.process.send_signal(signal.SIGINT)
            elif name in ("SIGTERM", "SIGTERM ignored"):
                session.process.send_signal(signal.SIGTERM)
            elif name == "SIGKILL, then next session":
                session.process.send_signal(signal.SIGKILL)
            code = session.finish()
            if name == "SIGKILL, then next session":
                next_session(folder.parent / "next", home)
        pids, ports = session.pids(), session.ports()
        outcome.trials += 1
        outcome.exit_codes.append(code)
        outcome.with_orphans += any(running(pid) for pid in pids)
        outcome.with_ports += any(answers(port) for port in ports)
        for pid in pids:  # leave nothing for the next trial, whatever happened
            if running(pid):
                os.kill(pid, signal.SIGKILL)
    return outcome


SCENARIOS = (
    "pass",
    "fail",
    "fixture error",
    "Ctrl-C",
    "repeated Ctrl-C",
    "SIGTERM",
    "SIGKILL, then next session",
    "crash at start",
    "SIGTERM ignored",
    "forking child",
    "xdist SIGKILL, then next session",
)


def orphan_figures(trials: int, root: Path) -> None:
    rng = random.Random(16)
    print(f"{'scenario':<34} {'trials':>6} {'orphans':>8} {'ports':>6}   exit codes")
    for name in SCENARIOS:
        count = trials if name == "repeated Ctrl-C" else max(1, min(trials, 3))
        outcome = scenario(name, count, root / name.replace(" ", "_"), rng)
        codes = ",".join(sorted({str(code) for code in outcome.exit_codes}))
        print(
            f"{name:<34} {outcome.trials:>6} {outcome.with_orphans:>8} {outcome.with_ports:>6}"
            f"   {codes}",
            flush=True,
        )


# -- requests lost in bursts ------------------------------------------------------------------


def chat(url: str, model: str, key: str | None) -> bool:
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
    ).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(f"{url}/chat/completions", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            answer = json.loads(response.read())
            return response.status == 200 and bool(answer.get("choices"))
    except (OSError, ValueError, urllib.error.URLError):
        return False


def burst_figures(root: Path) -> None:
    from pytest_mlxstack.process.services import ServiceManager
    from pytest_mlxstack.stack import start_stack
    from pytest_mlxstack.stack.spec import default_stack_spec

    with ServiceManager(root / "home", grace_period=5) as manager:
        stack = start_stack(default_stack_spec(), manager=manager, directory=root / "stack")
        with stack:
            tier = next(iter(stack.tiers.values()))
            routes = {
                "proxy": (stack.proxy_url, tier.tier, stack.master_key.reveal()),
                "direct": (tier.base_url, tier.served_name, None),
            }
            print(f"{'burst':>6} {'route':<7} {'lost':>5} {'seconds':>8}")
            for size in BURSTS:
                for route, (url, model, key) in routes.items():
                    began = time.monotonic()
                    with concurrent.futures.ThreadPoolExecutor(max_workers=size) as pool:
                        calls = [pool.submit(chat, url, model, key) for _ in range(size)]
                        answers_ = [call.result() for call in calls]
                    lost = answers_.count(False)
                    elapsed = time.monotonic() - began
                    print(f"{size:>6} {route:<7} {lost:>5} {elapsed:>8.1f}", flush=True)


# -- secrets in failure reports ---------------------------------------------------------------

SECRET_SESSION = f"""
import os, sys
from pathlib import Path

from pytest_mlxstack.stack import start_stack
from pytest_mlxstack.stack.masterkey import MasterKey
from pytest_mlxstack.stack.spec import stack_spec_from_mapping

KEYS = Path(os.environ["KEYS_FILE"])


def _remember(key):
    with KEYS.open("a") as handle:
        handle.write(key.reveal() + "\\n")


def test_service_start(service_manager):
    token = os.environ["HF_TOKEN"]
    service_manager.start(
        "toy", [sys.executable, {str(TOY)!r}, "--port", "{{port}}", "--mode", "crash",
                "--echo-env", "HF_TOKEN"], env={{"EXTRA_API_KEY": token}})
"""

STACK_SECRET_TESTS = """

def test_litellm_start(service_manager, tmp_path):
    key = MasterKey.generate()
    _remember(key)
    spec = stack_spec_from_mapping(
        {"tiers": {"fast": {"model": "tiny-chat"}}, "litellm": {"start_timeout": 0.2}}
    )
    start_stack(spec, manager=service_manager, directory=tmp_path / "s", key=key)


def test_probe_through_the_proxy(mlx_stack, openai_client):
    _remember(mlx_stack.master_key)
    openai_client.chat.completions.create(
        model="no-such-tier", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
"""


def secret_figures(root: Path, with_stack: bool) -> None:
    print(f"{'options':<22} {'failed':>6} {'HF_TOKEN':>9} {'master key':>11}  (terminal + junit)")
    for options in REPORTING:
        folder = root / "-".join(option.strip("-") for option in options)
        folder.mkdir(parents=True)
        (folder / "test_secrets.py").write_text(
            SECRET_SESSION + (STACK_SECRET_TESTS if with_stack else "")
        )
        keys, junit = folder / "keys", folder / "junit.xml"
        env = dict(
            os.environ, HF_TOKEN=FAKE_TOKEN, KEYS_FILE=str(keys), MLXSTACK_HOME=str(root / "home")
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                f"--junitxml={junit}",
                *options,
            ],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        shown = done.stdout + done.stderr + (junit.read_text() if junit.exists() else "")
        master_keys = keys.read_text().split() if keys.exists() else []
        failed = shown.count("<failure") + shown.count("<error")
        tokens = shown.count(FAKE_TOKEN)
        leaked_keys = sum(shown.count(key) for key in master_keys)
        print(f"{' '.join(options):<22} {failed:>6} {tokens:>9} {leaked_keys:>11}", flush=True)


# -- reaping orphans that ignore SIGTERM ---------------------------------------------------------


def reap_figures(root: Path, grace: float = 2.0) -> None:
    """How long the next session's reap takes for N orphans that ignore SIGTERM."""
    from pytest_mlxstack.process.registry import Owner, PidRegistry
    from pytest_mlxstack.process.services import ServiceManager

    print(f"{'orphans':>7} {'reap s':>7}   (grace period {grace:g} s)")
    for count in (1, 2, 4):
        child = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
        gone = Owner("pytest", child.pid, psutil.Process(child.pid).create_time())
        child.communicate(b"\n")
        home = root / f"reap-{count}"
        left = ServiceManager(home, owner=gone, reap=False)
        argv = [sys.executable, str(TOY), "--port", "{port}", "--mode", "ignore-term"]
        for number in range(count):
            left.start(f"orphan-{number}", argv)
        began = time.monotonic()
        PidRegistry(home).reap_orphans(grace_period=grace)
        print(f"{count:>7} {time.monotonic() - began:>7.2f}", flush=True)
        left.stop_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="repeated Ctrl-C trials")
    parser.add_argument(
        "--skip-stack", action="store_true", help="no real vllm-mlx/LiteLLM (no bursts)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlxstack-faults-") as tmp:
        root = Path(tmp)
        print("== orphans after each way a session ends (toy services, grace period 1 s)")
        orphan_figures(args.trials, root / "orphans")
        print("\n== reaping orphans that ignore SIGTERM (the next session's start)")
        reap_figures(root / "reap")
        if not args.skip_stack:
            print("\n== requests lost in bursts (vllm-mlx + LiteLLM, tiny-chat)")
            burst_figures(root / "bursts")
        print("\n== secrets in failure reports (fake HF_TOKEN, each stack's master key)")
        secret_figures(root / "secrets", with_stack=not args.skip_stack)
    return 0


if __name__ == "__main__":
    sys.exit(main())
