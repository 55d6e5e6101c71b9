"""A real headless Chromium driven over the DevTools protocol (``--remote-debugging-pipe``: no
port, no extra package), to check what a person's browser does with the matrix page: which
requests it makes, what it logs, how wide the page is, what it looks like.

Debian's ``chromium`` package; ``scripts/install-chromium.sh`` installs it (the bootstrap runs
it). Missing: the tests skip loudly, or fail when ``MLXSTACK_REQUIRE_STACK=1`` (CI).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
)
READ_TIMEOUT_S = 60.0  # a hung browser fails the test instead of hanging it


def chromium_or_skip() -> str:
    """The Chromium executable; skip (or fail under ``MLXSTACK_REQUIRE_STACK=1``) without."""
    override = os.environ.get("MLXSTACK_CHROMIUM")
    found = override or next((path for name in CANDIDATES if (path := shutil.which(name))), None)
    if found:
        return found
    message = (
        "headless Chromium is not installed, so the matrix page was not checked in a real "
        "browser; install it with 'sudo bash scripts/install-chromium.sh' (Debian: apt-get "
        "install chromium) or point MLXSTACK_CHROMIUM at one"
    )
    if os.environ.get("MLXSTACK_REQUIRE_STACK") == "1":
        pytest.fail(f"MLXSTACK_REQUIRE_STACK=1 but {message}", pytrace=False)
    pytest.skip(message)


@dataclass
class PageVisit:
    """What loading one page did."""

    requests: list[str] = field(default_factory=list)  # every URL but the page's own
    problems: list[str] = field(default_factory=list)  # console errors/warnings, exceptions
    events: list[dict[str, Any]] = field(default_factory=list)


class Browser:
    """One Chromium process with one page; ``close()`` ends the process it started."""

    def __init__(self, executable: str, profile: Path, *, width: int, height: int) -> None:
        to_browser_read, self._write_fd = os.pipe()
        self._read_fd, from_browser_write = os.pipe()

        def wire_pipes() -> None:  # the browser reads fd 3 and writes fd 4
            read_end, write_end = os.dup(to_browser_read), os.dup(from_browser_write)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes,
            pass_fds=(to_browser_read, from_browser_write, 3, 4),
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self._pending: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = False
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._write_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self._pending.append(reply)

    def visit(self, page: Path) -> PageVisit:
        """Load ``page`` and wait for its load event; everything it did along the way."""
        url = page.resolve().as_uri()
        self._pending.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        events = list(self._pending)
        while not any(e.get("method") == "Page.loadEventFired" for e in events):
            events.append(self._read())
        visit = PageVisit(events=events)
        for event in events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent" and params["request"]["url"] != url:
                visit.requests.append(params["request"]["url"])
            elif method == "Runtime.exceptionThrown":
                visit.problems.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning"):
                visit.problems.append(json.dumps(params["args"])[:500])
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                visit.problems.append(params["entry"]["text"])
        return visit

    def more_problems(self) -> list[str]:
        """Console errors and exceptions that arrived since the last ``visit`` or call."""
        self.evaluate("0")
        problems = []
        for event in self._pending:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown" or (
                method == "Log.entryAdded" and params["entry"]["level"] == "error"
            ):
                problems.append(json.dumps(params)[:500])
        self._pending.clear()
        return problems

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (DevTools is not bound by its CSP)."""
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def press(self, key: str) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": 27},
                session=True,
            )

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the first element ``selector`` matches."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
            "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
            "return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
                session=True,
            )

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
        data = self.call("Page.captureScreenshot", params, session=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        for fd in (self._write_fd, self._read_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + READ_TIMEOUT_S
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._read_fd], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"Chromium sent nothing for {READ_TIMEOUT_S:.0f} s")
            chunk = os.read(self._read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe (exit {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))
