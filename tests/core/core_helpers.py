"""Helpers for the core tests: the toy server's command line, process liveness, polling."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

TOY_SERVER = Path(__file__).resolve().parents[1] / "servers" / "toy_server.py"
GRACE_S = 1.0


def toy_argv(mode: str = "behave", *extra: str, port: str = "{port}") -> list[str]:
    """The command line of the toy server in ``mode``."""
    return [sys.executable, str(TOY_SERVER), "--port", port, "--mode", mode, *extra]


def pids_in(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` passes (no fixed sleeps in tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Foreign:
    """A server we did not start through any manager: it must never be signalled."""

    def __init__(self, port: int, popen: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.popen = popen

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None
