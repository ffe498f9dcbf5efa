"""What the bootstrap resamples, end to end: rows keyed by data.id, or clusters (data.group)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlci.commands import main
from project import Project


def evaluate(project: Project, out: Path) -> dict[str, Any]:
    text = project.config.read_text()
    if "stages:" not in text:
        project.config.write_text(text + "stages: [evaluate]\n")
    assert main(["check", "--config", str(project.config), "--out", str(out), "-q"]) == 0
    evaluation: dict[str, Any] = json.loads((out / "results.json").read_text())["evaluation"]
    return evaluation


def test_intervals_do_not_depend_on_the_order_of_rows(
    built_project: Project, tmp_path: Path
) -> None:
    # Each row's bootstrap weights are a function of (seed, id): shuffling the file's rows
    # changes no interval, so shards of one dataset can be evaluated apart and merged.
    first = built_project.copy(tmp_path / "first")
    shuffled = built_project.copy(tmp_path / "shuffled")
    lines = shuffled.data.read_text().splitlines()
    order = np.random.default_rng(0).permutation(len(lines) - 1) + 1
    shuffled.data.write_text("\n".join([lines[0], *(lines[i] for i in order)]) + "\n")
    a = evaluate(first, tmp_path / "a")
    b = evaluate(shuffled, tmp_path / "b")
    assert a["resampling"] == {"unit": "id", "column": "id", "buckets": 1000}
    for side in ("candidate", "baseline", "delta"):
        for name, est in a["metrics"][side].items():
            other = b["metrics"][side][name]
            for key in ("value", "ci_low", "ci_high"):
                assert other[key] == pytest.approx(est[key], rel=1e-9, abs=1e-12), (side, name)
    declared = {s["name"]: s for s in b["slices"] if s["source"] == "declared"}
    for s in a["slices"]:
        if s["source"] == "declared" and s["status"] == "evaluated":
            got = declared[s["name"]]["delta"]["roc_auc"]
            assert got["ci_low"] == pytest.approx(s["delta"]["roc_auc"]["ci_low"], rel=1e-9)


def test_a_group_column_makes_clusters_the_unit(built_project: Project, tmp_path: Path) -> None:
    project = built_project.copy(tmp_path / "grouped")
    lines = project.data.read_text().splitlines()
    lines[0] += ",household"
    lines[1:] = [f"{line},h{(i // 15):03d}" for i, line in enumerate(lines[1:])]
    project.data.write_text("\n".join(lines) + "\n")
    text = project.config.read_text().replace("  id: id\n", "  id: id\n  group: household\n")
    project.config.write_text(text)
    grouped = evaluate(project, tmp_path / "out")
    assert grouped["resampling"] == {"unit": "group", "column": "household", "buckets": 1000}
    assert grouped["interval_kinds"]["roc_auc"] == "bca"
    # The cluster column is not a feature unless named as one.
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "household" not in results["data"]["features"]


@pytest.mark.parametrize(("clusters", "has_interval"), [(1, False), (9, False), (40, True)])
def test_too_few_clusters_give_no_interval_and_the_gate_says_why(
    built_project: Project, tmp_path: Path, clusters: int, has_interval: bool
) -> None:
    # Over one cluster every bootstrap replicate scales all sums alike, so the interval
    # would collapse onto the point: false certainty that a gate would act on.
    project = built_project.copy(tmp_path / "few")
    lines = project.data.read_text().splitlines()
    lines[0] += ",site"
    lines[1:] = [f"{line},s{i % clusters}" for i, line in enumerate(lines[1:])]
    project.data.write_text("\n".join(lines) + "\n")
    text = project.config.read_text().replace("  id: id\n", "  id: id\n  group: site\n")
    project.config.write_text(
        text + "stages: [evaluate, gate]\n"
        "gate:\n  rules:\n    - {kind: non_inferiority, metric: roc_auc, margin: 0.5}\n"
    )
    out = tmp_path / "out"
    code = main(["check", "--config", str(project.config), "--out", str(out), "-q"])
    results = json.loads((out / "results.json").read_text())
    estimates = [
        e
        for side in ("candidate", "baseline", "delta")
        for e in results["evaluation"]["metrics"][side].values()
    ]
    assert all((e["ci_low"] is not None) == has_interval for e in estimates)
    rule = results["gate"]["rules"][0]
    if has_interval:
        assert code == 0 and rule["status"] == "pass"
    else:
        assert rule["status"] == "inconclusive"
        assert "fewer than 10 clusters of 'site' (data.group)" in rule["explanation"]
