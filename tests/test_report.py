"""`infragym report`: one self-contained HTML file of runs, checked for its figures, for
escaping what episodes wrote, and in a real browser (headless Chromium, no network)."""

from __future__ import annotations

import asyncio
import base64
import html
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import chromium, find_chromium, open_page, png_pixels
from conftest import ROOT
from servicetask import GRADER, service_task

from infragym import ConfigError, rollout_many
from infragym.agent import ScriptedAgent, reference_agent
from infragym.env import ToolCall
from infragym.history import FaultAction, FaultEvent, History, OpEvent, OpType
from infragym.report import bootstrap_mean, bucket_history, paired_differences, render_report
from infragym.tasks import load_task

PAYLOAD = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
HOSTILE = "robust<script>alert(3)</script>"  # the agent's name: a run's label
INFRAGYM = [sys.executable, "-m", "infragym.cli.main"]


# -- statistics ------------------------------------------------------------------------


def test_the_bootstrap_interval_is_seeded_and_as_wide_as_theory_says() -> None:
    coin = [0.0, 1.0] * 50  # mean 0.5, standard error 0.05: the 95% interval is about ±0.098
    iv = bootstrap_mean(coin, seed=7)
    assert iv is not None and iv.low is not None and iv.high is not None
    assert iv.mean == 0.5 and iv.n == 100
    assert 0.38 <= iv.low <= 0.42 and 0.58 <= iv.high <= 0.62, iv
    spread = [(i * 0.618) % 1 for i in range(30)]
    assert bootstrap_mean(spread, seed=7) == bootstrap_mean(spread, seed=7)  # reproducible
    assert bootstrap_mean(spread, seed=7) != bootstrap_mean(spread, seed=8)
    same = bootstrap_mean([0.25, 0.25, 0.25])
    assert same is not None and (same.low, same.mean, same.high) == (0.25, 0.25, 0.25)
    one = bootstrap_mean([0.7])
    assert one is not None and one.low is None and "no interval" in str(one)
    assert bootstrap_mean([]) is None
    with pytest.raises(ConfigError):
        bootstrap_mean([0.1, math.nan])


def test_paired_differences_use_only_the_seeds_both_runs_graded() -> None:
    p = paired_differences({1: 0.2, 2: 0.5, 3: 0.9}, {2: 1.0, 3: 0.9, 4: 0.0})
    assert p.seeds == (2, 3) and p.differences == (0.5, 0.0)
    assert (p.wins, p.ties, p.losses) == (1, 1, 0)
    assert p.interval is not None and p.interval.mean == 0.25
    assert paired_differences({1: 0.1}, {2: 0.2}).interval is None


def test_the_timeline_buckets_by_intended_start_and_counts_unknown_outcomes_as_down() -> None:
    h = History()
    ops = [  # (id, intended, completion time, outcome)
        (1, 0.1, 0.15, OpType.OK), (2, 0.3, 0.32, OpType.OK), (3, 0.6, 0.9, OpType.FAIL),
        (4, 0.7, 1.9, OpType.INFO), (5, 0.8, 0.81, OpType.OK),
        (6, 1.2, 2.4, OpType.OK),  # intended in bucket 2, invoked late: still bucket 2
    ]  # fmt: skip
    for i, intended, done, kind in ops:
        h.append(OpEvent(OpType.INVOKE, i, "read", intended + (1.0 if i == 6 else 0.0),
                         key="k", intended=intended))  # fmt: skip
        h.append(OpEvent(kind, i, "read", done, key="k"))
    h.record_fault(FaultEvent(0.5, "pause", FaultAction.APPLY, "pause-1", ("n1",)))
    h.record_fault(FaultEvent(1.0, "pause", FaultAction.HEAL, "pause-1", ("n1",)))
    b = bucket_history(h, 0.5)
    assert b.starts[:3] == [0.0, 0.5, 1.0]
    assert (b.total[:3], b.ok[:3]) == ([2, 3, 1], [2, 1, 1])
    assert b.median_ms[0] == pytest.approx(35.0) and b.max_ms[0] == pytest.approx(50.0)
    # the fail answered (300 ms), the info did not: only answers have a latency
    assert b.median_ms[1] == pytest.approx(155.0) and b.max_ms[1] == pytest.approx(300.0)
    assert b.max_ms[2] == pytest.approx(1200.0)  # measured from the intended start


# -- two real runs ---------------------------------------------------------------------


def hostile_agent(task_dir: Path) -> ScriptedAgent:
    """The robust reference, then a command that prints markup: the transcript (the
    command and its output) is agent output a report must not run."""
    ref = reference_agent(load_task(task_dir), "robust")
    echo = ToolCall("bash", {"command": f"printf '%s\\n' '{PAYLOAD}'"})
    return ScriptedAgent([*ref.actions, echo], name=HOSTILE)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Two real runs of a tiny service task graded under a pause fault, seeds 1-3: the
    robust server (with a hostile transcript) and the broken one; seed 3's grading fails
    in both (a platform failure: no reward)."""
    if not ROOT:
        pytest.skip("needs root (the runs build hosts)")
    root = tmp_path_factory.mktemp("report")
    grader = GRADER.replace(
        "async def grade(ctx):\n",
        "async def grade(ctx):\n    if ctx.seed == 3:\n"
        "        raise RuntimeError('grader bug on seed 3')\n",
    )
    d = service_task(root, grader)
    robust, broken = root / "robust", root / "broken"
    asyncio.run(rollout_many(str(d), lambda: hostile_agent(d), [1, 2, 3], artifacts_dir=robust))
    asyncio.run(rollout_many(str(d), lambda: reference_agent(load_task(d), "broken"),
                             [1, 2, 3], artifacts_dir=broken))  # fmt: skip
    yield robust, broken


def body_of(page: str) -> str:
    """The document without its two inlined scripts (plotly.js and the boot script)."""
    return page.split("<script>", 1)[0]


def test_the_report_shows_rewards_intervals_pass_rates_and_platform_failures(
    runs: tuple[Path, Path],
) -> None:
    robust, broken = runs
    page = render_report([robust, broken])
    assert page == render_report([robust, broken]), "the same runs give the same bytes"
    body = body_of(page)
    text = re.sub(r"<[^>]+>", " ", body)
    assert "Pass: reward ≥ 1," in text  # the tiny task states no robust band
    # robust 1.0 on seeds 1-2, broken 0.0; seed 3 failed in both and counts in neither
    assert re.search(r"robust&lt;script&gt;alert\(3\)&lt;/script&gt;\s+3\s+2\s+1\s+0\s+"
                     r"1\.000 \[1\.000, 1\.000\]\s+2/2 = 100%", text), text[:3000]  # fmt: skip
    assert re.search(r"reference:broken\s+3\s+2\s+1\s+0\s+0\.000 \[0\.000, 0\.000\]\s+"
                     r"0/2 = 0%", text)  # fmt: skip
    assert re.search(r"2\s+-1\.000 \[-1\.000, -1\.000\]\s+0 / 0 / 2", text), "paired"
    assert text.count("no reward (platform failure)") == 2 * 2  # table row and heading
    assert text.count("Platform failure: no reward.") == 2
    assert "grader bug on seed 3" in text
    # the robust seeds' criteria and their fault timelines (a pause, measured)
    assert text.count("lost-writes") >= 2 and "serving (gate)" in text
    charts = re.findall(r'<div class="chart" data-fig="(fig-\d+)"', body)
    assert len(charts) >= 3 + 2, charts  # rewards, criteria, paired, two timelines
    assert all(f'id="{c}"' in page for c in charts), "every chart has its data"
    assert "pause n1" in page  # a timeline band's label


def test_what_episodes_wrote_is_escaped_never_markup(runs: tuple[Path, Path]) -> None:
    body = body_of(render_report(list(runs)))
    assert "alert(" in body  # the payload is there, as text
    assert "<script>alert" not in body and "</script><script>" not in body
    assert "<img" not in body and re.search(r"<[^>]*onerror", body) is None
    assert html.escape(PAYLOAD) in body
    # chart data blocks hold it JSON-escaped: no tag can end them
    for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', body, re.S):
        assert "<" not in block and ">" not in block


def test_the_command_writes_the_report_and_refuses_bad_input(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "r" / "report.html"
    r = subprocess.run([*INFRAGYM, "report", *map(str, runs), "-o", str(out)],
                       capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert out.is_file() and str(out) in r.stdout
    assert out.read_text(encoding="utf-8") == render_report(list(runs))
    bad = subprocess.run([*INFRAGYM, "report", str(tmp_path), "-o", str(out)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert bad.returncode == 2 and "holds no run store" in bad.stderr
    no_plotly = (
        "import sys; sys.modules['plotly'] = None; from infragym.cli.main import main; "
        f"sys.exit(main(['report', {str(runs[0])!r}, '-o', {str(out)!r}]))"
    )
    r = subprocess.run([sys.executable, "-c", no_plotly], capture_output=True, text=True,
                       timeout=60, check=False)  # fmt: skip
    assert r.returncode == 2 and "pip install 'infragym[report]'" in r.stderr, r.stderr
    twice = subprocess.run([*INFRAGYM, "report", str(runs[0]), str(runs[0])],
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert twice.returncode == 2 and "given twice" in twice.stderr


# -- in a browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path, why = find_chromium()
    if path is None:
        pytest.skip(why)
    return path


CHARTS_JS = "Array.from(document.querySelectorAll('div.chart'))"


async def _look(chromium_path: str, report: Path, shots: Path) -> dict[str, object]:
    """Open ``report``, bring every chart on screen until plotly drew it, and screenshot
    each; what the browser reported and saw."""
    async with chromium(chromium_path) as dt:
        s = await open_page(dt, report.resolve().as_uri())
        n = await dt.evaluate(s, f"{CHARTS_JS}.length")
        for i in range(n):  # drawn lazily, as they come near the screen
            await dt.evaluate(s, f"{CHARTS_JS}[{i}].scrollIntoView()")
            async with asyncio.timeout(60):
                while await dt.evaluate(s, f"{CHARTS_JS}[{i}].dataset.drawn") != "done":
                    await asyncio.sleep(0.05)
        svgs = await dt.evaluate(s, f"{CHARTS_JS}.map(c => c.querySelectorAll('.main-svg').length)")
        dom = await dt.evaluate(s, """({
            title: document.title,
            onerror: document.querySelectorAll('[onerror]').length,
            imgs: document.querySelectorAll('img').length,
            scripts: document.scripts.length,
            payload: Array.from(document.querySelectorAll('.transcript pre'))
                          .some(p => p.textContent.includes('alert(1)</script><img')),
            bands: document.querySelectorAll('.shapelayer path').length,
        })""")  # fmt: skip
        pictures = []
        for i in range(n):
            rect = await dt.evaluate(
                s,
                f"""(() => {{ const c = {CHARTS_JS}[{i}];
                c.scrollIntoView(); const r = c.getBoundingClientRect();
                const p = c.querySelector('.nsewdrag').getBoundingClientRect(); return {{
                x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height,
                plot: [p.left - r.left, p.top - r.top, p.right - r.left, p.bottom - r.top]}};
                }})()""",
            )
            shot = await dt.send("Page.captureScreenshot", {"format": "png",
                                 "captureBeyondViewport": True, "clip": {"x": rect["x"],
                                 "y": rect["y"], "width": rect["w"], "height": rect["h"],
                                 "scale": 1}}, s)  # fmt: skip
            data = base64.b64decode(shot["data"])
            (shots / f"chart{i + 1}.png").write_bytes(data)
            w, _, px = png_pixels(data)
            x0, y0, x1, y1 = (round(v) for v in rect["plot"])  # the plot area: no legend
            pictures.append((x1 - x0, y1 - y0, [px[y * w + x] for y in range(y0, y1)
                                                for x in range(x0, x1)]))  # fmt: skip
        return {"events": dt.events, "svgs": svgs, "dom": dom, "pictures": pictures}


def test_the_report_renders_in_chromium_offline_without_errors(
    runs: tuple[Path, Path], chromium_path: str, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    report.write_text(render_report(list(runs)), encoding="utf-8")
    seen = asyncio.run(_look(chromium_path, report, tmp_path))
    events: list[dict[str, object]] = seen["events"]  # type: ignore[assignment]

    def params(method: str) -> list[dict[str, object]]:
        return [e["params"] for e in events if e.get("method") == method]  # type: ignore[misc]

    urls = [p["request"]["url"] for p in params("Network.requestWillBeSent")]  # type: ignore[index]
    assert urls == [report.resolve().as_uri()], "the file itself and nothing else"
    assert not params("Runtime.exceptionThrown")
    assert [p for p in params("Runtime.consoleAPICalled") if p["type"] in ("error", "assert")] == []
    assert [p for p in params("Log.entryAdded") if p["entry"]["level"] == "error"] == []  # type: ignore[index]
    assert not params("Page.javascriptDialogOpening"), "an alert() of the payload ran"
    dom: dict[str, object] = seen["dom"]  # type: ignore[assignment]
    assert dom["title"] == "infragym report" and dom["scripts"] == 2 + len(seen["svgs"])  # type: ignore[arg-type]
    assert dom["onerror"] == 0 and dom["imgs"] == 0 and dom["payload"] is True
    assert dom["bands"], "the timelines' fault bands are drawn"
    svgs: list[int] = seen["svgs"]  # type: ignore[assignment]
    assert len(svgs) >= 5 and all(n >= 2 for n in svgs), svgs  # plotly's layers per chart
    # what was drawn in each plot area: many colours, and the data in its colours:
    # the rewards' bars (the first run's #1f77b4 at 55 % over white), the criteria's bars
    # (#1f77b4), the paired differences (the second run's #2ca02c), the timelines'
    # ok-fraction line (#1f77b4) and, in one at least, the pause band (#ff7f0e at 18 %)
    pictures: list[tuple[int, int, list[tuple[int, int, int]]]] = seen["pictures"]  # type: ignore[assignment]
    for i, (w, h, px) in enumerate(pictures):
        assert w > 600 and h > 150, (i, w, h)
        assert len(set(px)) > 40, f"chart {i + 1} looks blank: {len(set(px))} colours"
    blue, faded_blue, green = (31, 119, 180), (132, 180, 214), (44, 160, 44)
    expected = [faded_blue, blue, green] + [blue] * (len(pictures) - 3)
    for i, ((_, _, px), colour) in enumerate(zip(pictures, expected, strict=True)):
        assert drawn(px, colour) > 30, f"chart {i + 1}: no data drawn in {colour}"
    assert any(drawn(px, (255, 232, 212)) > 200 for _, _, px in pictures[3:]), "no pause band"


def drawn(pixels: list[tuple[int, int, int]], colour: tuple[int, int, int]) -> int:
    """How many pixels are (about) ``colour``."""
    return sum(1 for p in pixels if sum(abs(a - b) for a, b in zip(p, colour, strict=True)) < 12)


def test_chromium_is_found_or_the_skip_says_why() -> None:
    path, why = find_chromium()
    assert (path is None) == bool(why)
    if path is not None:
        assert os.access(path, os.X_OK)
