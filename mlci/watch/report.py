"""Render the ``watch`` section: Markdown (the GitHub issue, with Mermaid charts) and a
self-contained HTML page with one SVG time-series chart per metric.

Estimated values are always labelled as estimates.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from mlci.results import Results
from mlci.results.base import Number
from mlci.results.watch import Watch, WatchMetric, Window

MAX_TABLE_WINDOWS = 30
Point = tuple[str, Number, Number, Number]


def _g(value: Number, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _metric(m: WatchMetric | None) -> str:
    if m is None or m.value is None:
        return "–"
    interval = f" [{_g(m.ci_low)}, {_g(m.ci_high)}]" if m.ci_low is not None else ""
    return f"{_g(m.value)}{interval}" + (" (estimated)" if m.kind == "estimated" else "")


def metric_names(watch: Watch) -> list[str]:
    names: dict[str, None] = {}
    for window in watch.windows:
        names.update(dict.fromkeys(window.measured))
        names.update(dict.fromkeys(window.estimated))
    return list(names)


def series(
    windows: Sequence[Window], metric: str, kind: str
) -> list[tuple[str, Number, Number, Number]]:
    """(window key, value, low, high) of one metric over the analysed windows."""
    found: list[Point] = []
    for w in windows:
        if w.status != "analysed":
            continue
        m = (w.measured if kind == "measured" else w.estimated).get(metric)
        if m is None:
            found.append((w.key, None, None, None))
        else:
            found.append((w.key, m.value, m.ci_low, m.ci_high))
    return found


def _mermaid(title: str, labels: list[str], lines: list[list[Number]]) -> str:
    def values(points: list[Number]) -> str:
        return ", ".join("0" if v is None else f"{v:.4g}" for v in points)

    shown = ", ".join(f'"{i + 1}"' for i in range(len(labels)))
    body = [f'    title "{title}"', f"    x-axis [{shown}]"]
    body += [f"    line [{values(points)}]" for points in lines]
    return "```mermaid\nxychart-beta\n" + "\n".join(body) + "\n```\n"


def render_markdown(document: Results, *, footer: str = "") -> str:
    """The watch report in GitHub-flavoured Markdown (the issue body)."""
    watch = document.watch
    if watch is None:
        raise ValueError("the results hold no watch section")
    model = document.model
    out = [f"## mlci watch: {model.name}\n"]
    badge = {"alarm": "🔴 **alarm**", "ok": "🟢 **ok**", "no data": "⚪ **no data**"}[watch.status]
    latest = watch.latest
    out.append(
        f"{badge} · model `{(model.sha256 or '')[:12]}` · {watch.rows:,} sampled rows in "
        f"{len(watch.windows)} window(s) ({watch.window}) · reference `{watch.reference}` "
        f"({watch.reference_rows:,} rows)\n"
    )
    if watch.alarms:
        out.append("### Alarms in the latest window\n")
        out.extend(f"- **{a.rule}**: {a.message}" for a in watch.alarms)
        out.append("")
    elif latest is not None:
        out.append(f"No rule fired in the latest window ({latest.key}).\n")
    if latest is not None:
        out.append(_latest(watch, latest))
    names = metric_names(watch)
    windows = [w for w in watch.windows if w.status == "analysed"][-MAX_TABLE_WINDOWS:]
    if names and windows:
        out.append("### Performance over time\n")
        out.append(
            "Estimated values come from the model's own confidence (CBPE, calibrated on the "
            "reference); measured values from labels joined by request id.\n"
        )
        for name in names:
            lines = []
            for kind in ("measured", "estimated"):
                points = series(windows, name, kind)
                if any(p[1] is not None for p in points):
                    lines.append([p[1] for p in points])
            if lines:
                out.append(_mermaid(f"{name} (measured, estimated)", [w.key for w in windows],
                                    lines))  # fmt: skip
    out.append(_window_table(watch))
    if watch.rules:
        out.append("<details><summary>Rules</summary>\n")
        out.extend(f"- `{r.id}`: {r.description}" for r in watch.rules)
        out.append("\n</details>\n")
    out.append(footer)
    return "\n".join(out).rstrip() + "\n"


def _latest(watch: Watch, latest: Window) -> str:
    lines = [
        f"### Latest window: {latest.key} ({latest.rows:,} rows, {latest.labelled:,} labelled)\n"
    ]
    lines.append("| feature | test | statistic | q | PSI | drifted |")
    lines.append("|---|---|---|---|---|---|")
    ordered = sorted(latest.drift, key=lambda d: (not d.drifted, d.q_value or 1.0))
    for d in ordered:
        flag = "**yes**" if d.drifted else "no"
        star = " (critical)" if d.critical else ""
        lines.append(
            f"| `{d.feature}`{star} | {d.test} | {_g(d.statistic)} | {_g(d.q_value)} | "
            f"{_g(d.psi)} | {flag} |"
        )
    p = latest.prediction_drift
    if p is not None:
        lines.append(
            f"\nModel {p.feature}: {p.test} p = {_g(p.p_value)}, PSI {_g(p.psi)}"
            + (" — **drifted**" if p.drifted else "")
        )
    metrics = sorted(set(latest.measured) | set(latest.estimated))
    if metrics:
        lines.append("\n| metric | measured | estimated |\n|---|---|---|")
        lines.extend(
            f"| {m} | {_metric(latest.measured.get(m))} | {_metric(latest.estimated.get(m))} |"
            for m in metrics
        )
    if latest.slices:
        lines.append("\n<details><summary>Slices</summary>\n")
        lines.append("| slice | rows | share (reference) | score drift | metrics |")
        lines.append("|---|---|---|---|---|")
        for s in latest.slices:
            drift = s.prediction_drift
            shown = "; ".join(f"{k} {_metric(v)}" for k, v in {**s.estimated, **s.measured}.items())
            lines.append(
                f"| {s.name} | {s.rows:,} | {_pct(s.share)} ({_pct(s.reference_share)}) | "
                f"{'**drifted**' if drift and drift.drifted else 'no'} | {shown or '–'} |"
            )
        lines.append("\n</details>")
    return "\n".join(lines) + "\n"


def _pct(value: Number) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _window_table(watch: Watch) -> str:
    lines = ["<details><summary>Windows</summary>\n", "| window | rows | labelled | drifted | alarms |",
             "|---|---|---|---|---|"]  # fmt: skip
    for w in watch.windows[-MAX_TABLE_WINDOWS:]:
        drifted = ", ".join(f"`{f}`" for f in w.drifted) or (
            "too small" if w.status == "too_small" else "–"
        )
        lines.append(f"| {w.key} | {w.rows:,} | {w.labelled:,} | {drifted} | {len(w.alarms)} |")
    if len(watch.windows) > MAX_TABLE_WINDOWS:
        lines.append(f"\n{len(watch.windows) - MAX_TABLE_WINDOWS} older window(s) in results.json")
    lines.append("\n</details>\n")
    return "\n".join(lines)


# -- HTML --------------------------------------------------------------------------------------


def svg_series(title: str, points: dict[str, list[tuple[str, Number, Number, Number]]]) -> str:
    """A line chart with interval bands: one line per kind (measured, estimated)."""
    width, height, pad = 640, 220, 40
    keys = next(iter(points.values()), [])
    n = max(1, len(keys))
    values = [v for line in points.values() for _, *vs in line for v in vs if v is not None]
    if not values:
        return ""
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.05, high + 0.05

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * (i / max(1, n - 1))

    def y(v: float) -> float:
        return height - pad - (height - 2 * pad) * (v - low) / (high - low)

    colours = {"measured": "#1f77b4", "estimated": "#ff7f0e"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f"<title>{html.escape(title)}</title>",
        f'<text x="{pad}" y="16" font-size="13">{html.escape(title)}</text>',
        f'<text x="4" y="{y(high) + 4:.1f}" font-size="10">{high:.3g}</text>',
        f'<text x="4" y="{y(low) + 4:.1f}" font-size="10">{low:.3g}</text>',
    ]
    for kind, line in points.items():
        colour = colours.get(kind, "#333")
        band = [
            (i, lo, hi)
            for i, (_, _, lo, hi) in enumerate(line)
            if lo is not None and hi is not None
        ]
        if band:
            upper = " ".join(f"{x(i):.1f},{y(hi):.1f}" for i, _, hi in band)
            lower = " ".join(f"{x(i):.1f},{y(lo):.1f}" for i, lo, _ in reversed(band))
            parts.append(f'<polygon points="{upper} {lower}" fill="{colour}" opacity="0.15"/>')
        path = " ".join(
            f"{x(i):.1f},{y(v):.1f}" for i, (_, v, _, _) in enumerate(line) if v is not None
        )
        dash = ' stroke-dasharray="5,3"' if kind == "estimated" else ""
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
    legend = " · ".join(kind + (" (estimate)" if kind == "estimated" else "") for kind in points)
    parts.append(f'<text x="{pad}" y="{height - 8}" font-size="11">{html.escape(legend)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(document: Results) -> str:
    """A self-contained page: the Markdown tables as text and one chart per metric."""
    watch = document.watch
    if watch is None:
        raise ValueError("the results hold no watch section")
    windows = [w for w in watch.windows if w.status == "analysed"]
    charts = []
    for name in metric_names(watch):
        points = {
            kind: series(windows, name, kind)
            for kind in ("measured", "estimated")
            if any(p[1] is not None for p in series(windows, name, kind))
        }
        if points:
            charts.append(svg_series(name, points))
    psi: dict[str, list[Point]] = {
        "measured": [
            (w.key, max((d.psi or 0.0 for d in w.drift), default=None), None, None) for w in windows
        ]
    }
    charts.append(svg_series("largest feature PSI", psi))
    pred: list[Point] = [
        (w.key, w.prediction_drift.psi if w.prediction_drift else None, None, None) for w in windows
    ]
    charts.append(svg_series("score PSI", {"measured": pred}))
    markdown = render_markdown(document)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>mlci watch: {html.escape(document.model.name)}</title></head><body>"
        + "".join(f"<figure>{c}</figure>" for c in charts if c)
        + f"<pre>{html.escape(markdown)}</pre></body></html>\n"
    )
