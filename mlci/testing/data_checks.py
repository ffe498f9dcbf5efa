"""Data checks between a reference (training) dataset and the evaluation data.

Pure functions over numpy columns: schema, missing values, out-of-range values, and drift per
feature (population stability index for every feature, Kolmogorov-Smirnov for numeric ones,
a chi-square test of homogeneity for categorical ones).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlci.data import missing_mask
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
    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    r = np.maximum(ref / max(ref.sum(), 1.0), floor)
    c = np.maximum(cur / max(cur.sum(), 1.0), floor)
    return float(np.sum((c - r) * np.log(c / r)))


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Interior bin edges at the reference's quantiles (duplicates removed)."""
    qs = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


@dataclass(frozen=True)
class Drift:
    """Drift statistics of one feature."""

    kind: str  # numeric or categorical
    psi: float
    test: str  # "ks" or "chi2"
    statistic: float
    p_value: float
    bins: list[dict[str, Any]]  # label, reference_share, current_share, contribution


def numeric_drift(reference: np.ndarray, current: np.ndarray, bins: int, floor: float) -> Drift:
    """PSI over the reference's quantile bins and the two-sample Kolmogorov-Smirnov test."""
    from scipy.stats import ks_2samp

    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    cur = cur[np.isfinite(cur)]
    edges = quantile_edges(ref, bins)
    k = len(edges) + 1
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=k)
    labels = []
    bounds = [-np.inf, *edges.tolist(), np.inf]
    for i in range(k):
        lo, hi = bounds[i], bounds[i + 1]
        labels.append(
            f"< {fmt(hi)}"
            if i == 0
            else (f">= {fmt(lo)}" if i == k - 1 else f"[{fmt(lo)}, {fmt(hi)})")
        )
    ks = ks_2samp(ref, cur)
    return Drift(
        "numeric",
        psi_from_counts(ref_counts, cur_counts, floor),
        "ks",
        float(ks.statistic),
        float(ks.pvalue),
        _bin_table(labels, ref_counts, cur_counts, floor),
    )


def categorical_drift(reference: np.ndarray, current: np.ndarray, floor: float) -> Drift:
    """PSI over categories and the chi-square test of homogeneity of the two samples."""
    from scipy.stats import chi2_contingency

    ref = _text(reference[~missing_mask(reference)])
    cur = _text(current[~missing_mask(current)])
    cats, codes = np.unique(np.concatenate([ref, cur]).astype(str), return_inverse=True)
    ref_counts = np.bincount(codes[: len(ref)], minlength=len(cats))
    cur_counts = np.bincount(codes[len(ref) :], minlength=len(cats))
    if len(cats) < 2 or not len(ref) or not len(cur):
        statistic, p_value = 0.0, 1.0
    else:
        result = chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False)
        statistic, p_value = float(result[0]), float(result[1])
    return Drift(
        "categorical",
        psi_from_counts(ref_counts, cur_counts, floor),
        "chi2",
        statistic,
        p_value,
        _bin_table([str(c) for c in cats], ref_counts, cur_counts, floor),
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


def check_drift(
    feature: str,
    reference: np.ndarray,
    current: np.ndarray,
    kind: str,
    *,
    psi: float | None = 0.2,
    ks_pvalue: float | None = 0.01,
    chi2_pvalue: float | None = 0.01,
    bins: int = 10,
    floor: float = 1e-4,
) -> Outcome:
    """Drift of one feature: fails when PSI exceeds ``psi`` or the test's p-value is below its limit."""
    if kind == "numeric":
        drift = numeric_drift(reference, current, bins, floor)
        p_limit = ks_pvalue
        test_name = "Kolmogorov-Smirnov"
    else:
        drift = categorical_drift(reference, current, floor)
        p_limit = chi2_pvalue
        test_name = "chi-square"
    breaches: list[str] = []
    # The statistic that failed is the one reported as observed against its threshold.
    pairs: list[tuple[float, float]] = []
    if psi is not None and drift.psi > psi:
        breaches.append(f"PSI {drift.psi:.3g} > {fmt(psi)}")
        pairs.append((drift.psi, psi))
    if p_limit is not None and drift.p_value < p_limit:
        breaches.append(
            f"{test_name} p = {drift.p_value:.3g} < {fmt(p_limit)} (statistic {drift.statistic:.3g})"
        )
        pairs.append((drift.p_value, p_limit))
        if psi is not None and drift.psi <= psi:
            breaches.append(f"PSI {drift.psi:.3g} within {fmt(psi)}")
    top = sorted(
        drift.bins, key=lambda b: abs(b["current_share"] - b["reference_share"]), reverse=True
    )
    details: dict[str, Any] = {
        "examples": top[:MAX_EXAMPLES],
        "count": sum(1 for b in drift.bins if b["contribution"] > 0.01),
        "psi": drift.psi,
        "test": drift.test,
        "statistic": drift.statistic,
        "p_value": drift.p_value,
        "thresholds": {"psi": psi, "p_value": p_limit},
        "bins": drift.bins,
    }
    observed, threshold = (
        pairs[0] if pairs else ((drift.psi, psi) if psi is not None else (drift.p_value, p_limit))
    )
    if breaches:
        b = top[0]
        message = (
            f"'{feature}' drifted: {'; '.join(breaches)}; largest shift in {b['bin']}: "
            f"{b['reference_share']:.1%} of reference rows, {b['current_share']:.1%} now"
        )
        return Outcome("failed", message, observed, threshold, details)
    message = f"'{feature}' is stable: PSI {drift.psi:.3g}, {test_name} p = {drift.p_value:.3g}"
    return Outcome("passed", message, observed, threshold, details)
