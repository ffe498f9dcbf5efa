"""mlci watch on traffic the real serving runtime sampled on loopback.

The credit example's evaluation data is split in two: one half is the reference, the other is
replayed through the inference server (requests of 10 rows, each with an id), then a copy
with ``income`` shifted. Labels are joined by request id and row.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from github_fake_watch import OWNER, REPO, WatchFakeGitHub
from watch_traffic import serve_and_replay

from mlci.commands import main
from mlci.config import load_config
from mlci.data import read_columns
from mlci.results import Results, load
from mlci.watch.analysis import WatchOptions, run_watch
from mlci.watch.sample import find_files, read_sample

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "credit"
ROWS_PER_REQUEST = 10
SHIFT = 1.5


@dataclass(frozen=True)
class Traffic:
    root: Path
    sample: Path  # unshifted, then shifted
    unshifted: Path  # the unshifted replay alone
    model: Path
    unshifted_rows: int
    shifted_rows: int


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    import pandas as pd

    root = tmp_path_factory.mktemp("watch") / "credit"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("data", "models", "mlci-out"))
    subprocess.run([sys.executable, str(root / "train.py")], check=True, capture_output=True)
    _, n, columns, _ = read_columns(root / "data" / "eval.csv")
    half = n // 2
    reference = {k: v[:half] for k, v in columns.items()}
    pd.DataFrame(reference).to_csv(root / "data" / "watch-reference.csv", index=False)
    current = {k: v[half:] for k, v in columns.items()}
    shifted = {k: v[: half // 2] for k, v in current.items()}
    shifted["income"] = shifted["income"] * SHIFT
    model = root / "models" / "candidate.onnx"

    sample = root / "sample"
    unshifted = root / "sample-unshifted"
    replay = [_batch_requests(current, "a"), _batch_requests(shifted, "b")]
    serve_and_replay(model, "credit-default", replay, sample)
    shutil.copytree(sample, unshifted)
    # the unshifted part alone: keep only its records
    for path in unshifted.glob("*.jsonl"):
        lines = [line for line in path.read_text().splitlines() if '"request_id":"a-' in line]
        path.write_text("\n".join(lines) + "\n")

    labels = []
    for prefix, part in (("a", current), ("b", shifted)):
        for i, y in enumerate(part["defaulted"].tolist()):
            labels.append(
                {"request_id": f"{prefix}-{i // ROWS_PER_REQUEST}", "row": i % ROWS_PER_REQUEST,
                 "defaulted": y}
            )  # fmt: skip
    pd.DataFrame(labels).to_csv(root / "data" / "labels.csv", index=False)
    return Traffic(root, sample, unshifted, model, len(current["income"]), len(shifted["income"]))


def _batch_requests(
    columns: dict[str, np.ndarray], prefix: str
) -> tuple[dict[str, Any], list[str]]:
    """Requests of ROWS_PER_REQUEST rows: the serve helper sends one row per id, so group."""
    return columns, [f"{prefix}-{i // ROWS_PER_REQUEST}" for i in range(len(columns["income"]))]


def configure(root: Path, **watch: Any) -> Path:
    config = yaml.safe_load((root / "mlci.yaml").read_text())
    config["watch"] = {"reference": "data/watch-reference.csv", **watch}
    path = root / f"mlci-{abs(hash(json.dumps(watch, sort_keys=True)))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def watch_of(path: Path, sample: Path, window: str) -> Results:
    loaded = load_config(path)
    return run_watch(loaded, WatchOptions(sample=str(sample), window=window), lambda _: None)


# -- the sample the server wrote -------------------------------------------------------------


def test_server_sample_holds_every_row_with_ids_digest_and_outputs(traffic: Traffic) -> None:
    files = find_files(traffic.sample)
    sample = read_sample(files)
    assert sample.rows == traffic.unshifted_rows + traffic.shifted_rows
    digest = hashlib.sha256(traffic.model.read_bytes()).hexdigest()
    assert set(sample.model_sha256.tolist()) == {digest}
    ids = sample.request_id.tolist()
    assert ids[0] == "a-0" and ids[-1].startswith("b-")
    assert sample.outputs["probabilities"].shape == (sample.rows, 2)
    # what the server answered is what mlci's model predicts on the same rows
    from mlci.models.onnx import OnnxModel

    _, n, columns, _ = read_columns(traffic.root / "data" / "eval.csv")
    model = OnnxModel(traffic.model)
    frame = {f: columns[f][n // 2 : n // 2 + 50] for f in model.info.features}
    expected = model.predict(frame)
    assert expected.proba is not None
    np.testing.assert_allclose(sample.outputs["probabilities"][:50], expected.proba, atol=1e-6)
    np.testing.assert_allclose(sample.inputs["income"][:50], frame["income"], rtol=1e-6)


def test_no_input_is_written_unless_named(traffic: Traffic, tmp_path: Path) -> None:
    _, n, columns, _ = read_columns(traffic.root / "data" / "eval.csv")
    part = {k: v[:20] for k, v in columns.items()}
    ids = [f"r{i}" for i in range(20)]
    quiet = serve_and_replay(traffic.model, "m", [(part, ids)], tmp_path / "none", columns=())
    records = [
        json.loads(line) for p in quiet.glob("*.jsonl") for line in p.read_text().splitlines()
    ]
    assert len(records) == 20 and all(r["inputs"] == {} for r in records)
    assert {r["request_id"] for r in records} == set(ids)
    named = serve_and_replay(
        traffic.model, "m", [(part, ids)], tmp_path / "some", columns=("income", "age"),
        exclude=("age",),
    )  # fmt: skip
    records = [
        json.loads(line) for p in named.glob("*.jsonl") for line in p.read_text().splitlines()
    ]
    assert all(set(r["inputs"]) == {"income"} for r in records)


# -- drift -----------------------------------------------------------------------------------


def test_false_alarm_rate_over_100_windows_of_unshifted_traffic(traffic: Traffic) -> None:
    path = configure(
        traffic.root, critical_features=["income", "debt_to_income"], slices=False,
        prediction_drift=True, estimate={"replicates": 50}, bootstrap=0, history=1000,
    )  # fmt: skip
    document = watch_of(path, traffic.unshifted, "100 rows")
    assert document.watch is not None
    windows = [w for w in document.watch.windows if w.status == "analysed"]
    assert len(windows) == traffic.unshifted_rows // 100 >= 100
    any_drift = sum(1 for w in windows if w.drifted)
    alarms = sum(1 for w in windows if w.alarms)
    tests = sum(len(w.drift) for w in windows)
    drifted = sum(len(w.drifted) for w in windows)
    print(
        f"\nfalse alarms over {len(windows)} windows of 100 rows: any feature drifted in "
        f"{any_drift} ({any_drift / len(windows):.1%}), alarm in {alarms} "
        f"({alarms / len(windows):.1%}); {drifted} of {tests} feature tests"
    )
    # Benjamini-Hochberg at q = 0.05 keeps a window's chance of any flag under 5% when
    # nothing drifted; 100 windows give a Monte Carlo standard error of 2.2 points.
    assert any_drift / len(windows) <= 0.05 + 3 * 0.022
    assert alarms <= any_drift + sum(
        1 for w in windows if w.prediction_drift and w.prediction_drift.drifted
    )


def test_shifted_feature_alarms_and_the_others_do_not(traffic: Traffic) -> None:
    path = configure(traffic.root, critical_features=["income", "age"], slices=False,
                     estimate={"replicates": 50}, bootstrap=0)  # fmt: skip
    document = watch_of(path, traffic.sample, "1000 rows")
    watch = document.watch
    assert watch is not None
    windows = [w for w in watch.windows if w.status == "analysed"]
    before, after = (
        windows[: traffic.unshifted_rows // 1000],
        windows[traffic.unshifted_rows // 1000 :],
    )
    assert len(after) == traffic.shifted_rows // 1000
    assert all(w.drifted == ["income"] for w in after), [w.drifted for w in after]
    assert all([a.rule for a in w.alarms] == ["drift:income"] for w in after)
    assert not any(w.alarms for w in before)
    assert watch.status == "alarm" and watch.alarms[0].feature == "income"


# -- performance -----------------------------------------------------------------------------


def test_estimated_performance_covers_the_measured_one(traffic: Traffic) -> None:
    path = configure(traffic.root, labels={"path": "data/labels.csv", "row": "row"},
                     slices=False, bootstrap=200)  # fmt: skip
    document = watch_of(path, traffic.unshifted, "1000 rows")
    assert document.watch is not None
    windows = [w for w in document.watch.windows if w.status == "analysed"]
    assert len(windows) == 10 and all(w.labelled == w.rows for w in windows)
    assert document.watch.calibration is not None
    assert document.watch.calibration.method == "isotonic"
    for metric in ("accuracy", "roc_auc", "precision", "recall", "f1"):
        inside = 0
        for w in windows:
            estimated, measured = w.estimated[metric], w.measured[metric]
            assert estimated.kind == "estimated" and estimated.method == "cbpe"
            assert measured.kind == "measured"
            assert estimated.ci_low is not None and estimated.ci_high is not None
            inside += estimated.ci_low <= measured.value <= estimated.ci_high  # type: ignore[operator]
        # 95% intervals over 10 windows: 8 or more inside has probability above 98%
        assert inside >= 8, (metric, inside)


def test_measured_metrics_match_the_evaluation_on_the_same_rows(traffic: Traffic) -> None:
    from sklearn.metrics import roc_auc_score

    path = configure(traffic.root, labels={"path": "data/labels.csv", "row": "row"},
                     slices=False, bootstrap=0)  # fmt: skip
    document = watch_of(path, traffic.unshifted, "1000 rows")
    assert document.watch is not None
    first = document.watch.windows[0]
    sample = read_sample(find_files(traffic.unshifted))
    _, n, columns, _ = read_columns(traffic.root / "data" / "eval.csv")
    y = columns["defaulted"][n // 2 : n // 2 + 1000]
    expected = roc_auc_score(y, sample.outputs["probabilities"][:1000, 1])
    assert first.measured["roc_auc"].value == pytest.approx(expected, abs=1e-9)


def test_slices_and_the_command_writes_results_and_reports(
    traffic: Traffic, tmp_path: Path
) -> None:
    path = configure(traffic.root, labels={"path": "data/labels.csv", "row": "row"},
                     critical_features=["income"], floors=[{"metric": "roc_auc", "min": 0.5}],
                     estimate={"replicates": 50}, bootstrap=200)  # fmt: skip
    out = tmp_path / "out"
    code = main(["watch", "--quiet", "-c", str(path), "--sample", str(traffic.sample),
                 "--window", "5000 rows", "-o", str(out)])  # fmt: skip
    assert code == 1  # income drifted in the latest window
    document = load(out / "results.json")
    watch = document.watch
    assert watch is not None and watch.status == "alarm"
    latest = watch.latest
    assert latest is not None
    names = {s.name for s in latest.slices}
    assert "channel=broker" in names and "region=north" in names
    broker = next(s for s in latest.slices if s.name == "channel=broker")
    assert broker.rows > 0 and broker.measured and broker.estimated
    report = (out / "watch.md").read_text()
    assert "(estimated)" in report and "drift:income" in report and "xychart-beta" in report
    page = (out / "watch.html").read_text()
    assert page.count("<svg") >= 5
    # the document passes the shipped schema
    import jsonschema

    from mlci.results import schema

    jsonschema.validate(json.loads((out / "results.json").read_text()), schema())
    # a second run keeps the first run's windows that the new sample lacks
    code = main(["watch", "--quiet", "-c", str(path), "--sample", str(traffic.unshifted),
                 "--window", "5000 rows", "-o", str(tmp_path / "again"), "--previous",
                 str(out / "results.json"), "--exit-zero"])  # fmt: skip
    assert code == 0
    again = load(tmp_path / "again" / "results.json").watch
    assert again is not None and len(again.windows) == 3


def test_bad_watch_configuration_is_one_line_exit_2(
    traffic: Traffic, capsys: pytest.CaptureFixture[str]
) -> None:
    path = configure(traffic.root, critical_features=["incme"])
    assert main(["watch", "-q", "-c", str(path), "--sample", str(traffic.sample)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "watch.critical_features[0]" in err and "incme" in err
    path = configure(traffic.root, window="weekly")
    assert main(["watch", "-q", "-c", str(path), "--sample", str(traffic.sample)]) == 2
    assert "'N rows'" in capsys.readouterr().err
    path = configure(traffic.root)
    assert main(["watch", "-q", "-c", str(path), "--sample", str(traffic.root / "nothing")]) == 2
    assert "no such traffic sample" in capsys.readouterr().err


# -- GitHub ----------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[WatchFakeGitHub]:
    with WatchFakeGitHub() as server:
        yield server


def _env(fake: WatchFakeGitHub) -> dict[str, str]:
    return {
        "GITHUB_API_URL": fake.url,
        "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
        "GITHUB_TOKEN": "ghs_test",
        "GITHUB_RUN_ID": "7",
        "GITHUB_SERVER_URL": "https://github.com",
    }


def test_issue_is_edited_in_place_and_actions_report(
    traffic: Traffic, fake: WatchFakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlci.watch.publish import issue_marker

    # someone else's issue with mlci's marker: never touched
    planted = fake.add_issue("mlci watch: credit-default", issue_marker("credit-default") + "\nx",
                             login="mallory")  # fmt: skip
    actions = {"issue": {"labels": ["model-watch"]}, "status": {"ref": "main"},
               "dispatch": {"workflow": "retrain.yml", "inputs": {"reason": "drift"}}}  # fmt: skip
    path = configure(traffic.root, critical_features=["income"], slices=False, bootstrap=0,
                     estimate={"replicates": 50}, actions=actions)  # fmt: skip
    for key, value in _env(fake).items():
        monkeypatch.setenv(key, value)
    args = ["watch", "--quiet", "-c", str(path), "--github", "--window", "5000 rows"]
    assert main([*args, "--sample", str(traffic.sample), "-o", str(tmp_path / "1")]) == 1
    assert main([*args, "--sample", str(traffic.unshifted), "-o", str(tmp_path / "2")]) == 0
    fake.assert_valid()
    ours = [i for i in fake.issues.values() if i["user"]["login"] == "github-actions[bot]"]
    assert len(ours) == 1 and len(fake.calls("issues/create")) == 1
    assert len(fake.calls("issues/update")) == 1  # the second run edited it in place
    issue = ours[0]
    assert issue["title"] == "mlci watch: credit-default (ok)"
    assert issue["body"].startswith(issue_marker("credit-default") + "\n")
    assert "No rule fired" in issue["body"]
    assert fake.issues[planted["number"]]["body"].endswith("\nx")
    assert [s["state"] for s in fake.statuses] == ["failure", "success"]
    assert {s["sha"] for s in fake.statuses} == {"a" * 40}
    (dispatch,) = fake.dispatches  # only the run with an alarm
    assert dispatch["workflow"] == "retrain.yml" and dispatch["ref"] == "main"
    evidence = json.loads(dispatch["inputs"]["evidence"])
    assert evidence["alarms"][0]["rule"] == "drift:income"
    assert dispatch["inputs"]["reason"] == "drift"


def test_a_user_token_finds_its_issue_by_its_own_login(traffic: Traffic, tmp_path: Path) -> None:
    from mlci.github.client import GitHubClient
    from mlci.watch.config import ActionsConfig
    from mlci.watch.publish import publish

    document = load_document(traffic, tmp_path)
    actions = ActionsConfig.model_validate({"issue": {}})
    with WatchFakeGitHub(token="user", login="octocat") as fake:
        client = GitHubClient("t", api_url=fake.url, sleep=lambda _: None)
        for _ in range(2):
            publish(client, OWNER, REPO, document, actions, report="report")
        fake.assert_valid()
        assert len(fake.issues) == 1 and fake.issues[1]["user"]["login"] == "octocat"
        assert len(fake.calls("issues/create")) == 1


def test_an_alarm_opens_one_draft_pull_request_and_updates_its_evidence(
    traffic: Traffic, fake: WatchFakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = {"pull_request": {"title": "Retrain the credit model"}}
    path = configure(traffic.root, critical_features=["income"], slices=False, bootstrap=0,
                     estimate={"replicates": 50}, actions=actions)  # fmt: skip
    for key, value in _env(fake).items():
        monkeypatch.setenv(key, value)
    args = ["watch", "--quiet", "-c", str(path), "--github", "--window", "5000 rows"]
    for run in ("1", "2"):  # two alarms: one branch, one pull request, the evidence updated
        assert main([*args, "--sample", str(traffic.sample), "-o", str(tmp_path / run)]) == 1
    assert main([*args, "--sample", str(traffic.unshifted), "-o", str(tmp_path / "3")]) == 0
    fake.assert_valid()
    (pull,) = fake.pulls
    assert pull["draft"] is True and pull["title"] == "Retrain the credit model"
    assert pull["head"]["ref"] == "mlci/watch-credit-default" and pull["base"]["ref"] == "main"
    assert fake.refs["mlci/watch-credit-default"] == fake.refs["main"]
    assert len(fake.calls("git/create-ref")) == 2  # the second found the branch there
    assert len(fake.calls("repos/create-or-update-file-contents")) == 2
    evidence = fake.files[("mlci/watch-credit-default", ".mlci/watch/credit-default.md")]
    text = base64.b64decode(evidence["content"]).decode()
    assert "drift:income" in text
    assert ".mlci/watch/credit-default.md" in pull["body"]


def load_document(traffic: Traffic, tmp_path: Path) -> Results:
    path = configure(traffic.root, slices=False, bootstrap=0, estimate={"replicates": 50})
    return watch_of(path, traffic.unshifted, "5000 rows")
