from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from mlci.config import format_loc, json_schema, load_config
from mlci.errors import ConfigError

GOOD = """\
version: 1
data:
  path: data/eval.csv
  target: y
models:
  - name: a
    path: models/a.onnx
    baseline:
      path: prod/b.onnx
  - name: b
    entrypoint: "pkg.module:make"
evaluation:
  slices:
    - feature: region
    - feature: age
      bins: [0, 30, 60]
    - name: young
      where: "age < 30"
    - cross: [region, segment]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mlci.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.exit_code == 2
    line = info.value.diagnostics()
    assert "\n" not in line
    return line


def test_good_config_resolves_paths_relative_to_the_file(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, GOOD))
    config = loaded.config
    assert config.data.path == tmp_path / "data" / "eval.csv"
    assert config.models[0].path == tmp_path / "models" / "a.onnx"
    assert config.models[0].baseline is not None
    assert config.models[0].baseline.path == tmp_path / "prod" / "b.onnx"
    assert config.models[1].entrypoint == "pkg.module:make"
    assert [s.feature for s in config.evaluation.slices] == ["region", "age", None, None]
    assert config.evaluation.discover.enabled


def test_folder_finds_mlci_yaml(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    assert load_config(tmp_path).path == tmp_path / "mlci.yaml"


def test_unknown_key_points_at_line_and_column_and_suggests(tmp_path: Path) -> None:
    text = GOOD.replace("      bins: [0, 30, 60]", "      binz: [0, 30, 60]")
    line = error_of(tmp_path, text)
    assert line.startswith(f"{tmp_path / 'mlci.yaml'}:16:7: evaluation.slices[1].binz:")
    assert "did you mean 'bins'" in line


def test_unknown_top_level_key(tmp_path: Path) -> None:
    line = error_of(tmp_path, GOOD.replace("models:", "modles:"))
    assert ":5:1: modles: unknown key 'modles' (did you mean 'models'?)" in line


def test_missing_field_names_it(tmp_path: Path) -> None:
    line = error_of(tmp_path, GOOD.replace("  target: y\n", ""))
    assert "data.target: required but missing" in line
    assert ":2:1:" in line  # the data key it belongs under


def test_wrong_type_names_value(tmp_path: Path) -> None:
    line = error_of(tmp_path, GOOD + "  bootstrap: many\n")
    assert "evaluation.bootstrap" in line
    assert ":20:3:" in line


def test_slice_needs_exactly_one_kind(tmp_path: Path) -> None:
    text = GOOD.replace("    - feature: region\n", "    - feature: region\n      where: 'x > 1'\n")
    assert "exactly one of 'feature', 'where' or 'cross'" in error_of(tmp_path, text)


def test_bins_must_increase(tmp_path: Path) -> None:
    line = error_of(tmp_path, GOOD.replace("[0, 30, 60]", "[0, 60, 30]"))
    assert "strictly increasing" in line


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    line = error_of(tmp_path, GOOD.replace("  target: y\n", "  target: y\n  target: z\n"))
    assert "duplicate key 'target'" in line
    assert ":5:3:" in line


def test_invalid_yaml_points_at_position(tmp_path: Path) -> None:
    line = error_of(tmp_path, "version: 1\ndata: [unclosed\n")
    assert "invalid YAML" in line
    assert "mlci.yaml:3:1" in line


def test_empty_file(tmp_path: Path) -> None:
    assert "found an empty file" in error_of(tmp_path, "")


def test_duplicate_model_names(tmp_path: Path) -> None:
    assert "two models are named 'a'" in error_of(tmp_path, GOOD.replace("name: b", "name: a"))


def test_model_needs_a_source(tmp_path: Path) -> None:
    line = error_of(tmp_path, GOOD.replace('    entrypoint: "pkg.module:make"\n', ""))
    assert "models[1]" in line and "either 'path' or 'entrypoint'" in line


def test_version_must_be_known(tmp_path: Path) -> None:
    line = error_of(tmp_path, GOOD.replace("version: 1", "version: 7"))
    assert "version" in line and "7" in line


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "nope.yaml")


def test_json_schema_accepts_good_and_rejects_typo(tmp_path: Path) -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    good = yaml.safe_load(GOOD)
    jsonschema.validate(good, schema)
    bad = yaml.safe_load(GOOD.replace("target:", "targt:"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    json.dumps(schema)


def test_format_loc() -> None:
    assert format_loc(("evaluation", "slices", 1, "feature")) == "evaluation.slices[1].feature"
    assert format_loc(()) == "(top level)"
