"""``mlxstack up | status | logs | down``: a real stack outside pytest.

``up`` starts the tiers (catalog models, a stack file, or the fixture model ``tiny-chat``) and
LiteLLM in front, then stays in the foreground until Ctrl-C or SIGTERM; with ``--detach`` it
leaves them running (recorded as detached in the pid registry) and returns. The master key is
written to a file only the user can read and is printed only with ``--show-key``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_mlxstack.cli import CliError
from pytest_mlxstack.process.interrupts import ignore_sigint
from pytest_mlxstack.process.paths import HOME_ENV, default_cache_dir, default_home
from pytest_mlxstack.settings_values import (
    SettingError,
    not_a_file,
    port,
    seconds,
    writable_directory,
)
from pytest_mlxstack.text.redact import redact_text
from pytest_mlxstack.text.terminal import one_line

if TYPE_CHECKING:  # the stack modules are imported by the commands that need them
    from pytest_mlxstack.stack.runtime import Stack
    from pytest_mlxstack.stack.spec import StackSpec

STACK_EXTRA = "pip install 'pytest-mlxstack[stack]'"
PORT_FREE = "leave --port out for a free port"
DEFAULT_GRACE_S = 10.0
WATCH_INTERVAL_S = 0.5
_T = TypeVar("_T")


def register(subparsers: Any) -> None:
    up = subparsers.add_parser(
        "up", help="start vllm-mlx tiers behind LiteLLM", description=_doc_first_paragraph()
    )
    source = up.add_mutually_exclusive_group()
    source.add_argument(
        "--model",
        action="append",
        metavar="ID[:QUANT]",
        help="catalog model to serve as a tier named after it (repeatable; default: tiny-chat)",
    )
    source.add_argument("--stack", type=Path, metavar="FILE", help="YAML stack file")
    up.add_argument(
        "--catalog", type=Path, metavar="PATH", help="catalog for --model (default: shipped)"
    )
    up.add_argument("--port", metavar="PORT", help="LiteLLM port (default: free port)")
    up.add_argument("--no-litellm", action="store_true", help="serve the tiers directly")
    up.add_argument(
        "--detach", action="store_true", help="leave the stack running and return once ready"
    )
    up.add_argument("--show-key", action="store_true", help="also print the master key")
    up.add_argument(
        "--stable",
        action="store_true",
        help="keep the master key and the LiteLLM port across restarts (stored in the home), "
        "so an agent's configuration stays valid",
    )
    _common(up)
    up.set_defaults(handler=_up)

    env = subparsers.add_parser(
        "env", help="print the exports that point a client at the running stack"
    )
    _common(env)
    env.set_defaults(handler=_env)

    status = subparsers.add_parser("status", help="table of recorded services and their health")
    _common(status)
    status.set_defaults(handler=_status)

    logs = subparsers.add_parser("logs", help="print a service's log (secrets redacted)")
    logs.add_argument("service", metavar="SERVICE", help="service or tier name, or STACK/NAME")
    logs.add_argument("-n", "--lines", type=int, default=50, metavar="N", help="default 50")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    _common(logs)
    logs.set_defaults(handler=_logs)

    down = subparsers.add_parser("down", help="stop every stack 'mlxstack up' started")
    _common(down)
    down.set_defaults(handler=_down)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        type=Path,
        metavar="DIR",
        help="state directory (default: $MLXSTACK_HOME or ~/.mlxstack)",
    )
    parser.add_argument(
        "--grace-period",
        default=str(DEFAULT_GRACE_S),
        metavar="S",
        help=f"seconds between SIGTERM and SIGKILL when stopping (default {DEFAULT_GRACE_S:g})",
    )


def _doc_first_paragraph() -> str:
    return (__doc__ or "").split("\n\n")[1].replace("\n", " ")


# -- up --------------------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    grace = _grace_period(args)
    home = _home(args)
    spec = _spec(args)
    _checked(writable_directory, home, args)
    _require_stack_extra(litellm=spec.litellm.enabled)
    from pytest_mlxstack.process.cache import ModelCache
    from pytest_mlxstack.process.services import ServiceManager
    from pytest_mlxstack.stack.control import (
        CLI_ORIGIN,
        ORIGIN_LABEL,
        key_file,
        remember_port,
        remove_stack_files,
        stable_key,
        stable_port,
        stack_directory,
    )
    from pytest_mlxstack.stack.errors import StackError
    from pytest_mlxstack.stack.masterkey import write_key_file
    from pytest_mlxstack.stack.runtime import new_stack_id, start_stack

    stack_id = new_stack_id()
    manager = ServiceManager(home, grace_period=grace)
    key = None
    if args.stable:
        key = stable_key(home)
        if spec.litellm.enabled and spec.litellm.port is None:
            spec = dataclasses.replace(
                spec, litellm=dataclasses.replace(spec.litellm, port=stable_port(home))
            )
    _raise_on_sigterm()
    try:
        stack = start_stack(
            spec,
            manager=manager,
            directory=stack_directory(home, stack_id),
            pull=functools.partial(ModelCache(default_cache_dir()).pull, on_progress=_say),
            stack_id=stack_id,
            key=key,
            labels={ORIGIN_LABEL: CLI_ORIGIN},
            on_progress=_say,
        )
        if args.stable and stack.proxy is not None:
            remember_port(home, stack.proxy.port)
    except StackError as exc:
        manager.stop_all()
        remove_stack_files(home, stack_id)
        raise CliError(_one_line(exc)) from None
    except KeyboardInterrupt:
        manager.stop_all()
        remove_stack_files(home, stack_id)
        raise
    detached = False
    try:
        key_path = write_key_file(key_file(home, stack_id), stack.master_key)
        _print_summary(stack, key_path, home, show_key=args.show_key, detached=args.detach)
        if args.detach:
            manager.detach()  # recorded as detached: only 'mlxstack down' stops them
            detached = True
            return 0
        return _watch(stack, home)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the normal end of a foreground stack
        return 0
    finally:
        if not detached:
            ignore_sigint()  # Ctrl-C again must not cut the stop short
            stack.down()
            manager.stop_all()
            remove_stack_files(home, stack_id)
            print(f"mlxstack: {stack_id} stopped", flush=True)


def _spec(args: argparse.Namespace) -> StackSpec:
    from pytest_mlxstack.stack.spec import (
        LiteLLMSpec,
        StackSpec,
        StackSpecError,
        default_stack_spec,
        load_stack_file,
        stack_spec_for_models,
    )

    litellm_port = _checked_value(lambda: port(args.port, name="--port", free_hint=PORT_FREE))
    try:
        if args.stack is not None:
            spec = load_stack_file(args.stack)
            if args.catalog is not None:
                raise CliError("--catalog goes with --model; a stack file names its own catalog")
        elif args.model:
            spec = stack_spec_for_models(args.model, catalog=args.catalog)
        else:
            spec = default_stack_spec()
        litellm = spec.litellm
        if args.no_litellm or args.port is not None:
            litellm = LiteLLMSpec(
                enabled=litellm.enabled and not args.no_litellm,
                port=litellm_port if args.port is not None else litellm.port,
                request_timeout=litellm.request_timeout,
                start_timeout=litellm.start_timeout,
            )
        return StackSpec(
            tiers=spec.tiers,
            litellm=litellm,
            catalog=spec.catalog if args.catalog is None else args.catalog,
            source=spec.source,
        )
    except StackSpecError as exc:
        raise CliError(str(exc)) from None


def _print_summary(
    stack: Any, key_path: Path, home: Path, *, show_key: bool, detached: bool
) -> None:
    lines = [f"mlxstack: {stack.stack_id} is up"]
    for tier in stack.tiers.values():
        lines.append(
            f"  tier {tier.tier}: {tier.model_label} as '{tier.served_name}' at {tier.base_url}"
            f" (pid {tier.service.pid})"
        )
    if stack.proxy is not None:
        lines.append(f"  LiteLLM proxy: {stack.proxy_url} (pid {stack.proxy.pid})")
        lines.append(f"  models: {', '.join(stack.tiers)}")
        lines.append(f"  master key: in {key_path} (mode 0600); e.g.")
        lines.append(
            f'    export OPENAI_BASE_URL={stack.proxy_url} OPENAI_API_KEY="$(cat {key_path})"'
        )
        if show_key:
            lines.append(f"  master key value: {stack.master_key.reveal()}")
        tier = next(iter(stack.tiers.values()))
        lines.append('  for pytest (--mlx-endpoint; or: eval "$(mlxstack env)"):')
        lines.append(f'    export MLXSTACK_API_KEY="$(cat {key_path})"')
        lines.extend(_pytest_lines(stack.proxy_url, tier.tier, tier.model_label, tier.kind))
    else:
        tier = next(iter(stack.tiers.values()))
        lines.append("  for pytest (--mlx-endpoint):")
        lines.extend(_pytest_lines(tier.base_url, tier.served_name, tier.model_label, tier.kind))
    lines.append(f"  logs: mlxstack logs SERVICE --home {home}")
    if detached:
        lines.append(f"  stop with: mlxstack down --home {home}")
    else:
        lines.append("  Ctrl-C stops the stack")
    print("\n".join(lines), flush=True)


def _pytest_lines(url: str, model: str, label: str, server: str) -> list[str]:
    """The pytest command lines that reach ``model`` at ``url``: the user's own tests, and the
    built-in suites (which need the catalog entry describing the model, when it is one).
    Rows are labelled with the tiers' server kind, which LiteLLM's answers do not reveal."""
    endpoint = (
        f"pytest --mlx-endpoint={shlex.quote(url)} --mlx-endpoint-model={shlex.quote(model)} "
        f"--mlx-server-label={shlex.quote(server)}"
    )
    lines = [f"    {endpoint}"]
    if ":" in label:  # a catalog model: ID:QUANT
        lines.append(f"    {endpoint} --mlx-suites=smoke,harness --mlx-models={shlex.quote(label)}")
    return lines


def _watch(stack: Stack, home: Path) -> int:
    """Wait for Ctrl-C/SIGTERM; end early if a service dies or ``mlxstack down`` ran."""
    from pytest_mlxstack.process.registry import PidRegistry

    registry = PidRegistry(home)
    while True:
        time.sleep(WATCH_INTERVAL_S)
        records = {(r.name, r.pid): r for r in registry.records()}
        for service in stack.services:
            record = records.get((service.name, service.pid))
            if record is None:
                print("mlxstack: the stack was stopped by 'mlxstack down'", flush=True)
                return 0
            if not registry.is_alive(record):
                print(
                    f"mlxstack: service {service.name} (pid {service.pid}) exited; "
                    f"see its log: {service.log_path}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1


def _raise_on_sigterm() -> None:
    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)


def _require_stack_extra(*, litellm: bool) -> None:
    """One sentence naming what is missing, before anything starts: vllm-mlx, an MLX backend
    that can run here, and (unless ``--no-litellm``) the LiteLLM proxy and what it imports."""
    from pytest_mlxstack.stack.requirements import (
        LITELLM_PROXY_MODULES,
        installed,
        mlx_backend_problem,
    )

    missing = [] if installed("vllm_mlx") else ["vllm-mlx"]
    proxy_missing = []
    if litellm:
        if not installed("litellm"):  # importing litellm itself takes seconds: only look
            missing.append("litellm[proxy]")
        else:
            proxy_missing = [m for m in LITELLM_PROXY_MODULES[1:] if not _imports(m)]
    if missing:
        raise CliError(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed, "
            f"so no stack can start; install the stack extra: {STACK_EXTRA}"
        )
    problem = mlx_backend_problem()
    if problem is not None:
        raise CliError(f"no tier can start: {problem}")
    if proxy_missing:
        raise CliError(
            "litellm is installed without its proxy dependencies (cannot import: "
            f"{', '.join(proxy_missing)}), so LiteLLM cannot start; install the stack extra, "
            f"which brings litellm[proxy]: {STACK_EXTRA} (or serve the tiers with --no-litellm)"
        )


def _imports(module: str) -> bool:
    """Whether ``module`` really imports (installed but broken counts as missing)."""
    try:
        importlib.import_module(module)
    except Exception:  # ImportError, or whatever a broken installation raises
        return False
    return True


def _say(line: str) -> None:
    """A progress line (a model download) on stderr, so that stdout stays the summary."""
    print(f"mlxstack: {line}", file=sys.stderr, flush=True)


def _one_line(exc: Exception) -> str:
    """A stack error as one line: a service that did not start keeps its first line, the path
    of its log and the log's last line (usually the exception that ended it)."""
    from pytest_mlxstack.process.services import ServiceStartError

    first = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if not isinstance(cause, ServiceStartError):
        return first
    parts = [first]
    if cause.log_path is not None and str(cause.log_path) not in first:
        parts.append(f"log: {cause.log_path}")
    last = next(
        (line.strip() for line in reversed(cause.log_tail.splitlines()) if line.strip()), ""
    )
    if last:  # a server's log may be coloured, or quote a model: no terminal sequences
        parts.append(f"its last log line: {one_line(last, 300)}")
    return "; ".join(parts)


# -- status, logs, down ----------------------------------------------------------------------


def _env(args: argparse.Namespace) -> int:
    """``eval "$(mlxstack env)"``: the newest running stack as OPENAI_BASE_URL/OPENAI_API_KEY
    for clients, and as MLXSTACK_ENDPOINT/MLXSTACK_API_KEY/MLXSTACK_ENDPOINT_MODEL for
    ``pytest --mlx-endpoint`` (the key is printed: that is what this command is for; ``up``
    never prints it)."""
    from pytest_mlxstack.stack.control import running_endpoints

    home = _home(args)
    endpoints = running_endpoints(home)
    if not endpoints:
        raise CliError(
            f"no stack started by 'mlxstack up' is running under {home}",
            "start one with: mlxstack up --detach",
        )
    chosen = endpoints[0]
    if len(endpoints) > 1:
        print(f"# {len(endpoints)} stacks are running; this is the newest, {chosen.stack}")
    models = ", ".join(chosen.models) or "see $OPENAI_BASE_URL/models"
    print(f"# stack {chosen.stack}; models: {models}")
    print(f"export OPENAI_BASE_URL={shlex.quote(chosen.base_url)}")
    print(f"export OPENAI_API_KEY={shlex.quote(chosen.api_key)}")
    print("# for pytest: the same server as --mlx-endpoint (pytest --mlx-suites=smoke,harness)")
    print(f"export MLXSTACK_ENDPOINT={shlex.quote(chosen.base_url)}")
    print(f"export MLXSTACK_API_KEY={shlex.quote(chosen.api_key)}")
    if chosen.models:  # else the server lists its one model itself
        print(f"export MLXSTACK_ENDPOINT_MODEL={shlex.quote(chosen.models[0])}")
    if chosen.server:  # behind LiteLLM the server cannot be detected from its answers
        print(f"export MLXSTACK_SERVER_LABEL={shlex.quote(chosen.server)}")
    label = next(iter(chosen.model_labels), "")
    if ":" in label:  # a catalog model: the suites need the entry that describes it
        print(f"# built-in suites: pytest --mlx-suites=smoke,harness --mlx-models={label}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from pytest_mlxstack.stack.control import status_rows

    home = _home(args)
    rows = status_rows(home)
    if not rows:
        print(f"mlxstack: no services recorded under {home}")
        return 0
    table = [("SERVICE", "PID", "PORT", "HEALTH", "UPTIME", "MODEL", "STACK", "OWNER", "URL")]
    for row in rows:
        table.append(
            (
                row.service,
                str(row.pid),
                str(row.port),
                row.health,
                _duration(row.uptime_s),
                row.model or "-",
                row.stack or "-",
                row.owner,
                row.url,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    orphans = [row for row in rows if row.owner_gone]
    if orphans:
        print(
            f"mlxstack: {len(orphans)} service(s) belong to a session that is gone (killed "
            "before it could stop them); the next pytest session with this home stops them"
        )
    return 0


def _logs(args: argparse.Namespace) -> int:
    from pytest_mlxstack.process.services import read_tail
    from pytest_mlxstack.stack.control import find_service, known_secrets
    from pytest_mlxstack.stack.errors import StackError

    if args.lines < 1:
        raise CliError(f"--lines {args.lines} is not a positive number; give e.g. --lines 50")
    home = _home(args)
    try:
        record = find_service(home, args.service)
    except StackError as exc:
        raise CliError(str(exc)) from None
    secrets = known_secrets(home, [record.labels.get("stack", "")])
    path = Path(record.log_path)
    if not path.is_file():
        raise CliError(f"The log of {record.name} ({path}) is gone; it was removed after start")
    print(redact_text(read_tail(path, args.lines), secrets), flush=True)
    if args.follow:
        _follow(path, secrets)
    return 0


def _follow(path: Path, secrets: list[str]) -> None:
    """Print what is appended to ``path`` until Ctrl-C (whole lines, redacted)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        pending = b""
        try:
            while True:
                chunk = handle.read()
                if not chunk:
                    time.sleep(0.2)
                    continue
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    print(redact_text(line.decode("utf-8", "replace"), secrets), flush=True)
        except KeyboardInterrupt:
            return


def _down(args: argparse.Namespace) -> int:
    from pytest_mlxstack.stack.control import stop_cli_stacks

    grace = _grace_period(args)
    home = _home(args)
    stopped = stop_cli_stacks(home, grace_period=grace)
    if not stopped:
        print(f"mlxstack: nothing to stop under {home}")
        return 0
    for record in stopped:
        print(f"mlxstack: stopped {record.name} (pid {record.pid}, port {record.port})")
    return 0


# -- helpers ---------------------------------------------------------------------------------


def _home(args: argparse.Namespace) -> Path:
    """The state directory, refused in one sentence when it cannot be a directory (it, or a
    parent, is a file): otherwise ``status`` would report an empty home and ``up`` would end
    in a ``NotADirectoryError`` traceback."""
    home: Path = args.home.expanduser() if args.home is not None else default_home()
    return _checked(not_a_file, home, args)


def _home_name(args: argparse.Namespace) -> str:
    """How the user named the home: the option, the environment variable, or the default."""
    if args.home is not None:
        return "--home"
    return f"${HOME_ENV}" if os.environ.get(HOME_ENV) else "the default home"


def _checked(check: Callable[..., Path], home: Path, args: argparse.Namespace) -> Path:
    return _checked_value(lambda: check(home, name=_home_name(args)))


def _grace_period(args: argparse.Namespace) -> float:
    return _checked_value(lambda: seconds(args.grace_period, name="--grace-period"))


def _checked_value(check: Callable[[], _T]) -> _T:
    """The value ``check()`` returns; its ``SettingError`` becomes the CLI's sentence."""
    try:
        return check()
    except SettingError as exc:
        raise CliError(exc.problem, exc.fix, where=exc.where) from None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
