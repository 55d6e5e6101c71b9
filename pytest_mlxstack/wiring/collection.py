"""How the built-in suites (``pytest_mlxstack/suites/``) get collected.

``--mlx-catalog`` and ``--mlx-suites`` name suite modules; this module puts the suites' folder
in the arguments (not the files: a file argument's test ids have no path at all) and collects
the named modules from it, so test ids read ``smoke.py::test_capability[...]``. Such an id,
copied from a report, is an argument again: ``pytest --mlx-suites=smoke
'smoke.py::test_capability[tiny-chat-bf16-direct-inference]'`` runs that one test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SUITE_DIR = Path(__file__).resolve().parent.parent / "suites"
# The tiers in the order they run, by module name.
TIER_ORDER = ("catalog_suite", "smoke", "integration", "harness")
_INCLUDED = pytest.StashKey[set[str]]()


def include_suites(config: pytest.Config, *modules: str) -> None:
    """Run the built-in suite modules ``modules`` (names from ``TIER_ORDER``) in this session.

    Without test paths on the command line only built-in suites run (``testpaths`` and the
    working directory are ignored); with paths, the suites run beside them."""
    included = config.stash.setdefault(_INCLUDED, set())
    included.update(modules)
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args[:] = [arg for arg in config.args if is_builtin_suite(arg)]
    config.args[:] = [_real_path(arg, included) for arg in config.args]
    # A suite module given by name (a copied test id, or its file to order it among other
    # tests) is collected from that argument, where the user put it; else from the folder.
    named = any(
        is_builtin_suite(arg) and arg.partition("::")[0].endswith(".py") for arg in config.args
    )
    if not named and str(SUITE_DIR) not in config.args:
        config.args.append(str(SUITE_DIR))


def is_builtin_suite(arg: str) -> bool:
    """Whether a command-line argument names the suites' folder or one of its modules."""
    path = Path(arg.partition("::")[0]).resolve()
    return path == SUITE_DIR or (path.suffix == ".py" and path.parent == SUITE_DIR)


def tier_of(path: Path) -> str | None:
    """``catalog``, ``smoke``, ``integration`` or ``harness`` for a built-in suite module."""
    if path.parent != SUITE_DIR or path.stem not in TIER_ORDER:
        return None
    return path.stem.removesuffix("_suite")


def _real_path(arg: str, included: set[str]) -> str:
    """``smoke.py::test_x[id]`` (a test id copied from a report) as the module's real path,
    unless a file of that name exists where pytest runs."""
    file, sep, rest = arg.partition("::")
    name = Path(file)
    if name.parent != Path(".") or name.suffix != ".py" or name.stem not in included:
        return arg
    if name.exists():
        return arg
    return f"{SUITE_DIR / name}{sep}{rest}"


LAST = "test_clean_shutdown"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """The included suite modules, from their folder (their names do not match
    ``python_files``, so nothing else collects them there)."""
    config = parent.config
    if file_path.parent != SUITE_DIR or str(SUITE_DIR) not in config.args:
        return None
    if file_path.stem not in config.stash.get(_INCLUDED, set()):
        return None
    return pytest.Module.from_parent(parent, path=file_path)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The built-in tiers run in their order (catalog, smoke, integration, harness), whatever
    order their folder lists them in; other tests keep their places. Outside xdist the
    clean-shutdown check runs after the other built-in tests: it can then stop the suite
    stack's own LiteLLM instead of starting a second one (``suites/integration.py``)."""
    slots = [i for i, item in enumerate(items) if tier_of(item.path) is not None]
    ordered = sorted((items[i] for i in slots), key=lambda item: TIER_ORDER.index(item.path.stem))
    if not hasattr(config, "workerinput"):  # xdist workers must all keep one order
        ordered.sort(key=lambda item: item.path.stem == "integration" and item.name == LAST)
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item
