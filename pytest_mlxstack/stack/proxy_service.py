"""Starting the LiteLLM proxy through the generic service manager.

The master key (a ``str``, or better a ``Secret`` such as the stack's ``MasterKey``) travels
only in the environment (never argv, so ``ps`` cannot show it), is redacted from every log
tail, and is never a plain local of a frame a traceback shows.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from pytest_mlxstack.process.ports import LOOPBACK
from pytest_mlxstack.process.services import (
    DEFAULT_TIMEOUT_S,
    ManagedService,
    ServiceManager,
    ServiceStartError,
    find_script,
)
from pytest_mlxstack.text.secrets import RedactedEnv, Secret

LITELLM_HEALTH = "/health/liveliness"


def start_litellm(
    manager: ServiceManager,
    name: str,
    config_path: str | Path,
    port: int | None = None,
    *,
    master_key: str | Secret,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    labels: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> ManagedService:
    """The LiteLLM proxy with ``config_path``, ready once ``/health/liveliness`` answers
    (``cancel`` as in ``ServiceManager.start``)."""
    key = master_key if isinstance(master_key, Secret) else Secret(master_key)
    del master_key  # pytest -l would print the plain string
    if not key or key.reveal() == "sk-1234":
        raise ValueError(
            "start_litellm needs a master key other than '' and 'sk-1234' (LiteLLM refuses "
            "those); generate one such as 'sk-' + secrets.token_hex(16)"
        )
    config = Path(config_path)
    if not config.is_file():
        raise ServiceStartError(
            f"LiteLLM config {config} does not exist; write the proxy config first",
            name=name,
        )
    manager.add_secret(key.reveal())
    child_env = RedactedEnv(env or {})
    child_env["LITELLM_MASTER_KEY"] = key.reveal()
    child_env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    argv = [find_script("litellm"), "--config", str(config), "--host", LOOPBACK]
    argv += ["--port", "{port}"]
    return manager.start(
        name,
        argv,
        port,
        health_path=LITELLM_HEALTH,
        env=child_env,
        timeout=timeout,
        labels=labels,
        cancel=cancel,
    )
