"""No secret in what pytest prints about a failure: HF_TOKEN and the LiteLLM master key stay
out of the terminal and the junit XML under ``-l``, ``-l -vv``, ``--tb=long`` and
``--full-trace``, whichever way the run fails (a service that does not start, LiteLLM that
does not start, a request through the proxy that fails)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from core_helpers import TOY_SERVER

from pytest_mlxstack.process.registry import PidRegistry
from pytest_mlxstack.text.secrets import RedactedEnv, Secret
from pytest_mlxstack.wiring.skips import skip_no_litellm, skip_no_openai, skip_no_vllm

FAKE_TOKEN = "hf_FakeTokenForLeakTests0123456789"
REPORTING = [
    ("-l",),
    ("-l", "-vv"),
    ("-l", "--tb=long"),
    ("-l", "--full-trace"),
]


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.Pytester]:
    """An inner session with HF_TOKEN set in its environment and a home of its own."""
    home = pytester.path / "mlxhome"
    monkeypatch.setenv("MLXSTACK_HOME", str(home))
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.delenv("MLXSTACK_GRACE_PERIOD", raising=False)
    yield pytester
    PidRegistry(home).reap_orphans(grace_period=1)


def _printed(pytester: pytest.Pytester, *options: str) -> tuple[str, str]:
    """The terminal output and the junit XML of an inner run with ``options``."""
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--junitxml={junit}", *options
    )
    return result.stdout.str() + result.stderr.str(), junit.read_text("utf-8")


@pytest.mark.parametrize("options", REPORTING, ids=" ".join)
def test_a_failed_service_start_never_shows_hf_token(
    inner: pytest.Pytester, options: tuple[str, ...]
) -> None:
    inner.makepyfile(
        f"""
        import os, sys

        def test_start(service_manager):
            token = os.environ["HF_TOKEN"]  # the user's own local, too
            env = {{"EXTRA_API_KEY": token, "MODE": "crash"}}
            service_manager.start(
                "toy", [sys.executable, {str(TOY_SERVER)!r}, "--port", "{{port}}",
                        "--mode", "crash", "--echo-env", "HF_TOKEN"], env=env)
        """
    )
    terminal, junit = _printed(inner, *options)

    assert "exited with code 3 during start-up" in terminal  # it did fail where meant to
    assert "test_start" in junit
    assert FAKE_TOKEN not in terminal
    assert FAKE_TOKEN not in junit
    assert "[REDACTED]" in terminal  # the locals are shown, with the value hidden


def test_secret_holders_print_as_placeholders() -> None:
    env = RedactedEnv({"HF_TOKEN": FAKE_TOKEN, "PATH": "/usr/bin", "MY_API_KEY": "abcdefgh"})

    assert FAKE_TOKEN not in repr(env)
    assert "abcdefgh" not in repr(env)
    assert "'PATH': '/usr/bin'" in repr(env)
    assert env["HF_TOKEN"] == FAKE_TOKEN  # still the real mapping for subprocess
    assert FAKE_TOKEN not in repr(Secret(FAKE_TOKEN)) + str(Secret(FAKE_TOKEN))
    assert Secret(FAKE_TOKEN).reveal() == FAKE_TOKEN


STACK_FAILURES = """
from pathlib import Path

from pytest_mlxstack.stack import start_stack
from pytest_mlxstack.stack.masterkey import MasterKey
from pytest_mlxstack.stack.spec import stack_spec_from_mapping

KEYS = Path(KEYS_PATH)


def _remember(key):
    with KEYS.open("a") as handle:
        handle.write(key.reveal() + "\\n")


def test_litellm_does_not_start(service_manager, tmp_path):
    key = MasterKey.generate()
    _remember(key)
    plain_key = key.reveal()  # the user's own local, too
    spec = stack_spec_from_mapping(
        {"tiers": {"fast": {"model": "tiny-chat"}}, "litellm": {"start_timeout": 0.2}}
    )
    start_stack(spec, manager=service_manager, directory=tmp_path / "s", key=key)


def test_request_through_the_proxy_fails(mlx_stack, openai_client):
    _remember(mlx_stack.master_key)
    openai_client.chat.completions.create(
        model="no-such-tier", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
"""


@skip_no_vllm
@skip_no_litellm
@skip_no_openai
@pytest.mark.parametrize(
    "options", [("-l", "-vv", "--tb=long"), ("-l", "--full-trace")], ids=" ".join
)
def test_stack_failures_never_show_the_master_key_or_hf_token(
    inner: pytest.Pytester, options: tuple[str, ...]
) -> None:
    keys = inner.path / "keys.txt"
    inner.makepyfile(STACK_FAILURES.replace("KEYS_PATH", repr(str(keys))))
    terminal, junit = _printed(inner, *options)

    assert "LiteLLM did not start" in terminal
    assert "no-such-tier" in terminal
    assert "2 failed" in terminal
    master_keys = keys.read_text("utf-8").split()
    assert len(master_keys) == 2
    for secret in [FAKE_TOKEN, *master_keys]:
        assert secret not in terminal
        assert secret not in junit


def test_a_secret_in_an_assertion_message_is_cut_from_the_report(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import os

        def test_compare():
            assert os.environ["HF_TOKEN"] == "something else"
        """
    )
    terminal, junit = _printed(inner, "-l", "-vv")

    assert "1 failed" in terminal
    assert FAKE_TOKEN not in terminal
    assert FAKE_TOKEN not in junit


def test_a_passing_test_that_prints_a_secret_does_not_show_it_with_rp(
    inner: pytest.Pytester,
) -> None:
    inner.makepyfile(
        """
        import os

        def test_prints():
            print("token is", os.environ["HF_TOKEN"])
        """
    )
    terminal, junit = _printed(inner, "-rP", "-o", "junit_logging=all")

    assert "1 passed" in terminal
    assert "token is [REDACTED]" in terminal
    assert FAKE_TOKEN not in terminal
    assert FAKE_TOKEN not in junit


def test_a_hub_token_saved_by_login_is_cut_from_the_report(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = "hf_SavedByHuggingfaceCliLogin0123456"
    hf_home = inner.path / "hf-home"
    hf_home.mkdir()
    (hf_home / "token").write_text(saved)
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    inner.makepyfile(
        """
        from huggingface_hub import get_token

        def test_uses_the_saved_token():
            token = get_token()
            assert token == "something else"
        """
    )
    terminal, junit = _printed(inner, "-l", "-vv")

    assert "1 failed" in terminal
    assert saved not in terminal
    assert saved not in junit
