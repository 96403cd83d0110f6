"""The report page: per task, the runs side by side (rewards, criteria, paired
differences); per episode, its outcome, fault timeline and transcript.

The file is self-contained (plotly.js inlined, no other resource) and reproducible: no
clock is read, chart ids are numbered in order and the bootstrap is seeded, so the same
runs give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import __version__
from ._charts import CriterionMeans, criteria_figure, paired_figure, plotly_js, reward_figure
from ._episodes import Options, run_episodes
from ._html import Charts, Html, el, header_row, join, page
from ._runs import PassRule, Run, pass_rule
from ._stats import RESAMPLES, bootstrap_mean, paired_differences, pass_count

BOOT = """(function () {
  "use strict";
  function draw(el) {
    if (el.dataset.drawn) return;
    el.dataset.drawn = "pending";
    var spec = JSON.parse(document.getElementById(el.dataset.fig).textContent);
    Plotly.newPlot(el, spec.data, spec.layout, spec.config).then(function () {
      el.dataset.drawn = "done";
    });
  }
  var charts = document.querySelectorAll("div.chart");
  if (!("IntersectionObserver" in window)) { charts.forEach(draw); return; }
  // drawn when near the screen: a report of many episodes opens at once
  var seen = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      if (e.isIntersecting) { seen.unobserve(e.target); draw(e.target); }
    });
  }, { rootMargin: "800px 0px" });
  charts.forEach(function (c) { seen.observe(c); });
})();
"""

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;
margin:0 auto;max-width:1180px;padding:16px 28px 60px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:20px;margin:34px 0 8px;border-bottom:2px solid
#dde3ea;padding-bottom:4px}h3{font-size:16px;margin:22px 0 6px}h4{margin:14px 0 4px}
table{border-collapse:collapse;margin:8px 0 12px;font-size:13px}
th,td{border:1px solid #d5dbe2;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f2f5f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#667}.chart{width:100%;min-height:300px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.done{background:#e3f4e6;color:#17622a}.platform-failed{background:#fde2e1;color:#9b1c1c}
.pending,.running{background:#eef0f3;color:#555}.pass{color:#17622a}.fail{color:#9b1c1c}
.unknown{color:#8a6d00}.nofault{color:#667;font-style:italic}
.failure{border-left:4px solid #c62828;background:#fff4f4;padding:6px 10px;margin:6px 0}
.episode{border:1px solid #dde3ea;border-radius:6px;padding:4px 14px 10px;margin:14px 0}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f8fa;border:1px solid #e4e7eb;
padding:6px 8px;margin:4px 0;max-height:480px;overflow:auto;font-size:12px}
details>summary{cursor:pointer;margin:2px 0}.msg{margin:6px 0 6px 0}
.role{font-weight:600;font-size:12px;color:#445}.msg.tool>summary{color:#345}
.call>summary{color:#0b5394;font-family:ui-monospace,monospace;font-size:12px}
.tool>summary{font-family:ui-monospace,monospace;font-size:12px}
.cut{color:#9b1c1c;font-style:italic}
"""


def render(runs: Sequence[Run], *, threshold: float | None, bucket_s: float, seed: int) -> str:
    """The whole report of ``runs`` as one HTML document."""
    opts = Options(threshold, bucket_s, seed)
    charts = Charts()
    tasks: dict[str, list[Run]] = {}
    for r in runs:
        tasks.setdefault(r.task, []).append(r)
    body = join(
        [
            el("h1", "infragym report"),
            el(
                "p",
                f"infragym {__version__}; {len(runs)} run(s) of {len(tasks)} task(s).",
                class_="muted",
            ),
            _runs_table(runs),
            _reading_notes(),
            *(_task_section(task, rs, opts, charts) for task, rs in tasks.items()),
            el("h2", "Episodes"),
            *(run_episodes(i, r, opts, charts) for i, r in enumerate(runs)),
            *charts.blocks,
        ]
    )
    return page("infragym report", body, style=STYLE, scripts=[plotly_js(), BOOT])


def _runs_table(runs: Sequence[Run]) -> Html:
    head = header_row("run", "task", "agent", "model", "seeds", "platform", "directory")
    rows = [
        el(
            "tr",
            el("td", el("a", r.label, href=f"#run-{i}")),
            el("td", r.task),
            el("td", str(r.config.get("agent"))),
            el("td", str(r.config.get("model") or "—")),
            el("td", str(len(r.episodes)), class_="num"),
            el("td", str(r.config.get("platform_version", "?"))),
            el("td", str(r.path)),
        )
        for i, r in enumerate(runs)
    ]
    return el("table", head, *rows)


def _reading_notes() -> Html:
    return el(
        "ul",
        el(
            "li",
            f"Intervals: 95% percentile bootstrap of the mean, {RESAMPLES:,} resamples, "
            "seeded (the same runs give the same report).",
        ),
        el(
            "li",
            "Platform failures (the platform failed: no reward) are counted and listed "
            "as such, never as a reward of 0; means, pass rates and differences use the "
            "graded episodes only.",
        ),
        el(
            "li",
            "Paired differences: a run minus the first run given of the same task, on "
            "the seeds both graded.",
        ),
        class_="muted",
    )


def _task_section(task: str, runs: list[Run], opts: Options, charts: Charts) -> Html:
    rule = pass_rule(task, runs[0].config.get("task_path"), opts.threshold)
    intervals = [bootstrap_mean(list(r.rewards().values()), seed=opts.seed) for r in runs]
    parts: list[Html] = [
        el("h2", f"Task {task}"),
        el("p", f"Pass: reward ≥ {rule.threshold:g}, {rule.why}."),
        _summary_table(runs, intervals, rule),
        charts.add(
            reward_figure(
                task,
                [r.label for r in runs],
                intervals,
                [sorted(r.rewards().items()) for r in runs],
                rule.threshold,
            ),
            360,
        ),
    ]
    crit = _criteria(runs)
    if crit is not None:
        names, gates, means = crit
        parts.append(charts.add(criteria_figure(task, names, gates, means), 380))
    if len(runs) > 1:
        parts.append(_paired_section(runs, opts, charts))
    return join(parts)


def _summary_table(runs: list[Run], intervals: list[Any], rule: PassRule) -> Html:
    head = header_row(
        "run",
        "episodes",
        "graded",
        "platform failures",
        "unfinished",
        "mean reward [95% CI]",
        f"pass rate (≥ {rule.threshold:g})",
    )
    rows = []
    for r, iv in zip(runs, intervals, strict=True):
        rewards = list(r.rewards().values())
        passed = pass_count(rewards, rule.threshold)
        failed = r.count("platform-failed")
        rate = f"{passed}/{len(rewards)} = {passed / len(rewards):.0%}" if rewards else "—"
        rows.append(
            el(
                "tr",
                el("td", r.label),
                el("td", str(len(r.episodes)), class_="num"),
                el("td", str(len(rewards)), class_="num"),
                el("td", str(failed), class_="num fail" if failed else "num"),
                el("td", str(r.count("pending", "running")), class_="num"),
                el("td", "no graded episode" if iv is None else str(iv), class_="num"),
                el("td", rate, class_="num"),
            )
        )
    return el("table", head, *rows)


def _criteria(runs: list[Run]) -> tuple[list[str], set[str], list[CriterionMeans]] | None:
    """Criteria in the order the rubric gives them, which are gates, each run's means."""
    names: list[str] = []
    gates: set[str] = set()
    means: list[CriterionMeans] = []
    for r in runs:
        scores: dict[str, list[float]] = {}
        for e in r.episodes:
            if e.reward is None:
                continue
            for name, score in e.record.breakdown.items():
                if name not in names:
                    names.append(name)
                scores.setdefault(name, []).append(score)
            if e.grade is not None and e.grade.detail is not None:
                gates |= {c.name for c in e.grade.detail.breakdown if c.gate}
        means.append(
            CriterionMeans(
                r.label,
                {k: sum(v) / len(v) for k, v in scores.items()},
                {k: len(v) for k, v in scores.items()},
            )
        )
    return (names, gates, means) if names else None


def _paired_section(runs: list[Run], opts: Options, charts: Charts) -> Html:
    base = runs[0]
    head = header_row(
        "comparison",
        "seeds both graded",
        "mean difference [95% CI]",
        "better / same / worse",
        "seeds only one graded",
    )
    rows: list[Html] = []
    figs: list[Html] = []
    for i, other in enumerate(runs[1:], 1):
        p = paired_differences(base.rewards(), other.rewards(), seed=opts.seed)
        alone = sorted(set(base.rewards()) ^ set(other.rewards()))
        rows.append(
            el(
                "tr",
                el("td", f"{other.label} - {base.label}"),
                el("td", str(len(p.seeds)), class_="num"),
                el(
                    "td",
                    "no seed in common" if p.interval is None else _signed(p.interval),
                    class_="num",
                ),
                el("td", f"{p.wins} / {p.ties} / {p.losses}", class_="num"),
                el("td", ", ".join(map(str, alone)) or "—"),
            )
        )
        if p.seeds:
            figs.append(charts.add(paired_figure(base.label, other.label, p, i), 300))
    return join([el("h3", "Paired differences"), el("table", head, *rows), *figs])


def _signed(iv: Any) -> str:
    if iv.low is None:
        return f"{iv.mean:+.3f} (n={iv.n}, no interval)"
    return f"{iv.mean:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]"
