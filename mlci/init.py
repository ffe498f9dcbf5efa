"""``mlci init``: a first mlci.yaml and workflow for a model and its data.

It inspects the model (its inputs, task and classes) and the data (each column's kind, number
of values and missing values), picks the target and the id column, and writes a configuration
with declared slices on the categorical columns and quantiles of the numeric ones, model tests
(the contract, a floor for the main metric, data checks against a reference), a gate, and a
short latency benchmark for ONNX models. The pure part (:func:`choose_target`,
:func:`plan`, :func:`render_config`) takes profiles and returns text; :func:`init` reads the
files and writes the results, both or nothing, and never overwrites without ``force``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlci.errors import InputError, UsageError

# The workflow template names mlci's actions with this placeholder: no GitHub account can be
# called YOUR_ORG and no commit has the all-zero SHA, so an unedited copy cannot run anything.
ACTION_PLACEHOLDER = "YOUR_ORG/mlci"
COMMIT_PLACEHOLDER = "0" * 40
WORKFLOW_PATH = Path(".github") / "workflows" / "mlci.yml"
CONFIG_NAME = "mlci.yaml"
TARGET_NAMES = ("target", "label", "labels", "y", "class", "outcome", "response")
ID_NAMES = ("id", "uuid", "key")
MAX_SLICE_VALUES = 20  # more values than this is not a slicing feature
MAX_CATEGORICAL_SLICES = 6
MAX_NUMERIC_SLICES = 3
_ACTION = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?/[A-Za-z0-9._-]+)@([0-9a-f]{40})$")


@dataclass(frozen=True)
class ColumnProfile:
    """What the data says about one column."""

    name: str
    kind: str  # numeric, categorical or bool
    distinct: int
    missing: int
    integral: bool = False  # numeric and every value a whole number
    values: tuple[str, ...] = ()  # up to MAX_SLICE_VALUES + 1 distinct values, as text


@dataclass(frozen=True)
class ModelProfile:
    """What the model says about itself."""

    format: str
    inputs: tuple[str, ...]  # column names it reads; empty when it takes one tensor
    task: str | None
    classes: tuple[str, ...] | None


@dataclass(frozen=True)
class Plan:
    """The choices mlci.yaml is written from."""

    target: str
    task: str
    id: str | None
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    cross: tuple[str, str] | None
    id_like_inputs: tuple[str, ...]
    candidates: tuple[str, ...]
    rows: int
    notes: list[str] = field(default_factory=list)


# -- inspection ------------------------------------------------------------------------------


def profile_data(path: Path) -> tuple[int, dict[str, ColumnProfile]]:
    """Rows and a profile of every column of a CSV or Parquet file."""
    import numpy as np

    from mlci.data import missing_mask, read_table, to_numpy

    _, table = read_table(path)
    profiles: dict[str, ColumnProfile] = {}
    for name in table.column_names:
        values, kind, _ = to_numpy(table.column(name))
        missing = missing_mask(values)
        present = values[~missing]
        if kind == "numeric":
            unique = np.unique(present.astype(np.float64))
            integral = bool(np.all(np.mod(unique, 1) == 0)) if len(unique) else False
            shown = tuple(_number(v) for v in unique[: MAX_SLICE_VALUES + 1])
        else:
            unique = np.array(sorted({str(v) for v in present}), dtype=object)
            integral = False
            shown = tuple(str(v) for v in unique[: MAX_SLICE_VALUES + 1])
        profiles[name] = ColumnProfile(name, kind, len(unique), int(missing.sum()), integral, shown)
    return table.num_rows, profiles


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def profile_model(path: Path, base_dir: Path) -> ModelProfile:
    from mlci.models.load import load_model

    model = load_model(path, name=path.stem, base_dir=base_dir)
    info = model.info
    classes = None if info.classes is None else tuple(_label(c) for c in info.classes)
    return ModelProfile(info.format, tuple(info.features), info.task, classes)


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# -- choices (pure) ----------------------------------------------------------------------------


def _id_like(column: ColumnProfile, rows: int) -> bool:
    unique_per_row = column.distinct == rows and column.missing == 0 and rows > 1
    return unique_per_row and (column.kind == "categorical" or column.integral)


def _fits_classes(column: ColumnProfile, classes: Sequence[str]) -> bool:
    return 0 < column.distinct <= len(classes) and set(column.values) <= set(classes)


def choose_target(
    rows: int,
    columns: Mapping[str, ColumnProfile],
    model: ModelProfile,
    target: str | None = None,
) -> tuple[str, tuple[str, ...]]:
    """The target column and every column that could have been it.

    Candidates are the columns the model does not read and that are not an id; for a
    classifier, only those whose values are among its classes; for a regressor, numeric ones.
    A single candidate, or a single one with a usual target name, is chosen; otherwise the
    user must say which.
    """
    from mlci.suggest import did_you_mean

    if target is not None:
        if target not in columns:
            raise UsageError(
                f"--target {target}: no such column{did_you_mean(target, columns)}",
                tip=f"the data has {', '.join(columns)}",
            )
        return target, (target,)
    inputs = set(model.inputs)
    candidates = [c for c in columns.values() if c.name not in inputs and not _id_like(c, rows)]
    if model.classes is not None:
        candidates = [c for c in candidates if _fits_classes(c, model.classes)]
    elif model.task == "regression":
        candidates = [c for c in candidates if c.kind == "numeric"]
    names = tuple(c.name for c in candidates)
    if len(names) == 1:
        return names[0], names
    named = [n for n in names if n.lower() in TARGET_NAMES]
    if len(named) == 1:
        return named[0], names
    if not names:
        raise UsageError(
            "cannot tell which column is the target: no column outside the model's inputs "
            + ("holds only its classes" if model.classes is not None else "fits")
            + (f" ({', '.join(model.classes[:5])})" if model.classes else ""),
            tip="name it with --target COLUMN",
        )
    raise UsageError(
        f"cannot tell which column is the target: {', '.join(names)} could all be",
        tip="name it with --target COLUMN",
    )


def _task(target: ColumnProfile, model: ModelProfile) -> str:
    if model.task is not None:
        return model.task
    if target.kind == "numeric" and not (target.integral and target.distinct <= MAX_SLICE_VALUES):
        return "regression"
    return "binary" if target.distinct == 2 else "multiclass"


def plan(
    rows: int,
    columns: Mapping[str, ColumnProfile],
    model: ModelProfile,
    target: str | None = None,
) -> Plan:
    """Target, id, and the columns to slice on, from the profiles."""
    chosen, candidates = choose_target(rows, columns, model, target)
    inputs = set(model.inputs)
    ids = [c.name for c in columns.values() if c.name != chosen and _id_like(c, rows)]
    id_column = next((n for n in ids if n not in inputs), None)
    id_like_inputs = tuple(n for n in ids if n in inputs)
    used = {chosen, *(n for n in ids)}
    features = [c for c in columns.values() if c.name not in used]
    if model.inputs:
        features = [c for c in features if c.name in inputs] or features
    categorical = [
        c
        for c in features
        if 2 <= c.distinct <= MAX_SLICE_VALUES
        and (c.kind in ("categorical", "bool") or (c.integral and c.distinct <= 10))
    ]
    numeric = [
        c for c in features if c.kind == "numeric" and c not in categorical and c.distinct > 4
    ]
    categorical = sorted(categorical, key=lambda c: c.distinct)[:MAX_CATEGORICAL_SLICES]
    cross = None
    if len(categorical) >= 2 and categorical[0].distinct * categorical[1].distinct <= 30:
        cross = (categorical[0].name, categorical[1].name)
    notes = []
    if len(candidates) > 1:
        others = [n for n in candidates if n != chosen]
        notes.append(f"target '{chosen}' (other candidates: {', '.join(others)})")
    return Plan(
        target=chosen,
        task=_task(columns[chosen], model),
        id=id_column,
        categorical=tuple(c.name for c in categorical),
        numeric=tuple(c.name for c in numeric[:MAX_NUMERIC_SLICES]),
        cross=cross,
        id_like_inputs=id_like_inputs,
        candidates=candidates,
        rows=rows,
        notes=notes,
    )


def _yaml_string(value: str) -> str:
    import json

    return value if re.match(r"^[A-Za-z0-9_./-]+$", value) else json.dumps(value)


def _contract_parts(task: str, model_format: str) -> list[str]:
    # parity compares a scikit-learn model with its ONNX conversion: skipped (missing evidence
    # for the gate) on anything else; probabilities exist only for classifiers
    parts = ["inputs", "outputs"]
    if task != "regression":
        parts.append("probabilities")
    parts.append("determinism")
    return parts


def render_config(
    the_plan: Plan,
    *,
    name: str,
    model: str,
    data: str,
    model_format: str,
    baseline: str | None = None,
    reference: str | None = None,
) -> str:
    """mlci.yaml for ``the_plan``; paths are relative to the file."""
    q = _yaml_string
    primary, floor = {
        "binary": ("roc_auc", 0.5),
        "multiclass": ("accuracy", 0.0),
        "regression": ("r2", 0.0),
    }[the_plan.task]
    min_slice = max(30, min(200, the_plan.rows // 200))
    lines = [
        "# mlci configuration written by `mlci init`: a starting point to adjust.",
        "# Reference: the README's 'Configuration' section; `mlci schema` for editors.",
        "version: 1",
        "data:",
        f"  path: {q(data)}",
        f"  target: {q(the_plan.target)}",
    ]
    if the_plan.id:
        lines.append(f"  id: {q(the_plan.id)}  # never used as a feature")
    if reference:
        lines.append(f"  reference: {q(reference)}  # for the data checks and drift")
    lines += ["models:", f"  - name: {q(name)}", f"    path: {q(model)}"]
    if baseline:
        lines += [
            "    baseline:  # the model in production",
            f"      path: {q(baseline)}",
        ]
    lines += [
        "evaluation:",
        f"  primary_metric: {primary}",
        "  confidence: 0.95",
        "  bootstrap: 1000",
        "  seed: 0",
        f"  min_slice_size: {min_slice}",
    ]
    slices = [f"    - feature: {q(c)}" for c in the_plan.categorical]
    slices += [f"    - feature: {q(c)}\n      quantiles: 4" for c in the_plan.numeric]
    if the_plan.cross:
        slices.append(f"    - cross: [{q(the_plan.cross[0])}, {q(the_plan.cross[1])}]")
    lines += ["  slices:", *slices] if slices else ["  slices: []"]
    lines += [
        "  discover:  # SliceLine finds the slices nobody declared",
        "    max_level: 2",
        "    top_k: 10",
        "tests:",
        "  checks:",
        "    - kind: contract  # what the model reads and returns, and that it is deterministic",
        f"      checks: [{', '.join(_contract_parts(the_plan.task, model_format))}]",
        "    - kind: metric  # better than chance: raise it to what the model must reach",
        f"      metric: {primary}",
        f"      min: {floor}",
    ]
    for column in the_plan.id_like_inputs:
        lines += [
            "    - kind: invariance  # an id must not change a score",
            f"      feature: {q(column)}",
        ]
    if reference:
        lines += [
            "    - kind: schema",
            "    - kind: missing",
            "    - kind: range",
            "    - kind: drift",
        ]
    if model_format == "onnx":
        lines += [
            "benchmark:  # a short run; raise the budgets to gate on latency",
            "  scenarios:",
            "    - kind: single_stream",
            "      compare: [p50, p99]",
            "      max_regression: 25%",
            "      min_duration: 0.5s",
            "      time_budget: 5s",
        ]
    lines += [
        "gate:",
        "  fail_on: block",
        "  rules:",
        "    - kind: metric",
        f"      metric: {primary}",
        f"      min: {floor}",
    ]
    if baseline:
        lines += [
            "    - kind: non_inferiority  # no worse than production beyond the margin",
            f"      metric: {primary}",
            "      margin: 0.01",
            "    - kind: slices  # no flagged slice worse than production beyond 0.02",
            "      margin: 0.02",
        ]
    lines.append("    - kind: tests")
    if model_format == "onnx" and baseline:
        lines += [
            "    - kind: latency",
            "      metric: p99",
            "      max_regression: 0.25",
            "      required: false",
        ]
    return "\n".join(lines) + "\n"


def render_workflow(action: str | None, config: str) -> str:
    """The pull-request workflow, pointed at ``action`` (OWNER/REPO@SHA) when given."""
    from importlib.resources import files

    text = (files("mlci") / "templates" / "workflow.yml").read_text(encoding="utf-8")
    if config != CONFIG_NAME:
        text = text.replace(f"          config: {CONFIG_NAME}\n", f"          config: {config}\n")
    if action is not None:
        found = _ACTION.match(action)
        if not found:
            raise UsageError(
                f"--action {action}: expected OWNER/REPO@SHA with the full 40-character commit",
                tip="pin mlci's actions to a commit, e.g. my-org/mlci@<git rev-parse HEAD>",
            )
        repository, sha = found.groups()
        text = text.replace(f"{ACTION_PLACEHOLDER}/", f"{repository}/").replace(
            f"{ACTION_PLACEHOLDER}@", f"{repository}@"
        )
        text = text.replace(COMMIT_PLACEHOLDER, sha)
    return text


# -- files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InitResult:
    written: list[Path]
    plan: Plan
    placeholder: bool


def _inside(path: Path, root: Path, what: str) -> str:
    resolved = path.resolve()
    if not resolved.exists():
        raise InputError(f"{path}: no such {what} file")
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise UsageError(
            f"{path}: the {what} is outside {root}",
            tip="put it in the repository (git lfs suits large files), so CI can read it",
        ) from None


def init(
    *,
    model: Path,
    data: Path,
    baseline: Path | None = None,
    reference: Path | None = None,
    target: str | None = None,
    name: str | None = None,
    directory: Path = Path("."),
    action: str | None = None,
    workflow: bool = True,
    force: bool = False,
) -> InitResult:
    """Inspect the files and write mlci.yaml (and the workflow): both, or nothing."""
    from mlci.config import load_config
    from mlci.files import write_atomic

    directory = directory.resolve()
    config_path = directory / CONFIG_NAME
    targets = [config_path] + ([directory / WORKFLOW_PATH] if workflow else [])
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise UsageError(
            f"{', '.join(str(p) for p in existing)} already exist(s); nothing was written",
            tip="pass --force to replace them",
        )
    paths = {
        "model": _inside(model, directory, "model"),
        "data": _inside(data, directory, "data"),
    }
    if baseline is not None:
        paths["baseline"] = _inside(baseline, directory, "baseline")
    if reference is not None:
        paths["reference"] = _inside(reference, directory, "reference data")
    rows, columns = profile_data(directory / paths["data"])
    candidate = profile_model(directory / paths["model"], directory)
    the_plan = plan(rows, columns, candidate, target)
    model_name = name or re.sub(r"[^A-Za-z0-9._-]+", "-", Path(paths["model"]).stem).strip("-.")
    text = render_config(
        the_plan,
        name=model_name or "model",
        model=paths["model"],
        data=paths["data"],
        model_format=candidate.format,
        baseline=paths.get("baseline"),
        reference=paths.get("reference"),
    )
    workflow_text = render_workflow(action, CONFIG_NAME) if workflow else None
    # Validate in place of the real file: paths in mlci.yaml resolve against its folder.
    probe = directory / f".{CONFIG_NAME}.init-check.yaml"
    try:
        probe.write_text(text, encoding="utf-8")
        load_config(probe)
    finally:
        probe.unlink(missing_ok=True)
    write_atomic(config_path, text)
    written = [config_path]
    if workflow_text is not None:
        (directory / WORKFLOW_PATH).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / WORKFLOW_PATH, workflow_text)
        written.append(directory / WORKFLOW_PATH)
    return InitResult(written, the_plan, workflow and action is None)
