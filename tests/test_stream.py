"""engine: stream — the evaluation folded batch by batch equals the one made on all rows."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from mlci.commands import main
from mlci.evaluate.bootstrap import BucketBootstrap
from mlci.evaluate.evaluator import Evaluator, Outputs, merge_sums
from mlci.evaluate.significance import Moments, slice_significance, welch_greater
from mlci.evaluate.sketch import CELLS, ScoreSketch, score_cells

ROWS = 140_000  # three prediction chunks, so three batches at the smallest batch size
ROW_GROUP = 30_000  # row groups that do not line up with the batches
RANKING = ("roc_auc", "pr_auc")
# Measured on this data's slices: average precision at most 1.2e-3 from the exact value,
# ranking interval ends (a grid from sketched quantiles) at most 2.2e-3 from the in-memory ones.
PR_AUC_SKETCH = 2e-3
RANKING_INTERVAL = 5e-3


@pytest.fixture(scope="module")
def credit(credit_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The credit example on 140,000 rows of Parquet, with a weight and a cluster column,
    and an mlci.yaml every engine runs (no quantile slices or search, which tests of their
    own turn on; no fairness or importance)."""
    root = tmp_path_factory.mktemp("stream") / "credit"
    shutil.copytree(credit_example, root, ignore=shutil.ignore_patterns("mlci-out"))
    one = pacsv.read_csv(root / "data" / "eval.csv")
    copies = []
    for k in range(math.ceil(ROWS / one.num_rows)):
        ids = pc.add(one.column("application_id"), k * 10_000_000)
        copies.append(one.set_column(0, "application_id", ids))
    table = pa.concat_tables(copies).slice(0, ROWS)
    rng = np.random.default_rng(5)
    table = table.append_column("w", pa.array(rng.gamma(2.0, 0.5, ROWS)))
    table = table.append_column("cluster", pa.array(rng.integers(0, 20_000, ROWS)))
    pq.write_table(table, root / "data" / "big.parquet", row_group_size=ROW_GROUP)
    config = yaml.safe_load((root / "mlci.yaml").read_text())
    config["data"]["path"] = "data/big.parquet"
    config["data"]["features"] = [
        c for c in one.column_names if c not in ("application_id", "defaulted")
    ]
    evaluation = config["evaluation"]
    evaluation["slices"] = [s for s in evaluation["slices"] if "quantiles" not in s]
    evaluation["discover"] = {"enabled": False}
    del evaluation["fairness"], evaluation["importance"]
    (root / "mlci.yaml").write_text(yaml.safe_dump(config))
    return root


def configure(root: Path, name: str, engine: dict[str, Any], **data: Any) -> Path:
    config = yaml.safe_load((root / "mlci.yaml").read_text())
    config["engine"] = engine
    config["data"].update(data)
    path = root / name
    path.write_text(yaml.safe_dump(config))
    return path


def evaluate(config: Path, out: Path, *extra: str) -> dict[str, Any]:
    assert main(["evaluate", "-c", str(config), "-o", str(out), "-q", *extra]) == 0
    document: dict[str, Any] = json.loads((out / "results.json").read_text())
    return document


STREAM = {"kind": "stream", "partition_rows": 1}  # one chunk of 65,536 rows per batch
DASK_FOLD = {"kind": "dask", "fold": True, "workers": 2, "partition_rows": 1}


def engines(root: Path, name: str, config: dict[str, Any]) -> list[Path]:
    """``config`` written for all rows at once, for the stream and for a Dask fold of two
    worker processes over TCP, in that order."""
    paths = []
    for suffix, engine in (("local", {"kind": "local"}), ("stream", STREAM), ("dask", DASK_FOLD)):
        path = root / f"{name}-{suffix}.yaml"
        path.write_text(yaml.safe_dump({**config, "engine": engine}))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def pair(credit: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], ...]:
    out = tmp_path_factory.mktemp("pair")
    local = evaluate(configure(credit, "local.yaml", {"kind": "local"}), out / "local")
    streamed = evaluate(configure(credit, "stream.yaml", STREAM), out / "stream")
    return local, streamed


def compare(local: Any, streamed: Any, bound: float, path: str = "", metric: str = "") -> None:
    """Equal but for float rounding (1e-9); ROC AUC within ``bound``, average precision
    within PR_AUC_SKETCH and their interval ends within RANKING_INTERVAL; texts that quote
    ranking intervals may differ in the last digit."""
    if isinstance(local, dict):
        assert set(local) <= set(streamed) | {"roc_auc_sketch_error"}, path
        for key, value in local.items():
            if key != "roc_auc_sketch_error":
                inner = key if key in RANKING else metric
                compare(value, streamed[key], bound, f"{path}.{key}", inner)
    elif isinstance(local, list):
        assert len(local) == len(streamed), path
        for i, (a, b) in enumerate(zip(local, streamed, strict=True)):
            compare(a, b, bound, f"{path}[{i}]", metric)
    elif isinstance(local, float) and isinstance(streamed, float):
        if metric == "roc_auc" and path.endswith(".value") and ".delta." not in path:
            assert abs(local - streamed) <= bound + 1e-12, path
        elif metric:
            tolerance = RANKING_INTERVAL if "ci_" in path else PR_AUC_SKETCH
            if path.endswith("p_value"):
                tolerance = 0.5  # a p-value far from 0 moves with the interval's grid
            assert abs(local - streamed) <= tolerance, path
        elif not path.endswith("q_value"):
            # p-values and bootstrap intervals of a weighted mean amplify rounding a little
            assert streamed == pytest.approx(local, rel=1e-9, abs=1e-15), path
    elif not path.endswith("reason"):
        assert local == streamed, path


def test_streamed_evaluation_equals_the_in_memory_one(pair: tuple[dict[str, Any], ...]) -> None:
    local, streamed = pair
    evaluation = streamed["evaluation"]
    bound = evaluation["roc_auc_sketch_error"]
    assert 0 < bound < 1e-3
    assert local["evaluation"]["roc_auc_sketch_error"] is None
    compare(local["evaluation"], evaluation, bound)
    assert [s["name"] for s in evaluation["slices"]] == [
        s["name"] for s in local["evaluation"]["slices"]
    ]
    assert any(s["flagged"] for s in evaluation["slices"])
    for key in ("model", "baseline", "data"):
        assert streamed[key] == local[key], key


def test_batch_size_changes_nothing_but_rounding(
    credit: Path, pair: tuple[dict[str, Any], ...], tmp_path: Path
) -> None:
    one_batch = configure(credit, "one.yaml", {"kind": "stream", "partition_rows": 10**7})
    whole = evaluate(one_batch, tmp_path / "one")["evaluation"]
    batched = pair[1]["evaluation"]
    # Sketch counts are sums of whole numbers: ranking values agree exactly.
    assert whole["roc_auc_sketch_error"] == batched["roc_auc_sketch_error"]
    compare(whole, batched, 0.0)


def test_point_values_alone_fold_like_the_whole(credit: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((credit / "mlci.yaml").read_text())
    config["evaluation"]["bootstrap"] = 0
    (credit / "points.yaml").write_text(yaml.safe_dump(config))
    config["engine"] = STREAM
    (credit / "points-stream.yaml").write_text(yaml.safe_dump(config))
    local = evaluate(credit / "points.yaml", tmp_path / "l")["evaluation"]
    streamed = evaluate(credit / "points-stream.yaml", tmp_path / "s")["evaluation"]
    assert streamed["metrics"]["candidate"]["accuracy"]["ci_low"] is None
    compare(local, streamed, streamed["roc_auc_sketch_error"])


def test_the_second_pass_takes_the_scores_the_first_kept(
    credit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ROC AUC's bootstrap the file is read twice but predicted once, and the scores
    kept between the passes are gone afterwards."""
    import tempfile

    import onnxruntime as ort

    runs = []
    run = ort.InferenceSession.run

    def counted(session: ort.InferenceSession, *args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        return run(session, *args, **kwargs)

    monkeypatch.setattr(ort.InferenceSession, "run", counted)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    config = yaml.safe_load((credit / "mlci.yaml").read_text())
    config["engine"] = STREAM
    counts = []
    for bootstrap in (0, 200):  # no second pass, then one
        config["evaluation"]["bootstrap"] = bootstrap
        (credit / f"spill-{bootstrap}.yaml").write_text(yaml.safe_dump(config))
        runs.clear()
        document = evaluate(credit / f"spill-{bootstrap}.yaml", tmp_path / str(bootstrap))
        counts.append(len(runs))
    assert "roc_auc" in document["evaluation"]["metrics"]["candidate"]
    assert document["evaluation"]["metrics"]["candidate"]["roc_auc"]["ci_low"] is not None
    assert counts[0] == counts[1] > 0
    assert list(scratch.iterdir()) == []


def discovered(evaluation: dict[str, Any]) -> list[tuple[str, str, int, Any]]:
    return [
        (s["name"], s["definition"], s["size"], s["sliceline"])
        for s in evaluation["slices"]
        if s["source"] == "discovered"
    ]


@pytest.mark.parametrize("search", [{"max_level": 3, "holdout": 0.0}, {"error": "model"}])
def test_slicelines_search_batch_by_batch_finds_the_in_memory_slices(
    credit: Path, search: dict[str, Any], tmp_path: Path
) -> None:
    config = yaml.safe_load((credit / "mlci.yaml").read_text())
    config["evaluation"]["discover"] = {"enabled": True, **search}
    local, streamed, dask = [
        evaluate(path, tmp_path / path.stem)["evaluation"]
        for path in engines(credit, "search", config)
    ]
    found = discovered(streamed)
    assert len(found) >= 5
    if search.get("max_level") == 3:
        assert any(name.count("=") == 3 for name, *_ in found)
    # The search's scores and sums are the in-memory ones to the last bit.
    assert found == discovered(local)
    assert streamed["discovery"] == local["discovery"]
    compare(local, streamed, streamed["roc_auc_sketch_error"])
    # Workers of a Dask fold (two processes over TCP) send their errors; the client searches
    # and the workers fold the found slices: the streamed document exactly.
    assert dask == streamed


def test_quantile_slices_take_the_whole_columns_edges(credit: Path, tmp_path: Path) -> None:
    """Batches, and the workers of a Dask fold (two processes over TCP), slice by the edges
    of the whole column."""
    config = yaml.safe_load((credit / "mlci.yaml").read_text())
    config["evaluation"]["bootstrap"] = 0
    config["evaluation"]["slices"] = [
        {"feature": "income", "quantiles": 4},
        {"name": "tenure", "feature": "credit_history_years", "quantiles": 7},
        {"feature": "late_payments", "quantiles": 10},  # ties: fewer edges than asked
    ]
    local, streamed, dask = [
        evaluate(path, tmp_path / path.stem)["evaluation"]
        for path in engines(credit, "quantiles", config)
    ]
    names = [s["name"] for s in streamed["slices"]]
    assert names == [s["name"] for s in local["slices"]]
    assert 4 + 7 < len(names) < 4 + 7 + 10
    compare(local, streamed, streamed["roc_auc_sketch_error"])
    assert dask == streamed


def test_slicelines_codes_agree_across_batches(tmp_path: Path) -> None:
    """Text levels first met in a later batch, missing text, a numeric column with NaN and
    ties (quantile bins), one of few values (levels) and a boolean: every batch codes them as
    the whole file does, and the search sees the same rows."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    n = ROWS
    x = rng.normal(size=(n, 2)).astype(np.float32)
    raw = rng.normal(size=n) * 10
    raw[rng.random(n) < 0.05] = np.nan
    raw[rng.random(n) < 0.2] = 0.0  # ties at a quantile
    text = np.array(["north", "south", None, "east"], dtype=object)[rng.integers(0, 4, n)]
    text[100_000:][rng.random(n - 100_000) < 0.5] = "late"
    few = rng.integers(0, 4, n) * 5
    flag = rng.random(n) < 0.7
    top_bin = np.nan_to_num(raw) >= np.quantile(raw[np.isfinite(raw)], 0.8)
    hard = top_bin & (few == 10) | (text == "late") & flag
    clean = (x[:, 0] + rng.normal(size=n) > 0).astype(int)
    y = np.where(hard, 1 - clean, clean)  # the model is confidently wrong there
    model = LogisticRegression().fit(x[:5000], y[:5000])
    (tmp_path / "m.onnx").write_bytes(to_onnx(model, x[:1]).SerializeToString())
    columns = {"x1": x[:, 0], "x2": x[:, 1], "raw": raw, "text": text, "few": few, "flag": flag}
    pq.write_table(pa.table({**columns, "y": y}), tmp_path / "d.parquet", row_group_size=ROW_GROUP)
    config = """\
version: 1
data: {path: d.parquet, target: y, features: [x1, x2]}
models: [{name: m, path: m.onnx}]
evaluation:
  bootstrap: 0
  discover: {features: [raw, text, few, flag, x2], max_level: 3, min_support: 200}
"""
    (tmp_path / "l.yaml").write_text(config)
    (tmp_path / "s.yaml").write_text(config + "engine: {kind: stream, partition_rows: 1}\n")
    local = evaluate(tmp_path / "l.yaml", tmp_path / "l")["evaluation"]
    streamed = evaluate(tmp_path / "s.yaml", tmp_path / "s")["evaluation"]
    found = discovered(streamed)
    assert any("raw=" in name and "few=10" in name for name, *_ in found), found
    assert any("text=late" in name and "flag=True" in name for name, *_ in found), found
    assert found == discovered(local)
    assert streamed["discovery"] == local["discovery"]
    compare(local, streamed, streamed["roc_auc_sketch_error"])


def test_weights_and_clusters_fold_like_the_whole(credit: Path, tmp_path: Path) -> None:
    columns = {"weight": "w", "group": "cluster"}
    local = evaluate(configure(credit, "wl.yaml", {"kind": "local"}, **columns), tmp_path / "l")
    streamed = evaluate(configure(credit, "ws.yaml", STREAM, **columns), tmp_path / "s")
    evaluation = streamed["evaluation"]
    assert evaluation["resampling"] == {"unit": "group", "column": "cluster", "buckets": 1000}
    compare(local["evaluation"], evaluation, evaluation["roc_auc_sketch_error"])


def test_the_gate_judges_the_streamed_evidence(credit: Path, tmp_path: Path) -> None:
    decisions = []
    for name, engine in (("local", {"kind": "local"}), ("stream", STREAM)):
        config = configure(credit, f"gate-{name}.yaml", engine)
        out = tmp_path / name
        argv = ["check", "-c", str(config), "-o", str(out), "-q", "--only", "evaluate,gate"]
        code = main(argv)
        document = json.loads((out / "results.json").read_text())
        assert document["stages"]["gate"]["status"] == "ran"
        gate = document["gate"]
        assert code == (1 if gate["decision"] == "block" else 0)
        decisions.append((gate["decision"], [(r["id"], r["status"]) for r in gate["rules"]]))
    assert decisions[0] == decisions[1]
    assert decisions[0][0] == "block"  # the example's candidate regresses on a slice


# ------------------------------------------------------------------ bad input


def _bad_file(root: Path, name: str, change: Any) -> Path:
    table = pq.read_table(root / "data" / "big.parquet")
    path = root / "data" / name
    pq.write_table(change(table), path, row_group_size=ROW_GROUP)
    return path


def _set(table: pa.Table, column: str, row: int, value: Any) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    index = table.column_names.index(column)
    return table.set_column(index, column, pa.array(values, type=table.schema.field(column).type))


BAD: dict[str, tuple[dict[str, Any], str]] = {
    "quantiles of text": (
        {"evaluation.slices": [{"feature": "region", "quantiles": 4}]},
        "'region' is not numeric, so it cannot be binned",
    ),
    "fairness": ({"evaluation.fairness": {"features": ["region"]}}, "fairness needs every row"),
    "CSV data": ({"data.path": "data/eval.csv"}, "is not a Parquet file"),
    "an absent value": (
        {"evaluation.slices": [{"feature": "region", "values": ["atlantis"]}]},
        "no value 'atlantis' in column 'region'",
    ),
    "a missing slice column": (
        {"evaluation.slices": [{"cross": ["region", "regoin"]}]},
        "big.parquet (did you mean 'region'?)",
    ),
    "a numeric column of many values": (
        {"evaluation.slices": [{"feature": "income"}]},
        "numeric feature 'income' has",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_what_needs_every_row_is_refused_in_one_line(
    credit: Path, case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changes, expected = BAD[case]
    config = yaml.safe_load((credit / "mlci.yaml").read_text())
    config["engine"] = STREAM
    for key, value in changes.items():
        section, field = key.split(".")
        config[section][field] = value
    path = credit / f"bad-{case.replace(' ', '-')}.yaml"
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["evaluate", "-c", str(path), "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert expected in err.splitlines()[0], err
    assert not (tmp_path / "out").exists()


def test_other_stages_are_refused(credit: Path, tmp_path: Path, capsys: Any) -> None:
    config = configure(credit, "stages.yaml", STREAM)
    capsys.readouterr()
    assert main(["check", "-c", str(config), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "runs the evaluate and gate stages" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


ROW = 100_000  # in the second batch: messages must count rows from the file's start


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("debt_to_income", math.inf, f"first at data row {ROW + 1}"),
        ("defaulted", None, f"first at data row {ROW + 1}"),
        ("w", -1.0, f"first at data row {ROW + 1}"),
    ],
)
def test_bad_rows_in_a_later_batch_are_named_by_file_row(
    credit: Path, column: str, value: Any, expected: str, tmp_path: Path, capsys: Any
) -> None:
    data = _bad_file(credit, f"bad-{column}.parquet", lambda t: _set(t, column, ROW, value))
    config = configure(credit, f"rows-{column}.yaml", STREAM, path=str(data), weight="w")
    capsys.readouterr()
    assert main(["evaluate", "-c", str(config), "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) <= 2, err
    assert not (tmp_path / "out").exists()


def test_a_feature_missing_everywhere_is_found_across_batches(
    credit: Path, tmp_path: Path, capsys: Any
) -> None:
    data = _bad_file(
        credit,
        "no-region.parquet",
        lambda t: t.set_column(
            t.column_names.index("region"), "region", pa.nulls(t.num_rows, pa.string())
        ),
    )
    config = configure(credit, "no-region.yaml", STREAM, path=str(data))
    document = yaml.safe_load(config.read_text())
    slices = document["evaluation"]["slices"]
    document["evaluation"]["slices"] = [s for s in slices if s.get("feature") != "region"]
    config.write_text(yaml.safe_dump(document))
    capsys.readouterr()
    code = main(["evaluate", "-c", str(config), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "feature column 'region' is missing in every row" in err, err


# ------------------------------------------------------------------ the pieces


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(20, 3000),
    seed=st.integers(0, 2**32 - 1),
    spread=st.sampled_from([0.01, 1.0, 8.0]),
    split=st.floats(0.0, 1.0),
)
def test_sketched_ranking_is_within_its_bound(
    n: int, seed: int, spread: float, split: float
) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    y[:2] = [True, False]
    scores = 1.0 / (1.0 + np.exp(-spread * (rng.normal(size=n) + y)))
    scores = np.round(scores, int(rng.integers(2, 12)))  # ties, as scorecards make
    whole = ScoreSketch(1)
    whole.add(scores[:, None], y[:, None], None)
    exact = roc_auc_score(y, scores)
    assert abs(whole.metrics(["roc_auc"])["roc_auc"] - exact) <= whole.roc_auc_error() + 1e-12
    # Average precision has no such bound, but where no cell holds two distinct scores the
    # sketch is the exact table, and both metrics are exact.
    if len(np.unique(scores)) == len(whole.columns[0][0]):
        sketched = whole.metrics(["roc_auc", "pr_auc"])
        assert sketched["roc_auc"] == pytest.approx(exact, abs=1e-12)
        assert sketched["pr_auc"] == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    cut = int(split * n)
    parts = ScoreSketch(1)
    for rows in (slice(0, cut), slice(cut, n)):
        part = ScoreSketch(1)
        part.add(scores[rows, None], y[rows, None], None)
        parts.merge(part)
    for (cells, counts), (all_cells, all_counts) in zip(parts.columns, whole.columns, strict=True):
        assert np.array_equal(cells, all_cells) and np.array_equal(counts, all_counts)


@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=200))
def test_score_cells_keep_the_order_of_scores(values: list[float]) -> None:
    scores = np.sort(np.array(values))
    cells = score_cells(scores)
    assert np.all(np.diff(cells) >= 0)
    assert cells.min() >= 0 and cells.max() < CELLS


@settings(max_examples=80, deadline=None)
@given(
    errors=st.lists(st.floats(0.0, 50.0), min_size=4, max_size=300),
    seed=st.integers(0, 1000),
    cuts=st.lists(st.integers(0, 300), max_size=4),
)
def test_welch_from_moments_matches_the_test_on_rows(
    errors: list[float], seed: int, cuts: list[int]
) -> None:
    e = np.array(errors)
    mask = np.random.default_rng(seed).random(len(e)) < 0.4
    inside, outside = Moments(), Moments()
    bounds = sorted({0, len(e), *(c for c in cuts if c < len(e))})
    for a, b in zip(bounds[:-1], bounds[1:], strict=False):
        inside.add(e[a:b][mask[a:b]])
        outside.add(e[a:b][~mask[a:b]])
    assert inside.n == mask.sum()
    assert inside.mean == pytest.approx(e[mask].mean() if mask.any() else 0.0, abs=1e-9)
    expected = slice_significance(e, [mask])[0].p_value
    assert welch_greater(inside, outside) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    if mask.sum() >= 2 and (~mask).sum() >= 2 and np.ptp(e[mask]) + np.ptp(e[~mask]) > 0:
        reference = stats.ttest_ind(e[mask], e[~mask], equal_var=False, alternative="greater")
        # scipy's variances underflow on subnormal errors (NaN); there is nothing to compare.
        if np.isfinite(reference.pvalue):
            assert welch_greater(inside, outside) == pytest.approx(
                float(reference.pvalue), rel=1e-6, abs=1e-12
            )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.floats(0.05, 0.95), weighted=st.booleans())
def test_sums_of_batches_finish_into_the_whole_evaluation(
    seed: int, cut: float, weighted: bool
) -> None:
    rng = np.random.default_rng(seed)
    n = 600
    y = rng.integers(0, 3, n)
    proba = rng.dirichlet(np.ones(3), n)
    out = Outputs(labels=proba.argmax(axis=1), proba=proba)
    weight = rng.gamma(2.0, 1.0, n) if weighted else None
    metrics = ["accuracy", "f1_macro", "log_loss", "brier", "ece"]
    boot = BucketBootstrap(200, seed=3)
    whole = Evaluator("multiclass", y, metrics=metrics, weight=weight, bootstrap=boot)
    expected = whole.estimate(out)
    k = int(cut * n)
    merged = None
    for rows in (slice(0, k), slice(k, n)):
        part = Evaluator(
            "multiclass",
            y[rows],
            metrics=metrics,
            n_classes=3,
            weight=None if weight is None else weight[rows],
            keys=np.arange(n)[rows],
            bootstrap=boot,
        )
        sums = part.sums(Outputs(labels=out.labels[rows], proba=proba[rows]), resample=True)
        merged = sums if merged is None else merge_sums(merged, sums)
    assert merged is not None
    got = whole.estimates(*whole.finish(merged))
    for name in metrics:
        for field in ("value", "ci_low", "ci_high"):
            a, b = getattr(expected[name], field), getattr(got[name], field)
            assert b == pytest.approx(a, rel=1e-9, abs=1e-12), (name, field)


TASKS = {
    "regression": ("metrics: [mae, rmse, r2, mape]", "rmse"),
    "multiclass": ("metrics: [accuracy, f1_macro, log_loss, roc_auc, ece]", "roc_auc"),
}


@pytest.mark.parametrize("task", list(TASKS))
def test_regression_and_multiclass_fold_like_the_whole(task: str, tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    rng = np.random.default_rng(11)
    n = ROWS
    x = rng.normal(size=(n, 3)).astype(np.float32)
    group = np.array(["a", "b", "c", "d"])[rng.integers(0, 4, n)]
    if task == "regression":
        y: Any = x @ np.array([1.5, -2.0, 0.5]) + 10 + rng.standard_t(3, n)
        models = (LinearRegression(), Ridge(alpha=50_000.0))
    else:
        score = x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=n)
        y = np.array(["high", "low", "mid"])[np.digitize(score, [-0.5, 0.5])]
        models = (LogisticRegression(max_iter=300), LogisticRegression(C=1e-4, max_iter=300))
    for name, model in zip(("candidate", "baseline"), models, strict=True):
        model.fit(x[:5000], y[:5000])
        (tmp_path / f"{name}.onnx").write_bytes(to_onnx(model, x[:1]).SerializeToString())
    columns = {"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "g": group, "y": y}
    pq.write_table(pa.table(columns), tmp_path / "data.parquet", row_group_size=ROW_GROUP)
    metrics, primary = TASKS[task]
    text = f"""\
version: 1
data: {{path: data.parquet, target: y, features: [x1, x2, x3]}}
models:
  - {{name: m, path: candidate.onnx, baseline: {{path: baseline.onnx}}}}
evaluation:
  {metrics}
  bootstrap: 200
  discover: {{enabled: false}}
  slices:
    - feature: g
    - {{feature: x1, bins: [-9, -1, 0, 1, 9]}}
    - {{name: corner, where: "x2 > 1 and g == 'a'"}}
"""
    (tmp_path / "local.yaml").write_text(text)
    (tmp_path / "stream.yaml").write_text(text + "engine: {kind: stream, partition_rows: 1}\n")
    local = evaluate(tmp_path / "local.yaml", tmp_path / "l")["evaluation"]
    streamed = evaluate(tmp_path / "stream.yaml", tmp_path / "s")["evaluation"]
    assert streamed["task"] == task and streamed["primary_metric"] == primary
    assert len(streamed["slices"]) == 4 + 4 + 1
    bound = streamed["roc_auc_sketch_error"] or 0.0
    assert (bound > 0) == (task == "multiclass")
    compare(local, streamed, bound)


def test_dask_workers_fold_what_one_process_folds(
    credit: Path, pair: tuple[dict[str, Any], ...], tmp_path: Path, capsys: Any
) -> None:
    """On a real LocalCluster (two worker processes over TCP): workers fold their partitions,
    the client merges the folds in row order, and the document is the streamed one exactly."""
    config = configure(credit, "dask-fold.yaml", DASK_FOLD)
    capsys.readouterr()
    assert main(["evaluate", "-c", str(config), "-o", str(tmp_path), "-q"]) == 0
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["evaluation"] == pair[1]["evaluation"]


def test_dask_fold_refuses_what_needs_every_row(credit: Path, tmp_path: Path, capsys: Any) -> None:
    config = configure(credit, "dask-stages.yaml", {"kind": "dask", "fold": True})
    capsys.readouterr()
    assert main(["check", "-c", str(config), "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "engine: dask with fold: true" in err and "evaluate and gate stages" in err
