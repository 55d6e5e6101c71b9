"""What every managed server kind answers: how to start it, where its health is, what it takes.

A kind is the one place that knows a server program (vllm-mlx, mlx_lm.server, ...). The service
manager only runs the ``Launch`` it returns (argv, working folder, environment, health path),
the pool keys its servers by ``ServerKey.kind`` so that two kinds never share a process, and
model resolution asks ``check_parsers`` whether the kind can parse what the catalog declares.
"""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_mlxstack.stack.flags import FlagError, ParserChoice


@dataclass(frozen=True)
class ServerKey:
    """What makes two managed servers interchangeable (the pool shares one per key)."""

    model: Path
    served_name: str
    args: tuple[str, ...]
    port: int | None  # only when the tier fixes it
    kind: str = "vllm-mlx"


@dataclass(frozen=True)
class Launch:
    """A start the service manager can run without knowing the program: ``{port}`` in argv
    is replaced by the port it picks."""

    argv: tuple[str, ...]
    health_path: str
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None


class ServerKind(ABC):
    """One server program. Subclasses set ``name``, ``health_path`` and ``distribution``."""

    name: str
    health_path: str
    distribution: str  # the installed package whose version rows show

    @abstractmethod
    def serve_args(
        self,
        parsers: ParserChoice,
        *,
        continuous_batching: bool = False,
        paged_cache: bool = False,
        extra: Sequence[str] = (),
    ) -> tuple[str, ...]:
        """The arguments this kind needs for a model with ``parsers`` and a tier's settings
        (the host, port and model are added by ``launch``). ``FlagError`` if they clash."""

    @abstractmethod
    def check_flags(
        self, flags: Sequence[str], *, continuous_batching: bool, paged_cache: bool
    ) -> None:
        """Refuse a tier's settings this kind would ignore or that it manages itself."""

    @abstractmethod
    def parser_problem(self, parsers: ParserChoice) -> str | None:
        """Why this kind cannot parse what ``parsers`` names, or None when it can."""

    @abstractmethod
    def launch(self, key: ServerKey, home: Path) -> Launch:
        """The command for ``key``'s model; ``home`` is this server's own folder."""

    def model_problem(self, path: Path) -> str | None:
        """Why ``path`` is not a model this kind serves, as the end of a sentence that starts
        with the path (None: it is one). The MLX servers load a model folder."""
        if not path.is_dir():
            return "is not a folder; point it at a model directory"
        if not (path / "config.json").is_file():
            return "has no config.json; point it at an MLX model directory"
        return None

    def installed(self) -> bool:
        try:
            importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return False
        return True

    def version(self) -> str | None:
        """The installed version (None: not installed)."""
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None


def offline_home_env(home: Path) -> dict[str, str]:
    """A HOME of the server's own and no Hub access: every model is a local folder by now."""
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "HF_HUB_OFFLINE": "1"}


__all__ = ["FlagError", "Launch", "ServerKey", "ServerKind", "offline_home_env"]
