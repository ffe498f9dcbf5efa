"""Render reports from a results document with the Jinja2 templates in mlci/reports."""

from __future__ import annotations

import math
from typing import Any

VERDICT_MARK = {
    "better": "▲ better",
    "worse": "▼ worse",
    "no detectable difference": "≈",
    "undefined": "n/a",
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


def interval(entry: dict[str, Any] | None, signed_values: bool = False) -> str:
    """``0.81 [0.79, 0.83]`` from an estimate or delta entry."""
    if not entry:
        return "n/a"
    show = signed if signed_values else number
    text = show(entry.get("value"))
    if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        text += f" [{show(entry['ci_low'])}, {show(entry['ci_high'])}]"
    return text


def short_digest(digest: str | None) -> str:
    return "n/a" if not digest else digest[:12]


def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlci", "reports"),
        autoescape=False,
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
        cell=lambda s: str(s).replace("|", "\\|"),
    )
    return env


def render_markdown(document: dict[str, Any]) -> str:
    """The Markdown report for one model's results."""
    evaluation = document.get("evaluation") or {}
    slices = evaluation.get("slices", [])
    flagged = [s for s in slices if s["flagged"]]
    deltas = (evaluation.get("metrics") or {}).get("delta") or {}
    verdicts = [d["verdict"] for d in deltas.values()]
    return (
        environment()
        .get_template("report.md.j2")
        .render(
            doc=document,
            ev=evaluation,
            flagged=flagged,
            declared=[s for s in slices if s["source"] == "declared"],
            discovered=[s for s in slices if s["source"] == "discovered"],
            better=verdicts.count("better"),
            worse=verdicts.count("worse"),
        )
    )


def headlines(document: dict[str, Any]) -> list[str]:
    """One line per section that ran, for the terminal."""
    lines = []
    ev = document.get("evaluation")
    if ev:
        primary = ev["primary_metric"]
        flagged = sum(s["flagged"] for s in ev["slices"])
        line = f"{primary} {number(ev['metrics']['candidate'][primary]['value'])}"
        delta = (ev["metrics"]["delta"] or {}).get(primary)
        if delta is not None and delta["value"] is not None:
            line += f" ({signed(delta['value'])} vs baseline: {delta['verdict']})"
        lines.append(f"{line}; {flagged} slice(s) flagged")
    tests = document.get("tests")
    if tests:
        counts = tests["summary"]
        lines.append(
            f"tests: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['error']} errors, {counts['skipped']} skipped"
        )
    bench = document.get("benchmark")
    if bench:
        counts = bench["summary"]
        lines.append(
            f"benchmark: {counts['scenarios']} scenario(s); candidate slower in {counts['slower']}, "
            f"faster in {counts['faster']}, inconclusive in {counts['inconclusive']}"
        )
    for name, stage in document["stages"].items():
        if stage["status"] == "skipped":
            lines.append(f"{name} skipped: {stage['reason']}")
    return lines


def failures(document: dict[str, Any], stages: list[str]) -> int:
    """How many failures the commands that judge (``mlci test``, ``mlci bench``) exit 1 for."""
    count = 0
    if "tests" in stages and document.get("tests"):
        count += document["tests"]["summary"]["failed"] + document["tests"]["summary"]["error"]
    if "benchmark" in stages and document.get("benchmark"):
        count += document["benchmark"]["summary"]["slower"]
    return count
