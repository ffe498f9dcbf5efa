"""Run the selected stages for every model of mlci.yaml and write what they produced.

Nothing is written unless every model's run finished: stages write into a staging folder
beside ``--out`` and their files move into place only at the end. Bad input (exit 2) stops
the run; a stage that fails for another reason is recorded as failed, the stages that need it
are skipped, the gate reads the gap as missing evidence, and the command exits 1.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from mlci import __version__
from mlci.config import LoadedConfig, ModelConfig
from mlci.data import Dataset, load_dataset
from mlci.errors import InputError, MlciError, UsageError
from mlci.hashing import sha256_file
from mlci.models.interface import Model, Predictions
from mlci.results import (
    ConfigRef,
    Conversion,
    DataRecord,
    ModelInput,
    ModelRecord,
    Results,
    StageOutcome,
    dumps,
)
from mlci.results.source import SourceRecord
from mlci.stages import (
    STAGES,
    ModelContext,
    Progress,
    RunOptions,
    StageFailed,
    StageSkipped,
)

if TYPE_CHECKING:
    from mlci.scale.shards import Shard, ShardFile


@dataclass(frozen=True)
class ModelRun:
    """What one model's run produced."""

    name: str
    document: Results
    reports: dict[str, str]  # file name -> rendered text (report.md, comment.md, ...)
    directory: Path

    @property
    def failed_stages(self) -> list[str]:
        return [n for n, s in self.document.stages.items() if s.status == "failed"]


def out_dir_for(out: Path, loaded: LoadedConfig, name: str) -> Path:
    """One model writes straight into --out; several get a folder each."""
    return out if len(loaded.config.models) == 1 else out / name


def model_record(model: Model, task: str, source: SourceRecord | None = None) -> ModelRecord:
    info = model.info
    return ModelRecord(
        name=info.name,
        path=info.path,
        format=info.format,
        sha256=info.sha256,
        size_bytes=info.size_bytes,
        task=task,
        classes=None if info.classes is None else list(info.classes),
        inputs=[ModelInput(name=i.name, dtype=i.dtype, shape=list(i.shape)) for i in info.inputs],
        source=source,
    )


def data_record(data: Dataset) -> DataRecord:
    return DataRecord(
        path=data.display,
        sha256=data.sha256,
        rows=data.rows,
        format=data.format,
        target=data.target,
        features=list(data.features),
        id=data.id,
        weight=data.weight,
    )


def parse_stage_list(text: str | None, option: str) -> list[str]:
    """``"evaluate, tests"`` -> ``["evaluate", "tests"]``; UsageError for an unknown stage."""
    from mlci.suggest import did_you_mean

    names = [n.strip() for n in (text or "").replace(" ", ",").split(",") if n.strip()]
    for name in names:
        if name not in STAGES:
            raise UsageError(
                f"{option}: unknown stage '{name}'{did_you_mean(name, list(STAGES))}",
                tip=f"stages: {', '.join(STAGES)}",
            )
    return names


def choose_stages(
    configured: Sequence[str], only: Sequence[str] = (), skip: Sequence[str] = ()
) -> list[str]:
    """The stages to run, in the registry's order: ``only`` (else mlci.yaml's), less ``skip``."""
    chosen = set(only or configured) - set(skip)
    selected = [name for name in STAGES if name in chosen]
    if not selected:
        raise UsageError(
            "no stage left to run", tip="check --only and --skip against mlci.yaml's stages"
        )
    return selected


def run_stage(ctx: ModelContext, name: str) -> Results:
    """Run one stage on ``ctx.results`` and return the document with its section and outcome."""
    stage = STAGES[name]
    document = ctx.results
    missing = [n for n in stage.needs if (document.stages.get(n) or _NOT_RUN).status != "ran"]
    started = time.perf_counter()
    section = None
    if missing:
        need = missing[0]
        why = document.stages.get(need)
        reason = f"needs the {need} stage, which " + (
            "was not selected" if why is None else f"{why.status}: {why.reason}"
        )
        outcome = StageOutcome(status="skipped", reason=reason)
    else:
        try:
            section = stage.load()(ctx)
            outcome = StageOutcome(status="ran")
        except StageSkipped as skipped:
            outcome = StageOutcome(status="skipped", reason=skipped.reason)
        except InputError:
            raise
        except MlciError as exc:
            if not isinstance(exc, StageFailed) and exc.exit_code == 2:
                raise
            outcome = StageOutcome(status="failed", reason=exc.diagnostics())
    outcome = outcome.model_copy(update={"duration_s": round(time.perf_counter() - started, 3)})
    if section is not None:
        document = document.with_section(stage.section, section)
    return document.with_stage(name, outcome)


_NOT_RUN = StageOutcome(status="skipped", reason="did not run")


def convert_if_asked(ctx: ModelContext) -> Conversion:
    """Convert a scikit-learn candidate to ONNX and check parity; never fails the run."""
    from dataclasses import asdict

    from mlci.models.convert import convert_to_onnx
    from mlci.models.sklearn import SklearnModel

    model = ctx.candidate
    if not isinstance(model, SklearnModel):
        return Conversion(
            status="failed",
            message=f"only scikit-learn models can be converted; this one is {model.info.format}",
        )
    ctx.progress("converting to ONNX")
    result = convert_to_onnx(model, ctx.frame(model), ctx.staging / f"{ctx.name}.onnx")
    record = asdict(result)
    onnx_path = result.onnx_path
    record["onnx_path"] = None if onnx_path is None else Path(onnx_path).name
    record["onnx_sha256"] = None if onnx_path is None else sha256_file(Path(onnx_path))
    return Conversion.model_validate(record)


def run_model(
    loaded: LoadedConfig,
    data: Dataset,
    spec: ModelConfig,
    staging: Path,
    progress: Progress,
    stages: Sequence[str],
    options: RunOptions,
) -> Results:
    """Run ``stages`` for one model (and its baseline) and build its results document."""
    progress(f"{spec.name}: loading models")
    ctx = ModelContext(loaded, data, spec, staging, progress, options)
    task = ctx.task
    ctx.results = Results(
        mlci_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        config=ConfigRef(path=str(loaded.path), sha256=sha256_file(loaded.path)),
        model=model_record(ctx.candidate, task, ctx.candidate_source),
        baseline=None
        if ctx.baseline is None
        else model_record(ctx.baseline, task, ctx.baseline_source),
        data=data_record(data),
        conversion=convert_if_asked(ctx) if spec.convert else None,
    )
    for name in stages:
        ctx.results = run_stage(ctx, name)
    return ctx.results


def check(
    loaded: LoadedConfig,
    out: Path,
    progress: Progress,
    stages: Sequence[str],
    options: RunOptions | None = None,
) -> list[ModelRun]:
    """Run ``stages`` for every model and write results, reports and stage outputs into ``out``.

    Outputs are written only when every model's run finished, so bad input leaves nothing
    half written.
    """
    from mlci.files import check_out_dir, move_into, temp_dir, write_atomic
    from mlci.report import render_all

    check_out_dir(out)
    streamed = None
    if loaded.config.engine.folds:
        from mlci.scale.stream import documents

        streamed = dict(documents(loaded, stages, progress))
    else:
        progress(f"reading {loaded.config.data.path}")
        data = load_dataset(loaded)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(temp_dir(out.parent))
    try:
        runs = []
        for spec in loaded.config.models:
            model_staging = staging / spec.name
            model_staging.mkdir()
            document = (
                streamed[spec.name]
                if streamed is not None
                else run_model(
                    loaded, data, spec, model_staging, progress, stages, options or RunOptions()
                )
            )
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
            move_into(staging / run.name, run.directory)
        return runs
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def predict_shard(loaded: LoadedConfig, out: Path, shard: Shard, progress: Progress) -> list[Path]:
    """Predict every model (and baseline) on one shard's rows and write its shard files.

    Files are written only after every model predicted, so bad input leaves none behind.
    """
    from mlci.files import check_out_dir
    from mlci.scale.shards import write_shard

    check_out_dir(out)
    progress(f"reading {loaded.config.data.path}")
    data = load_dataset(loaded)
    start, stop = shard.rows(data.rows)
    config_sha256 = sha256_file(loaded.path)
    pending = []
    for spec in loaded.config.models:
        progress(f"{spec.name}: loading models")
        ctx = ModelContext(loaded, data, spec, out, progress)
        progress(f"{spec.name}: predicting on rows {start} to {stop - 1} (shard {shard.index})")
        predictions = [
            m.predict({name: values[start:stop] for name, values in ctx.frame(m).items()})
            if stop > start
            else Predictions()  # a shard past the last chunk of rows
            for m in ctx.models
        ]
        header = {
            "shard": shard.index,
            "shards": shard.count,
            "start": start,
            "stop": stop,
            "rows": data.rows,
            "model": spec.name,
            "config_sha256": config_sha256,
            "data_sha256": data.sha256,
            "candidate_sha256": ctx.candidate.info.sha256,
            "baseline": ctx.baseline is not None,
            "baseline_sha256": None if ctx.baseline is None else ctx.baseline.info.sha256,
        }
        pending.append((out_dir_for(out, loaded, spec.name) / shard.filename, header, predictions))
    for path, header, predictions in pending:
        write_shard(path, header, predictions)
    return [path for path, _, _ in pending]


def evaluate_shards(
    loaded: LoadedConfig, files: Sequence[ShardFile], progress: Progress
) -> list[Results]:
    """The evaluation of every model in ``files``, run on the predictions its shards hold.

    The shards must have been written for this mlci.yaml and data, with these models; the
    document is the one ``mlci evaluate`` would have written in a single job.
    """
    from mlci.scale.shards import merge_shards

    config_sha256 = sha256_file(loaded.path)
    for f in files:
        if f.header["config_sha256"] != config_sha256:
            raise InputError(
                f"{f.path}: written for another mlci.yaml than {loaded.path}",
                tip="merge with the mlci.yaml the shard jobs used",
            )
    progress(f"reading {loaded.config.data.path}")
    data = load_dataset(loaded)
    specs = {spec.name: spec for spec in loaded.config.models}
    by_model: dict[str, list[ShardFile]] = {}
    for f in files:
        if f.model not in specs:
            raise InputError(f"{f.path}: model '{f.model}' is not in {loaded.path}")
        if f.header["data_sha256"] != data.sha256 or f.header["rows"] != data.rows:
            raise InputError(
                f"{f.path}: written for other data than {data.display}",
                tip="merge with the data the shard jobs evaluated",
            )
        by_model.setdefault(f.model, []).append(f)
    documents = []
    with tempfile.TemporaryDirectory() as staging:
        for name, group in by_model.items():
            predictions = merge_shards(group)
            documents.append(
                run_model(
                    loaded,
                    data,
                    specs[name],
                    Path(staging),
                    progress,
                    ["evaluate"],
                    RunOptions(predict=partial(_shard_predictions, group[0], predictions)),
                )
            )
    return documents


def _shard_predictions(
    first: ShardFile, predictions: tuple[Predictions, ...], ctx: ModelContext
) -> tuple[Predictions, ...]:
    """The merged predictions, once the models loaded here are those the shards used."""
    loaded_here = [
        ctx.candidate.info.sha256,
        None if ctx.baseline is None else ctx.baseline.info.sha256,
    ]
    written = [first.header["candidate_sha256"], first.header["baseline_sha256"]]
    if loaded_here != written:
        raise InputError(
            f"{first.path}: the shards predicted with other models than mlci.yaml names now",
            tip="merge with the models the shard jobs used",
        )
    return predictions
