"""The pure parts of mlci watch, against reference implementations and by simulation, and the
traffic sampler's queue, rotation and formats."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata
from serve_client import request_for
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from mlci.serve import ModelRunner
from mlci.serve.sampling import SampleError, SampleOptions, TrafficSampler
from mlci.watch.estimate import (
    BINARY_METRICS,
    estimate_accuracy,
    estimate_binary,
    expected_auc,
    fit_isotonic,
    midranks,
)
from mlci.watch.sample import find_files, read_sample
from mlci.watch.windows import DAY_US, split
from project import Project, make_frame

# -- CBPE ------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.booleans()), min_size=1, max_size=200))
def test_isotonic_fit_matches_scikit_learn(points: list[tuple[int, bool]]) -> None:
    scores = np.array([p[0] / 20 for p in points])
    labels = np.array([p[1] for p in points], dtype=float)
    ours = fit_isotonic(scores, labels)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(scores, labels)
    grid = np.linspace(-0.1, 1.1, 61)
    np.testing.assert_allclose(ours(grid), theirs.predict(grid), atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=100))
def test_midranks_match_scipy(values: list[int]) -> None:
    np.testing.assert_array_equal(midranks(np.array(values, float)), rankdata(values))


def test_expected_auc_is_the_expected_pair_count() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(60)
    s = np.round(rng.random(60), 1)  # ties
    num = sum(
        p[i] * (1 - p[j]) * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
        for i in range(60)
        for j in range(60)
        if i != j
    )
    assert expected_auc(p, s) == pytest.approx(num / (p.sum() * (1 - p).sum()), rel=1e-12)


@pytest.mark.parametrize("exact_budget", [10**9, 0], ids=["label-draws", "normal-limit"])
def test_cbpe_intervals_cover_the_realised_metric(exact_budget: int) -> None:
    """Labels drawn from calibrated probabilities: the 95% interval should hold the realised
    metric of the window 95% of the time (400 windows: Monte Carlo error 1.1 points)."""
    rng = np.random.default_rng(7)
    trials, n = 400, 400
    inside = dict.fromkeys(BINARY_METRICS, 0)
    for k in range(trials):
        p = rng.beta(2, 3, n)
        predicted = p > 0.5
        estimate = estimate_binary(
            p, predicted, p, replicates=300, seed=k, exact_budget=exact_budget
        )
        y = (rng.random(n) < p).astype(int)
        tp = int((predicted & (y == 1)).sum())
        realised = {
            "accuracy": float((predicted == y).mean()),
            "precision": tp / predicted.sum(),
            "recall": tp / y.sum(),
            "f1": 2 * tp / (predicted.sum() + y.sum()),
            "roc_auc": roc_auc_score(y, p),
        }
        for metric, value in realised.items():
            e = estimate[metric]
            assert e.ci_low is not None and e.ci_high is not None
            inside[metric] += e.ci_low <= value <= e.ci_high
    for metric, count in inside.items():
        coverage = count / trials
        print(f"{metric}: {coverage:.3f}")
        assert abs(coverage - 0.95) <= 4 * np.sqrt(0.95 * 0.05 / trials), (metric, coverage)


def test_cbpe_point_estimates_agree_with_direct_simulation() -> None:
    rng = np.random.default_rng(11)
    p = rng.beta(2, 5, 2000)
    predicted = p > 0.3
    estimate = estimate_binary(p, predicted, p, replicates=50)
    draws = rng.random((2000, p.size)) < p
    accuracy = (draws == predicted).mean()
    aucs = np.mean([roc_auc_score(d, p) for d in draws[:300]])
    recall = np.mean((draws & predicted).sum(axis=1) / draws.sum(axis=1))
    assert estimate["accuracy"].value == pytest.approx(accuracy, abs=3e-3)
    assert estimate["roc_auc"].value == pytest.approx(aucs, abs=3e-3)
    assert estimate["recall"].value == pytest.approx(recall, abs=3e-3)
    # multiclass accuracy: the mean probability of the predicted class
    single = estimate_accuracy(p, replicates=200)
    assert single.value == pytest.approx(p.mean())


def test_daily_windows_follow_utc_days_and_row_windows_keep_their_keys() -> None:
    times = np.array([DAY_US * 3 + 5, DAY_US * 2 + 10, DAY_US * 3 - 1, DAY_US * 4])
    days = split(times, None)
    assert [d.key for d in days] == ["1970-01-03", "1970-01-04", "1970-01-05"]
    assert [d.rows.tolist() for d in days] == [[1, 2], [0], [3]]
    rows = split(np.arange(10) * 1_000_000, 4)
    assert [r.rows.size for r in rows] == [4, 4, 2]
    longer = split(np.arange(14) * 1_000_000, 4)
    assert [r.key for r in longer[:2]] == [r.key for r in rows[:2]]


# -- the sampler -----------------------------------------------------------------------------


@pytest.fixture
def runner(built_project: Project) -> ModelRunner:
    return ModelRunner(built_project.root / "models" / "candidate.onnx", "demo")


def _inference(runner: ModelRunner, rows: int, seed: int, request_id: str | None = "r") -> object:
    body = request_for(make_frame(rows, seed))
    body["id"] = request_id
    if request_id is None:
        del body["id"]
    return runner.infer(json.dumps(body).encode(), None)


def _sampler(runner: ModelRunner, tmp_path: Path, **options: object) -> TrafficSampler:
    return TrafficSampler(
        SampleOptions(directory=tmp_path / "s", **options),  # type: ignore[arg-type]
        model=runner.name,
        version=runner.version,
        model_path=runner.path,
        inputs=[s.name for s in runner.inputs],
    )


def test_a_full_queue_drops_and_counts_and_never_waits(runner: ModelRunner, tmp_path: Path) -> None:
    sampler = _sampler(runner, tmp_path, queue_size=2, columns=None)
    release = threading.Event()
    original = sampler.records

    def slow(when: float, inference: object) -> list[dict[str, object]]:
        release.wait(10)
        return original(when, inference)  # type: ignore[arg-type]

    sampler.records = slow  # type: ignore[method-assign]
    inference = _inference(runner, 3, 1)
    for _ in range(20):
        sampler(inference)  # type: ignore[arg-type]
    stats = sampler.stats()
    assert stats.seen == 20 and stats.queued + stats.dropped == 20 and stats.dropped >= 17
    release.set()
    final = sampler.close()
    assert final.rows_written == 3 * final.queued
    (path,) = find_files(tmp_path / "s")
    assert len(path.read_text().splitlines()) == final.rows_written


def test_fraction_and_rate_choose_requests(runner: ModelRunner, tmp_path: Path) -> None:
    inference = _inference(runner, 1, 2)
    chances = iter([0.1, 0.9, 0.2, 0.6])
    sampler = TrafficSampler(
        SampleOptions(directory=tmp_path / "f", fraction=0.5),
        model="demo", version="1", model_path=runner.path, inputs=["age"],
        chance=lambda: next(chances),
    )  # fmt: skip
    for _ in range(4):
        sampler(inference)  # type: ignore[arg-type]
    assert sampler.close().queued == 2
    now = [0.0]
    sampler = TrafficSampler(
        SampleOptions(directory=tmp_path / "r", rate=2.0),
        model="demo", version="1", model_path=runner.path, inputs=["age"], clock=lambda: now[0],
    )  # fmt: skip
    for step in range(40):  # 40 requests over 4 seconds at most 2 per second
        now[0] = step * 0.1
        sampler(inference)  # type: ignore[arg-type]
    assert 8 <= sampler.close().queued <= 10


def test_files_rotate_by_size_and_the_oldest_go(runner: ModelRunner, tmp_path: Path) -> None:
    sampler = _sampler(runner, tmp_path, file_bytes=1, max_bytes=3000)
    for i in range(12):
        sampler(_inference(runner, 2, i, request_id=None))  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while sampler.stats().rows_written < 2 * (i + 1) and time.monotonic() < deadline:
            time.sleep(0.01)  # one batch, so one file, per request
    stats = sampler.close()
    files = find_files(tmp_path / "s")
    assert stats.files_finished >= 2 and stats.files_removed >= 1
    assert sum(p.stat().st_size for p in files) <= 3000 + max(p.stat().st_size for p in files)
    sample = read_sample(files)
    assert all(len(i) == 32 for i in sample.request_id)  # generated ids: uuid4 hex
    assert not list((tmp_path / "s").glob(".*.open"))


def test_parquet_samples_read_like_json_lines(runner: ModelRunner, tmp_path: Path) -> None:
    for fmt in ("jsonl", "parquet"):
        sampler = _sampler(runner, tmp_path / fmt, format=fmt, columns=("age", "region"))
        sampler(_inference(runner, 5, 3))  # type: ignore[arg-type]
        sampler.close()
    a = read_sample(find_files(tmp_path / "jsonl" / "s"))
    b = read_sample(find_files(tmp_path / "parquet" / "s"))
    assert sorted(a.inputs) == sorted(b.inputs) == ["age", "region"]
    np.testing.assert_array_equal(a.inputs["age"], b.inputs["age"])
    np.testing.assert_array_equal(a.outputs["probabilities"], b.outputs["probabilities"])
    assert a.row.tolist() == b.row.tolist() == [0, 1, 2, 3, 4]


def test_unknown_sample_columns_are_refused(runner: ModelRunner, tmp_path: Path) -> None:
    with pytest.raises(SampleError, match="no input 'agee'"):
        _sampler(runner, tmp_path, columns=("agee",))
    with pytest.raises(SampleError, match="fraction"):
        _sampler(runner, tmp_path, fraction=1.5)
