"""Known failures: a YAML file saying which cells are expected to fail, why, and where to read more.

A known failure then shows as xfail rather than breaking the build, and a cell expected to fail
that passes is flagged (in the matrix and the terminal summary) so that the entry gets removed.

Format::

    expectations:
      - model: tiny-chat-no-tools      # a catalog id or served name; shell-style * allowed
        capability: tool_calling
        route: proxied                 # optional: direct | proxied (default: both)
        quant: 4bit                    # optional (default: every quantization)
        server: vllm-mlx               # optional: the server kind (* allowed; default: any)
        verdict: fail                  # pass | fail | skip | n/a
        attribution: model             # optional, with verdict fail: whose fault it must be
        reason: the model was never trained on tool calls
        link: https://github.com/org/repo/issues/12   # optional

A bare list of entries (without the ``expectations:`` key) is accepted too. With
``attribution``, a failure is only the known one when it is attributed the same way: the same
capability failing for another reason (a parser bug where the model was blamed, a server that
did not start) fails the test, saying what was expected and what happened. With ``server``, a
rule applies only to runs on that server kind (``Expectations.server``; a run whose server is
unknown is matched by every rule), so one file can hold the faults of several servers.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.matrix.model import Expectation, ExpectationStatus
from pytest_mlxstack.matrix.verdicts import Attribution, Route, Verdict
from pytest_mlxstack.process.textfiles import FileReadError, read_text_file
from pytest_mlxstack.process.yamlfiles import YamlError, load_yaml

# A hand-written file of a few KB; anything this big is a wrong path.
MAX_EXPECTATIONS_BYTES = 2**20

_KNOWN_FIELDS = (
    "model",
    "capability",
    "route",
    "quant",
    "server",
    "verdict",
    "attribution",
    "reason",
    "link",
)
_VERDICTS = ", ".join(v.value for v in Verdict)
_Choice = TypeVar("_Choice", bound=Enum)


class ExpectationsError(MlxStackError, ValueError):
    """The expectations file is unusable; the message names file, entry, field and fix."""


@dataclass(frozen=True)
class ExpectationRule:
    model: str
    capability: str
    verdict: Verdict
    reason: str
    route: Route | None = None
    quant: str | None = None
    link: str | None = None
    attribution: Attribution | None = None
    where: str = ""
    server: str | None = None

    def _server_matches(self, server: str) -> bool:
        """``mlx-lm`` also matches ``mlx-lm@host:port``, the name of one of several servers of
        the same kind in an ``--mlx-endpoints`` run."""
        pattern = self.server or "*"
        kind = server.split("@", 1)[0]
        return any(fnmatch.fnmatchcase(name, pattern) for name in {server, kind})

    def matches(
        self, *, model: str, quant: str, capability: str, route: Route, server: str | None = None
    ) -> bool:
        return (
            fnmatch.fnmatchcase(model, self.model)
            and fnmatch.fnmatchcase(capability, self.capability)
            and (self.route is None or self.route == route)
            and (self.quant is None or fnmatch.fnmatchcase(quant, self.quant))
            and (self.server is None or server is None or self._server_matches(server))
        )

    def specificity(self) -> tuple[int, int, int, int, int]:
        """Exact names beat patterns, a given server, route or quant beats none."""
        return (
            int(not _is_pattern(self.model)),
            int(not _is_pattern(self.capability)),
            int(self.server is not None),
            int(self.route is not None),
            int(self.quant is not None),
        )


class Expectations:
    """The rules of one file; ``find`` returns the most specific rule for a cell."""

    def __init__(
        self,
        rules: Iterable[ExpectationRule] = (),
        *,
        source: str | None = None,
        server: str | None = None,
    ):
        self.rules = list(rules)
        self.source = source
        self.server = server  # the server kind of this run's rows (None: unknown)

    def __len__(self) -> int:
        return len(self.rules)

    def find(
        self,
        *,
        model: str,
        quant: str,
        capability: str,
        route: Route | str,
        server: str | None = None,
    ) -> ExpectationRule | None:
        """``server``: the row's own server, when it is not the run's (several endpoints)."""
        route = Route(route)
        server = server or self.server
        best: ExpectationRule | None = None
        for rule in self.rules:
            if not rule.matches(
                model=model, quant=quant, capability=capability, route=route, server=server
            ):
                continue
            if best is None or rule.specificity() > best.specificity():
                best = rule  # the first of equally specific rules wins: file order decides
        return best

    def judge(
        self,
        *,
        model: str,
        quant: str,
        capability: str,
        route: Route | str,
        verdict: Verdict,
        attribution: Attribution | str | None = None,
        server: str | None = None,
    ) -> Expectation | None:
        """How the actual ``verdict`` (and, for a failure, its ``attribution``) compares with
        what the file expects, if it says anything."""
        rule = self.find(
            model=model, quant=quant, capability=capability, route=route, server=server
        )
        if rule is None:
            return None
        return Expectation(
            verdict=rule.verdict,
            attribution=rule.attribution,
            reason=rule.reason,
            link=rule.link,
            status=compare(
                rule.verdict,
                verdict,
                expected_attribution=rule.attribution,
                actual_attribution=Attribution(attribution) if attribution else None,
            ),
        )


def compare(
    expected: Verdict,
    actual: Verdict,
    *,
    expected_attribution: Attribution | None = None,
    actual_attribution: Attribution | None = None,
) -> ExpectationStatus:
    """``known_failure`` needs the attribution too when the file names one."""
    if expected is Verdict.FAIL and actual is Verdict.FAIL:
        if expected_attribution is not None and actual_attribution is not expected_attribution:
            return "mismatch"
        return "known_failure"
    if expected is Verdict.FAIL and actual is Verdict.PASS:
        return "unexpected_pass"
    return "as_expected" if expected is actual else "mismatch"


def load_expectations(path: str | Path) -> Expectations:
    """Read and validate an expectations file; every problem is one ``ExpectationsError``."""
    path = Path(path)
    try:
        text = read_text_file(path, max_bytes=MAX_EXPECTATIONS_BYTES)
    except FileReadError as exc:
        if exc.problem == "does not exist":
            raise ExpectationsError(
                f"expectations file {path} does not exist; create it or fix the path given to "
                f"--mlx-expectations / mlx_expectations"
            ) from None
        raise ExpectationsError(
            f"expectations file {path} {exc.problem}; pass a YAML file"
        ) from None
    try:
        data = load_yaml(text, one_document="write every rule under one expectations: list")
    except YamlError as exc:
        raise ExpectationsError(
            f"{path}: {exc.problem}; {exc.fix} (see docs/matrix.md for the format)"
        ) from None
    return parse_expectations(data, source=str(path))


def parse_expectations(data: Any, *, source: str = "expectations") -> Expectations:
    if data is None:
        return Expectations(source=source)
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"expectations"})
        if unknown:
            raise ExpectationsError(
                f"{source}: unknown top-level key {unknown[0]!r}; the file holds one key, "
                f"'expectations', with a list of entries"
            )
        data = data.get("expectations") or []
    if not isinstance(data, list):
        raise ExpectationsError(
            f"{source}: 'expectations' must be a list of entries with model, capability and verdict"
        )
    return Expectations(
        (_parse_entry(entry, f"{source}: entry {index + 1}") for index, entry in enumerate(data)),
        source=source,
    )


def _parse_entry(entry: Any, where: str) -> ExpectationRule:
    if not isinstance(entry, dict):
        raise ExpectationsError(
            f"{where}: must be a mapping with model, capability and verdict, "
            f"not {type(entry).__name__}"
        )
    unknown = sorted(str(key) for key in entry if key not in _KNOWN_FIELDS)
    if unknown:
        raise ExpectationsError(
            f"{where}: unknown field {unknown[0]!r}; allowed fields are {', '.join(_KNOWN_FIELDS)}"
        )
    model = _required_text(entry, "model", where)
    capability = _required_text(entry, "capability", where)
    verdict_text = _required_text(entry, "verdict", where)
    try:
        verdict = Verdict(verdict_text)
    except ValueError:
        raise ExpectationsError(
            f"{where}: verdict {verdict_text!r} is not one of {_VERDICTS}"
        ) from None
    route = _optional_choice(entry, "route", Route, where, "leave it out to match both")
    reason = entry.get("reason")
    if verdict is not Verdict.PASS and not (isinstance(reason, str) and reason.strip()):
        raise ExpectationsError(
            f"{where}: field 'reason' is missing; say why {model} is expected to "
            f"{verdict.value} {capability}"
        )
    link = entry.get("link")
    if link is not None and not _is_web_link(str(link)):
        raise ExpectationsError(
            f"{where}: link {link!r} is not an http(s) URL; give the issue's web address"
        )
    attribution = _optional_choice(
        entry, "attribution", Attribution, where, "leave it out to accept any"
    )
    if attribution is not None and verdict is not Verdict.FAIL:
        raise ExpectationsError(
            f"{where}: attribution is given with verdict {verdict.value}; only a failure "
            f"has one, so remove it or expect fail"
        )
    quant = entry.get("quant")
    server = entry.get("server")
    if server is not None and not (isinstance(server, str) and server.strip()):
        raise ExpectationsError(
            f"{where}: server {server!r} is not a server kind; write e.g. server: vllm-mlx"
        )
    return ExpectationRule(
        model=model,
        capability=capability,
        verdict=verdict,
        reason=str(reason or "").strip(),
        route=route,
        quant=str(quant) if quant is not None else None,
        link=str(link) if link is not None else None,
        attribution=attribution,
        where=where,
        server=server.strip() if isinstance(server, str) else None,
    )


def _optional_choice(
    entry: dict[str, Any], field: str, choices: type[_Choice], where: str, hint: str
) -> _Choice | None:
    """``entry[field]`` as one of ``choices`` (an enum), ``None`` when it is left out."""
    value = entry.get(field)
    if value is None:
        return None
    try:
        return choices(str(value))
    except ValueError:
        allowed = ", ".join(str(choice.value) for choice in choices)
        raise ExpectationsError(
            f"{where}: {field} {value!r} is not one of {allowed}; {hint}"
        ) from None


def _required_text(entry: dict[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if value is None or not str(value).strip():
        raise ExpectationsError(f"{where}: field {name!r} is missing; add it")
    if not isinstance(value, str):
        raise ExpectationsError(f"{where}: field {name!r} must be a string, got {value!r}")
    return value.strip()


def _is_pattern(text: str) -> bool:
    return any(char in text for char in "*?[")


def _is_web_link(link: str) -> bool:
    parsed = urlparse(link)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)
