"""Render reports from a results document with the Jinja2 templates in mlci/reports.

Users can override any template: a folder given with ``--templates`` (or ``report.templates``
in mlci.yaml) is searched before the packaged templates. Everything here is pure: documents
in, text out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlci.errors import InputError
from mlci.results import Results
from mlci.results.base import Estimate
from mlci.results.evaluation import Evaluation, SliceResult
from mlci.results.tests import ModelTestResult

VERDICT_MARK = {
    "better": "▲ better",
    "worse": "▼ worse",
    "no detectable difference": "≈",
    "undefined": "n/a",
}
DECISION_MARK = {"promote": "✅", "hold": "⏸️", "block": "⛔"}
STATUS_MARK = {
    "pass": "✅ pass",
    "fail": "❌ fail",
    "inconclusive": "❔ inconclusive",
    "missing": "➖ missing",
}

# GitHub rejects issue and pull-request comments longer than this many characters.
GITHUB_COMMENT_LIMIT = 65_536
# The files `mlci check` writes for each model, and the template each comes from.
OUTPUTS = {
    "report.md": "report.md.j2",
    "comment.md": "comment.md.j2",
    "summary.md": "summary.md.j2",
    "report.html": "report.html.j2",
}


def number(value: float | None, digits: int = 4) -> str:
    """A metric value for a table: compact, or 'n/a' when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def signed(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}g}" if abs(value) >= 1e-4 or value == 0 else f"{value:+.1e}"


def interval(entry: Estimate | None, signed_values: bool = False) -> str:
    """``0.81 [0.79, 0.83]`` from an estimate or delta."""
    if entry is None:
        return "n/a"
    show = signed if signed_values else number
    text = show(entry.value)
    if entry.ci_low is not None and entry.ci_high is not None:
        text += f" [{show(entry.ci_low)}, {show(entry.ci_high)}]"
    return text


def short_digest(digest: str | None) -> str:
    return "n/a" if not digest else digest[:12]


def mermaid_label(text: str, width: int = 24) -> str:
    """A label safe inside a Mermaid string."""
    text = str(text).replace('"', "'").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def environment(templates: Path | None = None) -> Any:
    """The Jinja2 environment: ``templates`` (when given) first, then the packaged ones."""
    import jinja2

    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        if not Path(templates).is_dir():
            raise InputError(
                f"{templates}: no such templates folder",
                tip="pass a folder of .j2 files with --templates",
            )
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    loaders.append(jinja2.PackageLoader("mlci", "reports"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=lambda name: name is not None and name.endswith((".html", ".html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        number=number,
        signed=signed,
        interval=interval,
        digest=short_digest,
        verdict=lambda v: VERDICT_MARK.get(v, v),
        cell=lambda s: str(s).replace("|", "\\|").replace("\n", " "),
        mermaid=mermaid_label,
        value=lambda v: "n/a" if v is None else number(v) if isinstance(v, float) else str(v),
        status=lambda s: STATUS_MARK.get(s, s),
        decision=lambda d: DECISION_MARK.get(d, ""),
        thousands=lambda n: f"{n:,}",
        canary_value=canary_value,
        canary_shift=canary_shift,
    )
    return env


def canary_value(value: float | None, unit: str) -> str:
    """A canary metric's value in its unit (ms for seconds, percent for ratios)."""
    from mlci.canary.judge import show

    return show(value, unit)


def canary_shift(value: float | None, unit: str) -> str:
    """A canary metric's change in its unit, signed."""
    from mlci.canary.judge import show_signed

    return show_signed(value, unit)


def render_template(template: str, document: Results, templates: Path | None, **extra: Any) -> str:
    import jinja2

    try:
        return str(
            environment(templates).get_template(template).render(**context(document), **extra)
        )
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" ({getattr(exc, 'filename', template)}:{line})" if line else ""
        raise InputError(f"template {template}{where}: {exc.message or exc}") from None


def slice_delta(ev: Evaluation, s: SliceResult, metric: str) -> float | None:
    """A slice's delta on ``metric``, oriented so that negative means the candidate is worse."""
    entry = s.delta_of(metric)
    if entry is None or entry.value is None:
        return None
    return ev.oriented(metric, entry.value)


def ranked_slices(ev: Evaluation | None) -> list[SliceResult]:
    """Evaluated slices, worst first: flagged ones, then by how much worse than the baseline
    (or, without a baseline, by how much higher their error is)."""
    if ev is None:
        return []
    evaluated = [s for s in ev.slices if s.status == "evaluated"]
    if ev.has_baseline:
        primary = ev.primary_metric
        return sorted(
            evaluated,
            key=lambda s: (not s.flagged, _none_last(slice_delta(ev, s, primary)), s.name),
        )
    return sorted(
        evaluated,
        key=lambda s: (not s.flagged, -((s.vs_rest.error_mean if s.vs_rest else None) or 0)),
    )


def context(document: Results) -> dict[str, Any]:
    """What every template receives: the document and views computed from it."""
    ev = document.evaluation
    slices = ev.slices if ev else []
    verdicts = [d.verdict for d in (ev.metrics.delta or {}).values()] if ev else []
    test_results = document.tests.results if document.tests else []
    return {
        "doc": document,
        "ev": ev,
        "gate": document.gate,
        "flagged": [s for s in slices if s.flagged],
        "declared": [s for s in slices if s.source == "declared"],
        "discovered": [s for s in slices if s.source == "discovered"],
        "ranked": ranked_slices(ev),
        "better": verdicts.count("better"),
        "worse": verdicts.count("worse"),
        "failing_tests": [r for r in test_results if r.failed],
        "other_tests": [r for r in test_results if not r.failed],
        "data_checks": data_checks(test_results),
        "limit": GITHUB_COMMENT_LIMIT,
    }


def data_checks(results: Sequence[ModelTestResult]) -> dict[str, Any]:
    """What the reports say about drift, integrity and the trivial model, by kind."""
    drift = [
        r for r in results if r.kind == "drift" and "distance" in (r.details.model_extra or {})
    ]
    return {
        "drift": drift,
        "drifted": [r for r in drift if r.status == "failed"],
        "multivariate": [r for r in results if r.kind == "multivariate_drift"],
        "integrity": [r for r in results if r.kind == "integrity"],
        "trivial": [r for r in results if r.kind == "trivial_model"],
    }


def _none_last(value: float | None) -> float:
    return math.inf if value is None else value


def render_markdown(document: Results, templates: Path | None = None) -> str:
    """The full Markdown report for one model's results."""
    return render_template("report.md.j2", document, templates)


def render_summary(document: Results, templates: Path | None = None) -> str:
    """The short Markdown for a GitHub job summary."""
    return render_template("summary.md.j2", document, templates)


def render_html(document: Results, templates: Path | None = None) -> str:
    """A self-contained HTML report with inline SVG plots."""
    from markupsafe import Markup

    charts = {
        "calibration": Markup(calibration_svg(document)),
        "slices": Markup(slice_delta_svg(document, ranked_slices(document.evaluation))),
        "latency": Markup(latency_svg(document)),
    }
    return render_template("report.html.j2", document, templates, charts=charts)


# How the pull-request comment shrinks, least important first, until it fits.
TRIM_STEPS: tuple[dict[str, Any], ...] = (
    {"slices": None, "tests": None, "charts": True, "all_slices": True},
    {"slices": 100, "tests": 200, "charts": True, "all_slices": True},
    {"slices": 50, "tests": 100, "charts": True, "all_slices": False},
    {"slices": 25, "tests": 50, "charts": True, "all_slices": False},
    {"slices": 10, "tests": 20, "charts": False, "all_slices": False},
    {"slices": 5, "tests": 10, "charts": False, "all_slices": False},
)


def trim_notes(document: Results, limits: dict[str, Any]) -> list[str]:
    """What a set of limits leaves out of the comment, in words."""
    ctx = context(document)
    notes = []
    if limits["slices"] is not None and len(ctx["ranked"]) > limits["slices"]:
        notes.append(f"shows the {limits['slices']} worst of {len(ctx['ranked']):,} slices")
    if not limits["all_slices"] and len(ctx["ranked"]) > (limits["slices"] or 0):
        notes.append("leaves out the table of every slice")
    tests = ctx["failing_tests"] + ctx["other_tests"]
    if limits["tests"] is not None and len(tests) > limits["tests"]:
        notes.append(f"lists {limits['tests']} of {len(tests):,} tests, failures first")
    if not limits["charts"]:
        notes.append("leaves out the charts")
    return notes


def render_comment(
    document: Results, templates: Path | None = None, limit: int = GITHUB_COMMENT_LIMIT
) -> str:
    """The pull-request comment, trimmed (and saying so) to stay under ``limit`` characters."""
    text = ""
    for limits in TRIM_STEPS:
        notes = trim_notes(document, limits)
        text = render_template("comment.md.j2", document, templates, limits=limits, trimmed=notes)
        if len(text) <= limit:
            return text
    # Even the leanest comment is too long (a huge custom template): cut it, and say so.
    note = (
        "\n\n</details>\n\n> ✂️ This comment was cut to fit GitHub's "
        f"{limit:,}-character limit; the full report is in the job's artifacts.\n"
    )
    return text[: limit - len(note)] + note


def render_all(document: Results, templates: Path | None = None) -> dict[str, str]:
    """Every report `mlci check` writes next to results.json, by file name."""
    return {
        "report.md": render_markdown(document, templates),
        "comment.md": render_comment(document, templates),
        "summary.md": render_summary(document, templates),
        "report.html": render_html(document, templates),
    }


# `mlci report --format` -> the renderer.
RENDERERS: dict[str, Callable[[Results, Path | None], str]] = {
    "markdown": render_markdown,
    "comment": render_comment,
    "summary": render_summary,
    "html": render_html,
}


def headlines(document: Results) -> list[str]:
    """One line per section that ran, for the terminal."""
    lines = []
    gate = document.gate
    if gate:
        lines.append(f"gate: {gate.decision.upper()}: {gate.reason}")
    ev = document.evaluation
    if ev:
        primary = ev.primary_metric
        line = f"{primary} {number(ev.metrics.candidate[primary].value)}"
        delta = (ev.metrics.delta or {}).get(primary)
        if delta is not None and delta.value is not None:
            line += f" ({signed(delta.value)} vs baseline: {delta.verdict})"
        lines.append(f"{line}; {len(ev.flagged)} slice(s) flagged")
    tests = document.tests
    if tests:
        counts = tests.summary
        lines.append(
            f"tests: {counts.passed} passed, {counts.failed} failed, "
            f"{counts.error} errors, {counts.skipped} skipped"
        )
    bench = document.benchmark
    if bench:
        b = bench.summary
        lines.append(
            f"benchmark: {b.scenarios} scenario(s); candidate slower in {b.slower}, "
            f"faster in {b.faster}, inconclusive in {b.inconclusive}"
        )
    image = document.image
    if image and image.digest:
        signed_by = sorted({s.identity or "?" for s in image.signatures if s.verified})
        lines.append(
            f"image: {image.digest[:19]}"
            + (f" pushed to {image.reference}" if image.pushed else f" in {image.output}")
            + (f"; signed by {', '.join(signed_by)}" if signed_by else "")
        )
    canary = document.canary
    if canary:
        weight = "" if canary.next_weight is None else f" (next weight {canary.next_weight:g}%)"
        lines.append(f"canary: {canary.decision.upper()}{weight}: {canary.reason}")
    for name, stage in document.stages.items():
        # A stage skipped only because one it needs was skipped adds nothing to that reason.
        if stage.status != "ran" and not (stage.reason or "").startswith("needs the "):
            lines.append(f"{name} {stage.status}: {stage.reason}")
    return lines


def failures(document: Results, stages: Sequence[str]) -> int:
    """How many failures the commands that judge (``mlci test``, ``mlci bench``) exit 1 for."""
    count = 0
    if "tests" in stages and document.tests:
        # Advisory tests (required: false) are reported but never fail the command.
        count += document.tests.required_failures
    if "benchmark" in stages and document.benchmark:
        count += document.benchmark.summary.slower
    return count


# Plots for the HTML report: small inline SVG, no plotting library and no scripts.
CANDIDATE_COLOUR, BASELINE_COLOUR, GRID_COLOUR = "#1f6feb", "#d29922", "#d0d7de"


def _esc(text: Any) -> str:
    from markupsafe import escape

    return str(escape(str(text)))


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="11">'
        f"<title>{_esc(title)}</title>" + "".join(body) + "</svg>"
    )


def calibration_svg(document: Results) -> str:
    """Reliability diagram: mean prediction against observed frequency, per bin."""
    cal = document.evaluation.calibration if document.evaluation else None
    if cal is None:
        return ""
    size, pad = 300, 40
    span = size - 2 * pad

    def xy(p: float, q: float) -> str:
        return f"{pad + p * span:.1f},{size - pad - q * span:.1f}"

    body = [
        f'<rect x="{pad}" y="{pad}" width="{span}" height="{span}" fill="none" '
        f'stroke="{GRID_COLOUR}"/>',
        f'<line x1="{pad}" y1="{size - pad}" x2="{size - pad}" y2="{pad}" '
        f'stroke="{GRID_COLOUR}" stroke-dasharray="4 3"/>',
        f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle">mean predicted probability</text>',
        f'<text x="12" y="{size / 2}" transform="rotate(-90 12 {size / 2})" '
        'text-anchor="middle">observed frequency</text>',
    ]
    for curve, colour in ((cal.candidate, CANDIDATE_COLOUR), (cal.baseline, BASELINE_COLOUR)):
        points = [
            xy(b.mean_predicted, b.observed)
            for b in curve or []
            if b.mean_predicted is not None and b.observed is not None
        ]
        if not points:
            continue
        body.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" '
            'stroke-width="2"/>'
        )
        body.extend(
            f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3" fill="{colour}"/>'
            for p in points
        )
    body.append(_legend(pad + 6, pad + 14))
    return _svg(size, size, body, "calibration (reliability diagram)")


def _legend(x: float, y: float, labels: tuple[str, str] = ("candidate", "baseline")) -> str:
    return (
        f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{CANDIDATE_COLOUR}"/>'
        f'<text x="{x + 14}" y="{y + 1}">{labels[0]}</text>'
        f'<rect x="{x}" y="{y + 8}" width="10" height="10" fill="{BASELINE_COLOUR}"/>'
        f'<text x="{x + 14}" y="{y + 17}">{labels[1]}</text>'
    )


def slice_delta_svg(document: Results, ranked: list[SliceResult], top: int = 30) -> str:
    """Each slice's delta against the baseline on the primary metric, with its interval."""
    ev = document.evaluation
    if ev is None:
        return ""
    primary = ev.primary_metric
    pairs = [(s, s.delta_of(primary)) for s in ranked]
    rows = [(s, e) for s, e in pairs if e is not None and e.value is not None][:top]
    if not rows:
        return ""
    values = [v for _, e in rows for v in (e.value, e.ci_low, e.ci_high) if v is not None]
    low, high = min(*values, 0.0), max(*values, 0.0)
    if high - low < 1e-12:
        high = low + 1.0
    label_w, plot_w, row_h, top_pad = 220, 380, 18, 24
    height = top_pad + row_h * len(rows) + 24

    def x(v: float) -> float:
        return label_w + (v - low) / (high - low) * plot_w

    body = [
        f'<line x1="{x(0):.1f}" y1="{top_pad - 6}" x2="{x(0):.1f}" y2="{height - 20}" '
        f'stroke="{GRID_COLOUR}"/>',
        f'<text x="{label_w}" y="14">{_esc(primary)} delta (candidate − baseline)</text>',
        f'<text x="{label_w}" y="{height - 6}">{signed(low)}</text>',
        f'<text x="{label_w + plot_w}" y="{height - 6}" text-anchor="end">{signed(high)}</text>',
    ]
    for i, (s, e) in enumerate(rows):
        y = top_pad + row_h * i + row_h / 2
        colour = "#cf222e" if s.flagged else CANDIDATE_COLOUR
        name = s.name if len(s.name) <= 34 else s.name[:33] + "…"
        body.append(
            f'<text x="{label_w - 6}" y="{y + 4:.1f}" text-anchor="end">{_esc(name)}</text>'
        )
        if e.ci_low is not None and e.ci_high is not None:
            body.append(
                f'<line x1="{x(e.ci_low):.1f}" y1="{y:.1f}" x2="{x(e.ci_high):.1f}" '
                f'y2="{y:.1f}" stroke="{colour}" stroke-width="2"/>'
            )
        body.append(f'<circle cx="{x(e.value or 0.0):.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')
    return _svg(label_w + plot_w + 20, height, body, "slice deltas against the baseline")


def latency_svg(document: Results) -> str:
    """Latency percentiles per scenario, candidate against baseline, with intervals."""
    bench = document.benchmark
    rows: list[tuple[str, str, Estimate, Estimate | None]] = []
    for s in bench.scenarios if bench else []:
        measured = s.candidate.latency_ms
        reference = s.baseline.latency_ms if s.baseline else {}
        rows.extend(
            (s.name, stat, measured[stat], reference.get(stat))
            for stat in ("p50", "p90", "p95", "p99", "p999", "mean")
            if stat in measured and measured[stat].value is not None
        )
    if not rows:
        return ""
    values = [
        v
        for _, _, c, b in rows
        for e in (c, b)
        if e is not None
        for v in (e.value, e.ci_low, e.ci_high)
        if v is not None
    ]
    high = max(values) * 1.05 or 1.0
    label_w, plot_w, row_h, top_pad = 200, 380, 26, 40
    height = top_pad + row_h * len(rows) + 24

    def x(v: float) -> float:
        return label_w + v / high * plot_w

    body = [
        '<text x="10" y="14">latency (ms)</text>',
        _legend(label_w + plot_w - 80, 14),
        f'<line x1="{label_w}" y1="{top_pad - 6}" x2="{label_w}" y2="{height - 20}" '
        f'stroke="{GRID_COLOUR}"/>',
        f'<text x="{label_w}" y="{height - 6}">0</text>',
        f'<text x="{label_w + plot_w}" y="{height - 6}" text-anchor="end">{number(high, 3)} ms</text>',
    ]
    for i, (scenario, stat, cand, base) in enumerate(rows):
        y = top_pad + row_h * i + 8
        body.append(
            f'<text x="{label_w - 6}" y="{y + 6}" text-anchor="end">{_esc(scenario)} {stat}</text>'
        )
        for offset, entry, colour in ((0, cand, CANDIDATE_COLOUR), (9, base, BASELINE_COLOUR)):
            if entry is None or entry.value is None:
                continue
            yy = y + offset
            if entry.ci_low is not None and entry.ci_high is not None:
                body.append(
                    f'<line x1="{x(entry.ci_low):.1f}" y1="{yy}" x2="{x(entry.ci_high):.1f}" '
                    f'y2="{yy}" stroke="{colour}" stroke-width="2"/>'
                )
            body.append(f'<circle cx="{x(entry.value):.1f}" cy="{yy}" r="3.5" fill="{colour}"/>')
    return _svg(label_w + plot_w + 20, height, body, "latency by scenario")
