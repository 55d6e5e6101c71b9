from __future__ import annotations

from collections.abc import Iterator

import pytest

openai = pytest.importorskip("openai", reason="the probes need the harness extra (openai)")

from crafted_server import CraftedServer  # noqa: E402


@pytest.fixture(scope="module")
def crafted() -> Iterator[CraftedServer]:
    with CraftedServer() as server:
        yield server


@pytest.fixture
def client(crafted: CraftedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=crafted.url, api_key="sk-crafted-test-key")
