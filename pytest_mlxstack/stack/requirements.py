"""What the real stack needs installed, and why it cannot run when something is missing.

Shared by the skip marks (``wiring/skips.py``) and ``mlxstack up``, so both name the same parts
and the same fix. Cheap: ``find_spec`` only, except ``mlx_backend_problem``, which imports
``mlx.core`` once to learn whether a backend really loads.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import platform
import sys

STACK_HINT = "install it with: pip install 'pytest-mlxstack[stack]'"
HARNESS_HINT = "install it with: pip install 'pytest-mlxstack[harness]'"
# What the LiteLLM proxy imports when it starts (litellm itself plus what its ``proxy`` extra
# brings); ``mlxstack up`` checks the same list before starting anything.
LITELLM_PROXY_MODULES = (
    "litellm",
    "fastapi",
    "uvicorn",
    "backoff",
    "apscheduler",
    "orjson",
    "websockets",
    "fastapi_sso",
)


def installed(module: str) -> bool:
    """Whether ``module`` can be found (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if not installed(m)]


@functools.cache
def mlx_backend_problem() -> str | None:
    """Why no MLX backend can run here, or ``None`` when Metal or ``mlx[cpu]`` is usable."""
    if not installed("mlx"):
        return f"MLX is not installed (neither Metal nor mlx[cpu] is available); {STACK_HINT}"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return None  # Apple Silicon: Metal
    try:
        importlib.import_module("mlx.core")
    except Exception as exc:  # any failure means "no usable backend"
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (
            f"MLX is installed but cannot run here: 'import mlx.core' failed ({first_line}); "
            "on Linux the CPU backend needs mlx[cpu], which pip install "
            "'pytest-mlxstack[stack]' selects"
        )
    return None
