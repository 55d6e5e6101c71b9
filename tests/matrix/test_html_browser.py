"""The matrix page in a real headless Chromium at 1,400 x 900: it asks the network for nothing,
logs no error, fits the width without horizontal scrolling, keeps its headers in sight, opens
evidence as a readable panel, and runs no script but its own. Screenshots are kept as
artefacts (their paths are test properties, in the JUnit XML and the report section).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import Browser, chromium_or_skip

from pytest_mlxstack.matrix.collect import MatrixCollector, cell_payload, row_payload
from pytest_mlxstack.matrix.expectations import parse_expectations
from pytest_mlxstack.matrix.html import render_html
from pytest_mlxstack.matrix.model import Matrix, RunMetadata, load_matrix
from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Verdict

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 1400, 900
HOSTILE = '<script>alert("pwned")</script><img src="https://evil.example/x.png" onerror=alert(1)>'
MODELS = [
    ("mlx-community/Qwen3-30B-A3B-Instruct-2507-4bit", "4bit"),
    ("mlx-community/Llama-3.3-70B-Instruct-4bit", "4bit"),
    ("mlx-community/gemma-3-27b-it-qat-4bit", "4bit"),
    ("mlx-community/Mistral-Small-3.2-24B-Instruct-2506-8bit", "8bit"),
    ("mlx-community/DeepSeek-R1-Distill-Qwen-32B-bf16", "bf16"),
    ("tiny-chat", "bf16"),
]
CAPABILITIES = [f"capability_number_{n:02d}" for n in range(17)] + [
    "inference",
    "system_prompt",
    "multi_turn",
    "streaming",
    "tool_calling",
    "tool_calling_streaming",
    "thinking",
    "errors",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    executable = chromium_or_skip()
    started = Browser(
        executable, tmp_path_factory.mktemp("chromium-profile"), width=WIDTH, height=HEIGHT
    )
    try:
        yield started
    finally:
        started.close()


def keep(request: pytest.FixtureRequest, record_property, path: Path) -> Path:
    """Attach an artefact's path to the report (JUnit property and a report section); with
    ``MLXSTACK_TEST_ARTIFACTS`` set (CI uploads that folder), a copy goes there too."""
    folder = os.environ.get("MLXSTACK_TEST_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        path = Path(shutil.copy2(path, Path(folder) / path.name))
    record_property(f"artefact-{path.stem}", str(path))
    request.node.add_report_section("call", "artefacts", f"{path.stem}: {path}")
    return path


def big_matrix(at: int = 0) -> Matrix:
    """Six models, 25 capabilities, both routes, failures of every kind, hostile output,
    performance figures: what the page must hold at 1,400 px."""
    collector = MatrixCollector(
        parse_expectations(
            [{"model": "tiny-chat", "capability": "thinking", "verdict": "fail", "reason": "r"}]
        )
    )
    blames = list(Attribution)
    for m, (model, quant) in enumerate(MODELS):
        for c, capability in enumerate(CAPABILITIES):
            for route in ("direct", "proxied"):
                if route == "direct" and c % 5 == 1:
                    continue  # some capabilities are only probed through the proxy
                failing = (m + c + at) % 4 == 0 or (capability == "thinking" and m == 5)
                verdict = Verdict.FAIL if failing else Verdict.PASS
                if (m * 3 + c) % 11 == 0:
                    verdict = Verdict.SKIP if c % 2 else Verdict.NOT_APPLICABLE
                result = ProbeResult(
                    capability=capability,
                    verdict=verdict,
                    reason=(
                        f"the model answered in prose instead of calling a tool: {HOSTILE}"
                        if verdict is Verdict.FAIL
                        else ("no reasoning parser configured" if verdict is Verdict.SKIP else "")
                    ),
                    attribution=blames[(m + c) % len(blames)] if verdict is Verdict.FAIL else None,
                    evidence=Evidence(
                        request={
                            "model": model,
                            "messages": [
                                {"role": "system", "content": "You are terse."},
                                {"role": "user", "content": "What is the weather in Paris?"},
                            ],
                            "tools": ["get_weather"],
                            "max_tokens": 512,
                        },
                        response={"status": 200, "content": HOSTILE, "finish_reason": "stop"},
                        duration_s=0.25,
                        prompt_tokens=178,
                        completion_tokens=29,
                        notes=["a note with a newline\nand a second line"],
                    ),
                )
                collector.add_cell(cell_payload(result, model=model, quant=quant, route=route))
        collector.add_row(
            row_payload(
                model=model,
                quant=quant,
                repo=model if "/" in model else None,
                startup_s=4.0 + m * 7.5,
                memory_mb=900.0 + m * 4100,
                server_starts=1,
                ttft_s=0.05 + m * 0.11,
                decode_tokens_per_s=140.0 - m * 19,
                prompt_tokens_per_s=1800.0 - m * 250,
            )
        )
    return collector.build(
        RunMetadata(
            run_id=f"2026120{at + 1}T000000Z-aaaaa{at}",
            created_at=f"2026-12-0{at + 1}T00:00:00Z",
            profile="linux-x86_64 AMD EPYC 24GiB",
            platform="Linux-6.18-x86_64",
            system="Linux",
            machine="x86_64",
            chip="AMD EPYC",
            python="3.11.7",
            versions={"vllm-mlx": "0.6.0", "litellm": "1.106.2"},
        )
    )


def check_page(browser: Browser, page: Path) -> None:
    visit = browser.visit(page)
    assert visit.requests == []  # no network request: fonts, images, scripts, nothing
    assert visit.problems == []  # no console error, no CSP violation, no exception
    assert browser.evaluate("document.documentElement.dataset.ready") == "1"  # its script ran
    width = browser.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"the page is {width} px wide at a {WIDTH} px window"


def test_the_published_matrix_reads_in_a_browser_without_scrolling_sideways(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest, record_property
) -> None:
    page = tmp_path / "latest.html"
    page.write_text(render_html(load_matrix(REPO / "matrices" / "latest.json")), "utf-8")

    check_page(browser, page)

    keep(request, record_property, browser.screenshot(tmp_path / "published-1400x900.png"))
    keep(
        request,
        record_property,
        browser.screenshot(tmp_path / "published-full.png", full_page=True),
    )
    # A failing cell says why and whose fault it is without opening anything.
    first_failure = browser.evaluate(
        "(() => { const c = document.querySelector('td.cell.fail'); "
        "const r = c.getBoundingClientRect(); const w = c.querySelector('.why'); "
        "return [w.innerText, r.width, w.getBoundingClientRect().height]; })()"
    )
    assert "PARSER" in first_failure[0].upper() or "MODEL" in first_failure[0].upper()
    assert first_failure[2] > 0  # the reason is rendered, not hidden behind "evidence"


def test_evidence_opens_as_a_readable_panel_and_escape_closes_it(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest, record_property
) -> None:
    page = tmp_path / "latest.html"
    published = load_matrix(REPO / "matrices" / "latest.json")
    page.write_text(render_html(published), "utf-8")
    check_page(browser, page)

    browser.click("td.cell.fail details.evidence > summary")

    panel = browser.evaluate(
        "(() => { const p = document.querySelector('details.evidence[open] > .panel'); "
        "const r = p.getBoundingClientRect(); "
        "return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, "
        "text: p.innerText, open: document.querySelectorAll('details.evidence[open]').length}; "
        "})()"
    )
    keep(request, record_property, browser.screenshot(tmp_path / "evidence-panel.png"))
    assert panel["open"] == 1
    assert panel["left"] >= 0
    assert panel["top"] >= 0
    assert panel["right"] <= WIDTH
    assert panel["bottom"] <= HEIGHT
    assert panel["right"] - panel["left"] > 800  # readable width, not a 100 px column
    # The panel shows the clicked cell's request as it was sent: its last user message.
    capability, _, rest = panel["text"].splitlines()[0].partition(" · ")
    model = rest.split(" [", 1)[0]
    asked = set()  # the model's failing cell on each server it was served by
    for row in (row for row in published.rows if row.model == model):
        for cell in row.cells:
            if cell.capability == capability and cell.verdict.value == "fail":
                request_ = cell.evidence.request
                sent = [m for m in request_.get("messages", []) if m.get("role") == "user"]
                asked.add(str(sent[-1]["content"]) if sent else "")
    assert asked, (capability, model)
    for part in ("REQUEST", "RESPONSE", "whose fault: "):
        assert part.lower() in panel["text"].lower(), part
    assert any(text.lower() in panel["text"].lower() for text in asked), asked
    browser.press("Escape")
    assert browser.evaluate("document.querySelectorAll('details.evidence[open]').length") == 0
    assert browser.more_problems() == []


def test_six_models_and_25_capabilities_fit_1400_px_with_sticky_headers_and_trends(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest, record_property
) -> None:
    history = [big_matrix(at=at) for at in range(4)]
    page = tmp_path / "big.html"
    page.write_text(render_html(big_matrix(at=4), history=history), "utf-8")

    check_page(browser, page)

    keep(request, record_property, browser.screenshot(tmp_path / "big-1400x900.png"))
    columns = browser.evaluate("document.querySelectorAll('table.grid thead th').length")
    assert columns == 1 + len(MODELS)
    rows = browser.evaluate("document.querySelectorAll('table.grid tbody tr').length")
    assert rows == len(CAPABILITIES)
    # Five earlier-or-current points per route: the trend of the last runs.
    assert browser.evaluate("document.querySelector('svg.trend').childElementCount") == 5
    # Scrolled to the last capability, the model names still head the columns.
    browser.evaluate("document.querySelector('table.grid tbody tr:last-child').scrollIntoView()")
    header_top = browser.evaluate(
        "document.querySelector('table.grid thead th').getBoundingClientRect().top"
    )
    assert 0 <= header_top < 2
    keep(request, record_property, browser.screenshot(tmp_path / "big-scrolled.png"))
    # The hostile model output is text on the page, never an element.
    assert browser.evaluate("document.querySelectorAll('img, iframe, object').length") == 0
    assert browser.evaluate("document.scripts.length") == 1
    assert HOSTILE in browser.evaluate("document.body.textContent")


def test_a_script_slipped_into_the_page_is_refused_by_its_policy(
    browser: Browser, tmp_path: Path
) -> None:
    """Should escaping ever fail, the hash-pinned policy still refuses any other script."""
    html = render_html(big_matrix())
    injected = "<script>document.title = 'ran';</script>"
    page = tmp_path / "injected.html"
    page.write_text(html.replace("<h1>", injected + "<h1>", 1), "utf-8")

    visit = browser.visit(page)

    assert browser.evaluate("document.title") == "Compatibility matrix"
    assert any("Content Security Policy" in problem for problem in visit.problems)


NO_BROWSER = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from browser_helpers import chromium_or_skip

def test_page():
    chromium_or_skip()
"""


@pytest.mark.parametrize(("required", "outcome"), [("1", "failed"), ("0", "skipped")])
def test_without_chromium_the_browser_tests_skip_loudly_or_fail_when_required(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: str, outcome: str
) -> None:
    monkeypatch.delenv("MLXSTACK_CHROMIUM", raising=False)
    monkeypatch.setenv("MLXSTACK_REQUIRE_STACK", required)
    monkeypatch.setenv("PATH", str(pytester.path))  # no browser on it
    pytester.makepyfile(test_page=NO_BROWSER)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")

    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(["*headless Chromium is not installed*install-chromium.sh*"])
