"""Data integrity: problems in the data itself that no metric shows until it is too late.

Pure functions over numpy columns, each returning an :class:`~mlci.testing.outcome.Outcome`:

* leakage: evaluation rows that also occur in the reference (training) data;
* new categories: values of a categorical feature the reference never had;
* spellings: categories that differ only in case, whitespace, accents or separators;
* conflicting labels: identical features with different labels;
* relation changed: a feature whose power to predict the label changed between the reference
  and the evaluation data (judged on a bootstrap interval);
* constant: features with one value, or one value in nearly every row.

Rows are matched by their columns' integer codes (:mod:`mlci.testing.encode`), hashed to one
64-bit key per row, with the codes compared again wherever keys match.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlci.evaluate.bootstrap import BucketBootstrap, percentile_interval
from mlci.testing.encode import MISSING, categorical_codes, column_codes, row_keys
from mlci.testing.outcome import MAX_EXAMPLES, Outcome, fmt

Columns = Mapping[str, np.ndarray]
# Categories kept apart when judging a relation; rarer ones share one bin.
MAX_CATEGORIES = 50


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:MAX_EXAMPLES])
    return shown + (f" and {len(names) - MAX_EXAMPLES} more" if len(names) > MAX_EXAMPLES else "")


# --------------------------------------------------------------------------- leakage


def check_leakage(
    reference: Columns, current: Columns, columns: Sequence[str], *, max_share: float = 0.0
) -> Outcome:
    """Evaluation rows whose values in ``columns`` (features and label) equal a reference row."""
    if not columns:
        return Outcome("skipped", "no column is in both datasets to compare rows on")
    n_ref = len(reference[columns[0]])
    pairs = [column_codes(reference[c], current[c]) for c in columns]
    ref_codes = [p[0] for p in pairs]
    cur_codes = [p[1] for p in pairs]
    ref_keys = row_keys(ref_codes)
    cur_keys = row_keys(cur_codes)
    order = np.argsort(ref_keys, kind="stable")
    sorted_keys = ref_keys[order]
    at = np.searchsorted(sorted_keys, cur_keys)
    found = (at < n_ref) & (sorted_keys[np.minimum(at, max(n_ref - 1, 0))] == cur_keys)
    rows = np.flatnonzero(found)
    partner = order[at[rows]]
    # Equal keys almost surely mean equal rows; make sure.
    same = np.ones(len(rows), dtype=bool)
    for r, c in zip(ref_codes, cur_codes, strict=True):
        same &= r[partner] == c[rows]
    rows, partner = rows[same], partner[same]
    n = len(cur_keys)
    leaked = len(rows)
    share = leaked / n if n else 0.0
    details: dict[str, Any] = {
        "examples": [
            {"row": int(r) + 1, "reference_row": int(p) + 1}
            for r, p in zip(rows[:MAX_EXAMPLES], partner[:MAX_EXAMPLES], strict=True)
        ],
        "count": leaked,
        "share": share,
        "columns": list(columns),
    }
    if share > max_share:
        first = details["examples"][0]
        return Outcome(
            "failed",
            f"{leaked:,} of {n:,} evaluation rows ({share:.2%}) also occur in the reference data "
            f"(all {len(columns)} columns equal), allowed {max_share:.2%}; e.g. data row "
            f"{first['row']} is reference row {first['reference_row']}",
            share,
            max_share,
            details,
        )
    message = (
        f"no evaluation row occurs in the reference data ({len(columns)} columns compared)"
        if not leaked
        else f"{leaked:,} evaluation rows ({share:.2%}) occur in the reference data, within "
        f"{max_share:.2%}"
    )
    return Outcome("passed", message, share, max_share, details)


# --------------------------------------------------------------------------- new categories


def check_new_categories(
    reference: Columns, current: Columns, features: Sequence[str], *, max_share: float = 0.0
) -> Outcome:
    """Categories of the evaluation data that the reference does not have."""
    per_feature: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for feature in features:
        (ref_codes, cur_codes), labels = categorical_codes(reference[feature], current[feature])
        k = len(labels)
        ref_counts = np.bincount(ref_codes[ref_codes >= 0], minlength=k)
        cur_counts = np.bincount(cur_codes[cur_codes >= 0], minlength=k)
        new = np.flatnonzero((ref_counts == 0) & (cur_counts > 0))
        rows = int(cur_counts[new].sum())
        n = len(cur_codes)
        entry = {
            "feature": feature,
            "categories": len(new),
            "rows": rows,
            "share": rows / n if n else 0.0,
        }
        per_feature.append(entry)
        examples.extend(
            {
                "feature": feature,
                "value": labels[j],
                "rows": int(cur_counts[j]),
                "row": int(np.flatnonzero(cur_codes == j)[0]) + 1,
            }
            for j in new[np.argsort(-cur_counts[new], kind="stable")][:3]
        )
    failing = sorted((e for e in per_feature if e["share"] > max_share), key=lambda e: -e["share"])
    worst = max(per_feature, key=lambda e: e["share"], default=None)
    observed = worst["share"] if worst else 0.0
    details = {
        "examples": sorted(examples, key=lambda e: -e["rows"])[:MAX_EXAMPLES],
        "count": sum(e["categories"] for e in per_feature),
        "features": per_feature,
    }
    if failing:
        top = failing[0]
        shown = [e for e in examples if e["feature"] == top["feature"]]
        values = ", ".join(f"{e['value']!r} ({e['rows']:,} rows)" for e in shown)
        return Outcome(
            "failed",
            f"{len(failing)} feature(s) have categories the reference never had; worst "
            f"'{top['feature']}': {top['categories']} new categor"
            f"{'y' if top['categories'] == 1 else 'ies'} in {top['rows']:,} rows "
            f"({top['share']:.2%}, allowed {max_share:.2%}): {values}",
            top["share"],
            max_share,
            details,
        )
    return Outcome(
        "passed",
        f"every category of the {len(per_feature)} categorical feature(s) occurs in the reference"
        if not details["count"]
        else f"new categories in {sum(e['categories'] > 0 for e in per_feature)} feature(s), "
        f"within {max_share:.2%} of the rows",
        observed,
        max_share,
        details,
    )


# --------------------------------------------------------------------------- spellings

_SEPARATOR = re.compile(r"(?<=\w)[-_](?=\w)")


def spelling_key(text: str) -> str:
    """What is left of a category once case, accents, separators and spacing are set aside."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_SEPARATOR.sub(" ", bare.casefold()).split())


def check_spellings(datasets: Mapping[str, Columns], features: Sequence[str]) -> Outcome:
    """Categories spelled several ways: equal once case, accents and spacing are ignored."""
    names = list(datasets)
    groups: list[dict[str, Any]] = []
    for feature in features:
        columns = [datasets[d][feature] for d in names if feature in datasets[d]]
        parts, labels = categorical_codes(*columns)
        counts = [np.bincount(p[p >= 0], minlength=len(labels)) for p in parts]
        by_key: dict[str, list[int]] = {}
        for j, label in enumerate(labels):
            by_key.setdefault(spelling_key(label), []).append(j)
        for key, members in by_key.items():
            if len(members) < 2:
                continue
            spellings = [
                {
                    "value": labels[j],
                    **{
                        f"{d}_rows": int(c[j])
                        for d, c in zip(names[: len(counts)], counts, strict=True)
                    },
                }
                for j in members
            ]
            rows = sum(int(c[j]) for c in counts for j in members)
            groups.append({"feature": feature, "key": key, "spellings": spellings, "rows": rows})
    groups.sort(key=lambda g: -g["rows"])
    details = {"examples": groups[:MAX_EXAMPLES], "count": len(groups)}
    if groups:
        top = groups[0]
        shown = ", ".join(repr(s["value"]) for s in top["spellings"])
        more = f" (and {len(groups) - 1} more)" if len(groups) > 1 else ""
        return Outcome(
            "failed",
            f"{len(groups)} categor{'y is' if len(groups) == 1 else 'ies are'} spelled several "
            f"ways; '{top['feature']}' has {shown}, {top['rows']:,} rows in all{more}",
            len(groups),
            0,
            details,
        )
    return Outcome(
        "passed",
        f"no category of the {len(features)} categorical feature(s) is spelled two ways",
        0,
        0,
        details,
    )


# --------------------------------------------------------------------------- conflicting labels


def conflicting_rows(columns: Sequence[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Indices of rows whose features equal another row's while their labels differ."""
    n = len(labels)
    if n == 0 or not columns:
        return np.zeros(0, dtype=np.intp)
    codes = [column_codes(c)[0] for c in columns]
    y = column_codes(labels)[0]
    keys = row_keys(codes)
    order = np.lexsort((y, keys))
    k = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    group = np.cumsum(np.concatenate([[False], k[1:] != k[:-1]]))
    ys = y[order]
    # Sorted by label within a group, so its first and last labels are its extremes.
    ends = np.concatenate([starts[1:], [n]]) - 1
    mixed = ys[starts] != ys[ends]
    # A key shared by different feature values (a hash collision) is no conflict.
    for c in codes:
        cs = c[order]
        mixed &= np.maximum.reduceat(cs, starts) == np.minimum.reduceat(cs, starts)
    return np.sort(order[mixed[group]])


def check_conflicting_labels(
    datasets: Mapping[str, tuple[Columns, np.ndarray]],
    features: Sequence[str],
    *,
    max_share: float = 0.0,
) -> Outcome:
    """Rows with identical features and different labels, in each dataset."""
    found: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for name, (columns, labels) in datasets.items():
        rows = conflicting_rows([columns[f] for f in features], labels)
        n = len(labels)
        found.append(
            {"dataset": name, "rows": len(rows), "share": len(rows) / n if n else 0.0, "of": n}
        )
        examples.extend(
            {"dataset": name, "row": int(r) + 1, "label": _plain(labels[r])}
            for r in rows[:MAX_EXAMPLES]
        )
    worst = max(found, key=lambda f: f["share"])
    details = {"examples": examples[:MAX_EXAMPLES], "count": sum(f["rows"] for f in found)}
    details["datasets"] = found
    if worst["share"] > max_share:
        first = next(e for e in examples if e["dataset"] == worst["dataset"])
        return Outcome(
            "failed",
            f"{worst['rows']:,} of {worst['of']:,} rows ({worst['share']:.2%}) of the "
            f"{worst['dataset']} data share their {len(features)} feature values with a row of "
            f"another label, allowed {max_share:.2%}; e.g. data row {first['row']} "
            f"(label {fmt(first['label'])})",
            worst["share"],
            max_share,
            details,
        )
    shown = " and ".join(f"the {f['dataset']} data" for f in found)
    return Outcome(
        "passed",
        f"no two rows with equal features have different labels in {shown}"
        if not details["count"]
        else f"conflicting labels in {worst['share']:.2%} of the {worst['dataset']} rows at most, "
        f"within {max_share:.2%}",
        worst["share"],
        max_share,
        details,
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# --------------------------------------------------------------------------- constant


def check_constant(
    datasets: Mapping[str, Columns], features: Sequence[str], *, dominant_share: float = 0.99
) -> Outcome:
    """Features whose most common value (missing counts as a value) fills nearly every row."""
    found: list[dict[str, Any]] = []
    for feature in features:
        for name, columns in datasets.items():
            if feature not in columns or not len(columns[feature]):
                continue
            (codes,), labels = categorical_codes(columns[feature])
            counts = np.bincount(codes - MISSING)  # bin 0: missing values
            top = int(counts.argmax())
            share = float(counts[top] / len(codes))
            if share >= dominant_share:
                value = labels[top + MISSING] if top else None
                found.append(
                    {
                        "feature": feature,
                        "dataset": name,
                        "value": value,
                        "share": share,
                        "values": int(np.count_nonzero(counts)),
                    }
                )
                break
    found.sort(key=lambda f: -f["share"])
    details = {"examples": found[:MAX_EXAMPLES], "count": len(found)}
    if found:
        worst = found[0]
        what = (
            "has one value"
            if worst["values"] == 1
            else f"has the same value in {worst['share']:.2%} of the rows"
        )
        value = "missing" if worst["value"] is None else repr(worst["value"])
        return Outcome(
            "failed",
            f"{len(found)} feature(s) are (almost) constant: {_names([f['feature'] for f in found])}; "
            f"'{worst['feature']}' {what} ({value}, {worst['dataset']} data), limit "
            f"{dominant_share:.2%}",
            worst["share"],
            dominant_share,
            details,
        )
    return Outcome(
        "passed",
        f"no feature of {len(features)} has one value in {dominant_share:.2%} of the rows or more",
        None,
        dominant_share,
        details,
    )


# --------------------------------------------------------------------------- relation to the label


def feature_bins(
    reference: np.ndarray, current: np.ndarray, numeric: bool, bins: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Bin codes of a feature in both datasets: the reference's quantile bins (numeric) or its
    most common categories; missing values, rare and unseen categories get bins of their own."""
    if numeric:
        ref = np.asarray(reference, dtype=np.float64)
        cur = np.asarray(current, dtype=np.float64)
        finite = ref[np.isfinite(ref)]
        edges = (
            np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
            if len(finite)
            else np.zeros(0)
        )
        k = len(edges) + 1

        def code(x: np.ndarray) -> np.ndarray:
            out = np.searchsorted(edges, x, side="right")
            return np.where(np.isnan(x), k, out)

        return code(ref), code(cur), k + 1
    (ref_codes, cur_codes), labels = categorical_codes(reference, current)
    counts = np.bincount(ref_codes[ref_codes >= 0], minlength=len(labels))
    kept = np.argsort(-counts, kind="stable")[:MAX_CATEGORIES]
    kept = kept[counts[kept] > 0]
    remap = np.full(len(labels) + 1, len(kept), dtype=np.int64)  # rare or unseen
    remap[kept] = np.arange(len(kept))
    remap[-1] = len(kept) + 1  # missing (code -1 reads the last entry)
    return remap[ref_codes], remap[cur_codes], len(kept) + 2


def _gini(pos: np.ndarray, neg: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Gini (2 AUC - 1) of ``score`` per bin for per-bin positive and negative counts; the
    leading axes are replicates (and classes), the last one bins. Ties count half."""
    greater = (score[..., :, None] > score[..., None, :]).astype(np.float64)
    ties = (score[..., :, None] == score[..., None, :]).astype(np.float64)
    wins = np.einsum("...i,...ij,...j->...", pos, greater + 0.5 * ties, neg)
    total = pos.sum(axis=-1) * neg.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(2.0 * wins / total - 1.0)


def relation_power(
    ref_counts: np.ndarray, cur_counts: np.ndarray, task: str
) -> tuple[np.ndarray, np.ndarray]:
    """How well the reference's per-bin label rates predict the label, in each dataset.

    Classification: ``(..., bins, classes)`` label counts; the Gini of the reference's class
    rates as scores (averaged over classes one against the rest beyond two). Regression:
    ``(..., bins, 3)`` counts, sums and sums of squares of the label; the correlation of the
    reference's bin means with the label. An empty reference bin predicts the reference's
    overall rate or mean.
    """
    if task == "regression":
        return _correlation_power(ref_counts, cur_counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        totals = ref_counts.sum(axis=-1, keepdims=True)
        prior = ref_counts.sum(axis=-2, keepdims=True) / ref_counts.sum(
            axis=(-2, -1), keepdims=True
        )
        rates = np.where(totals > 0, ref_counts / np.where(totals > 0, totals, 1), prior)
    classes = ref_counts.shape[-1]
    wanted = [1] if classes == 2 else list(range(classes))
    powers = []
    for counts in (ref_counts, cur_counts):
        per_class = [
            _gini(counts[..., k], counts.sum(axis=-1) - counts[..., k], rates[..., k])
            for k in wanted
        ]
        powers.append(
            np.nanmean(np.stack(per_class), axis=0) if len(per_class) > 1 else per_class[0]
        )
    return powers[0], powers[1]


def _correlation_power(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        n_ref = ref[..., 0]
        overall = ref[..., 1].sum(axis=-1, keepdims=True) / n_ref.sum(axis=-1, keepdims=True)
        means = np.where(n_ref > 0, ref[..., 1] / np.where(n_ref > 0, n_ref, 1), overall)
        out = []
        for stats in (ref, cur):
            n, s, q = stats[..., 0], stats[..., 1], stats[..., 2]
            total = n.sum(axis=-1)
            e_sum = (n * means).sum(axis=-1)
            cov = (means * s).sum(axis=-1) - e_sum * s.sum(axis=-1) / total
            var_e = (n * means**2).sum(axis=-1) - e_sum**2 / total
            var_y = q.sum(axis=-1) - s.sum(axis=-1) ** 2 / total
            out.append(cov / np.sqrt(var_e * var_y))
    return np.asarray(out[0]), np.asarray(out[1])


def label_stats(
    bins: np.ndarray,
    y: np.ndarray,
    k: int,
    task: str,
    n_classes: int,
    group: np.ndarray | None,
    n_groups: int,
) -> np.ndarray:
    """Per (group,) bin statistics of the label: class counts, or count, sum, sum of squares."""
    g = np.zeros(len(bins), dtype=np.int64) if group is None else group
    if task == "regression":
        cell = g * k + bins
        size = n_groups * k
        yf = np.asarray(y, dtype=np.float64)
        stats = np.stack(
            [
                np.bincount(cell, minlength=size),
                np.bincount(cell, weights=yf, minlength=size),
                np.bincount(cell, weights=yf * yf, minlength=size),
            ],
            axis=-1,
        ).astype(np.float64)
        return stats.reshape(n_groups, k, 3)
    cell = (g * k + bins) * n_classes + y
    flat = np.bincount(cell, minlength=n_groups * k * n_classes).astype(np.float64)
    return flat.reshape(n_groups, k, n_classes)


def relation_change(
    ref_x: np.ndarray,
    ref_y: np.ndarray,
    cur_x: np.ndarray,
    cur_y: np.ndarray,
    *,
    numeric: bool,
    task: str,
    n_classes: int,
    bins: int = 10,
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """A feature's predictive power in both datasets and their difference, with intervals.

    ``ref_y`` and ``cur_y`` are class indices (classification) or values (regression).
    """
    ref_b, cur_b, k = feature_bins(ref_x, cur_x, numeric, bins)
    ref_s = label_stats(ref_b, ref_y, k, task, n_classes, None, 1)[0]
    cur_s = label_stats(cur_b, cur_y, k, task, n_classes, None, 1)[0]
    p_ref, p_cur = (float(v) for v in relation_power(ref_s, cur_s, task))
    result: dict[str, Any] = {
        "reference": p_ref,
        "current": p_cur,
        "change": p_cur - p_ref,
        "ci_low": None,
        "ci_high": None,
    }
    if n_boot and np.isfinite(p_cur - p_ref):
        reps = []
        for x, b, s in ((ref_b, ref_y, 0), (cur_b, cur_y, 1)):
            boot = BucketBootstrap(
                n_boot,
                seed=int(np.random.SeedSequence([seed, s]).generate_state(1)[0]),
                n_buckets=max(20, min(500, 2_000_000 // (k * max(n_classes, 3)))),
            )
            buckets = boot.assign(np.arange(len(x)))
            stats = label_stats(x, b, k, task, n_classes, buckets, boot.n_buckets)
            reps.append(boot.resample(stats))
        r_ref, r_cur = relation_power(reps[0], reps[1], task)
        low, high = percentile_interval(r_cur - r_ref, confidence, p_cur - p_ref)
        result["ci_low"], result["ci_high"] = low, high
    return result


def check_relation_changed(
    reference: Columns,
    ref_y: np.ndarray,
    current: Columns,
    cur_y: np.ndarray,
    features: Sequence[str],
    kinds: Mapping[str, str],
    task: str,
    *,
    n_classes: int,
    max_change: float = 0.2,
    bins: int = 10,
    evidence: str = "interval",
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
) -> Outcome:
    """Features whose relation to the label changed by more than ``max_change``.

    The measure is the predictive power of the reference's per-bin label rates (or means):
    Gini for classifiers, correlation for regressors. The same rates are scored on the
    evaluation data, so a relation that weakened, strengthened or reversed all show.
    """
    measure = "correlation" if task == "regression" else "Gini"
    found: list[dict[str, Any]] = []
    for feature in features:
        r = relation_change(
            reference[feature],
            ref_y,
            current[feature],
            cur_y,
            numeric=kinds.get(feature) == "numeric",
            task=task,
            n_classes=n_classes,
            bins=bins,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
        )
        change = r["change"]
        if evidence == "point" or r["ci_low"] is None:
            low = high = change
        else:
            low, high = r["ci_low"], r["ci_high"]
        status = (
            "changed"
            if np.isfinite(change) and (low > max_change or high < -max_change)
            else "unsure"
            if np.isfinite(change) and (high > max_change or low < -max_change)
            else "stable"
        )
        found.append({"feature": feature, "status": status, **r})
    found.sort(key=lambda f: -abs(f["change"]) if np.isfinite(f["change"]) else 0.0)
    changed = [f for f in found if f["status"] == "changed"]
    details = {
        "examples": (changed or found)[:MAX_EXAMPLES],
        "count": len(changed),
        "measure": measure,
        "features": found,
    }

    def shown(f: dict[str, Any]) -> str:
        text = f"{measure} {f['reference']:.3g} in the reference, {f['current']:.3g} now ({f['change']:+.3g}"
        if f["ci_low"] is not None:
            text += f" [{f['ci_low']:+.3g}, {f['ci_high']:+.3g}]"
        return text + ")"

    if changed:
        top = changed[0]
        return Outcome(
            "failed",
            f"the relation to the label changed for {len(changed)} feature(s): "
            f"{_names([f['feature'] for f in changed])}; '{top['feature']}': {shown(top)}, "
            f"beyond ±{fmt(max_change)}",
            top["change"],
            max_change,
            details,
        )
    top_f = found[0] if found else None
    message = f"every feature's relation to the label holds within ±{fmt(max_change)}"
    if top_f is not None and np.isfinite(top_f["change"]):
        message += f"; largest change '{top_f['feature']}': {shown(top_f)}"
    return Outcome("passed", message, top_f["change"] if top_f else None, max_change, details)
