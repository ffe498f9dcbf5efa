"""`mlci check`: run the configured stages for every model and write the results."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlci import __version__
from mlci.config import LoadedConfig, ModelConfig, ModelSource
from mlci.data import Dataset, load_dataset
from mlci.errors import DataError
from mlci.hashing import sha256_file
from mlci.models.interface import Model, Predictions
from mlci.results import SCHEMA_VERSION, dumps, write_atomic

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ModelRun:
    """What `mlci check` produced for one model."""

    name: str
    document: dict[str, Any]
    report: str
    directory: Path


def out_dir_for(out: Path, loaded: LoadedConfig, name: str) -> Path:
    """One model writes straight into --out; several get a folder each."""
    return out if len(loaded.config.models) == 1 else out / name


def load_source(source: ModelSource, name: str, loaded: LoadedConfig) -> Model:
    from mlci.models.load import load_model

    return load_model(
        source.path,
        name=name,
        format=source.format,
        trust_pickle=source.trust_pickle,
        trusted_types=tuple(source.trusted_types),
        entrypoint=source.entrypoint,
        base_dir=loaded.path.parent,
    )


def model_frame(model: Model, data: Dataset) -> dict[str, Any]:
    """The columns a model reads, in the order it reads them."""
    from mlci.suggest import did_you_mean

    features = model.info.features or data.features
    missing = [f for f in features if f not in data.columns]
    if missing:
        raise DataError(
            f"{data.display}: model '{model.info.name}' expects input '{missing[0]}' that the data "
            f"lacks{did_you_mean(missing[0], data.columns)}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            tip="add the column to the data or fix data.features",
        )
    return {f: data.columns[f] for f in features}


def model_record(model: Model, task: str) -> dict[str, Any]:
    info = model.info
    return {
        "name": info.name,
        "path": info.path,
        "format": info.format,
        "sha256": info.sha256,
        "size_bytes": info.size_bytes,
        "task": task,
        "classes": None if info.classes is None else list(info.classes),
        "inputs": [{"name": i.name, "dtype": i.dtype, "shape": list(i.shape)} for i in info.inputs],
    }


def run_model(
    loaded: LoadedConfig, data: Dataset, spec: ModelConfig, staging: Path, progress: Progress
) -> dict[str, Any]:
    """Evaluate one model (and its baseline) and build its results document."""
    from mlci.evaluate.alignment import AlignmentError, align, infer_task
    from mlci.evaluate.stage import evaluate_model

    started = time.perf_counter()
    progress(f"{spec.name}: loading models")
    candidate = load_source(spec, spec.name, loaded)
    baseline = (
        load_source(spec.baseline, f"{spec.name} (baseline)", loaded) if spec.baseline else None
    )

    progress(f"{spec.name}: predicting on {data.rows} rows")
    predictions: list[Predictions] = [candidate.predict(model_frame(candidate, data))]
    if baseline is not None:
        predictions.append(baseline.predict(model_frame(baseline, data)))
    task = infer_task(predictions[0], candidate.info.task)
    if baseline is not None:
        base_task = infer_task(predictions[1], baseline.info.task)
        if (base_task == "regression") != (task == "regression"):
            raise DataError(
                f"{spec.name}: the candidate is a {task} model but the baseline is a {base_task} model",
                tip="compare models that solve the same task",
            )
    try:
        aligned = align(task, data.columns[data.target], predictions)
    except AlignmentError as exc:
        raise DataError(f"{data.display}: model '{spec.name}': {exc}") from None
    if aligned.task != "regression":
        task = (
            "binary" if aligned.classes is not None and len(aligned.classes) == 2 else "multiclass"
        )

    conversion = (
        convert_if_asked(spec, candidate, data, staging, progress) if spec.convert else None
    )
    evaluation = evaluate_model(
        loaded,
        data,
        task,
        aligned.y_true,
        aligned.outputs[0],
        aligned.outputs[1] if baseline is not None else None,
        aligned.classes,
        lambda message: progress(f"{spec.name}: {message}"),
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "mlci_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "config": {"path": str(loaded.path), "sha256": sha256_file(loaded.path)},
        "model": model_record(candidate, task),
        "baseline": None if baseline is None else model_record(baseline, task),
        "data": {
            "path": data.display,
            "sha256": data.sha256,
            "rows": data.rows,
            "format": data.format,
            "target": data.target,
            "features": list(data.features),
            "id": data.id,
            "weight": data.weight,
        },
        "conversion": conversion,
        "stages": {
            "evaluate": {
                "status": "ran",
                "reason": None,
                "duration_s": round(time.perf_counter() - started, 3),
            }
        },
        "evaluation": evaluation,
    }


def convert_if_asked(
    spec: ModelConfig, model: Model, data: Dataset, staging: Path, progress: Progress
) -> dict[str, Any] | None:
    """Convert a scikit-learn candidate to ONNX and check parity; never fails the run."""
    from mlci.models.convert import convert_to_onnx
    from mlci.models.sklearn import SklearnModel

    if not isinstance(model, SklearnModel):
        return {
            "status": "failed",
            "message": f"only scikit-learn models can be converted; this one is {model.info.format}",
            "onnx_path": None,
            "onnx_sha256": None,
            "max_abs_diff": None,
            "label_agreement": None,
            "rows_checked": 0,
        }
    progress(f"{spec.name}: converting to ONNX")
    result = convert_to_onnx(model, model_frame(model, data), staging / f"{spec.name}.onnx")
    record = asdict(result)
    onnx_path = result.onnx_path
    record["onnx_path"] = None if onnx_path is None else Path(onnx_path).name
    record["onnx_sha256"] = None if onnx_path is None else sha256_file(onnx_path)
    return record


def check(loaded: LoadedConfig, out: Path, progress: Progress) -> list[ModelRun]:
    """Run every stage for every model; write outputs only when all of them succeeded."""
    from mlci.report import render_markdown

    progress(f"reading {loaded.config.data.path}")
    data = load_dataset(loaded)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mlci-", dir=out.parent))
    try:
        runs = []
        for spec in loaded.config.models:
            model_staging = staging / spec.name
            model_staging.mkdir()
            document = run_model(loaded, data, spec, model_staging, progress)
            runs.append(
                ModelRun(
                    spec.name,
                    document,
                    render_markdown(document),
                    out_dir_for(out, loaded, spec.name),
                )
            )
        texts = [(run, dumps(run.document)) for run in runs]
        for run, text in texts:
            write_atomic(run.directory / "results.json", text)
            write_atomic(run.directory / "report.md", run.report)
            for produced in (staging / run.name).iterdir():
                shutil.move(str(produced), run.directory / produced.name)
        return runs
    finally:
        shutil.rmtree(staging, ignore_errors=True)
