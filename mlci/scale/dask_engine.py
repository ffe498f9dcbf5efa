"""Predictions on a Dask cluster: workers read and predict Parquet row groups.

The evaluation data's rows are cut into partitions of ``engine.partition_rows`` rounded up to
whole prediction chunks (``PREDICT_CHUNK_ROWS``). Each partition is one task: a worker reads
just the Parquet row groups the partition overlaps and just the columns the models read,
keeps the partition's rows, converts them exactly as ``mlci check`` does,
and predicts with models it loaded once (they are kept per worker process, keyed by the
configuration's digest). The client puts the predictions back in row order, so the
evaluation that follows sees the predictions one process would have made (the chunks of
rows are the same). A worker's memory is bounded by one partition and the row groups at its
edges, whatever the number of rows.

Tasks and their results travel between client and workers with Dask's own serialisation
(pickle): connect only to a scheduler whose workers you trust, as with any Dask cluster.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from mlci.errors import ConfigError, DataError
from mlci.models.interface import PREDICT_CHUNK_ROWS, Model, Predictions
from mlci.models.outputs import concatenate
from mlci.scale.partitions import Partition, plan_partitions, read_partition
from mlci.scale.stream import read_batch, with_slices

T = TypeVar("T")

if TYPE_CHECKING:
    import numpy as np
    from distributed import Client

    from mlci.config import EngineConfig, LoadedConfig, ModelConfig, SliceConfig
    from mlci.scale.discovery import Discovery, Found, Learned
    from mlci.scale.stream import Chosen, Fold, Grids, Histograms, Source
    from mlci.stages import ModelContext


@dataclass(frozen=True)
class Job:
    """What every task of one model's predictions shares."""

    config: str  # absolute path of mlci.yaml, as the workers see it
    config_sha256: str
    model: str
    data: str  # absolute path of the Parquet file
    columns: tuple[tuple[str, ...], ...]  # per model (candidate, baseline): the columns it reads
    dtypes: tuple[tuple[str, str], ...]  # each column's numpy dtype in the client's dataset


@dataclass(frozen=True)
class PartitionResult(Generic[T]):
    """What a task sends back: its value (predictions, a fold, histograms) and how it ran."""

    value: T
    worker: str  # host and process id of the worker that ran it
    loaded_models: bool  # whether this task loaded the models (the worker's first task)
    peak_memory: int  # the worker process's peak resident memory so far, in bytes


def worker_summary(results: Sequence[PartitionResult[Any]], done: str) -> str:
    """One line on how the workers ran the partitions."""
    workers = {r.worker for r in results}
    peak = max(r.peak_memory for r in results) / 2**20
    return (
        f"{len(results)} partitions {done} by {len(workers)} workers "
        f"(models loaded {sum(r.loaded_models for r in results)} times; "
        f"peak worker memory {peak:.0f} MiB)"
    )


def predict_on_cluster(ctx: ModelContext) -> tuple[Predictions, ...]:
    """The candidate's (and baseline's) predictions on every row, computed by Dask workers."""
    import pyarrow.parquet as pq

    from mlci.hashing import sha256_file

    loaded, data = ctx.loaded, ctx.data
    engine = loaded.config.engine
    if data.format != "parquet":
        raise loaded.error(
            ("engine", "kind"),
            f"engine: dask has workers read Parquet row groups, but {data.display} is "
            f"{data.format.upper()}",
            tip="write the data as Parquet, or use engine: local",
        )
    frames = [ctx.frame(m) for m in ctx.models]
    columns = tuple(tuple(frame) for frame in frames)
    needed = dict.fromkeys(name for cols in columns for name in cols)
    job = Job(
        config=str(loaded.path.resolve()),
        config_sha256=sha256_file(loaded.path),
        model=ctx.name,
        data=str(Path(data.path).resolve()),
        columns=columns,
        dtypes=tuple((name, data.columns[name].dtype.str) for name in needed),
    )
    metadata = pq.ParquetFile(job.data).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    parts = plan_partitions(sizes, engine.partition_rows)
    if len(parts) < engine.workers and engine.scheduler is None:
        ctx.progress(
            f"{data.rows:,} rows make {len(parts)} partitions for {engine.workers} workers "
            "(lower engine.partition_rows to spread the work; a partition is whole chunks of "
            f"{PREDICT_CHUNK_ROWS:,} rows)"
        )
    with client_for(engine) as client:
        results = predict_partitions(client, job, parts, ctx.progress)
    ctx.progress(worker_summary(results, "predicted"))
    return concatenate([r.value for r in results])


@contextmanager
def client_for(engine: EngineConfig) -> Iterator[Client]:
    """A client of the configured scheduler, or of a local cluster started for this run."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            "engine: dask needs Dask's distributed scheduler, which is not installed",
            tip="pip install 'mlci[dask]'",
        ) from None
    if engine.scheduler is not None:
        try:
            client = Client(engine.scheduler, timeout="15s")  # type: ignore[no-untyped-call]
        except OSError as exc:
            raise ConfigError(
                f"engine.scheduler: cannot reach the Dask scheduler at {engine.scheduler} ({exc})",
                tip="start the scheduler, or leave engine.scheduler out for a local cluster",
            ) from None
        with client:
            yield client
        return
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=engine.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        yield client


def predict_partitions(
    client: Client, job: Job, parts: Sequence[Partition], progress: Any = None
) -> list[PartitionResult[tuple[Predictions, ...]]]:
    """Every partition's predictions, in row order, reporting progress as tasks finish.

    Each result is fetched as soon as its task finishes and then released, so a worker
    holds one partition's predictions at a time, not every partition it predicted.
    """
    from distributed import as_completed

    run = uuid.uuid4().hex[:12]  # keys of earlier runs may still be known to the scheduler
    index = {}
    for i, part in enumerate(parts):
        key = f"mlci-predict-{job.model}-{run}-{i}"
        index[client.submit(predict_partition, job, part, key=key)] = i
    results: dict[int, PartitionResult[tuple[Predictions, ...]]] = {}
    for future in as_completed(list(index)):  # type: ignore[no-untyped-call]
        # result() raises the worker's exception here, with its message
        results[index.pop(future)] = future.result()
        future.release()
        if progress is not None:
            progress(f"predicted {len(results)} of {len(parts)} partitions")
    return [results[i] for i in range(len(parts))]


# ------------------------------------------------------------------ on the workers

_MODELS: dict[tuple[str, str, str], tuple[Model, ...]] = {}


def predict_partition(job: Job, part: Partition) -> PartitionResult[tuple[Predictions, ...]]:
    """Read one partition's row groups and predict them (runs on a worker)."""
    models, loaded_now, where = _models_here(job)
    try:
        arrays, _ = read_partition(job.data, part, dict(job.dtypes), where)
    except OSError as exc:
        raise DataError(f"{where}: cannot read {job.data} ({exc})", tip=_SAME_FILES) from None
    predictions = tuple(
        model.predict({name: arrays[name] for name in columns})
        for model, columns in zip(models, job.columns, strict=True)
    )
    return PartitionResult(predictions, where, loaded_now, _peak_memory())


def _models_here(job: Job | FoldJob) -> tuple[tuple[Model, ...], bool, str]:
    """This worker's models for the job (loaded on its first task), whether this task loaded
    them, and the worker's name for messages."""
    key = (job.config, job.config_sha256, job.model)
    loaded_now = key not in _MODELS
    where = f"Dask worker {socket.gethostname()}:{os.getpid()}"
    if loaded_now:
        try:
            _MODELS[key] = _load_models(job)
        except OSError as exc:
            raise ConfigError(
                f"{where}: cannot load model '{job.model}' ({exc})", tip=_SAME_FILES
            ) from None
    return _MODELS[key], loaded_now, where


def _peak_memory() -> int:
    """This process's peak resident memory in bytes.

    On Linux from /proc (VmHWM), which counts this process only: getrusage's ru_maxrss
    survives exec, so a worker spawned by a client that had loaded the data would report
    the client's peak as its own.
    """
    import resource
    import sys

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _load_models(job: Job | FoldJob) -> tuple[Model, ...]:
    from mlci.stages import load_models

    loaded = _load_config(job)
    spec = next(m for m in loaded.config.models if m.name == job.model)
    return tuple(model for model, _ in load_models(spec, loaded))


def _load_config(job: Job | FoldJob) -> LoadedConfig:
    from mlci.config import load_config
    from mlci.hashing import sha256_file

    path = Path(job.config)
    if sha256_file(path) != job.config_sha256:
        raise ConfigError(
            f"{path} on Dask worker {socket.gethostname()} differs from the client's mlci.yaml",
            tip="workers need the client's mlci.yaml, models and data at the same paths",
        )
    return load_config(path)


# ------------------------------------------------------------------ folding on the workers


@dataclass(frozen=True)
class FoldJob:
    """What every task of one model's folded evaluation shares."""

    config: str  # absolute path of mlci.yaml, as the workers see it
    config_sha256: str
    model: str
    source: Source
    models: int  # the candidate, and its baseline when it has one
    slices: tuple[SliceConfig, ...]  # the client's, quantile edges taken from the whole file
    # SliceLine's search (when on): each searched feature and whether it is numeric, and
    # the error mode; workers send back what the first pass learns of their partitions.
    searched: tuple[tuple[str, bool], ...] = ()
    mode: Literal["model", "regression"] | None = None


# A selection's rows in one partition travel as bits: name, definition, value, packed mask.
Packed = dict[tuple[Any, ...], tuple[str, str, Any, "np.ndarray"]]


def fold_on_cluster(
    loaded: LoadedConfig,
    source: Source,
    spec: ModelConfig,
    models: Sequence[Model],
    progress: Any,
    discovery: Discovery | None,
) -> tuple[Fold, Found | None]:
    """The fold of every partition, each made on a worker and merged here in row order, and
    the slices SliceLine found when ``discovery`` is given.

    A worker sends back statistics, not rows or predictions, so the client's memory, like
    the workers', does not grow with the rows. With SliceLine on, a worker also sends each
    partition's errors, which the client keeps on its disk with the features' level codes
    (it reads those columns itself) and searches as ``engine: stream`` does; the workers
    then fold the found slices, their rows sent as bits.
    """
    from mlci.hashing import sha256_file
    from mlci.scale.stream import finish_fold, merge_folds, search_whole

    job = FoldJob(
        str(loaded.path.resolve()),
        sha256_file(loaded.path),
        spec.name,
        source,
        len(models),
        tuple(loaded.config.evaluation.slices),
        () if discovery is None else tuple((f, k.numeric) for f, k in discovery.levels.items()),
        None if discovery is None else discovery.mode,
    )
    parts = source.parts
    with client_for(loaded.config.engine) as client:
        fold: Fold | None = None
        ran = []
        first = [(job, part) for part in parts]
        for i, result in enumerate(_in_order(client, fold_partition, first, progress, "folded")):
            ran.append(replace(result, value=None))  # how it ran; the fold is merged below
            part_fold, learned = result.value
            if fold is None:
                fold = part_fold
            else:
                merge_folds(fold, part_fold)
            if discovery is not None:
                assert learned is not None
                discovery.keep(i, learned)
        assert fold is not None
        progress(worker_summary(ran, "folded"))

        found = None
        packed: list[Packed] = [{} for _ in parts]
        if discovery is not None:
            found = search_whole(loaded, source, fold, discovery, progress, spec.name)
            if found.slices:
                packed = [_packed(discovery.chosen(i)) for i in range(len(parts))]
                calls = [((job, bits), part) for bits, part in zip(packed, parts, strict=True)]
                what = "found slices evaluated in"
                for done in _in_order(client, found_partition, calls, progress, what):
                    merge_folds(fold, done.value)

        def resampled(resampling: tuple[int, int], cuts: Grids) -> Iterator[Histograms]:
            calls = [
                ((job, resampling, cuts, bits), part)
                for bits, part in zip(packed, parts, strict=True)
            ]
            for done in _in_order(client, histogram_partition, calls, progress, "resampled"):
                yield done.value

        return finish_fold(loaded, source, fold, resampled), found


def _in_order(
    client: Client, task: Any, calls: Sequence[tuple[Any, Any]], progress: Any, what: str
) -> Iterator[PartitionResult[Any]]:
    """Each call's result (a task's arguments, one call per partition), in row order, as
    soon as it and those before it finished.

    Folding in row order keeps the sums' rounding, and so the document, the same from run
    to run; a result waits only for the slower partitions before it.
    """
    from distributed import as_completed

    run = uuid.uuid4().hex[:12]
    index = {}
    for i, args in enumerate(calls):
        index[client.submit(task, *args, key=f"mlci-{what.replace(' ', '-')}-{run}-{i}")] = i
    waiting: dict[int, Any] = {}
    done = 0
    for future in as_completed(list(index)):  # type: ignore[no-untyped-call]
        waiting[index.pop(future)] = future.result()
        future.release()
        progress(f"{what} {len(waiting) + done} of {len(calls)} partitions")
        while done in waiting:
            yield waiting.pop(done)
            done += 1


def _packed(chosen: dict[tuple[Any, ...], Chosen]) -> Packed:
    import numpy as np

    out: Packed = {}
    for key, (name, definition, value, mask) in chosen.items():
        assert mask is not None  # found slices select rows
        out[key] = (name, definition, value, np.packbits(mask))
    return out


def _unpacked(packed: Packed, rows: int) -> dict[tuple[Any, ...], Chosen]:
    import numpy as np

    return {
        key: (name, definition, value, np.unpackbits(bits, count=rows).astype(bool))
        for key, (name, definition, value, bits) in packed.items()
    }


def fold_partition(job: FoldJob, part: Partition) -> PartitionResult[tuple[Fold, Learned | None]]:
    """Read, predict and fold one partition, and learn what SliceLine needs of it (runs on a
    worker)."""
    from mlci.scale.discovery import Levels, learn
    from mlci.scale.stream import fold_one

    loaded, models, loaded_now, where = _fold_state(job)
    batch = read_batch(loaded, job.source, models, job.model, part, where)
    learned = None
    if job.mode is not None:
        known = {feature: Levels(numeric) for feature, numeric in job.searched}
        learned = learn(loaded, known, job.mode, batch)
    fold = fold_one(loaded, batch, job.models)
    return PartitionResult((fold, learned), where, loaded_now, _peak_memory())


def found_partition(args: tuple[FoldJob, Packed], part: Partition) -> PartitionResult[Fold]:
    """The found slices' statistics in one partition, their rows given (runs on a worker)."""
    from mlci.scale.stream import fold_selections, start

    job, packed = args
    loaded, models, loaded_now, where = _fold_state(job)
    batch = read_batch(loaded, job.source, models, job.model, part, where)
    fold = start(loaded, batch, job.models)
    fold_selections(fold, batch, _unpacked(packed, len(batch.y)))
    return PartitionResult(fold, where, loaded_now, _peak_memory())


def histogram_partition(
    args: tuple[FoldJob, tuple[int, int], Grids, Packed], part: Partition
) -> PartitionResult[Histograms]:
    """Second pass on one partition: its score histograms on the whole data's grids."""
    from mlci.scale.stream import ranking_histograms, selections_of

    job, resampling, cuts, packed = args
    loaded, models, loaded_now, where = _fold_state(job)
    batch = read_batch(loaded, job.source, models, job.model, part, where)
    chosen = selections_of(loaded, batch) | _unpacked(packed, len(batch.y))
    hist = ranking_histograms(resampling, cuts, chosen, batch)
    return PartitionResult(hist, where, loaded_now, _peak_memory())


def _fold_state(job: FoldJob) -> tuple[LoadedConfig, tuple[Model, ...], bool, str]:
    models, loaded_now, where = _models_here(job)
    return with_slices(_load_config(job), job.slices), models, loaded_now, where


_SAME_FILES = "workers need the client's mlci.yaml, models and data at the same paths"
