"""The report's episodes: per run a table of them, then each one's outcome, criteria,
fault timeline and transcript."""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import HistoryError
from ._charts import t, timeline_figure
from ._html import Charts, Html, el, header_row, join
from ._runs import Episode, Run
from ._transcript import transcript_html


@dataclass(frozen=True)
class Options:
    """What the caller chose: the pass threshold, the timeline's bucket, the bootstrap's seed."""

    threshold: float | None
    bucket_s: float
    seed: int


def num(v: float | None, fmt: str = ".3f") -> str:
    return "—" if v is None else format(v, fmt)


def run_episodes(i: int, run: Run, opts: Options, charts: Charts) -> Html:
    head = header_row("seed", "status", "reward", "functional", "end", "seconds", "error")
    rows = []
    for e in run.episodes:
        r = e.record
        rows.append(
            el(
                "tr",
                el("td", el("a", str(e.seed), href=f"#ep-{i}-{e.seed}"), class_="num"),
                el("td", _status(e)),
                el("td", _reward_text(e), class_="num"),
                el("td", num(r.functional) if e.reward is not None else "—", class_="num"),
                el("td", r.end_reason or "—"),
                el("td", num(r.wall_s, ".0f"), class_="num"),
                el("td", r.error or ""),
            )
        )
    return join(
        [
            el("h3", f"{run.label}: {run.task}", id=f"run-{i}"),
            el("table", head, *rows),
            *(_episode(i, run, e, opts, charts) for e in run.episodes),
        ]
    )


def _status(e: Episode) -> Html:
    return el("span", e.status, class_=f"badge {e.status}")


def _reward_text(e: Episode) -> str:
    if e.status == "platform-failed":
        return "no reward (platform failure)"
    return num(e.reward)


def _episode(i: int, run: Run, e: Episode, opts: Options, charts: Charts) -> Html:
    parts: list[Html] = [
        el(
            "h4",
            f"{run.label} · seed {e.seed} ",
            _status(e),
            " ",
            el("span", f"reward {_reward_text(e)}"),
        ),
    ]
    if e.status == "platform-failed":
        parts.append(
            el(
                "div",
                el("b", "Platform failure: no reward. "),
                e.record.error or "",
                class_="failure",
            )
        )
        if e.grade is not None and e.grade.withheld_reward is not None:
            parts.append(
                el(
                    "p",
                    f"The rubric's reward {e.grade.withheld_reward:.3f} was "
                    "withheld (not a score): the machine was overloaded.",
                    class_="muted",
                )
            )
    elif e.status in ("pending", "running"):
        parts.append(
            el("p", f"{e.status}: not finished; resume the run to finish it.", class_="muted")
        )
    if e.grade is not None and e.grade.detail is not None:
        parts.append(_criteria_table(e))
    if e.grade is not None and e.grade.notes:
        parts.append(
            el(
                "details",
                el("summary", f"grading notes ({len(e.grade.notes)})"),
                el("ul", *(el("li", n) for n in e.grade.notes)),
            )
        )
    parts.append(_timeline(run, e, opts, charts))
    parts.append(transcript_html(e.trajectory))
    return el("section", *parts, class_="episode", id=f"ep-{i}-{e.seed}")


def _criteria_table(e: Episode) -> Html:
    assert e.grade is not None and e.grade.detail is not None
    d = e.grade.detail
    head = header_row("criterion", "verdict", "score", "weight", "explanation")
    rows = [
        el(
            "tr",
            el("td", c.name + (" (gate)" if c.gate else "")),
            el("td", c.verdict.value, class_=c.verdict.value),
            el("td", f"{c.score:.3f}", class_="num"),
            el("td", f"{c.weight:g}", class_="num"),
            el("td", c.explanation),
        )
        for c in d.breakdown
    ]
    capped = f"; capped by the failed gate {d.capped_by}" if d.capped_by else ""
    return el(
        "details",
        el("summary", f"criteria ({len(d.breakdown)}){capped}"),
        el("table", head, *rows),
        open=True,
    )


def _timeline(run: Run, e: Episode, opts: Options, charts: Charts) -> Html:
    try:
        history = e.history()
    except HistoryError as exc:
        return el("p", f"history unreadable: {exc}", class_="fail")
    if history is None:
        return el(
            "p",
            "no history: the grading recorded no load (e.g. it stopped at the "
            "functional gate, or failed before it)",
            class_="nofault",
        )
    if not history.ops and not history.faults:
        return el(
            "p",
            "the history is empty: the grading ran no load and no fault (it stopped "
            "before its load phase)",
            class_="nofault",
        )
    title = f"{run.label} · seed {e.seed}: fault windows over availability and latency"
    return charts.add(timeline_figure(history, opts.bucket_s, t(title)), 340)
