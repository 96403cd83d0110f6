"""The report's charts, as plotly figures: rewards per run, criteria, paired differences,
and an episode's fault timeline measured from its history.

Figures are built with ``plotly.graph_objects`` (so a wrong property is an error here,
not a blank chart in a browser) and travel to the page as JSON. Plotly reads a subset of
HTML in text (``<b>``, ``<a href>``), so every string from an episode is escaped first.
"""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import CapabilityError
from ..history import History
from ._stats import Interval, Paired

FAULT_COLOURS = {
    "crash": "#d62728",
    "pause": "#ff7f0e",
    "partition": "#9467bd",
    "latency": "#8c564b",
    "clock-skew": "#e377c2",
    "disk-full": "#7f7f7f",
}
OTHER_FAULT = "#bcbd22"
RUN_COLOURS = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
CONFIG = {"displaylogo": False, "responsive": True}


def plotly_go() -> Any:
    """``plotly.graph_objects``, or a CapabilityError saying how to install it."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise CapabilityError(
            "the HTML report draws its charts with plotly, which is not installed: "
            "pip install 'infragym[report]'"
        ) from None
    return go


def plotly_js() -> str:
    """plotly.js as the installed plotly package ships it (embedded in every report)."""
    plotly_go()
    from plotly.offline import get_plotlyjs

    js: str = get_plotlyjs()
    return js


def t(text: object) -> str:
    """Text for plotly, which would read ``<a href>`` and friends in it."""
    return html.escape(str(text), quote=False)


def _figure(fig: Any) -> dict[str, Any]:
    spec: dict[str, Any] = fig.to_plotly_json()
    spec["config"] = CONFIG
    return spec


def _base_layout(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0.01, "font": {"size": 15}},
        "template": "plotly_white",
        "margin": {"l": 60, "r": 30, "t": 50, "b": 60},
        "hovermode": "closest",
        **extra,
    }


def colour(i: int) -> str:
    return RUN_COLOURS[i % len(RUN_COLOURS)]


def reward_figure(
    task: str,
    labels: Sequence[str],
    intervals: Sequence[Interval | None],
    rewards: Sequence[Sequence[tuple[int, float]]],
    threshold: float,
) -> dict[str, Any]:
    """Per run: the mean reward (bar) with its interval (error bar), every graded
    episode's reward (dots) and the pass threshold (dashed line)."""
    go = plotly_go()
    fig = go.Figure()
    xs = [t(lab) for lab in labels]
    means = [iv.mean if iv else None for iv in intervals]
    up = [iv.high - iv.mean if iv and iv.high is not None else 0.0 for iv in intervals]
    down = [iv.mean - iv.low if iv and iv.low is not None else 0.0 for iv in intervals]
    fig.add_trace(
        go.Bar(
            x=xs,
            y=means,
            name="mean reward",
            marker_color=[colour(i) for i in range(len(xs))],
            opacity=0.55,
            error_y={
                "type": "data",
                "array": up,
                "arrayminus": down,
                "visible": True,
                "color": "#333",
                "thickness": 1.5,
                "width": 8,
            },
            hovertemplate="%{x}<br>mean %{y:.3f}<extra></extra>",
        )
    )
    for i, pts in enumerate(rewards):
        fig.add_trace(
            go.Scatter(
                x=[xs[i]] * len(pts),
                y=[r for _, r in pts],
                mode="markers",
                showlegend=False,
                marker={"color": "#222", "size": 7, "symbol": "circle-open"},
                text=[f"seed {s}" for s, _ in pts],
                hovertemplate="%{text}: %{y:.3f}<extra></extra>",
            )
        )
    fig.add_hline(
        y=threshold,
        line_dash="dash",
        line_color="#c00",
        annotation_text=f"pass ≥ {threshold:g}",
        annotation_position="top left",
    )
    fig.update_layout(
        **_base_layout(
            f"{t(task)}: mean reward, 95% bootstrap interval, each graded episode",
            yaxis={"range": [0, 1.08], "title": {"text": "reward"}},
            showlegend=False,
            height=360,
        )
    )
    return _figure(fig)


@dataclass(frozen=True)
class CriterionMeans:
    """One run's mean score per criterion over its graded episodes (and how many)."""

    label: str
    means: dict[str, float]
    n: dict[str, int]


def criteria_figure(
    task: str, criteria: Sequence[str], gates: set[str], runs: Sequence[CriterionMeans]
) -> dict[str, Any]:
    """Grouped bars: per criterion, each run's mean score."""
    go = plotly_go()
    fig = go.Figure()
    xs = [t(c) + (" (gate)" if c in gates else "") for c in criteria]
    for i, r in enumerate(runs):
        fig.add_trace(
            go.Bar(
                x=xs,
                y=[r.means.get(c) for c in criteria],
                name=t(r.label),
                marker_color=colour(i),
                texttemplate="%{y:.2f}",
                textposition="outside",
                customdata=[r.n.get(c, 0) for c in criteria],
                hovertemplate="%{x}: %{y:.3f} (n=%{customdata})<extra>" + t(r.label) + "</extra>",
            )
        )
    fig.update_layout(
        **_base_layout(
            f"{t(task)}: mean score per criterion (graded episodes)",
            barmode="group",
            yaxis={"range": [0, 1.12], "title": {"text": "score"}},
            height=380,
            legend={"orientation": "h", "y": -0.25},
        )
    )
    return _figure(fig)


def paired_figure(base: str, other: str, paired: Paired, colour_i: int) -> dict[str, Any]:
    """Per seed both runs graded: other - base, with the mean and its interval."""
    go = plotly_go()
    fig = go.Figure()
    xs = [str(s) for s in paired.seeds]
    iv = paired.interval
    if iv is not None and iv.low is not None and iv.high is not None:
        fig.add_hrect(
            y0=iv.low,
            y1=iv.high,
            fillcolor=colour(colour_i),
            opacity=0.15,
            line_width=0,
            layer="below",
        )
    if iv is not None:
        fig.add_hline(
            y=iv.mean,
            line_color=colour(colour_i),
            annotation_text=f"mean {iv.mean:+.3f}",
            annotation_position="top left",
        )
    fig.add_hline(y=0, line_color="#888", line_dash="dot")
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=list(paired.differences),
            mode="markers",
            marker={"size": 9, "color": colour(colour_i)},
            name="difference",
            hovertemplate="seed %{x}: %{y:+.3f}<extra></extra>",
        )
    )
    lo = min([*paired.differences, 0.0, iv.low if iv and iv.low is not None else 0.0])
    hi = max([*paired.differences, 0.0, iv.high if iv and iv.high is not None else 0.0])
    pad = max(0.05, (hi - lo) * 0.15)
    fig.update_layout(
        **_base_layout(
            f"{t(other)} - {t(base)}, per seed",
            showlegend=False,
            height=300,
            xaxis={"title": {"text": "seed"}, "type": "category"},
            yaxis={"title": {"text": "reward difference"}, "range": [lo - pad, hi + pad]},
        )
    )
    return _figure(fig)


@dataclass(frozen=True)
class Buckets:
    """Operations per time bucket (by intended start): how many, how many ok, and the
    median and largest latency of those that completed (ms)."""

    starts: list[float]
    total: list[int]
    ok: list[int]
    median_ms: list[float | None]
    max_ms: list[float | None]


def bucket_history(history: History, width: float) -> Buckets:
    """The history's operations in buckets of ``width`` seconds of intended start, from 0
    to the last operation or fault event. An ``info`` operation (outcome unknown) counts as
    not ok and has no latency; a ``fail`` answered, so its latency counts."""
    ops = history.operations()
    ends = [op.intended for op in ops]
    ends += [w.end for w in history.fault_windows() if math.isfinite(w.end)]
    end = max([*ends, history.end_time, width])
    n = max(1, math.ceil(end / width))
    total, ok = [0] * n, [0] * n
    lat: list[list[float]] = [[] for _ in range(n)]
    for op in ops:
        i = min(n - 1, max(0, int(op.intended // width)))
        total[i] += 1
        ok[i] += op.ok
        if math.isfinite(op.complete) and op.definite:
            lat[i].append(max(0.0, op.latency) * 1000.0)
    return Buckets(
        [i * width for i in range(n)],
        total,
        ok,
        [statistics.median(v) if v else None for v in lat],
        [max(v) if v else None for v in lat],
    )


def timeline_figure(history: History, width: float, title: str) -> dict[str, Any]:
    """Fault windows as shaded bands over the availability (ok fraction per bucket) and the
    latency (median and max per bucket, log scale, right axis)."""
    go = plotly_go()
    b = bucket_history(history, width)
    mid = [s + width / 2 for s in b.starts]
    avail = [o / n if n else None for o, n in zip(b.ok, b.total, strict=True)]
    fig = go.Figure()
    for w in history.fault_windows():
        end = w.end if math.isfinite(w.end) else b.starts[-1] + width
        fig.add_vrect(
            x0=w.start,
            x1=end,
            fillcolor=FAULT_COLOURS.get(w.fault, OTHER_FAULT),
            opacity=0.18,
            line_width=0,
            layer="below",
            annotation_text=t(f"{w.fault} {','.join(w.targets)}"),
            annotation_position="top left",
            annotation_font_size=10,
        )
    fig.add_trace(
        go.Scatter(
            x=mid,
            y=avail,
            name="ok fraction",
            mode="lines+markers",
            line={"color": "#1f77b4"},
            marker={"size": 4},
            customdata=[[o, n] for o, n in zip(b.ok, b.total, strict=True)],
            hovertemplate="%{x:.2f} s: %{customdata[0]}/%{customdata[1]} ok<extra></extra>",
        )
    )
    for what, ys, line in (
        ("median", b.median_ms, {"color": "#2ca02c", "width": 1.5}),
        ("max", b.max_ms, {"color": "#d62728", "width": 1, "dash": "dot"}),
    ):
        fig.add_trace(
            go.Scatter(
                x=mid,
                y=ys,
                name=f"latency {what} (ms)",
                yaxis="y2",
                mode="lines",
                line=line,
                hovertemplate="%{x:.2f} s: " + what + " %{y:.1f} ms<extra></extra>",
            )
        )
    fig.update_layout(
        **_base_layout(
            title,
            height=340,
            xaxis={
                "title": {
                    "text": f"seconds since the history began (buckets of {width:g} s, "
                    "by intended start)"
                }
            },
            yaxis={"title": {"text": "ok fraction"}, "range": [0, 1.1]},
            yaxis2={
                "title": {"text": "latency (ms), log scale"},
                "type": "log",
                "dtick": 1,
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
            },
            legend={"orientation": "h", "y": -0.3},
        )
    )
    return _figure(fig)
