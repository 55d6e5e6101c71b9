"""What one capability probe concludes: a verdict, whose fault a failure is, and the evidence.

Shared by the probes (which produce results) and the matrix (which stores and renders them).
Everything here is plain JSON-able data so that results can travel on xdist test reports.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    NOT_APPLICABLE = "n/a"


class Attribution(str, enum.Enum):
    """Whose fault a failing cell is; the matrix shows this next to every ``fail``."""

    SERVER_DOWN = "server_down"  # connection refused, or the server crashed
    SERVER_ERROR = "server_error"  # the server answered 5xx
    PARSER = "parser"  # tool/think markup left in content instead of structured fields
    MODEL = "model"  # well-formed answer that lacks the capability
    # the model's or the parser's, and a client cannot tell which (e.g. tool-call arguments
    # that came back empty: never sent, or dropped by the parser)
    MODEL_OR_PARSER = "model_or_parser"
    PROXY = "proxy"  # works direct, fails through LiteLLM
    CLIENT = "client"  # the client library rejected or mangled the exchange
    TIMEOUT = "timeout"


class Route(str, enum.Enum):
    """How the probe reached the model."""

    DIRECT = "direct"  # straight to vllm-mlx
    PROXIED = "proxied"  # through LiteLLM


@dataclass
class Evidence:
    """Excerpts a reader needs to trust a verdict; all text is untrusted model output."""

    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)
    duration_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ProbeResult:
    capability: str
    verdict: Verdict
    reason: str = ""
    attribution: Attribution | None = None
    evidence: Evidence = field(default_factory=Evidence)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["attribution"] = self.attribution.value if self.attribution else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProbeResult:
        attribution = data.get("attribution")
        return cls(
            capability=data["capability"],
            verdict=Verdict(data["verdict"]),
            reason=data.get("reason", ""),
            attribution=Attribution(attribution) if attribution else None,
            evidence=Evidence(**data.get("evidence", {})),
        )
