"""Per-agent readiness: can Claude Code, Codex or a Chat Completions agent work with a model?

Each agent speaks one protocol and needs a few capabilities of it (Claude Code: Anthropic
Messages; Codex: the Responses API; OpenCode, Aider, Continue: Chat Completions with tools and
streaming). A model is ready for an agent on a route when every needed cell passed there; the
summary line names the route(s) it is ready on, or the failed cells and whose fault they are.
A known failure (an expectation) still blocks: the agent would hit it. No needed cell recorded
on any route reads "not probed", never "ready".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_mlxstack.matrix.model import Matrix, Row
from pytest_mlxstack.matrix.summary import server_of
from pytest_mlxstack.matrix.verdicts import Route, Verdict


@dataclass(frozen=True)
class Agent:
    name: str
    protocol: str
    needs: tuple[str, ...]


AGENTS = (
    Agent("Claude Code", "Anthropic Messages", ("messages_api",)),
    Agent("Codex", "Responses API", ("responses_api",)),
    Agent(
        "Chat Completions agents (OpenCode, Aider, Continue)",
        "Chat Completions",
        ("inference", "streaming", "tool_calling", "tool_calling_streaming", "tool_result"),
    ),
)
ROUTE_WORDS = {Route.DIRECT.value: "direct", Route.PROXIED.value: "through LiteLLM"}


@dataclass
class Readiness:
    """One agent against one row: the routes it is ready on, and what blocks the others."""

    agent: Agent
    ready_on: list[str] = field(default_factory=list)
    # route -> "capability failed (attribution)" / "capability n/a" / "capability not probed"
    blockers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def probed(self) -> bool:
        return bool(self.ready_on or self.blockers)

    @property
    def ready(self) -> bool:
        return bool(self.ready_on)

    def line(self) -> str:
        """``Claude Code: ready direct; not through LiteLLM, because messages_api failed
        (proxy)`` or ``Codex: not ready, because ...``."""
        name = self.agent.name
        if not self.probed:
            return f"{name}: not probed ({', '.join(self.agent.needs)} not in the matrix)"
        blocked = "; ".join(
            f"{ROUTE_WORDS.get(route, route)}: {', '.join(why)}"
            for route, why in self.blockers.items()
        )
        if not self.ready:
            return f"{name}: not ready, because {blocked}"
        ready = " and ".join(ROUTE_WORDS.get(route, route) for route in self.ready_on)
        if not self.blockers:
            return f"{name}: ready ({ready})"
        return f"{name}: ready {ready}; not {blocked}"


def row_readiness(row: Row) -> list[Readiness]:
    """Every agent's readiness for ``row``."""
    routes = sorted({cell.route.value for cell in row.cells})
    found = []
    for agent in AGENTS:
        readiness = Readiness(agent)
        for route in routes:
            cells = [row.cell(capability, route) for capability in agent.needs]
            if all(cell is None for cell in cells):
                continue
            why = []
            for capability, cell in zip(agent.needs, cells, strict=True):
                if cell is None:
                    why.append(f"{capability} not probed")
                elif cell.verdict is Verdict.FAIL:
                    blame = cell.attribution.value if cell.attribution else "unattributed"
                    why.append(f"{capability} failed ({blame})")
                elif cell.verdict is not Verdict.PASS:
                    why.append(f"{capability} {cell.verdict.value}")
            if why:
                readiness.blockers[route] = why
            else:
                readiness.ready_on.append(route)
        found.append(readiness)
    return found


@dataclass
class ServerReadiness:
    """One agent on one server kind: how many of its models are ready."""

    server: str
    agent: Agent
    ready: int
    probed: int

    def line(self) -> str:
        return f"{self.agent.name}: {self.ready} of {self.probed} model(s) ready on {self.server}"


def server_readiness(matrix: Matrix) -> list[ServerReadiness]:
    """Per server kind and agent, the models ready for it (on any route)."""
    tally: dict[tuple[str, str], ServerReadiness] = {}
    for row in matrix.rows:
        server = server_of(row, matrix)
        for readiness in row_readiness(row):
            if not readiness.probed:
                continue
            key = (server, readiness.agent.name)
            entry = tally.setdefault(key, ServerReadiness(server, readiness.agent, 0, 0))
            entry.probed += 1
            entry.ready += int(readiness.ready)
    return list(tally.values())


def readiness_lines(matrix: Matrix) -> list[str]:
    """The terminal summary: one block per model, then one line per server and agent."""
    lines = []
    for row in matrix.rows:
        probed = [r for r in row_readiness(row) if r.probed]
        if not probed:
            continue
        lines.append(f"{row.model} [{row.quant}] on {server_of(row, matrix)}:")
        lines += [f"  {readiness.line()}" for readiness in probed]
    lines += [entry.line() for entry in server_readiness(matrix)]
    return lines
