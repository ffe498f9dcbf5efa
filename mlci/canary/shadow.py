"""The shadow comparison: what to replay, and what the two sets of answers say.

Intervals: the error rates and the label flip rate are proportions with Wilson intervals, the
difference of error rates has Newcombe's hybrid score interval (both sides answer the same
requests, so the pairs are positively correlated and this interval for independent samples is
conservative), and the mean absolute probability difference has a bootstrap interval that
resamples requests (rows of one request share its fate). A check **fails** when its whole
interval is beyond the limit, is **inconclusive** when the interval straddles it, and
**passes** otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.canary.config import ShadowConfig
from mlci.canary.oip import ProtocolError, Signature, compare, decode, plan_inputs, request_body
from mlci.canary.replay import Answer, Replayed
from mlci.canary.stats import bootstrap_ratio, newcombe, quantiles_ms, wilson
from mlci.errors import InputError
from mlci.results.base import Estimate
from mlci.results.canary import Agreement, CheckStatus, Shadow, ShadowSide

if TYPE_CHECKING:
    from mlci.data import Dataset
    from mlci.evaluate.rows import SliceRows

Progress = Callable[[str], None]
MAX_FILE_BYTES = 1 << 30
ROWS_PER_LINE = 1 << 24  # rows of one request in a file that are compared, at most


@dataclass(frozen=True)
class Plan:
    """The requests to mirror, and the data rows each one carries (None for a file, whose
    requests are told apart by the line they came from)."""

    bodies: list[bytes]
    rows: list[np.ndarray] | None
    source: str  # "data" or "file"
    source_path: str
    batch: int
    lines: list[int] | None = None


def plan_from_data(signature: Signature, data: Dataset, config: ShadowConfig, seed: int) -> Plan:
    """Requests of ``batch`` rows each, in a seeded random order of the rows (so that a
    limited replay samples the data rather than its head); one pass unless ``requests``
    asks for more or fewer."""
    try:
        plan = plan_inputs(signature, data.columns, list(data.features))
    except ProtocolError as exc:
        raise InputError(
            f"{data.display}: {exc}", tip="replay a file of requests instead"
        ) from None
    order = np.random.default_rng(seed).permutation(data.rows)
    batch = config.batch
    per_pass = math.ceil(data.rows / batch)
    count = config.requests or per_pass
    bodies: list[bytes] = []
    rows: list[np.ndarray] = []
    for i in range(count):
        start = (i % per_pass) * batch
        chosen = order[start : start + batch]
        rows.append(chosen)
        bodies.append(request_body(plan, data.columns, chosen, str(i)))
    return Plan(bodies, rows, "data", data.display, batch)


def plan_from_file(path: Path, config: ShadowConfig) -> Plan:
    """Requests read from a JSON Lines file, one infer request per line, sent as written."""
    import orjson

    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"{path}: larger than {MAX_FILE_BYTES:,} bytes")
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    requests: list[bytes] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            request = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise InputError(f"{path}:{number}: not JSON") from None
        if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
            raise InputError(
                f"{path}:{number}: not an infer request (a JSON object with 'inputs')",
                tip="one Open Inference Protocol request body per line",
            )
        requests.append(line.strip())
    if not requests:
        raise InputError(f"{path}: no requests in the file")
    count = config.requests or len(requests)
    order = [i % len(requests) for i in range(count)]
    return Plan([requests[i] for i in order], None, "file", str(path), 0, order)


def _estimate(triple: tuple[float, float, float]) -> Estimate:
    return Estimate(value=triple[0], ci_low=triple[1], ci_high=triple[2])


def status_against(low: float | None, high: float | None, limit: float) -> CheckStatus:
    """fail: the whole interval above the limit; inconclusive: straddling it; else pass."""
    if low is not None and math.isfinite(low) and low > limit:
        return "fail"
    if high is None or not math.isfinite(high) or high > limit:
        return "inconclusive"
    return "pass"


_SEVERITY = {"pass": 0, "inconclusive": 1, "fail": 2}


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2%}"


def agreement(
    name: str,
    definition: str,
    requests: np.ndarray,
    flips: np.ndarray | None,
    diffs: np.ndarray,
    config: ShadowConfig,
    confidence: float,
    seed: int,
) -> Agreement:
    """Agreement on one group of rows (``requests``: the request each row came in)."""
    rows = len(diffs)
    where = "all rows" if name == "all rows" else f"slice '{name}'"
    if rows == 0:
        return Agreement(
            name=name,
            definition=definition,
            rows=0,
            status="pass",
            explanation=f"{where}: no row was compared.",
        )
    checks: list[tuple[CheckStatus, str]] = []
    flip_rate = None
    flipped = None
    if flips is not None:
        flipped = int(flips.sum())
        flip_rate = _estimate(wilson(flipped, rows, confidence))
        status = status_against(flip_rate.ci_low, flip_rate.ci_high, config.max_flip_rate)
        checks.append(
            (
                status,
                f"{flipped:,} of {rows:,} labels flipped ({_pct(flip_rate.value)} "
                f"[{_pct(flip_rate.ci_low)}, {_pct(flip_rate.ci_high)}], allowed "
                f"{_pct(config.max_flip_rate)})",
            )
        )
    # per request: the sum of differences and the number of rows, for a cluster bootstrap
    unique, inverse = np.unique(requests, return_inverse=True)
    sums = np.bincount(inverse, weights=diffs, minlength=len(unique))
    counts = np.bincount(inverse, minlength=len(unique)).astype(np.float64)
    mad = _estimate(bootstrap_ratio(sums, counts, confidence, config.bootstrap, seed))
    status = status_against(mad.ci_low, mad.ci_high, config.max_mean_abs_diff)
    if config.bootstrap == 0:  # no interval: judge the point estimate
        status = "fail" if (mad.value or 0.0) > config.max_mean_abs_diff else "pass"
    checks.append(
        (
            status,
            f"mean absolute difference {mad.value:.4g} [{_fmt(mad.ci_low)}, "
            f"{_fmt(mad.ci_high)}] (allowed {config.max_mean_abs_diff:g})",
        )
    )
    worst = max(checks, key=lambda c: _SEVERITY[c[0]])[0]
    verdict = {
        "pass": "within the limits",
        "fail": "beyond the limits",
        "inconclusive": "too few rows to rule out a difference beyond the limits",
    }[worst]
    return Agreement(
        name=name,
        definition=definition,
        rows=rows,
        label_flips=flipped,
        flip_rate=flip_rate,
        mean_abs_diff=mad,
        max_abs_diff=float(diffs.max()),
        status=worst,
        explanation=f"{where}: " + "; ".join(text for _, text in checks) + f": {verdict}.",
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _side(answers: Sequence[Answer], failed: Sequence[bool], confidence: float) -> ShadowSide:
    errors = sum(failed)
    seconds = np.asarray([a.seconds for a, bad in zip(answers, failed, strict=True) if not bad])
    return ShadowSide(
        requests=len(answers),
        errors=errors,
        error_rate=_estimate(wilson(errors, len(answers), confidence)),
        latency_ms=quantiles_ms(seconds),
    )


def block_medians(seconds: Sequence[float | None], blocks: int) -> list[float]:
    """The median latency of each block of consecutive requests (answered ones only)."""
    edges = np.linspace(0, len(seconds), min(blocks, len(seconds)) + 1).astype(int)
    medians = []
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        answered = [s for s in seconds[start:end] if s is not None]
        if answered:
            medians.append(float(np.median(answered)))
    return medians


@dataclass(frozen=True)
class ShadowOutcome:
    """The shadow section, and each side's latency per block of requests for the judge."""

    section: Shadow
    primary_latency: list[float]
    canary_latency: list[float]


def compare_answers(
    plan: Plan,
    replayed: Replayed,
    signature: Signature,
    slices: Sequence[SliceRows],
    config: ShadowConfig,
    confidence: float,
    seed: int,
) -> ShadowOutcome:
    """Errors, latency and prediction agreement from both sides' answers."""
    pairs = [
        (index, primary, canary)
        for index, (primary, canary) in enumerate(
            zip(replayed.primary, replayed.canary, strict=True)
        )
        if primary is not None and canary is not None
    ]
    # An answer fails when its status is not 200 or it holds no predictions.
    failed: dict[str, list[bool]] = {"primary": [], "canary": []}
    row_ids: list[np.ndarray] = []
    request_ids: list[np.ndarray] = []
    flip_parts: list[np.ndarray] = []
    diff_parts: list[np.ndarray] = []
    has_flips = True
    for index, *answers in pairs:
        predictions: list[Any] = []
        for role, answer in zip(("primary", "canary"), answers, strict=True):
            prediction = None
            if answer.ok:
                try:
                    prediction = decode(answer.body, signature)
                except ProtocolError as exc:
                    answer.error = str(exc)
            failed[role].append(prediction is None)
            predictions.append(prediction)
        if predictions[0] is None or predictions[1] is None:
            continue
        try:
            flips, diffs = compare(predictions[0], predictions[1])
        except ProtocolError:
            failed["canary"][-1] = True  # an answer that does not match the primary's
            continue
        rows = len(diffs)
        if plan.rows is not None:
            ids = plan.rows[index][:rows]
        else:  # the row's place in the file: a line sent again holds the same rows
            line = plan.lines[index] if plan.lines is not None else index
            ids = line * ROWS_PER_LINE + np.arange(min(rows, ROWS_PER_LINE))
            rows = len(ids)
            flips = None if flips is None else flips[:rows]
            diffs = diffs[:rows]
        row_ids.append(np.asarray(ids, dtype=np.int64))
        request_ids.append(np.full(rows, index, dtype=np.int64))
        diff_parts.append(diffs)
        if flips is None:
            has_flips = False
        else:
            flip_parts.append(flips)
    answered = {"primary": [p for _, p, _ in pairs], "canary": [c for _, _, c in pairs]}
    sides = {role: _side(answered[role], failed[role], confidence) for role in answered}
    latency = {
        role: block_medians(
            [
                None if bad else a.seconds
                for a, bad in zip(answered[role], failed[role], strict=True)
            ],
            config.latency.blocks,
        )
        for role in answered
    }
    n = len(pairs)
    errors = (sum(failed["canary"]), n, sum(failed["primary"]), n)
    delta = _estimate(newcombe(*errors, confidence))
    errors_status = status_against(delta.ci_low, delta.ci_high, config.max_error_increase)
    if n == 0:
        errors_status = "inconclusive"
    errors_text = (
        f"errors: canary {errors[0]:,} and primary {errors[2]:,} of {n:,} requests, a change "
        f"of {_pct(delta.value)} [{_pct(delta.ci_low)}, {_pct(delta.ci_high)}] against the "
        f"{_pct(config.max_error_increase)} allowed"
        + {
            "pass": ": within it.",
            "fail": ": the canary fails more often.",
            "inconclusive": ": too few requests to rule out more errors.",
        }[errors_status]
    )
    results: list[Agreement] = []
    note = ""
    if row_ids:
        ids = np.concatenate(row_ids)
        # A row replayed again (more requests than one pass) is counted once.
        _, first = np.unique(ids, return_index=True)
        keep = np.sort(first)
        ids = ids[keep]
        request = np.concatenate(request_ids)[keep]
        diffs_all = np.concatenate(diff_parts)[keep]
        flips_all = np.concatenate(flip_parts)[keep] if has_flips else None
        groups: list[tuple[str, str, np.ndarray]] = [("all rows", "", np.ones(len(ids), bool))]
        if config.slices and plan.rows is not None:
            groups += [(s.name, s.definition, s.mask[ids]) for s in slices]
        elif config.slices:
            note = "requests from a file carry no data rows, so only all rows were compared"
        for name, definition, mask in groups:
            results.append(
                agreement(
                    name,
                    definition,
                    request[mask],
                    None if flips_all is None else flips_all[mask],
                    diffs_all[mask],
                    config,
                    confidence,
                    seed,
                )
            )
    else:
        results.append(
            Agreement(
                name="all rows",
                rows=0,
                status="inconclusive",
                explanation="all rows: no request was answered by both sides, so nothing "
                "was compared.",
            )
        )
    if replayed.stopped:
        note = "; ".join(filter(None, [f"the replay {replayed.stopped}", note]))
    section = Shadow(
        source=plan.source,
        source_path=plan.source_path,
        requests=n,
        rows=results[0].rows,
        batch=plan.batch,
        rate=config.rate,
        concurrency=config.concurrency,
        duration_s=round(replayed.elapsed, 3),
        throughput=replayed.throughput,
        primary=sides["primary"],
        canary=sides["canary"],
        error_rate_delta=delta,
        max_error_increase=config.max_error_increase,
        errors_status=errors_status,
        errors_explanation=errors_text,
        agreement=results,
        slices_note=note,
    )
    return ShadowOutcome(section, latency["primary"], latency["canary"])
