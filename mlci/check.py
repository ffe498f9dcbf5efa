"""`mlci check`: run the configured stages for every model and write the results."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from mlci import __version__
from mlci.config import LoadedConfig, ModelConfig
from mlci.data import Dataset, load_dataset
from mlci.hashing import sha256_file
from mlci.models.interface import Model
from mlci.results import SCHEMA_VERSION, dumps, write_atomic
from mlci.stages import STAGES, ModelContext, Progress, StageSkipped


@dataclass(frozen=True)
class ModelRun:
    """What `mlci check` produced for one model."""

    name: str
    document: dict[str, Any]
    reports: dict[str, str]  # file name -> rendered text (report.md, comment.md, ...)
    directory: Path


def out_dir_for(out: Path, loaded: LoadedConfig, name: str) -> Path:
    """One model writes straight into --out; several get a folder each."""
    return out if len(loaded.config.models) == 1 else out / name


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
    loaded: LoadedConfig,
    data: Dataset,
    spec: ModelConfig,
    staging: Path,
    progress: Progress,
    stages: Sequence[str],
) -> dict[str, Any]:
    """Run ``stages`` for one model (and its baseline) and build its results document."""
    progress(f"{spec.name}: loading models")
    ctx = ModelContext(loaded, data, spec, staging, progress)
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "mlci_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "config": {"path": str(loaded.path), "sha256": sha256_file(loaded.path)},
        "model": None,
        "baseline": None,
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
        "conversion": convert_if_asked(ctx) if spec.convert else None,
        "stages": {},
    }
    for name in stages:
        if name == "gate":
            continue  # the gate judges the finished document: it runs last, below
        info = STAGES[name]
        record_stage(document, name, info.section, partial(info.load(), ctx))
    task = ctx.task
    document["model"] = model_record(ctx.candidate, task)
    if ctx.baseline is not None:
        document["baseline"] = model_record(ctx.baseline, task)
    if "gate" in stages:
        run_gate(loaded, document)
    return document


def record_stage(
    document: dict[str, Any], name: str, section: str, run: Callable[[], dict[str, Any]]
) -> None:
    """Run one stage: store its section, or why it was skipped, and how long it took."""
    started = time.perf_counter()
    try:
        document[section] = run()
        status, reason = "ran", None
    except StageSkipped as skipped:
        status, reason = "skipped", skipped.reason
    document["stages"][name] = {
        "status": status,
        "reason": reason,
        "duration_s": round(time.perf_counter() - started, 3),
    }


def run_gate(loaded: LoadedConfig, document: dict[str, Any]) -> None:
    """Judge the finished document: add its ``gate`` section and the gate's stage entry."""
    from mlci.gate.stage import run

    document.pop("gate", None)
    record_stage(document, "gate", "gate", lambda: run(loaded, document))


def convert_if_asked(ctx: ModelContext) -> dict[str, Any]:
    """Convert a scikit-learn candidate to ONNX and check parity; never fails the run."""
    from mlci.models.convert import convert_to_onnx
    from mlci.models.sklearn import SklearnModel

    model = ctx.candidate
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
    ctx.progress("converting to ONNX")
    result = convert_to_onnx(model, ctx.frame(model), ctx.staging / f"{ctx.name}.onnx")
    record = asdict(result)
    onnx_path = result.onnx_path
    record["onnx_path"] = None if onnx_path is None else Path(onnx_path).name
    record["onnx_sha256"] = None if onnx_path is None else sha256_file(onnx_path)
    return record


def check(
    loaded: LoadedConfig,
    out: Path,
    progress: Progress,
    stages: Sequence[str] | None = None,
) -> list[ModelRun]:
    """Run ``stages`` (default: those in mlci.yaml) for every model.

    Outputs are written only when every model succeeded, so a failure leaves nothing half
    written.
    """
    stages = list(stages or loaded.config.stages)
    from mlci.report import render_all

    progress(f"reading {loaded.config.data.path}")
    data = load_dataset(loaded)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mlci-", dir=out.parent))
    try:
        runs = []
        for spec in loaded.config.models:
            model_staging = staging / spec.name
            model_staging.mkdir()
            document = run_model(loaded, data, spec, model_staging, progress, stages)
            runs.append(
                ModelRun(
                    spec.name,
                    document,
                    render_all(document, loaded.config.report.templates),
                    out_dir_for(out, loaded, spec.name),
                )
            )
        texts = [(run, dumps(run.document)) for run in runs]
        for run, text in texts:
            write_atomic(run.directory / "results.json", text)
            for filename, rendered in run.reports.items():
                write_atomic(run.directory / filename, rendered)
            for produced in (staging / run.name).iterdir():
                shutil.move(str(produced), run.directory / produced.name)
        return runs
    finally:
        shutil.rmtree(staging, ignore_errors=True)
