"""Data checks between a reference (training) dataset and the evaluation data.

Pure functions over numpy columns: schema, missing values, out-of-range values, and drift per
feature, decided by effect size with an interval (normalised Wasserstein distance for numeric
features, Jensen-Shannon distance for categorical ones, the population stability index for
both), with the Kolmogorov-Smirnov or chi-square p-value as evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlci.data import missing_mask
from mlci.testing import drift as distances
from mlci.testing.drift import Distance
from mlci.testing.encode import categorical_codes
from mlci.testing.outcome import MAX_EXAMPLES, Outcome, fmt, verdict

Columns = Mapping[str, np.ndarray]
Kinds = Mapping[str, str]


def _text(values: np.ndarray) -> np.ndarray:
    """Present values of a categorical column as strings (booleans as true/false)."""
    if values.dtype == bool:
        return np.where(values, "true", "false").astype(object)
    return np.array(
        [str(v).lower() if isinstance(v, bool) else str(v) for v in values], dtype=object
    )


# --------------------------------------------------------------------------- schema


def check_schema(
    ref_kinds: Kinds, cur_kinds: Kinds, *, allow_extra: bool = True, reference: str = "reference"
) -> Outcome:
    """Every reference column is in the evaluation data with the same kind."""
    missing = [c for c in ref_kinds if c not in cur_kinds]
    changed = [
        {"column": c, "reference": ref_kinds[c], "current": cur_kinds[c]}
        for c in ref_kinds
        if c in cur_kinds and ref_kinds[c] != cur_kinds[c]
        # A numeric column with no values reads as untyped: not a change of kind.
    ]
    extra = [c for c in cur_kinds if c not in ref_kinds]
    problems: list[str] = []
    if missing:
        problems.append(f"{len(missing)} column(s) of the {reference} missing: {_names(missing)}")
    if changed:
        shown = ", ".join(
            f"'{c['column']}' {c['reference']} -> {c['current']}" for c in changed[:MAX_EXAMPLES]
        )
        problems.append(f"{len(changed)} column(s) changed kind: {shown}")
    if extra and not allow_extra:
        problems.append(f"{len(extra)} column(s) not in the {reference}: {_names(extra)}")
    count = len(missing) + len(changed) + (0 if allow_extra else len(extra))
    details: dict[str, Any] = {
        "examples": ([{"column": c, "problem": "missing"} for c in missing] + changed)[
            :MAX_EXAMPLES
        ],
        "count": count,
        "missing": missing,
        "changed": changed,
        "extra": extra,
    }
    if problems:
        message = "; ".join(problems)
    else:
        message = f"all {len(ref_kinds)} columns of the {reference} present with the same kinds"
        if extra:
            message += f" ({len(extra)} extra column(s) allowed)"
    return Outcome(verdict(not problems), message, count, 0, details)


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:MAX_EXAMPLES])
    return shown + (f" and {len(names) - MAX_EXAMPLES} more" if len(names) > MAX_EXAMPLES else "")


# --------------------------------------------------------------------------- missing values


def check_missing(
    reference: Columns,
    current: Columns,
    features: Sequence[str],
    *,
    max_share: float | None = None,
    max_increase: float = 0.01,
) -> Outcome:
    """The share of missing values per feature stays under its limit.

    The limit is ``max_share`` when given, else the reference's share plus ``max_increase``.
    """
    rows: list[dict[str, Any]] = []
    worst: tuple[float, float] | None = None  # (excess, share)
    failing: list[dict[str, Any]] = []
    for feature in features:
        cur_missing = missing_mask(current[feature])
        cur_share = float(cur_missing.mean()) if len(cur_missing) else 0.0
        ref_share = float(missing_mask(reference[feature]).mean()) if feature in reference else 0.0
        limit = max_share if max_share is not None else min(1.0, ref_share + max_increase)
        entry: dict[str, Any] = {
            "feature": feature,
            "share": cur_share,
            "reference_share": ref_share,
            "limit": limit,
            "count": int(cur_missing.sum()),
            "first_rows": [int(i) + 1 for i in np.flatnonzero(cur_missing)[:3]],
        }
        rows.append(entry)
        if worst is None or cur_share - limit > worst[0]:
            worst = (cur_share - limit, cur_share)
        if cur_share > limit:
            failing.append(entry)
    failing.sort(key=lambda e: e["share"] - e["limit"], reverse=True)
    details = {"examples": failing[:MAX_EXAMPLES], "count": len(failing), "features": rows}
    if failing:
        top = failing[0]
        message = (
            f"{len(failing)} feature(s) have too many missing values; worst '{top['feature']}': "
            f"{top['share']:.2%} missing (reference {top['reference_share']:.2%}, limit "
            f"{top['limit']:.2%}), first at data rows {', '.join(map(str, top['first_rows']))}"
        )
        return Outcome("failed", message, top["share"], top["limit"], details)
    top_entry = max(rows, key=lambda e: e["share"]) if rows else None
    message = f"missing values within limits in all {len(rows)} features"
    if top_entry is not None and top_entry["share"] > 0:
        message += f" (most: '{top_entry['feature']}' {top_entry['share']:.2%})"
    return Outcome(
        "passed",
        message,
        top_entry["share"] if top_entry else 0.0,
        top_entry["limit"] if top_entry else max_share,
        details,
    )


# --------------------------------------------------------------------------- ranges


def check_range(
    reference: Columns,
    current: Columns,
    kinds: Kinds,
    features: Sequence[str],
    *,
    margin: float = 0.0,
    max_share: float = 0.01,
) -> Outcome:
    """Numeric values inside the reference's range (widened by ``margin``), categories seen in it."""
    per_feature: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    total = 0
    for feature in features:
        shown: list[dict[str, Any]]
        cur = current[feature]
        ref = reference[feature]
        n = len(cur)
        if kinds.get(feature) == "numeric":
            ref_f = np.asarray(ref, dtype=np.float64)
            cur_f = np.asarray(cur, dtype=np.float64)
            finite = ref_f[np.isfinite(ref_f)]
            if finite.size == 0:
                continue
            lo, hi = float(finite.min()), float(finite.max())
            pad = margin * (hi - lo)
            lo, hi = lo - pad, hi + pad
            with np.errstate(invalid="ignore"):
                bad = (cur_f < lo) | (cur_f > hi)
            allowed: Any = [lo, hi]
            idx = np.flatnonzero(bad)
            worst_idx = idx[np.argsort(-np.maximum(cur_f[idx] - hi, lo - cur_f[idx]))][:3]
            shown = [{"row": int(i) + 1, "value": float(cur_f[i])} for i in worst_idx]
        else:
            cur_missing = missing_mask(cur)
            ref_present = _text(ref[~missing_mask(ref)])
            seen = set(np.unique(ref_present).tolist()) if ref_present.size else set()
            cur_text = np.full(n, None, dtype=object)
            cur_text[~cur_missing] = _text(cur[~cur_missing])
            bad = ~cur_missing & ~np.isin(cur_text, list(seen))
            idx = np.flatnonzero(bad)
            unseen, counts = (
                np.unique(cur_text[idx].astype(str), return_counts=True)
                if idx.size
                else (
                    np.array([]),
                    np.array([], dtype=int),
                )
            )
            order = np.argsort(-counts)[:3]
            allowed = f"{len(seen)} reference values"
            shown = [
                {
                    "row": int(idx[np.flatnonzero(cur_text[idx] == unseen[j])[0]]) + 1,
                    "value": str(unseen[j]),
                    "rows": int(counts[j]),
                }
                for j in order
            ]
        count = int(bad.sum())
        total += count
        entry: dict[str, Any] = {
            "feature": feature,
            "count": count,
            "share": count / n if n else 0.0,
            "allowed": allowed,
        }
        per_feature.append(entry)
        if count:
            examples.extend({"feature": feature, **s} for s in shown)
    failing = sorted(
        (e for e in per_feature if e["share"] > max_share), key=lambda e: e["share"], reverse=True
    )
    worst = max(per_feature, key=lambda e: e["share"], default=None)
    rank = {f["feature"]: i for i, f in enumerate(failing)}
    examples.sort(key=lambda e: rank.get(e["feature"], len(rank)))
    details = {
        "examples": examples[:MAX_EXAMPLES],
        "count": total,
        "features": per_feature,
    }
    observed = worst["share"] if worst else 0.0
    if failing:
        top = failing[0]
        first = next((e for e in examples if e["feature"] == top["feature"]), None)
        message = (
            f"{len(failing)} feature(s) out of the reference range; worst '{top['feature']}': "
            f"{top['count']:,} values ({top['share']:.2%}) outside {_allowed(top['allowed'])}"
            + (f", e.g. {fmt(first['value'])} at data row {first['row']}" if first else "")
        )
        return Outcome("failed", message, observed, max_share, details)
    message = f"values within the reference range in all {len(per_feature)} features"
    if worst is not None and worst["count"]:
        message += (
            f" ({worst['count']:,} outside in '{worst['feature']}', within the allowed share)"
        )
    return Outcome("passed", message, observed, max_share, details)


def _allowed(allowed: Any) -> str:
    if isinstance(allowed, list):
        return f"[{fmt(allowed[0])}, {fmt(allowed[1])}]"
    return str(allowed)


# --------------------------------------------------------------------------- drift


def psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray, floor: float = 1e-4) -> float:
    """Population stability index: ``sum((c - r) * ln(c / r))`` over bin shares, floored."""
    return float(distances.psi(ref_counts, cur_counts, floor))


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Interior bin edges at the reference's quantiles (duplicates removed)."""
    qs = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


# Up to this many rows scipy's ks_2samp gives the exact p-value; above it, the asymptotic one
# that scipy would use too, computed from the sorted samples mlci already has.
EXACT_KS_ROWS = 10_000
# The distance each kind of feature is judged by, and its name in messages.
DISTANCE = {"numeric": "wasserstein", "categorical": "jensen_shannon"}
DISTANCE_NAME = {
    "wasserstein": "normalised Wasserstein distance",
    "jensen_shannon": "Jensen-Shannon distance",
    "psi": "PSI",
}


@dataclass(frozen=True)
class Drift:
    """Drift statistics of one feature: distances with intervals, and a test's p-value."""

    kind: str  # numeric or categorical
    psi: float
    test: str  # "ks" or "chi2"
    statistic: float
    p_value: float
    bins: list[dict[str, Any]]  # label, reference_share, current_share, contribution
    distances: dict[str, Distance] = field(default_factory=dict)


def numeric_drift(
    reference: np.ndarray,
    current: np.ndarray,
    bins: int,
    floor: float,
    *,
    n_boot: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> Drift:
    """Normalised Wasserstein distance, PSI over the reference's quantile bins, and the
    two-sample Kolmogorov-Smirnov test."""
    from scipy.stats import ks_2samp

    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    # Sorted once: the distances, the bins and the test all read sorted samples fast.
    ref = np.sort(ref[np.isfinite(ref)])
    cur = np.sort(cur[np.isfinite(cur)])
    edges = quantile_edges(ref, bins)
    k = len(edges) + 1
    ref_counts = np.bincount(distances.sorted_bins(ref, edges), minlength=k)
    cur_counts = np.bincount(distances.sorted_bins(cur, edges), minlength=k)
    labels = []
    bounds = [-np.inf, *edges.tolist(), np.inf]
    for i in range(k):
        lo, hi = bounds[i], bounds[i + 1]
        labels.append(
            f"< {fmt(hi)}"
            if i == 0
            else (f">= {fmt(lo)}" if i == k - 1 else f"[{fmt(lo)}, {fmt(hi)})")
        )
    area, statistic = distances.wasserstein_and_ks(ref, cur)
    if max(len(ref), len(cur)) <= EXACT_KS_ROWS:
        ks = ks_2samp(ref, cur)
        statistic, p_value = float(ks.statistic), float(ks.pvalue)
    else:
        p_value = distances.ks_p_value(statistic, len(ref), len(cur))
    w, p = distances.numeric_distances(
        ref, cur, edges, floor=floor, n_boot=n_boot, confidence=confidence, seed=seed, area=area
    )
    return Drift(
        "numeric",
        p.value,
        "ks",
        statistic,
        p_value,
        _bin_table(labels, ref_counts, cur_counts, floor),
        {"wasserstein": w, "psi": p},
    )


def categorical_drift(
    reference: np.ndarray,
    current: np.ndarray,
    floor: float,
    *,
    n_boot: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> Drift:
    """Jensen-Shannon distance and PSI over categories, and the chi-square test of homogeneity
    of the two samples."""
    from scipy.stats import chi2_contingency

    (ref_codes, cur_codes), cats = categorical_codes(reference, current)
    k = len(cats)
    ref_counts = np.bincount(ref_codes[ref_codes >= 0], minlength=k)
    cur_counts = np.bincount(cur_codes[cur_codes >= 0], minlength=k)
    if k < 2 or not ref_counts.sum() or not cur_counts.sum():
        statistic, p_value = 0.0, 1.0
    else:
        result = chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False)
        statistic, p_value = float(result[0]), float(result[1])
    js, p = distances.categorical_distances(
        ref_codes, cur_codes, k, floor=floor, n_boot=n_boot, confidence=confidence, seed=seed
    )
    return Drift(
        "categorical",
        p.value,
        "chi2",
        statistic,
        p_value,
        _bin_table(cats, ref_counts, cur_counts, floor),
        {"jensen_shannon": js, "psi": p},
    )


def _bin_table(
    labels: Sequence[str], ref_counts: np.ndarray, cur_counts: np.ndarray, floor: float
) -> list[dict[str, Any]]:
    r = ref_counts / max(ref_counts.sum(), 1)
    c = cur_counts / max(cur_counts.sum(), 1)
    rf, cf = np.maximum(r, floor), np.maximum(c, floor)
    contrib = (cf - rf) * np.log(cf / rf)
    return [
        {
            "bin": label,
            "reference_share": float(r[i]),
            "current_share": float(c[i]),
            "contribution": float(contrib[i]),
        }
        for i, label in enumerate(labels)
    ]


def _shown(d: Distance) -> str:
    text = f"{d.value:.3g}"
    if d.ci_low is not None and d.ci_high is not None:
        text += f" [{d.ci_low:.3g}, {d.ci_high:.3g}]"
    return text


def check_drift(
    feature: str,
    reference: np.ndarray,
    current: np.ndarray,
    kind: str,
    *,
    wasserstein: float | None = 0.1,
    jensen_shannon: float | None = 0.1,
    psi: float | None = 0.2,
    ks_pvalue: float | None = None,
    chi2_pvalue: float | None = None,
    bins: int = 10,
    floor: float = 1e-4,
    evidence: str = "interval",
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> Outcome:
    """Drift of one feature, decided by effect size.

    A distance breaches its threshold when its whole interval lies above it (``evidence:
    interval``) or its value does (``point``); a test's p-value breaches when below its limit
    (off by default: it is reported as evidence). Any breach fails the check.
    """
    if kind == "numeric":
        drift = numeric_drift(
            reference, current, bins, floor, n_boot=n_boot, confidence=confidence, seed=seed
        )
        p_limit = ks_pvalue
        test_name = "Kolmogorov-Smirnov"
        main, main_limit = "wasserstein", wasserstein
    else:
        drift = categorical_drift(
            reference, current, floor, n_boot=n_boot, confidence=confidence, seed=seed
        )
        p_limit = chi2_pvalue
        test_name = "chi-square"
        main, main_limit = "jensen_shannon", jensen_shannon
    breaches: list[str] = []
    unsure: list[str] = []
    within: list[str] = []
    # The statistic that failed is the one reported as observed against its threshold.
    pairs: list[tuple[float, float]] = []
    for name, limit in ((main, main_limit), ("psi", psi)):
        if limit is None:
            continue
        d = drift.distances[name]
        low, high = d.bounds(evidence)
        shown = f"{DISTANCE_NAME[name]} {_shown(d)}"
        if low > limit:
            breaches.append(f"{shown} > {fmt(limit)}")
            pairs.append((d.value, limit))
        elif high > limit:
            unsure.append(f"{shown} straddles {fmt(limit)}")
        else:
            within.append(f"{shown} within {fmt(limit)}")
    evidence_p = f"{test_name} p = {drift.p_value:.3g} (statistic {drift.statistic:.3g})"
    if p_limit is not None and drift.p_value < p_limit:
        breaches.append(
            f"{test_name} p = {drift.p_value:.3g} < {fmt(p_limit)} (statistic {drift.statistic:.3g})"
        )
        pairs.append((drift.p_value, p_limit))
    top = sorted(
        drift.bins, key=lambda b: abs(b["current_share"] - b["reference_share"]), reverse=True
    )
    decision = "drift" if breaches else "inconclusive" if unsure else "no drift"
    details: dict[str, Any] = {
        "examples": top[:MAX_EXAMPLES],
        "count": sum(1 for b in drift.bins if b["contribution"] > 0.01),
        "decision": decision,
        "evidence": evidence,
        "distance": main,
        main: _distance(drift.distances[main]),
        "psi": drift.psi,
        "psi_interval": _distance(drift.distances["psi"]),
        "test": drift.test,
        "statistic": drift.statistic,
        "p_value": drift.p_value,
        "thresholds": {main: main_limit, "psi": psi, "p_value": p_limit},
        "bins": drift.bins,
    }
    observed: float
    threshold: float | None
    if pairs:
        observed, threshold = pairs[0]
    elif main_limit is not None:
        observed, threshold = drift.distances[main].value, main_limit
    elif psi is not None:
        observed, threshold = drift.psi, psi
    else:
        observed, threshold = drift.p_value, p_limit
    if breaches:
        b = top[0]
        rest = [*unsure, *within]
        if p_limit is None or drift.p_value >= p_limit:
            rest.append(evidence_p)
        message = (
            f"'{feature}' drifted: {'; '.join(breaches)}"
            + (f" ({'; '.join(rest)})" if rest else "")
            + f"; largest shift in {b['bin']}: {b['reference_share']:.1%} of reference rows, "
            f"{b['current_share']:.1%} now"
        )
        return Outcome("failed", message, observed, threshold, details)
    parts = [*unsure, *within, evidence_p]
    lead = (
        f"'{feature}' may have drifted, but not beyond the thresholds on this evidence"
        if unsure
        else f"'{feature}' is stable"
    )
    return Outcome("passed", f"{lead}: {'; '.join(parts)}", observed, threshold, details)


def _distance(d: Distance) -> dict[str, float | None]:
    return {"value": d.value, "ci_low": d.ci_low, "ci_high": d.ci_high}
