"""The corpus of bad inputs: each one gives one clear line, exit 2, and writes nothing."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mlci.cli import main
from project import Project

Breaker = Callable[[Project], None]


def edit_config(old: str, new: str) -> Breaker:
    def apply(project: Project) -> None:
        text = project.config.read_text()
        assert old in text, old
        project.config.write_text(text.replace(old, new, 1))

    return apply


def edit_data(transform: Callable[[list[str]], list[str]]) -> Breaker:
    def apply(project: Project) -> None:
        lines = project.data.read_text().splitlines()
        project.data.write_text("\n".join(transform(lines)) + "\n")

    return apply


def drop_column(name: str) -> Breaker:
    def transform(lines: list[str]) -> list[str]:
        index = lines[0].split(",").index(name)
        return [",".join(c for i, c in enumerate(line.split(",")) if i != index) for line in lines]

    return edit_data(transform)


def set_cell(row: int, column: str, value: str) -> Breaker:
    def transform(lines: list[str]) -> list[str]:
        cells = lines[row].split(",")
        cells[lines[0].split(",").index(column)] = value
        lines[row] = ",".join(cells)
        return lines

    return edit_data(transform)


def set_target(row: int, value: str) -> Breaker:
    return set_cell(row, "y", value)


def write_file(relative: str, content: bytes) -> Breaker:
    def apply(project: Project) -> None:
        (project.root / relative).write_bytes(content)

    return apply


def both(*breakers: Breaker) -> Breaker:
    def apply(project: Project) -> None:
        for breaker in breakers:
            breaker(project)

    return apply


def pickled_model(project: Project) -> None:
    # Any pickle will do: it must be refused before it is ever unpickled.
    (project.root / "models" / "candidate.pkl").write_bytes(pickle.dumps({"not": "a model"}))
    edit_config("models/candidate.onnx", "models/candidate.pkl")(project)


CORPUS: dict[str, tuple[Breaker, str]] = {
    "top-level typo": (
        edit_config("models:", "modles:"),
        r"mlci\.yaml:6:1: modles: unknown key 'modles' \(did you mean 'models'\?\)",
    ),
    "slice column typo": (
        edit_config("- feature: region", "- feature: regoin"),
        r"mlci\.yaml:15:7: evaluation\.slices\[0\]\.feature: no column 'regoin' in .*eval\.csv \(did you mean 'region'\?\)",
    ),
    "target column typo": (
        edit_config("target: y", "target: yy"),
        r"mlci\.yaml:4:3: data\.target: no column 'yy'.*did you mean 'y'",
    ),
    "feature not in data": (
        edit_config("  id: id\n", "  id: id\n  features: [age, incme]\n"),
        r"data\.features\[1\]: no column 'incme'.*did you mean 'income'",
    ),
    "wrong value type": (
        edit_config("bootstrap: 200", "bootstrap: lots"),
        r"evaluation\.bootstrap: input should be a valid integer",
    ),
    "invalid yaml": (edit_config("version: 1", "version: [1"), r"invalid YAML"),
    "duplicate key": (edit_config("  id: id\n", "  id: id\n  id: other\n"), r"duplicate key 'id'"),
    "unknown metric": (
        edit_config("  bootstrap: 200\n", "  bootstrap: 200\n  metrics: [acuracy]\n"),
        r"evaluation\.metrics: .*acuracy.*accuracy",
    ),
    "primary metric not computed": (
        edit_config(
            "  bootstrap: 200\n",
            "  bootstrap: 200\n  metrics: [accuracy]\n  primary_metric: roc_auc\n",
        ),
        r"evaluation\.primary_metric: 'roc_auc' is not among the metrics",
    ),
    "slice value absent": (
        edit_config("- feature: region", "- feature: region\n      values: [nrth]"),
        r"evaluation\.slices\[0\]\.values\[0\]: no value 'nrth' in column 'region' \(did you mean 'north'\?\)",
    ),
    "expression unknown column": (
        edit_config("tenure >= 20", "tenur >= 20"),
        r"evaluation\.slices\[2\]\.where: no column 'tenur' \(did you mean 'tenure'\?\)",
    ),
    "expression runs code": (
        edit_config('"tenure >= 20"', "\"__import__('os').system('touch pwned')\""),
        r"evaluation\.slices\[2\]\.where: .*is not allowed in a slice expression",
    ),
    "continuous feature without bins": (
        edit_config("- feature: region", "- feature: income"),
        r"numeric feature 'income' has \d+ distinct values; give 'bins' or 'quantiles'",
    ),
    "missing config": (lambda p: p.config.unlink(), r"no mlci\.yaml in"),
    "missing data file": (
        edit_config("data/eval.csv", "data/missing.csv"),
        r"missing\.csv: no such data file",
    ),
    "unknown data suffix": (
        both(
            write_file("data/eval.xlsx", b"PK\x03\x04"),
            edit_config("data/eval.csv", "data/eval.xlsx"),
        ),
        r"cannot tell the data format from the suffix '\.xlsx'",
    ),
    "ragged csv": (
        edit_data(lambda lines: [*lines[:5], lines[5] + ",1,2", *lines[6:]]),
        r"eval\.csv: not a readable CSV file",
    ),
    "corrupt parquet": (
        both(
            write_file("data/eval.parquet", b"PAR1 this is not parquet"),
            edit_config("data/eval.csv", "data/eval.parquet"),
        ),
        r"eval\.parquet: not a readable PARQUET file",
    ),
    "empty data": (edit_data(lambda lines: lines[:1]), r"eval\.csv: no rows to evaluate"),
    "nan target": (set_target(3, ""), r"target 'y' is missing in 1 rows \(first at data row 3\)"),
    "missing model file": (
        edit_config("models/candidate.onnx", "models/nope.onnx"),
        r"nope\.onnx: no such model file",
    ),
    "corrupt onnx": (
        write_file("models/candidate.onnx", b"\x08\x07garbage that is not a protobuf"),
        r"candidate\.onnx: not a valid ONNX model",
    ),
    "empty onnx": (write_file("models/candidate.onnx", b""), r"candidate\.onnx: "),
    "unknown model suffix": (
        both(
            write_file("models/candidate.h5", b"HDF"),
            edit_config("models/candidate.onnx", "models/candidate.h5"),
        ),
        r"candidate\.h5: .*format",
    ),
    "text in a numeric input": (
        set_cell(4, "age", "forty"),
        r"column 'age' cannot be read as the numeric values model input 'age' expects .*'forty'",
    ),
    "data lacks model input": (
        drop_column("tenure"),
        r"model 'demo' expects input 'tenure' that the data lacks",
    ),
    "label the model never predicts": (
        set_target(2, "7"),
        r"label '7' in 1 rows that is not among the model's classes \[0, 1\]",
    ),
    "untrusted pickle": (pickled_model, r"candidate\.pkl: .*(arbitrary code|trust_pickle)"),
    "negative weights": (
        both(edit_config("  id: id\n", "  id: id\n  weight: age\n"), set_cell(1, "age", "-3")),
        r"weight column 'age' has 1 negative",
    ),
    "unknown group column": (
        edit_config("  id: id\n", "  id: id\n  group: regoin\n"),
        r"data\.group: no column 'regoin' in .*eval\.csv \(did you mean 'region'\?\)",
    ),
    "missing cluster of a row": (
        both(edit_config("  id: id\n", "  id: id\n  group: tenure\n"), set_cell(3, "tenure", "")),
        r"group column 'tenure' is missing in 1 rows \(first at data row 3\)",
    ),
    "regression error without baseline": (
        both(
            edit_config("    baseline:\n      path: models/baseline.onnx\n", ""),
            edit_config("    top_k: 5\n", "    top_k: 5\n    error: regression\n"),
        ),
        r"evaluation\.discover\.error: 'regression' compares with a baseline",
    ),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_input_gives_one_line_and_exit_2(
    case: str, project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    breaker, pattern = CORPUS[case]
    breaker(project)
    out = tmp_path / "out"
    config = project.config if project.config.exists() else project.root
    code = main(["check", "--quiet", "--config", str(config), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("mlci: error: ")
    assert "Traceback" not in captured.err
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists(), "no partial output"
    assert not list(tmp_path.glob(".mlci-*")), "staging folder left behind"
    assert not (project.root / "pwned").exists()
    assert captured.out == ""


def test_error_is_the_last_line_after_progress(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_target(3, "")(project)
    assert main(["check", "--config", str(project.config), "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("mlci [") and "reading" in lines[0]
    assert [line for line in lines if line.startswith("mlci: error:")] == [lines[-1]]


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 20


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--bogus"]) == 2
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("mlci: error: ") for line in err)
