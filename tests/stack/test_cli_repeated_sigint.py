"""``mlxstack up`` in the foreground, stopped by Ctrl-C pressed again and again: every service
stops, and the user sees the ordinary end, not a ``KeyboardInterrupt`` traceback."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from stack_helpers import bindable, live_pids

from pytest_mlxstack import skip_no_litellm, skip_no_mlx_backend, skip_no_vllm
from pytest_mlxstack.process.registry import PidRegistry

pytestmark = [skip_no_vllm, skip_no_litellm, skip_no_mlx_backend]

MLXSTACK = str(Path(sys.executable).parent / "mlxstack")


def test_a_burst_of_ctrl_c_stops_a_foreground_stack_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "mlxhome"
    process = subprocess.Popen(
        [MLXSTACK, "up", "--home", str(home), "--grace-period", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C stops the stack" in line:
                break
        output = "".join(lines)
        pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", output)]
        ports = [int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)", output)]
        assert len(pids) == 2, output  # the tier and LiteLLM
        rng = random.Random(16)
        begun = time.monotonic()
        process.send_signal(signal.SIGINT)
        for moment in sorted(rng.uniform(0, 1.5) for _ in range(6)):
            time.sleep(max(0.0, begun + moment - time.monotonic()))
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        subprocess.run([MLXSTACK, "down", "--home", str(home)], capture_output=True, timeout=120)
    assert "Traceback" not in err, err
    assert process.returncode == 0, err
    assert "stopped" in out
    assert live_pids(pids) == []
    assert all(bindable(port) for port in ports)
    assert PidRegistry(home).records() == []
