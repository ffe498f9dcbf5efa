"""The corpus of bad inputs: each one gives one clear line, exit 2, and writes nothing.

Every case breaks a copy of a small real project (data, two ONNX models, mlci.yaml) or hands a
command a bad file or argument, runs ``mlci`` in-process, and checks: exit code 2, exactly one
line on standard error starting ``mlci: error:``, no traceback, nothing on standard output,
the line matches what the case expects (and never quotes a secret the input contains), and no
file anywhere in the project or the output folder was created, changed or removed.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mlci.commands import main
from project import Project

Breaker = Callable[[Project], None]

# Planted in files mlci must not read or quote: it must never appear in an error.
SECRET = "hunter2-do-not-print"


# --------------------------------------------------------------------------- breakers


def edit_config(old: str, new: str) -> Breaker:
    def apply(project: Project) -> None:
        text = project.config.read_text()
        assert old in text, old
        project.config.write_text(text.replace(old, new, 1))

    return apply


def append_config(text: str) -> Breaker:
    def apply(project: Project) -> None:
        project.config.write_text(project.config.read_text() + text)

    return apply


def write_config(text: str | bytes) -> Breaker:
    def apply(project: Project) -> None:
        data = text.encode() if isinstance(text, str) else text
        project.config.write_bytes(data)

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


def set_column(column: str, value: Callable[[int], str]) -> Breaker:
    def transform(lines: list[str]) -> list[str]:
        index = lines[0].split(",").index(column)
        out = [lines[0]]
        for row, line in enumerate(lines[1:]):
            cells = line.split(",")
            cells[index] = value(row)
            out.append(",".join(cells))
        return out

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


def write_file(relative: str, content: bytes | str) -> Breaker:
    def apply(project: Project) -> None:
        path = project.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)

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


def parquet_data(**extra: object) -> Breaker:
    """The evaluation data as Parquet, with extra columns (name -> pyarrow array)."""

    def apply(project: Project) -> None:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = pacsv.read_csv(project.data)
        for name, column in extra.items():
            table = table.append_column(name, column)  # type: ignore[arg-type]
        pq.write_table(table, project.root / "data" / "eval.parquet")
        edit_config("data/eval.csv", "data/eval.parquet")(project)

    return apply


def parquet_table(make: Callable[[object], object]) -> Breaker:
    """The evaluation data as Parquet after ``make(table)``."""

    def apply(project: Project) -> None:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        pq.write_table(make(pacsv.read_csv(project.data)), project.root / "data" / "eval.parquet")  # type: ignore[arg-type]
        edit_config("data/eval.csv", "data/eval.parquet")(project)

    return apply


def secret_outside(project: Project) -> Path:
    """A file beside the project, holding the secret, that mlci.yaml must not reach."""
    secret = project.root.parent / "secrets.csv"
    secret.write_text(f"token,{SECRET}\n{SECRET},{SECRET}\n")
    return secret


def outside(field_old: str, field_new: Callable[[Path], str]) -> Breaker:
    def apply(project: Project) -> None:
        secret = secret_outside(project)
        edit_config(field_old, field_new(secret))(project)

    return apply


def symlinked_data(project: Project) -> None:
    secret = secret_outside(project)
    project.data.unlink()
    project.data.symlink_to(secret)


BAD_MODELS = """\
import numpy as np

class Base:
    classes_ = np.array([0, 1])
    def predict(self, X):
        return (np.asarray(X)[:, 0].astype(float) > 45).astype(int)
    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-(np.asarray(X)[:, 0].astype(float) - 45) / 10))
        return np.column_stack([1 - p, p])

class FewRows(Base):
    def predict(self, X):
        return super().predict(X)[:-3]

class OneColumn(Base):
    def predict_proba(self, X):
        return super().predict_proba(X)[:, 1:]

class NanProba(Base):
    def predict_proba(self, X):
        p = super().predict_proba(X)
        p[7] = np.nan
        return p

class Scores(Base):
    def predict_proba(self, X):
        return super().predict_proba(X) * 3

class Raises(Base):
    def predict(self, X):
        raise RuntimeError("boom")

class Wide(Base):
    def predict(self, X):
        return np.column_stack([super().predict(X), super().predict(X)])

class Regressor:
    def predict(self, X):
        return np.asarray(X)[:, 0].astype(float) / 100

def few(): return FewRows()
def one_column(): return OneColumn()
def nan_proba(): return NanProba()
def scores(): return Scores()
def raises(): return Raises()
def wide(): return Wide()
def regressor(): return Regressor()
def broken(): raise ValueError("cannot build")
def nothing(): return 42
"""


def entrypoint(function: str) -> Breaker:
    return both(
        write_file("models/bad.py", BAD_MODELS),
        edit_config(
            "    path: models/candidate.onnx\n", f'    entrypoint: "models/bad.py:{function}"\n'
        ),
    )


TESTS = "tests:\n  checks:\n"
GATE = "gate:\n  rules:\n"
BENCH = "benchmark:\n  scenarios:\n"


def alias_bomb(project: Project) -> None:
    # Nine anchors, each a list of ten aliases of the one before: 10**9 nodes once expanded.
    lines = ["card:", "  limitations: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    project.config.write_text(project.config.read_text() + "\n".join(lines) + "\n")


def _add_column(project: Project, name: str, value: str) -> None:
    lines = project.data.read_text().splitlines()
    project.data.write_text(
        "\n".join([f"{lines[0]},{name}", *(f"{line},{value}" for line in lines[1:])]) + "\n"
    )


def _pa_list():  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.array([["a", "b"]] * 1500, pa.list_(pa.string()))


def _pa_struct():  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.array([{"street": "x", "number": 1}] * 1500)


def _pa_map():  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.array([[("k", 1)]] * 1500, pa.map_(pa.string(), pa.int64()))


def _replace_first(table, column: str, value: float):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    values = table.column(column).to_pylist()
    values[0] = value
    index = table.column_names.index(column)
    return table.set_column(index, column, pa.array(values, pa.float64()))


def _decimal_column(table, column: str):  # type: ignore[no-untyped-def]
    import decimal

    import pyarrow as pa

    values = [decimal.Decimal(int(v)) for v in table.column(column).to_pylist()]
    values[0] = decimal.Decimal("9" * 60)
    index = table.column_names.index(column)
    return table.set_column(index, column, pa.array(values, pa.decimal256(70, 0)))


def _two_models_results(project: Project) -> None:
    import json

    shutil.copy(_RESULTS[0], project.root / "results.json")
    document = json.loads(_RESULTS[0].read_text())
    document["model"]["sha256"] = "0" * 64
    (project.root / "other.json").write_text(json.dumps(document))


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Case:
    breaker: Breaker
    pattern: str
    # argv after "mlci" (default: check the project); {config}, {out}, {results}, {root}
    argv: tuple[str, ...] = ()


def case(breaker: Breaker, pattern: str, *argv: str) -> Case:
    return Case(breaker, pattern, argv)


def nothing(project: Project) -> None:
    pass


with_gate = append_config(GATE + "    - {kind: metric, metric: roc_auc, min: 0.5}\n")


CORPUS: dict[str, Case] = {
    # -- mlci.yaml: YAML itself
    "top-level typo": case(
        edit_config("models:", "modles:"),
        r"mlci\.yaml:6:1: modles: unknown key 'modles' \(did you mean 'models'\?\)",
    ),
    "invalid yaml": case(edit_config("version: 1", "version: [1"), r"invalid YAML"),
    "duplicate key": case(
        edit_config("  id: id\n", "  id: id\n  id: other\n"), r"duplicate key 'id'"
    ),
    "yaml alias bomb": case(alias_bomb, r"expands to more than 100,000 YAML nodes"),
    "yaml recursive alias": case(
        append_config("card:\n  limitations: &a [*a]\n"), r"alias refers to a value containing it"
    ),
    "yaml nested too deeply": case(
        append_config("card:\n  limitations: " + "[" * 3000 + "]" * 3000 + "\n"),
        r"mlci\.yaml:\d+:\d+: invalid YAML: lists or mappings are nested more than 64 levels",
    ),
    "yaml mappings nested deeply": case(
        append_config("card:\n  description: " + "{a: " * 200 + "1" + "}" * 200 + "\n"),
        r"nested more than 64 levels deep",
    ),
    "yaml list as a key": case(append_config("? [a, b]\n: 1\n"), r"a key must be a plain name"),
    "yaml python tag": case(
        append_config("card:\n  description: !!python/object/apply:os.system ['touch pwned']\n"),
        r"invalid YAML",
    ),
    "config is a list": case(write_config("- version: 1\n"), r"expected a mapping .* found list"),
    "config is empty": case(write_config(""), r"found an empty file"),
    "config is huge": case(
        write_config("version: 1\n" + "#" * (1 << 20) + "\n"), r"a configuration may have at most"
    ),
    "config is not text": case(write_config(b"\xff\xfe\x00binary"), r"mlci\.yaml: cannot read"),
    "missing config": case(lambda p: p.config.unlink(), r"no mlci\.yaml in"),
    # -- mlci.yaml: the schema
    "wrong value type": case(
        edit_config("bootstrap: 200", "bootstrap: lots"),
        r"evaluation\.bootstrap: input should be a valid integer",
    ),
    "unsupported version": case(edit_config("version: 1", "version: 2"), r"version: .*got 2"),
    "no data section": case(
        edit_config("data:\n  path: data/eval.csv\n  target: y\n  id: id\n", ""),
        r"data: required but missing",
    ),
    "no models": case(
        edit_config(
            "  - name: demo\n    path: models/candidate.onnx\n    baseline:\n"
            "      path: models/baseline.onnx\n",
            "  []\n",
        ),
        r"models: list should have at least 1 item",
    ),
    "two models with one name": case(
        edit_config("evaluation:", "  - name: demo\n    path: models/baseline.onnx\nevaluation:"),
        r"two models are named 'demo'",
    ),
    "model name with spaces": case(
        edit_config("name: demo", "name: my model"), r"models\[0\]\.name: string should match"
    ),
    "model without path or entrypoint": case(
        edit_config("    path: models/candidate.onnx\n", ""),
        r"models\[0\]: give either 'path' or 'entrypoint'",
    ),
    "unknown stage": case(append_config("stages: [evaluate, deploy]\n"), r"stages\[1\]: .*deploy"),
    "confidence out of range": case(
        edit_config("  bootstrap: 200\n", "  bootstrap: 200\n  confidence: 1.5\n"),
        r"evaluation\.confidence: input should be less than 1",
    ),
    "negative bootstrap": case(
        edit_config("bootstrap: 200", "bootstrap: -5"),
        r"evaluation\.bootstrap: input should be greater than or equal to 0",
    ),
    "unknown data format": case(
        edit_config("  target: y\n", "  target: y\n  format: excel\n"), r"data\.format: .*excel"
    ),
    "id is the target": case(
        edit_config("  id: id\n", "  id: y\n"),
        r"mlci\.yaml:5:3: data\.id: 'y' is already data\.target",
    ),
    "weight is the id": case(
        edit_config("  id: id\n", "  id: id\n  weight: id\n"),
        r"data\.weight: 'id' is already data\.id",
    ),
    "feature is the target": case(
        edit_config("  id: id\n", "  id: id\n  features: [age, y]\n"),
        r"data\.features: 'y' is data\.target and cannot also be a feature",
    ),
    "feature listed twice": case(
        edit_config("  id: id\n", "  id: id\n  features: [age, income, age]\n"),
        r"data\.features: 'age' is listed twice",
    ),
    "no features listed": case(
        edit_config("  id: id\n", "  id: id\n  features: []\n"),
        r"data\.features: the list is empty",
    ),
    "nan threshold": case(
        append_config(GATE + "    - {kind: metric, metric: roc_auc, min: .nan}\n"),
        r"gate\.rules\[0\]\.min: input should be a finite number",
    ),
    "infinite setting": case(
        edit_config("  bootstrap: 200\n", "  bootstrap: 200\n  fdr: .inf\n"),
        r"evaluation\.fdr: input should be a finite number",
    ),
    "nan bin edge": case(
        edit_config("bins: [18, 40, 60, 80]", "bins: [18, .nan, 80]"),
        r"'bins' needs at least two strictly increasing edges",
    ),
    "allow_outside not a boolean": case(
        append_config("paths:\n  allow_outside: perhaps\n"),
        r"paths\.allow_outside: input should be a valid boolean",
    ),
    "slice with two kinds": case(
        edit_config(
            "    - feature: region\n", "    - feature: region\n      cross: [age, tenure]\n"
        ),
        r"exactly one of 'feature', 'where' or 'cross'",
    ),
    "bins not increasing": case(
        edit_config("bins: [18, 40, 60, 80]", "bins: [18, 60, 40, 80]"),
        r"'bins' needs at least two strictly increasing edges",
    ),
    "where without a name": case(
        edit_config("    - name: long-tenure\n", "    - "), r"a 'where' slice needs a 'name'"
    ),
    "one quantile": case(
        edit_config("bins: [18, 40, 60, 80]", "quantiles: 1"),
        r"evaluation\.slices\[1\]\.quantiles: input should be greater than or equal to 2",
    ),
    "slice level too deep": case(
        edit_config("max_level: 2", "max_level: 9"),
        r"evaluation\.discover\.max_level: input should be less than or equal to 5",
    ),
    # -- paths outside the folder of mlci.yaml (refused without reading them)
    "data outside the project": case(
        outside("data/eval.csv", lambda s: f"../{s.name}"),
        r"data\.path: '\.\./secrets\.csv' is outside",
    ),
    "data at an absolute path": case(
        edit_config("data/eval.csv", "/etc/passwd\n  format: csv"),
        r"data\.path: '/etc/passwd' is outside the folder that holds mlci\.yaml",
    ),
    "data through a symlink": case(symlinked_data, r"data\.path: 'data/eval\.csv' is outside"),
    "dotdot data path": case(
        edit_config("data/eval.csv", "../../../../../../../../etc/passwd\n  format: csv"),
        r"is outside the folder .*paths: \{allow_outside: true\}",
    ),
    "model outside the project": case(
        edit_config("models/candidate.onnx", "../candidate.onnx"),
        r"models\[0\]\.path: .* is outside",
    ),
    "baseline outside the project": case(
        edit_config("models/baseline.onnx", "/tmp/baseline.onnx"),
        r"models\[0\]\.baseline\.path: '/tmp/baseline\.onnx' is outside",
    ),
    "reference outside the project": case(
        edit_config("  id: id\n", "  id: id\n  reference: ../train.csv\n"),
        r"data\.reference: '\.\./train\.csv' is outside",
    ),
    "templates outside the project": case(
        append_config("report:\n  templates: /etc\n"), r"report\.templates: '/etc' is outside"
    ),
    "pytest file outside the project": case(
        append_config("tests:\n  pytest: [../conftest.py]\n"),
        r"tests\.pytest\[0\]: '\.\./conftest\.py' is outside",
    ),
    "entrypoint file outside the project": case(
        edit_config("    path: models/candidate.onnx\n", '    entrypoint: "../evil.py:build"\n'),
        r"models\[0\]: '\.\./evil\.py' is outside",
    ),
    "card dataset outside the project": case(
        append_config("card:\n  training_data:\n    - {name: train, path: /etc/shadow}\n"),
        r"card\.training_data\[0\]\.path: '/etc/shadow' is outside",
    ),
    # -- data: CSV
    "target column typo": case(
        edit_config("target: y", "target: yy"),
        r"mlci\.yaml:4:3: data\.target: no column 'yy'.*did you mean 'y'",
    ),
    "feature not in data": case(
        edit_config("  id: id\n", "  id: id\n  features: [age, incme]\n"),
        r"data\.features\[1\]: no column 'incme'.*did you mean 'income'",
    ),
    "missing data file": case(
        edit_config("data/eval.csv", "data/missing.csv"), r"missing\.csv: no such data file"
    ),
    "unknown data suffix": case(
        both(
            write_file("data/eval.xlsx", b"PK\x03\x04"),
            edit_config("data/eval.csv", "data/eval.xlsx"),
        ),
        r"cannot tell the data format from the suffix '\.xlsx'",
    ),
    "ragged csv": case(
        edit_data(lambda lines: [*lines[:5], lines[5] + f",{SECRET}", *lines[6:]]),
        r"eval\.csv: not a readable CSV file \(line 6 has 7 fields where the header has 6\)",
    ),
    "empty csv file": case(write_file("data/eval.csv", b""), r"eval\.csv: not a readable CSV file"),
    "binary file named csv": case(
        write_file("data/eval.csv", bytes(range(256)) * 40),
        r"eval\.csv: (not a readable CSV file|column .* bytes that are not UTF-8|column 1 has no name)",
    ),
    "duplicate column names": case(
        edit_data(lambda lines: [lines[0].replace("income", "age"), *lines[1:]]),
        r"eval\.csv: column 'age' appears twice \(columns 2 and 3\)",
    ),
    "column without a name": case(
        edit_data(lambda lines: [lines[0].replace("tenure", ""), *lines[1:]]),
        r"eval\.csv: column 5 has no name",
    ),
    "header only": case(edit_data(lambda lines: lines[:1]), r"eval\.csv: no rows to evaluate"),
    "one row": case(
        edit_data(lambda lines: lines[:2]), r"eval\.csv: only 1 row; an evaluation needs at least 2"
    ),
    "number overflows to infinity": case(
        set_cell(3, "income", "1e309"),
        r"column 'income' has 1 infinite or out-of-range numbers \(first at data row 3\)",
    ),
    "400-digit integer": case(
        set_cell(5, "age", "9" * 400),
        r"column 'age' has 1 infinite or out-of-range numbers \(first at data row 5\)",
    ),
    "literal infinity": case(set_cell(2, "tenure", "-inf"), r"column 'tenure' has 1 infinite"),
    "number beyond float32": case(
        set_cell(2, "tenure", "1e39"), r"column 'tenure' has 1 infinite or out-of-range numbers"
    ),
    "nan target": case(
        set_target(3, ""), r"target 'y' is missing in 1 rows \(first at data row 3\)"
    ),
    "target with one class": case(
        set_column("y", lambda row: "1"), r"the target holds one class \('1'\) in all 1500 rows"
    ),
    "feature missing in every row": case(
        set_column("tenure", lambda row: ""), r"feature column 'tenure' is missing in every row"
    ),
    "text in a numeric input": case(
        set_cell(4, "age", "forty"),
        r"column 'age' cannot be read as the numeric values model input 'age' expects .*'forty'",
    ),
    "data lacks model input": case(
        drop_column("tenure"), r"model 'demo' expects input 'tenure' that the data lacks"
    ),
    "features leave out a model input": case(
        edit_config("  id: id\n", "  id: id\n  features: [age, income]\n"),
        r"mlci\.yaml:6:3: data\.features: model 'demo' also reads 'region', 'tenure', which "
        r"data\.features leaves out",
    ),
    "label the model never predicts": case(
        set_target(2, "7"), r"label '7' in 1 rows that is not among the model's classes \[0, 1\]"
    ),
    "negative weights": case(
        both(edit_config("  id: id\n", "  id: id\n  weight: age\n"), set_cell(1, "age", "-3")),
        r"weight column 'age' has 1 negative",
    ),
    "unknown group column": case(
        edit_config("  id: id\n", "  id: id\n  group: regoin\n"),
        r"data\.group: no column 'regoin' in .*eval\.csv \(did you mean 'region'\?\)",
    ),
    "too few bootstrap replicates": case(
        edit_config("  bootstrap: 200\n", "  bootstrap: 20\n"),
        r"evaluation\.bootstrap: 20 replicates are too few for 95% intervals .*at least 200",
    ),
    "too few bootstrap replicates for 99% intervals": case(
        edit_config("  bootstrap: 200\n", "  bootstrap: 200\n  confidence: 0.99\n"),
        r"evaluation\.bootstrap: 200 replicates are too few for 99% intervals .*at least 1000",
    ),
    "group is the target": case(
        edit_config("  id: id\n", "  id: id\n  group: y\n"),
        r"data\.group: 'y' is the target column, not clusters of correlated rows",
    ),
    "missing cluster of a row": case(
        both(edit_config("  id: id\n", "  id: id\n  group: tenure\n"), set_cell(3, "tenure", "")),
        r"group column 'tenure' is missing in 1 rows \(first at data row 3\)",
    ),
    "text weights": case(
        edit_config("  id: id\n", "  id: id\n  weight: region\n"),
        r"weight column 'region' must be numeric, found text",
    ),
    "zero weights": case(
        both(
            edit_config("  id: id\n", "  id: id\n  weight: w\n"), lambda p: _add_column(p, "w", "0")
        ),
        r"weight column 'w' is zero everywhere",
    ),
    "text that is not utf-8": case(
        lambda p: p.data.write_bytes(p.data.read_bytes().replace(b"north", b"n\xffrth", 1)),
        r"column 'region' holds bytes that are not UTF-8 text",
    ),
    # -- data: Parquet
    "corrupt parquet": case(
        both(
            write_file("data/eval.parquet", b"PAR1 this is not parquet"),
            edit_config("data/eval.csv", "data/eval.parquet"),
        ),
        r"eval\.parquet: not a readable PARQUET file",
    ),
    "list column in parquet": case(
        parquet_data(tags=_pa_list()),
        r"column 'tags' has type list<.*>, which mlci cannot evaluate",
    ),
    "struct column in parquet": case(
        parquet_data(address=_pa_struct()), r"column 'address' has type struct<.*which mlci cannot"
    ),
    "map column in parquet": case(
        parquet_data(attributes=_pa_map()), r"column 'attributes' has type map<.*which mlci cannot"
    ),
    "nested column used as a slice": case(
        both(
            parquet_data(tags=_pa_list()),
            edit_config("    - feature: region\n", "    - feature: tags\n"),
        ),
        r"column 'tags' has type list<",
    ),
    "duplicate columns in parquet": case(
        parquet_table(lambda t: t.append_column("age", t.column("age"))),  # type: ignore[attr-defined]
        r"eval\.parquet: column 'age' appears twice",
    ),
    "infinite float in parquet": case(
        parquet_table(lambda t: _replace_first(t, "income", float("inf"))),
        r"eval\.parquet: column 'income' has 1 infinite or out-of-range numbers \(first at data row 1\)",
    ),
    "huge decimal in parquet": case(
        parquet_table(lambda t: _decimal_column(t, "tenure")),
        r"column 'tenure' has 1 infinite or out-of-range numbers",
    ),
    # -- models
    "missing model file": case(
        edit_config("models/candidate.onnx", "models/nope.onnx"), r"nope\.onnx: no such model file"
    ),
    "model is a folder": case(
        edit_config("models/candidate.onnx", "models"), r"models: is a directory, not a model file"
    ),
    "corrupt onnx": case(
        write_file("models/candidate.onnx", b"\x08\x07garbage that is not a protobuf"),
        r"candidate\.onnx: not a valid ONNX model",
    ),
    "empty onnx": case(
        write_file("models/candidate.onnx", b""),
        r"candidate\.onnx: not a valid ONNX model \(the file is empty\)",
    ),
    "unknown model suffix": case(
        both(
            write_file("models/candidate.h5", b"HDF"),
            edit_config("models/candidate.onnx", "models/candidate.h5"),
        ),
        r"candidate\.h5: .*format",
    ),
    "untrusted pickle": case(pickled_model, r"candidate\.pkl: .*(arbitrary code|trust_pickle)"),
    "skops file that is not a zip": case(
        both(
            write_file("models/c.skops", b"not a zip"),
            edit_config("models/candidate.onnx", "models/c.skops"),
        ),
        r"c\.skops: not a valid skops file \(not a zip archive\)",
    ),
    "entrypoint without a colon": case(
        edit_config("    path: models/candidate.onnx\n", '    entrypoint: "justaname"\n'),
        r"entrypoint 'justaname': expected 'module:function'",
    ),
    "entrypoint module missing": case(
        edit_config(
            "    path: models/candidate.onnx\n", '    entrypoint: "no_such_module_x:build"\n'
        ),
        r"no module named 'no_such_module_x'",
    ),
    "entrypoint function missing": case(entrypoint("buidl"), r"has no function 'buidl'"),
    "entrypoint raises": case(entrypoint("broken"), r"broken\(\) raised ValueError: cannot build"),
    "entrypoint returns no model": case(
        entrypoint("nothing"), r"returned a int with no predict method"
    ),
    "model returns too few rows": case(
        entrypoint("few"), r"bad\.py: the model returned 1,497 labels for 1,500 rows"
    ),
    "classifier with one probability column": case(
        entrypoint("one_column"), r"returned 1 probability column; a classifier needs one per class"
    ),
    "model returns NaN probabilities": case(
        entrypoint("nan_proba"),
        r"returned NaN or infinite probabilities for 1 rows \(first at data row 8\)",
    ),
    "model returns scores, not probabilities": case(
        entrypoint("scores"), r"probabilities are not a distribution in 1,500 rows"
    ),
    "model returns two outputs per row": case(
        entrypoint("wide"),
        r"bad\.py: the model returned labels of shape \[1500, 2\]; expected one per row",
    ),
    "model raises while predicting": case(
        entrypoint("raises"), r"the model failed to predict \(RuntimeError: boom\)"
    ),
    "candidate and baseline solve different tasks": case(
        entrypoint("regressor"),
        r"candidate is a regression model but the baseline is a binary model",
    ),
    # -- slices and expressions
    "slice column typo": case(
        edit_config("- feature: region", "- feature: regoin"),
        r"mlci\.yaml:15:7: evaluation\.slices\[0\]\.feature: no column 'regoin' in .*eval\.csv \(did you mean 'region'\?\)",
    ),
    "slice value absent": case(
        edit_config("- feature: region", "- feature: region\n      values: [nrth]"),
        r"evaluation\.slices\[0\]\.values\[0\]: no value 'nrth' in column 'region' \(did you mean 'north'\?\)",
    ),
    "continuous feature without bins": case(
        edit_config("- feature: region", "- feature: income"),
        r"numeric feature 'income' has \d+ distinct values; give 'bins' or 'quantiles'",
    ),
    "binning a text column": case(
        edit_config("- feature: region", "- feature: region\n      bins: [0, 1]"),
        r"evaluation\.slices\[0\]\.feature: 'region' is not numeric, so it cannot be binned",
    ),
    "cross with an unknown column": case(
        edit_config("- feature: region", "- cross: [region, tenur]"),
        r"evaluation\.slices\[0\]\.cross\[1\]: no column 'tenur'",
    ),
    "quantiles of an empty column": case(
        both(
            edit_config("bins: [18, 40, 60, 80]", "quantiles: 4"), set_column("age", lambda r: "")
        ),
        r"feature column 'age' is missing in every row",
    ),
    "discover an unknown feature": case(
        edit_config("    max_level: 2\n", "    max_level: 2\n    features: [agee]\n"),
        r"evaluation\.discover\.features\[0\]: no column 'agee'",
    ),
    "expression unknown column": case(
        edit_config("tenure >= 20", "tenur >= 20"),
        r"evaluation\.slices\[2\]\.where: no column 'tenur' \(did you mean 'tenure'\?\)",
    ),
    "expression compares with a bare word": case(
        edit_config('"tenure >= 20"', '"region == north"'),
        r"where: no column 'north'; to compare with the text 'north', quote it: region == 'north'",
    ),
    "expression runs code": case(
        edit_config('"tenure >= 20"', "\"__import__('os').system('touch pwned')\""),
        r"evaluation\.slices\[2\]\.where: .*is not allowed in a slice expression",
    ),
    "expression nested thousands deep": case(
        edit_config('"tenure >= 20"', '"' + "not " * 2400 + 'tenure >= 20"'),
        r"where: the expression is nested more than 100 levels deep",
    ),
    "expression with thousands of terms": case(
        edit_config('"tenure >= 20"', '"tenure' + " + tenure" * 1000 + ' >= 20"'),
        r"where: the expression is nested more than 100 levels deep",
    ),
    "expression too long": case(
        edit_config('"tenure >= 20"', '"region in [' + ", ".join(["'x'"] * 3000) + ']"'),
        r"where: the expression is \d\d,\d{3} characters long; at most 10,000",
    ),
    "expression syntax error": case(
        edit_config('"tenure >= 20"', '"tenure >= "'),
        r"where: invalid expression: it ends too early",
    ),
    "expression is not a condition": case(
        edit_config('"tenure >= 20"', '"tenure + 1"'), r"where: expression .* is not a condition"
    ),
    "expression orders text": case(
        edit_config('"tenure >= 20"', '"region < 3"'), r"where: cannot order text against numbers"
    ),
    "expression with a huge number": case(
        edit_config('"tenure >= 20"', '"tenure >= 1e400"'),
        r"where: '1e400' is not a finite real number",
    ),
    # -- evaluation settings
    "unknown metric": case(
        edit_config("  bootstrap: 200\n", "  bootstrap: 200\n  metrics: [acuracy]\n"),
        r"evaluation\.metrics: .*acuracy.*accuracy",
    ),
    "primary metric not computed": case(
        edit_config(
            "  bootstrap: 200\n",
            "  bootstrap: 200\n  metrics: [accuracy]\n  primary_metric: roc_auc\n",
        ),
        r"evaluation\.primary_metric: 'roc_auc' is not among the metrics",
    ),
    "regression error without baseline": case(
        both(
            edit_config("    baseline:\n      path: models/baseline.onnx\n", ""),
            edit_config("    top_k: 5\n", "    top_k: 5\n    error: regression\n"),
        ),
        r"evaluation\.discover\.error: 'regression' compares with a baseline",
    ),
    # -- tests section
    "unknown test kind": case(
        append_config(TESTS + "    - {kind: fairness}\n"), r"tests\.checks\[0\]\.kind: .*fairness"
    ),
    "test parameter of another kind": case(
        append_config(TESTS + "    - {kind: metric, metric: accuracy, min: 0.5, feature: age}\n"),
        r"'feature' does not apply to a metric test",
    ),
    "test metric unknown": case(
        append_config(TESTS + "    - {kind: metric, metric: acc, min: 0.5}\n"),
        r"tests\.checks\[0\]\.metric: .*acc",
    ),
    "test slice with its parts reordered": case(
        both(
            edit_config("- feature: region", "- cross: [region, age_group]"),
            lambda p: _add_column(p, "age_group", "young"),
            append_config(
                TESTS
                + "    - {kind: metric, metric: accuracy, min: 0.5, slice: 'age_group=young,region=north'}\n"
            ),
        ),
        r"no declared slice 'age_group=young,region=north' \(did you mean 'region=north, age_group=young'\?",
    ),
    "test slice unknown": case(
        append_config(
            TESTS + "    - {kind: metric, metric: accuracy, min: 0.5, slice: 'region=nrth'}\n"
        ),
        r"tests\.checks\[0\]\.slice: no declared slice 'region=nrth' \(did you mean 'region=north'\?\)",
    ),
    "test where bare word": case(
        append_config(
            TESTS + '    - {kind: metric, metric: accuracy, min: 0.5, where: "region == south"}\n'
        ),
        r"tests\.checks\[0\]\.where: no column 'south'; .* quote it: region == 'south'",
    ),
    "test feature unknown": case(
        append_config(TESTS + "    - {kind: invariance, feature: agee}\n"),
        r"tests\.checks\[0\]\.feature: no column 'agee'",
    ),
    "drift without reference data": case(
        append_config(TESTS + "    - {kind: drift}\n"), r"data\.reference is not set"
    ),
    "reference file missing": case(
        both(
            edit_config("  id: id\n", "  id: id\n  reference: data/train.csv\n"),
            append_config(TESTS + "    - {kind: drift}\n"),
        ),
        r"train\.csv: no such data file",
    ),
    "reference with duplicate columns": case(
        both(
            lambda p: (p.root / "data" / "train.csv").write_text("age,age\n1,2\n3,4\n"),
            edit_config("  id: id\n", "  id: id\n  reference: data/train.csv\n"),
            append_config(TESTS + "    - {kind: drift}\n"),
        ),
        r"train\.csv: column 'age' appears twice",
    ),
    "pytest file missing": case(
        append_config("tests:\n  pytest: [model_tests/test_nothing.py]\n"),
        r"tests\.pytest\[0\]: no such test file 'model_tests/test_nothing\.py'",
    ),
    # -- gate section
    "unknown gate rule": case(
        append_config(GATE + "    - {kind: vibes}\n"), r"gate\.rules\[0\]\.kind: .*vibes"
    ),
    "gate metric rule without a bound": case(
        append_config(GATE + "    - {kind: metric, metric: roc_auc}\n"),
        r"a metric rule needs 'min' or 'max'",
    ),
    "gate min above max": case(
        append_config(GATE + "    - {kind: metric, metric: roc_auc, min: 0.9, max: 0.8}\n"),
        r"'min' is above 'max'",
    ),
    "gate latency rule without a limit": case(
        append_config(GATE + "    - {kind: latency}\n"),
        r"a latency rule needs 'budget_ms' or 'max_regression'",
    ),
    "gate without rules": case(
        append_config("gate:\n  rules: []\n"), r"gate\.rules: list should have at least 1 item"
    ),
    "gate fail_on unknown": case(
        append_config(GATE + "    - {kind: tests}\n  fail_on: sometimes\n"),
        r"gate\.fail_on: .*sometimes",
    ),
    # -- benchmark section
    "unknown scenario": case(
        append_config(BENCH + "    - kind: burst\n"), r"benchmark\.scenarios\[0\]\.kind: .*burst"
    ),
    "bad duration": case(
        append_config(BENCH + "    - {kind: single_stream, min_duration: 5 parsecs}\n"),
        r"min_duration: .*expected a duration such as 2s or 500ms",
    ),
    "bad regression fraction": case(
        append_config(BENCH + "    - {kind: single_stream, max_regression: {p50: lots}}\n"),
        r"benchmark\.scenarios\[0\]\.max_regression: input should be a valid number",
    ),
    "server scenario without rate": case(
        append_config(BENCH + "    - {kind: server}\n"), r"a server scenario needs 'rate'"
    ),
    "unknown device": case(
        append_config("benchmark:\n  device: tpu\n  scenarios:\n    - {kind: single_stream}\n"),
        r"benchmark\.device: .*tpu",
    ),
    # -- command line
    "out is an existing file": case(
        lambda p: (p.root / "out.txt").write_text("keep me\n"),
        r"--out .*out\.txt: is a file, not a folder",
        "check",
        "--quiet",
        "--config",
        "{config}",
        "--out",
        "{root}/out.txt",
    ),
    "out under a file": case(
        lambda p: (p.root / "out.txt").write_text("keep me\n"),
        r"--out .*out\.txt/results: .*out\.txt is a file",
        "check",
        "--quiet",
        "--config",
        "{config}",
        "--out",
        "{root}/out.txt/results",
    ),
    "config path missing": case(
        nothing,
        r"nowhere\.yaml: no such configuration file",
        "check",
        "--config",
        "{root}/nowhere.yaml",
        "--out",
        "{out}",
    ),
    "unknown option": case(nothing, r"mlci: unrecognized arguments: --bogus", "check", "--bogus"),
    "unknown command": case(nothing, r"invalid choice: 'frobnicate'", "frobnicate"),
    "bad fail-on": case(
        nothing,
        r"argument --fail-on: invalid choice: 'sometimes'",
        "check",
        "--fail-on",
        "sometimes",
    ),
    "convert out is a file": case(
        lambda p: (p.root / "out.txt").write_text("keep me\n"),
        r"--out .*out\.txt: is a file, not a folder",
        "convert",
        "--config",
        "{config}",
        "--out",
        "{root}/out.txt",
    ),
    # -- results files given to gate, report and card
    "gate results missing": case(
        both(with_gate, nothing),
        r"nope\.json: no such results file",
        "gate",
        "{root}/nope.json",
        "-c",
        "{config}",
    ),
    "gate results not json": case(
        both(with_gate, write_file("results.json", f"{SECRET}\n")),
        r"results\.json: not a readable results document",
        "gate",
        "{root}/results.json",
        "-c",
        "{config}",
    ),
    "gate results a list": case(
        both(with_gate, write_file("results.json", "[1, 2]")),
        r"not a results document \(expected a JSON object\)",
        "gate",
        "{root}/results.json",
        "-c",
        "{config}",
    ),
    "gate results invalid": case(
        both(with_gate, write_file("results.json", '{"schema_version": "1.0"}')),
        r"results\.json: results document is invalid",
        "gate",
        "{root}/results.json",
        "-c",
        "{config}",
    ),
    "gate without a gate section": case(
        lambda p: shutil.copy(_RESULTS[0], p.root / "results.json"),
        r"mlci\.yaml:1:1: \(top level\): no gate section",
        "gate",
        "{root}/results.json",
        "-c",
        "{config}",
    ),
    "report several files without merge": case(
        lambda p: shutil.copy(_RESULTS[0], p.root / "results.json"),
        r"several results files need --merge",
        "report",
        "{root}/results.json",
        "{root}/results.json",
    ),
    "report out is a folder": case(
        lambda p: shutil.copy(_RESULTS[0], p.root / "results.json"),
        r"--out .*data: is a folder, not a file",
        "report",
        "{root}/results.json",
        "-o",
        "{root}/data",
    ),
    "report merge of different models": case(
        _two_models_results,
        r"other\.json: describes a different model",
        "report",
        "--merge",
        "{root}/results.json",
        "{root}/other.json",
    ),
    "report templates missing": case(
        lambda p: shutil.copy(_RESULTS[0], p.root / "results.json"),
        r"templates",
        "report",
        "{root}/results.json",
        "--templates",
        "{root}/no-templates",
    ),
    "card results not json": case(
        write_file("results.json", b"\x00\x01binary"),
        r"results\.json: not a readable results document",
        "card",
        "{root}/results.json",
    ),
    "results nested thousands deep": case(
        write_file("results.json", "[" * 100_000 + "]" * 100_000),
        r"results\.json: not a readable results document \(nested too deeply\)",
        "card",
        "{root}/results.json",
    ),
    "card out under a file": case(
        lambda p: shutil.copy(_RESULTS[0], p.root / "results.json"),
        r"--out .*mlci\.yaml/card\.md: .*is a file",
        "card",
        "{root}/results.json",
        "-o",
        "{config}/card.md",
    ),
}


# A results.json written by a real `mlci check` of the project (filled in by a fixture).
_RESULTS: list[Path] = []


@pytest.fixture(scope="module")
def results_file(built_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results") / "out"
    assert main(["check", "--quiet", "--config", str(built_project.config), "--out", str(out)]) == 0
    _RESULTS[:] = [out / "results.json"]
    return out / "results.json"


# --------------------------------------------------------------------------- the test


def tree(*roots: Path) -> dict[str, str]:
    """Every file and folder under ``roots``, with a digest of each file's content."""
    found: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            continue
        for folder, _dirs, files in os.walk(root):
            found[folder] = "dir"
            for name in files:
                path = Path(folder) / name
                if path.is_symlink():
                    found[str(path)] = f"link:{os.readlink(path)}"
                else:
                    found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# An exception a library swallows still prints a traceback to standard error in a real run.
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_input_gives_one_line_and_exit_2(
    name: str,
    project: Project,
    tmp_path: Path,
    results_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = CORPUS[name]
    bad.breaker(project)
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.txt").write_text("from an earlier run\n")
    config = project.config if project.config.exists() else project.root
    fill = {"config": str(config), "out": str(out), "root": str(project.root)}
    argv = [a.format(**fill) for a in bad.argv] or [
        "check",
        "--quiet",
        "--config",
        str(config),
        "--out",
        str(out),
    ]
    before = tree(project.root, out)
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("mlci: error: ")
    assert "Traceback" not in captured.err
    assert re.search(bad.pattern, lines[0]), lines[0]
    assert SECRET not in captured.err and "root:x:" not in captured.err
    assert captured.out == ""
    assert tree(project.root, out) == before, "files were written, changed or removed"
    assert not list(tmp_path.glob(".mlci-*")) and not list(project.root.glob(".mlci-*"))
    assert not (project.root / "pwned").exists() and not Path("pwned").exists()


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 100


def test_error_is_the_last_line_after_progress(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_target(3, "")(project)
    assert main(["check", "--config", str(project.config), "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("mlci [") and "reading" in lines[0]
    assert [line for line in lines if line.startswith("mlci: error:")] == [lines[-1]]


def test_outside_paths_are_read_with_the_opt_in(project: Project, tmp_path: Path) -> None:
    """The refusal above is the default, not a dead end: paths.allow_outside lets them through."""
    shared = project.root.parent / "shared-data"
    shared.mkdir()
    shutil.move(str(project.data), shared / "eval.csv")
    edit_config("data/eval.csv", "../shared-data/eval.csv")(project)
    out = tmp_path / "out"
    assert main(["check", "--quiet", "--config", str(project.config), "--out", str(out)]) == 2
    append_config("paths:\n  allow_outside: true\n")(project)
    assert main(["check", "--quiet", "--config", str(project.config), "--out", str(out)]) == 0
    assert (out / "results.json").is_file()


@pytest.mark.parametrize("rows", [2, 3, 5])
def test_tiny_data_still_runs(project: Project, tmp_path: Path, rows: int) -> None:
    """The fewest rows mlci accepts are evaluated, with no crash in slice finding."""
    lines = project.data.read_text().splitlines()
    # one row of each class, then more as needed
    ys = [line.rsplit(",", 1)[1] for line in lines[1:]]
    picked = [lines[1 + ys.index("0")], lines[1 + ys.index("1")]]
    picked += [line for line in lines[1:] if line not in picked][: rows - 2]
    project.data.write_text("\n".join([lines[0], *picked]) + "\n")
    edit_config("  bootstrap: 200\n", "  bootstrap: 200\n  seed: 7\n")(project)
    out = tmp_path / "out"
    assert main(["check", "--quiet", "--config", str(project.config), "--out", str(out)]) in (0, 1)
    assert (out / "results.json").is_file()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_follow_the_umask(project: Project, tmp_path: Path, umask: int) -> None:
    out = tmp_path / "out"
    previous = os.umask(umask)
    try:
        assert main(["check", "--quiet", "--config", str(project.config), "--out", str(out)]) == 0
        card = tmp_path / "card.md"
        assert main(["card", str(out / "results.json"), "-o", str(card)]) == 0
        report = tmp_path / "report.html"
        assert main(["report", str(out / "results.json"), "-f", "html", "-o", str(report)]) == 0
    finally:
        os.umask(previous)
    files = [p for p in out.iterdir() if p.is_file()] + [card, report]
    assert len(files) >= 6
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--bogus"]) == 2
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("mlci: error: ") for line in err)


def test_numbers_pass_one_checkpoint() -> None:
    """Every numeric column of CSV or Parquet goes through the same finite-and-in-range check."""
    import pyarrow as pa

    from mlci.data import MAX_MAGNITUDE, to_numpy
    from mlci.errors import DataError

    for values, kind in (
        ([1.0, 2.0, float("nan")], pa.float64()),
        ([1, 2, None], pa.int64()),
        ([1.5, -MAX_MAGNITUDE], pa.float32()),
    ):
        array, found, _ = to_numpy(pa.chunked_array([pa.array(values, kind)]), "x")
        assert found == "numeric" and array.dtype.kind in "fi"
    for bad in ([1.0, float("inf")], [float("-inf")], [MAX_MAGNITUDE * 2]):
        with pytest.raises(DataError, match="column 'x' has 1 infinite or out-of-range"):
            to_numpy(pa.chunked_array([pa.array(bad, pa.float64())]), "x")
    assert np.isnan(to_numpy(pa.chunked_array([pa.array([None], pa.float64())]), "x")[0]).all()


# Cases whose libraries (ONNX Runtime, pyarrow, PyYAML, numpy) could write to the process's
# standard error behind Python's back: run them as a real process and read what it printed.
IN_A_PROCESS = [
    "binary file named csv",
    "corrupt onnx",
    "model returns NaN probabilities",
    "yaml alias bomb",
    "expression nested thousands deep",
    "list column in parquet",
    "data outside the project",
    "gate results not json",
]


@pytest.mark.parametrize("name", IN_A_PROCESS)
def test_a_real_process_prints_one_line(
    name: str, project: Project, tmp_path: Path, results_file: Path
) -> None:
    import subprocess
    import sys

    bad = CORPUS[name]
    bad.breaker(project)
    out = tmp_path / "out"
    fill = {"config": str(project.config), "out": str(out), "root": str(project.root)}
    argv = [a.format(**fill) for a in bad.argv] or [
        "check",
        "--quiet",
        "--config",
        str(project.config),
        "--out",
        str(out),
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from mlci.commands import main; sys.exit(main())",
            *argv,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert re.search(bad.pattern, done.stderr) and done.stdout == ""
    assert not out.exists()
