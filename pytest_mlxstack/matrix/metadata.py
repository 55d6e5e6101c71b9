"""Run metadata: when, on what machine and with which versions a matrix was produced.

A cell is only meaningful with its provenance: the same model passes or fails depending on the
chip, the memory and the versions of vllm-mlx, mlx, mlx-lm, LiteLLM and the OpenAI client.
"""

from __future__ import annotations

import platform
import secrets
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

import psutil

from pytest_mlxstack.matrix.model import RunMetadata

# Distribution names whose versions every run records, in display order.
TRACKED_DISTRIBUTIONS = ("vllm-mlx", "mlx", "mlx-lm", "litellm", "openai", "pytest-mlxstack")


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def format_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_versions() -> dict[str, str | None]:
    """Installed version of each tracked distribution; ``None`` when it is not installed."""
    versions: dict[str, str | None] = {}
    for name in TRACKED_DISTRIBUTIONS:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def chip_name() -> str:
    """The Apple chip on macOS (sysctl), the CPU model on Linux, else the platform's guess."""
    if sys.platform == "darwin":
        try:
            completed = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            completed = None
        if completed is not None and completed.returncode == 0 and completed.stdout.strip():
            return completed.stdout.strip()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        try:
            for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
                name, _, value = line.partition(":")
                if name.strip() in ("model name", "Hardware", "Model") and value.strip():
                    return value.strip()
        except OSError:
            pass
    return platform.processor() or platform.machine() or "unknown"


def default_profile(chip: str, memory_bytes: int | None) -> str:
    """A stable label for this kind of machine: system, architecture, chip and memory."""
    memory = f" {round(memory_bytes / 2**30)}GiB" if memory_bytes else ""
    return f"{platform.system().lower()}-{platform.machine()} {chip}{memory}"


def new_run_id(moment: datetime) -> str:
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def collect_run_metadata(
    *,
    profile: str | None = None,
    duration_s: float | None = None,
    now: datetime | None = None,
    provenance: dict[str, str] | None = None,
) -> RunMetadata:
    """Describe the current machine and environment; ``profile`` overrides the derived label."""
    moment = now or utc_now()
    chip = chip_name()
    memory_bytes = int(psutil.virtual_memory().total)
    return RunMetadata(
        run_id=new_run_id(moment),
        created_at=format_utc(moment),
        profile=profile or default_profile(chip, memory_bytes),
        platform=platform.platform(),
        system=platform.system(),
        machine=platform.machine(),
        chip=chip,
        memory_bytes=memory_bytes,
        python=platform.python_version(),
        versions=package_versions(),
        duration_s=duration_s,
        provenance=dict(provenance or {}),
    )
