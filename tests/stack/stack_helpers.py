"""What the stack tests check after a stack is down: processes gone, ports free, no key on disk."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path

import psutil

GRACE_S = 5.0


def live_pids(pids: Iterable[int]) -> list[int]:
    """The pids among ``pids`` that still run (zombies count as gone)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def bindable(port: int) -> bool:
    """Whether a new server could bind ``port`` on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def listening_ports() -> set[int]:
    """Every TCP port something on this machine listens on (psutil's view)."""
    return {
        conn.laddr.port
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr
    }


def listen_addresses(pid: int) -> set[str]:
    """The addresses the process ``pid`` and its children listen on."""
    root = psutil.Process(pid)
    addresses = set()
    for proc in [root, *root.children(recursive=True)]:
        for conn in proc.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                addresses.add(conn.laddr.ip)
    return addresses


def files_containing(root: Path, secret: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``secret``."""
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]
