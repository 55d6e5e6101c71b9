"""Every setting of pytest-mlxstack, declared once: its option, ini key, environment variable,
type, default and the base a relative path is resolved against.

The pytest wiring (``wiring/options.py``) registers options and ini keys from this table and
resolves them as option > ini key > environment > default; the CLI checks its own flags with
the same checks (``settings_values``), so a grace period of ``nan``, ``-1`` or ``abc`` gets
the same sentence in both. Relative paths follow where they were written: the ini file's
folder for an ini value, the working directory for an option or an environment variable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pytest_mlxstack.process.paths import (
    CACHE_ENV,
    HOME_ENV,
    MATRIX_ENV,
    default_cache_dir,
    default_home,
    default_matrix_dir,
)
from pytest_mlxstack.process.services import DEFAULT_GRACE_PERIOD_S
from pytest_mlxstack.settings_values import SettingError, not_a_file, seconds

Kind = Literal["dir", "path", "float", "int", "text", "list", "bool"]
Source = Literal["option", "ini", "env", "default"]
GRACE_ENV = "MLXSTACK_GRACE_PERIOD"
NONE = "none"  # a path setting written as 'none' means: deliberately unset


@dataclass(frozen=True)
class Setting:
    """One setting. ``name`` is the ini key and the option's ``dest``."""

    name: str
    help: str
    kind: Kind = "text"
    env: str | None = None
    default: Any = None  # a value, or a callable giving it (read when resolved)
    default_text: str = ""  # how the default reads in help texts
    metavar: str = "VALUE"
    minimum: float | None = None
    maximum: float | None = None
    bare: str | None = None  # the value of the option given without an argument
    flag_value: Any = None  # for a flag without argument (``--mlx-no-html``): its value
    option_name: str = ""  # when the option is not ``--`` + name with dashes
    noun: str = ""  # what the value is, in messages ("grace period")
    unit: str = ""  # of numbers, in messages ("seconds")

    @property
    def option(self) -> str:
        return self.option_name or "--" + self.name.replace("_", "-")

    def label(self, source: Source) -> str:
        """How a user names the place a value came from."""
        if source == "option":
            return self.option
        if source == "ini":
            return f"ini option {self.name}"
        if source == "env":
            return f"environment variable {self.env}"
        return f"the default of {self.option}"

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


def convert(setting: Setting, text: str, *, where: str, base: Path | None = None) -> Any:
    """``text`` as the setting's type, or one ``SettingError`` sentence naming ``where``.

    Paths are made absolute against ``base`` (default: the working directory); a directory
    setting that is a file, or lies inside one, is refused before anything is created.
    """
    text = text.strip()
    kind = setting.kind
    if kind == "float" and setting.unit == "seconds":
        return seconds(text, name=where)
    if kind in ("float", "int"):
        return _number(setting, text, where)
    if kind in ("dir", "path"):
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        return not_a_file(path, name=where) if kind == "dir" else path
    if kind == "list":
        return [part.strip() for part in text.replace(",", " ").split() if part.strip()]
    if kind == "bool":
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingError(f"{text!r} is not true or false", "write true or false", where=where)
    return text


def _number(setting: Setting, text: str, where: str) -> float | int:
    whole = setting.kind == "int"
    kind = "whole number" if whole else "number"
    unit = f" of {setting.unit}" if setting.unit else ""
    low, high = setting.minimum, setting.maximum
    if low is not None and high is not None:
        wanted = f"a {kind}{unit} from {low:g} to {high:g}"
    elif low == 0:
        wanted = f"a non-negative {kind}{unit}"
    elif low is not None:
        wanted = f"a {kind}{unit} of at least {low:g}"
    else:
        wanted = f"a {kind}{unit}"
    subject = f"{setting.noun} {text!r}" if setting.noun else repr(text)
    fix = f"give {wanted} such as {setting.default_text or '1'}"
    try:
        value: float | int = int(text) if whole else float(text)
    except ValueError:
        raise SettingError(f"{subject} is not a {kind}{unit}", fix, where=where) from None
    in_range = math.isfinite(value) and (low is None or value >= low)
    if not in_range or (high is not None and value > high):
        raise SettingError(f"{subject} is not {wanted}", fix, where=where)
    return value


@dataclass(frozen=True)
class Resolved:
    value: Any
    source: Source


def resolve(
    setting: Setting,
    *,
    option: Any = None,
    ini: Any = None,
    environ: Mapping[str, str] | None = None,
    invocation_dir: Path | None = None,
    ini_dir: Path | None = None,
) -> Resolved:
    """The setting's value by precedence: option, ini key, environment, default.

    ``option`` and ``ini`` are the raw values pytest (or a CLI) read; empty means unset."""
    environ = os.environ if environ is None else environ
    candidates: list[tuple[Source, Any, Path | None]] = [
        ("option", option, invocation_dir),
        ("ini", ini, ini_dir),
        ("env", environ.get(setting.env, "") if setting.env else "", invocation_dir),
    ]
    for source, raw, base in candidates:
        if raw is None or raw == "" or raw == []:
            continue
        if isinstance(raw, list):
            raw = ",".join(str(part) for part in raw)
        if not isinstance(raw, str):
            return Resolved(raw, source)  # already typed (a flag's value, an ini bool)
        if not raw.strip():
            continue
        if setting.kind in ("dir", "path") and raw.strip().lower() == NONE:
            return Resolved(None, source)
        return Resolved(convert(setting, raw, where=setting.label(source), base=base), source)
    return Resolved(setting.default_value(), "default")


def _declare(*settings: Setting) -> dict[str, Setting]:
    return {setting.name: setting for setting in settings}


SETTINGS: dict[str, Setting] = _declare(
    # -- core -----------------------------------------------------------------------------
    Setting(
        "mlx_home",
        "State directory: pid registry, service logs, port locks",
        kind="dir",
        env=HOME_ENV,
        default=default_home,
        default_text="~/.mlxstack",
        metavar="DIR",
    ),
    Setting(
        "mlx_cache_dir",
        "Persistent model cache",
        kind="dir",
        env=CACHE_ENV,
        default=default_cache_dir,
        default_text="~/.cache/mlxstack/models",
        metavar="DIR",
    ),
    Setting(
        "mlx_matrix_dir",
        "Where matrix JSON and HTML are written",
        kind="dir",
        env=MATRIX_ENV,
        default=default_matrix_dir,
        default_text="./matrices",
        metavar="DIR",
    ),
    Setting(
        "mlx_grace_period",
        "Seconds a stopping service may take after SIGTERM before SIGKILL",
        kind="float",
        env=GRACE_ENV,
        default=DEFAULT_GRACE_PERIOD_S,
        default_text="10",
        metavar="SECONDS",
        minimum=0,
        noun="grace period",
        unit="seconds",
    ),
    Setting(
        "mlx_log_lines",
        "Lines of each service's log attached to a failed test's report",
        kind="int",
        default=40,
        default_text="40",
        metavar="N",
        minimum=0,
        noun="log line count",
    ),
    # -- catalog --------------------------------------------------------------------------
    Setting(
        "mlx_catalog",
        "Validate a model catalog (a folder of YAML files or one file) with the built-in "
        "tier-1 suite; without PATH: the mlx_catalog ini value, else the shipped catalog. "
        "Write --mlx-catalog=PATH when test paths follow",
        kind="path",
        metavar="PATH",
        bare="",
    ),
    Setting(
        "mlx_hub_workers",
        "Concurrent Hub requests for the catalog checks",
        kind="int",
        default=32,
        default_text="32",
        metavar="N",
        minimum=1,
        maximum=256,
        noun="Hub worker count",
    ),
    # -- stack ----------------------------------------------------------------------------
    Setting(
        "mlx_stack",
        "YAML stack file for the mlx_stack fixture (default: one tier 'fast' on the fixture "
        "model tiny-chat)",
        kind="path",
        metavar="FILE",
    ),
    Setting(
        "mlx_endpoint",
        "An OpenAI-compatible server the plugin did not start (and never stops): openai_client "
        "and the built-in smoke and harness suites talk to it instead of a stack",
        env="MLXSTACK_ENDPOINT",
        metavar="URL",
    ),
    Setting(
        "mlx_endpoints",
        "YAML file of several servers the plugin did not start (url, model, label, "
        "api_key_env, catalog_model per entry): the smoke and harness suites run against "
        "each, one row per server; openai_client talks to the first",
        kind="path",
        env="MLXSTACK_ENDPOINTS",
        metavar="FILE",
    ),
    Setting(
        "mlx_api_key",
        "API key for --mlx-endpoint (better: the environment variable MLXSTACK_API_KEY, which "
        "no process listing shows)",
        env="MLXSTACK_API_KEY",
        metavar="KEY",
    ),
    Setting(
        "mlx_endpoint_model",
        "The model name to ask --mlx-endpoint for; default: the only model its /v1/models lists",
        env="MLXSTACK_ENDPOINT_MODEL",
        metavar="NAME",
    ),
    Setting(
        "mlx_server_label",
        "Name of the --mlx-endpoint server in the matrix; default: detected from its answers "
        "(vllm-mlx, mlx-lm, llama.cpp, else unknown)",
        env="MLXSTACK_SERVER_LABEL",
        metavar="NAME",
    ),
    Setting(
        "mlx_require_stack",
        "Fail, instead of skip, a test that needs the real stack (vllm-mlx, LiteLLM, an MLX "
        "backend, openai) when it is missing: for CI, where a skip would go green",
        kind="bool",
        env="MLXSTACK_REQUIRE_STACK",
        default=False,
        flag_value=True,
    ),
    # -- matrix ---------------------------------------------------------------------------
    Setting(
        "mlx_expectations",
        "YAML file of known failures: expected failures xfail, unexpected passes are flagged",
        kind="path",
        metavar="PATH",
    ),
    Setting(
        "mlx_baseline",
        "Matrix JSON to report regressions against; default: the newest earlier run of this "
        "machine profile in the matrix directory; 'none' disables",
        kind="path",
        metavar="PATH",
    ),
    Setting(
        "mlx_matrix_html",
        "Write only the matrix JSON, not the HTML report (ini: mlx_matrix_html = false)",
        kind="bool",
        default=True,
        flag_value=False,
        option_name="--mlx-no-html",
    ),
    Setting(
        "mlx_machine_profile",
        "Label rows with this machine profile (merged matrices are keyed by it); default: "
        "system, architecture, chip and memory",
        metavar="NAME",
    ),
    # -- suites ---------------------------------------------------------------------------
    Setting(
        "mlx_suites",
        "Run the built-in suites: all (the default) or a comma-separated list of smoke, "
        "integration, harness; write --mlx-suites=NAMES when test paths follow",
        metavar="NAMES",
        bare="all",
    ),
    Setting(
        "mlx_suite_catalog",
        "Catalog (folder or YAML file) the built-in suites run on; default: the fixture "
        "catalog shipped with the plugin",
        kind="path",
        metavar="PATH",
    ),
    Setting(
        "mlx_server_kind",
        "Server program the built-in suites start for every model: vllm-mlx (the default), "
        "mlx-lm (mlx_lm.server) or llama.cpp (llama-server, serving each model's GGUF file)",
        env="MLXSTACK_SERVER_KIND",
        default="vllm-mlx",
        default_text="vllm-mlx",
        metavar="KIND",
    ),
    Setting(
        "mlx_llama_server",
        "The llama-server program of the llama.cpp server kind; default: llama-server on PATH",
        kind="path",
        env="MLXSTACK_LLAMA_SERVER",
        metavar="PATH",
    ),
    Setting(
        "mlx_models",
        "Catalog ids (ID or ID:QUANT) the built-in suites run on, comma-separated or "
        "repeated; default: every entry",
        kind="list",
        metavar="IDS",
    ),
    Setting(
        "mlx_shard",
        "Run only shard K of N of the selected models (sorted by label, dealt round-robin: "
        "the same split on every machine), e.g. 1/2; for a fleet of CI runners whose "
        "matrices are merged afterwards",
        env="MLXSTACK_SHARD",
        metavar="K/N",
    ),
    Setting(
        "mlx_token_budget",
        "Multiplier of every probe's completion-token budget (text 1024, tools 1024, "
        "thinking 8192 at 1); raise it when a reasoning model's answers are cut (budget "
        "exhausted)",
        kind="float",
        env="MLXSTACK_TOKEN_BUDGET",
        default=1.0,
        default_text="1",
        metavar="X",
        minimum=0.01,
        maximum=100,
        noun="token-budget multiplier",
    ),
    Setting(
        "mlx_probe_concurrency",
        "How many probes of the built-in smoke and harness suites run at once (queued in "
        "test order, spread over the models); 1 runs them one by one",
        kind="int",
        env="MLXSTACK_PROBE_CONCURRENCY",
        default=4,
        default_text="4",
        metavar="N",
        minimum=1,
        maximum=64,
        noun="probe concurrency",
    ),
)


def setting(name: str) -> Setting:
    return SETTINGS[name]
