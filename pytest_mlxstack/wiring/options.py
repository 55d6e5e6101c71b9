"""The settings table (``pytest_mlxstack.settings``) as pytest options and ini keys, and the
few facts every wiring module asks of a run: its settings, whether this process is an xdist
worker, and what the controller handed the workers.

Each wiring module registers its own settings with ``add_settings`` and reads them with
``value``; a bad value is one ``UsageError`` sentence naming where it was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_mlxstack.settings import SETTINGS, Resolved, resolve
from pytest_mlxstack.settings_values import SettingError

GROUP = "mlxstack"
HANDOVER_KEY = "mlxstack"  # workerinput: everything the controller hands a worker
_RESOLVED = pytest.StashKey[dict[str, Resolved]]()


def add_settings(parser: pytest.Parser, *names: str) -> None:
    """Register each setting as an option in the ``mlxstack`` group and as an ini key."""
    group = parser.getgroup(GROUP, "pytest-mlxstack: local LLM stacks")
    for name in names:
        setting = SETTINGS[name]
        twins = [f"ini: {name}"]
        if setting.env:
            twins.append(f"env: {setting.env}")
        if setting.default_text:
            twins.append(f"default {setting.default_text}")
        help_text = f"{setting.help} ({'; '.join(twins)})."
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": help_text}
        if setting.flag_value is not None:
            kwargs.update(action="store_const", const=setting.flag_value)
        elif setting.kind == "list":
            kwargs.update(action="append", metavar=setting.metavar)
        elif setting.bare is not None:
            kwargs.update(nargs="?", const=setting.bare, metavar=setting.metavar)
        else:
            kwargs["metavar"] = setting.metavar
        group.addoption(setting.option, **kwargs)
        if setting.kind == "list":
            parser.addini(name, setting.help, type="args")
        elif setting.kind == "bool":
            parser.addini(name, setting.help, type="bool", default=setting.default)
        else:
            parser.addini(name, setting.help, default="")


def read_setting(config: pytest.Config, name: str) -> Any:
    """The setting's value (resolved once per run): option > ini > environment > default."""
    return resolved(config, name).value


def resolved(config: pytest.Config, name: str) -> Resolved:
    """The setting's value and where it came from (``option``, ``ini``, ``env``, ``default``)."""
    cache = config.stash.setdefault(_RESOLVED, {})
    if name not in cache:
        setting = SETTINGS[name]
        option = config.getoption(name)
        if option == setting.bare and setting.bare is not None:
            option = None  # given bare: the ini value (or the default) decides
        ini: Any = config.getini(name)
        if setting.kind == "bool" and ini == setting.default:
            ini = None  # pytest returns the declared default when the key is absent
        try:
            cache[name] = resolve(
                setting,
                option=option,
                ini=ini,
                invocation_dir=config.invocation_params.dir,
                ini_dir=config.inipath.parent if config.inipath else config.rootpath,
            )
        except SettingError as exc:
            raise pytest.UsageError(str(exc)) from None
    return cache[name]


def given_bare(config: pytest.Config, name: str) -> bool:
    """Whether the option was given without its optional argument (``--mlx-catalog``)."""
    setting = SETTINGS[name]
    return setting.bare is not None and config.getoption(name) == setting.bare


def is_worker(config: pytest.Config) -> bool:
    """Whether this process is an xdist worker (it has no terminal and writes nothing)."""
    return hasattr(config, "workerinput")


def handover(config: pytest.Config) -> dict[str, Any]:
    """On a worker: what the controller handed over under ``HANDOVER_KEY`` (else empty)."""
    workerinput = getattr(config, "workerinput", None)
    data = workerinput.get(HANDOVER_KEY) if isinstance(workerinput, dict) else None
    return data if isinstance(data, dict) else {}


def hand_over(node: Any, key: str, item: Any) -> None:
    """On the controller, in ``pytest_configure_node``: give a worker ``item`` under ``key``."""
    node.workerinput.setdefault(HANDOVER_KEY, {})[key] = item


def run_dir(config: pytest.Config, key: str) -> Path | None:
    """On a worker, the directory the controller handed over under ``key``; else ``None``."""
    text = handover(config).get(key)
    return Path(str(text)) if text else None
