"""Evaluation folded batch by batch: any number of rows in bounded memory.

``engine: stream`` folds the batches in this process; ``engine: dask`` with ``fold: true``
has Dask workers fold their partitions (:func:`mlci.scale.dask_engine.fold_on_cluster`)
and merges the folds here in row order, which gives the same sums in the same order.

The Parquet file is read in batches of ``engine.partition_rows`` rows, rounded up to whole
prediction chunks, so the models predict the chunks one process predicts. Each batch is
converted and checked as ``mlci check`` converts and checks the whole file, predicted, and
folded into mergeable statistics, then dropped. What a batch leaves behind does not grow
with the rows:

* for the whole data and for every declared slice, and for each model, each metric
  family's sums over the rows and per bootstrap bucket (:class:`~mlci.evaluate.evaluator.Sums`:
  counts, confusion matrices, sums of losses; regression moments merged with Chan's formula);
  the bucket of a row depends only on the seed and the row's unit key (its id, cluster or
  file row), so the bootstrap replicates are those of the in-memory evaluation;
* for ROC AUC and average precision, a bounded sketch of score counts
  (:mod:`mlci.evaluate.sketch`) whose error on ROC AUC is computed and reported;
* moments of the candidate's per-row errors inside and outside every slice (Welch's test
  against the other rows), McNemar's discordant counts, and reliability-curve sums.

Slices by value are collected by value as batches meet them and put in the order one pass
over the whole file gives. The bootstrap of ROC AUC and average precision histograms the
scores on a grid of quantiles of the whole data's scores, which only exists once every
batch was seen: those metrics take a second pass over the file, which reads the rows again
but takes the scores the first pass kept on disk instead of predicting again (Dask workers,
which share no disk, predict again).

Quantile slices take their edges from exact quantiles of the whole column, read before the
first pass (a Dask fold's workers take them from the client). SliceLine's search runs on the
batches kept on disk (:mod:`mlci.scale.discovery`) and finds the slices one pass over all rows
finds; the slices found are folded on their tested rows in a pass of their own, before the
second pass. In a Dask fold the workers send each partition's errors and levels, the client
searches, and the workers fold the found slices (:func:`mlci.scale.dask_engine.fold_on_cluster`).

What needs every row at once is refused with a one-line error: fairness and importance, and
stages other than evaluate and gate.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.config import LoadedConfig, ModelConfig, SliceConfig
from mlci.data import (
    ColumnKind,
    Dataset,
    TextCodes,
    check_rows,
    column_roles,
    dataset_of,
    missing_mask,
    no_weight,
)
from mlci.errors import DataError, UsageError
from mlci.evaluate import metrics as M
from mlci.evaluate import slicing
from mlci.evaluate.bootstrap import BucketBootstrap
from mlci.evaluate.evaluator import Estimate, Evaluator, Outputs, Resampled, Sums, merge_sums
from mlci.evaluate.significance import Moments, welch_greater
from mlci.evaluate.sketch import ScoreSketch, bin_scores
from mlci.evaluate.sliceline import bin_levels
from mlci.models.interface import Model, Task
from mlci.results import Results
from mlci.results import evaluation as R
from mlci.scale.partitions import Partition, plan_partitions, read_partition
from mlci.stages import Progress

if TYPE_CHECKING:
    from mlci.scale.discovery import Discovery, Found

STAGES = ("evaluate", "gate")  # what a fold over batches can run
SCORE_BINS = 256  # the bootstrap grid of ROC AUC and average precision (the Evaluator's)


@dataclass(frozen=True)
class Source:
    """The Parquet file, as known before its first batch is read."""

    display: str
    sha256: str
    rows: int
    dtypes: dict[str, str]  # numpy dtype of each column, as mlci check would read it
    kinds: dict[str, ColumnKind]
    features: tuple[str, ...]
    parts: list[Partition]


def refuse_unsupported(loaded: LoadedConfig, stages: Sequence[str]) -> None:
    """A one-line error for what needs every row in memory at once."""
    cfg = loaded.config.evaluation
    engine = loaded.config.engine
    kind = "engine: stream" if engine.kind == "stream" else "engine: dask with fold: true"
    others = [s for s in stages if s not in STAGES]
    if others:
        raise UsageError(
            f"{kind} in {loaded.path} runs the evaluate and gate stages, not {others[0]}",
            tip="run with --only evaluate,gate, or run the other stages with engine: local",
        )
    why = "needs every row in memory at once; leave it out, or use engine: local (or dask without fold)"
    for name in ("fairness", "importance"):
        if getattr(cfg, name) is not None:
            raise loaded.error(("evaluation", name), f"{name} {why}")


def with_quantile_edges(loaded: LoadedConfig, source: Source) -> LoadedConfig:
    """``loaded`` with each declared slice's ``quantiles`` replaced by the ``bins`` they
    give on the whole column (exact quantiles, from two or so passes over the column), so
    every batch slices by the bins of the in-memory evaluation."""
    slices = list(loaded.config.evaluation.slices)
    for i, spec in enumerate(slices):
        if spec.quantiles is None:
            continue
        assert spec.feature is not None
        try:
            slicing.check_binnable(spec.feature, source.kinds, source.kinds, source.display)
            quantiles = whole_quantiles(loaded, source, spec.feature, bin_levels(spec.quantiles))
            edges = slicing.quantile_edges(quantiles)
        except slicing.SliceError as exc:
            raise loaded.error(("evaluation", "slices", i, *exc.field), str(exc)) from None
        slices[i] = spec.model_copy(update={"quantiles": None, "bins": edges})
    return with_slices(loaded, slices)


def with_slices(loaded: LoadedConfig, slices: Sequence[SliceConfig]) -> LoadedConfig:
    """``loaded`` with ``slices`` as its declared slices (a Dask worker takes the client's,
    whose quantile edges it could not compute from its share of the rows)."""
    import dataclasses

    evaluation = loaded.config.evaluation.model_copy(update={"slices": list(slices)})
    config = loaded.config.model_copy(update={"evaluation": evaluation})
    return dataclasses.replace(loaded, config=config)


def column_batches(
    loaded: LoadedConfig, source: Source, names: Sequence[str]
) -> Iterator[tuple[dict[str, np.ndarray], dict[str, TextCodes]]]:
    """Each batch's columns ``names`` and text codes, converted as the batches convert them."""
    dtypes = {name: source.dtypes[name] for name in names}
    for part in source.parts:
        yield read_partition(str(loaded.config.data.path), part, dtypes, source.display)


def whole_quantiles(
    loaded: LoadedConfig, source: Source, name: str, levels: np.ndarray
) -> np.ndarray | None:
    """``np.quantile`` of column ``name``'s finite values over the whole file, read batch by
    batch; None when it has none."""
    from mlci.scale.order_statistics import streamed_quantiles

    def values() -> Iterator[np.ndarray]:
        for columns, _ in column_batches(loaded, source, [name]):
            yield np.asarray(columns[name], dtype=np.float64)

    try:
        return streamed_quantiles(values, levels)
    except ValueError:
        return None


def open_source(loaded: LoadedConfig) -> Source:
    """The file's columns, their types and its batches; one-line errors for bad input."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlci.data import MIN_ROWS, check_names
    from mlci.hashing import sha256_file

    cfg = loaded.config.data
    display = str(cfg.path)
    suffix = Path(cfg.path).suffix.lower()
    if cfg.format == "csv" or (cfg.format == "auto" and suffix not in (".parquet", ".pq")):
        raise loaded.error(
            ("engine", "kind"),
            f"a batch-by-batch evaluation reads Parquet row groups, but {display} is not a "
            "Parquet file",
            tip="write the data as Parquet, or use engine: local",
        )
    if not Path(cfg.path).is_file():
        raise DataError(f"{display}: no such data file")
    try:
        handle = pq.ParquetFile(cfg.path)
        schema = handle.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{display}: not a readable PARQUET file ({type(exc).__name__})",
            tip="check that the path names the data file and that its format is right",
        ) from None
    names = list(schema.names)
    check_names(Path(cfg.path), names)
    features = column_roles(loaded, names)
    metadata = handle.metadata
    rows = metadata.num_rows
    if rows < MIN_ROWS:
        raise DataError(
            f"{display}: {rows} rows; an evaluation needs at least {MIN_ROWS}",
            tip="check the file and data.path",
        )
    nulls = _null_counts(handle, names)
    dtypes: dict[str, str] = {}
    kinds: dict[str, ColumnKind] = {}
    for name in names:
        dtypes[name], kinds[name] = _column_type(schema.field(name).type, nulls[name] > 0)
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    return Source(
        display=display,
        sha256=sha256_file(cfg.path),
        rows=rows,
        dtypes=dtypes,
        kinds=kinds,
        features=features,
        parts=plan_partitions(sizes, loaded.config.engine.partition_rows),
    )


def _null_counts(handle: Any, names: list[str]) -> dict[str, int]:
    """Nulls per column from the row groups' statistics (read from the column without them)."""
    metadata = handle.metadata
    counts = dict.fromkeys(names, 0)
    unknown = set()
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for j in range(group.num_columns):
            column = group.column(j)
            name = column.path_in_schema
            stats = column.statistics
            if name not in counts:
                continue
            if stats is None or not stats.has_null_count:
                unknown.add(name)
            else:
                counts[name] += stats.null_count
    for name in unknown:
        counts[name] = handle.read(columns=[name]).column(0).null_count
    return counts


def _column_type(kind: Any, has_nulls: bool) -> tuple[str, ColumnKind]:
    """The numpy dtype and kind ``mlci.data.to_numpy`` gives a column of this Arrow type."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_boolean(kind):
        return ("|O", "categorical") if has_nulls else ("|b1", "bool")
    if pa.types.is_integer(kind) and not has_nulls:
        return np.dtype(kind.to_pandas_dtype()).str, "numeric"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "<f8", "numeric"
    return "|O", "categorical"


# ------------------------------------------------------------------ folding


@dataclass
class Selection:
    """What the fold keeps of one selection of rows (all rows, or one slice)."""

    name: str
    definition: str
    models: int
    value: Any = None  # the value (or pair) a slice by value selects, for ordering
    size: int = 0
    sums: list[Sums | None] = field(default_factory=list)
    sketches: list[ScoreSketch] = field(default_factory=list)
    hist: list[np.ndarray | None] = field(default_factory=list)
    inside: Moments = field(default_factory=Moments)
    outside: Moments = field(default_factory=Moments)

    def __post_init__(self) -> None:
        self.sums = [None] * self.models
        self.hist = [None] * self.models


@dataclass
class Fold:
    """Everything kept across batches for one model (and its baseline)."""

    task: Task
    classes: tuple[Any, ...] | None
    metrics: list[str]
    models: int
    resampling: tuple[int, int] | None  # bootstrap replicates and seed (none: no intervals)
    selections: dict[tuple[Any, ...], Selection] = field(default_factory=dict)
    discordant: list[int] = field(default_factory=lambda: [0, 0])
    curves: list[np.ndarray | None] = field(default_factory=list)
    classes_seen: set[int] = field(default_factory=set)
    features_seen: set[str] = field(default_factory=set)
    weight_total: float = 0.0

    @property
    def bootstrap(self) -> BucketBootstrap | None:
        return None if self.resampling is None else _bootstrap(*self.resampling)

    @property
    def ranking(self) -> list[str]:
        return [n for n in self.metrics if M.FAMILY[n] == "ranking"]

    def selection(self, key: tuple[Any, ...], name: str, definition: str, value: Any) -> Selection:
        found = self.selections.get(key)
        if found is None:
            found = self.selections[key] = Selection(name, definition, self.models, value)
            if self.ranking:
                found.sketches = [ScoreSketch(self.score_columns) for _ in range(self.models)]
        return found

    @property
    def score_columns(self) -> int:
        return 1 if self.task == "binary" else len(self.classes or ())


@functools.lru_cache(maxsize=4)
def _bootstrap(n_boot: int, seed: int) -> BucketBootstrap:
    # The weights (n_boot x 1000) are drawn once per process, not once per batch, and folds
    # travel between processes without them.
    return BucketBootstrap(n_boot, seed=seed)


@dataclass(frozen=True)
class Batch:
    part: Partition
    task: Task
    classes: tuple[Any, ...] | None
    data: Dataset
    y: np.ndarray
    outputs: tuple[Outputs, ...]
    keys: np.ndarray  # each row's resampling unit key

    @property
    def weight(self) -> np.ndarray | None:
        return self.data.columns[self.data.weight] if self.data.weight else None


def batches(
    source: Source, read: Callable[[int, Partition], Batch], progress: Progress, what: str
) -> Iterator[Batch]:
    """Every batch of rows, as ``read`` gives batch ``i`` of partition ``part``, with a
    progress line (``what``, then how far) after each."""
    for i, part in enumerate(source.parts):
        yield read(i, part)
        progress(f"{what} {i + 1} of {len(source.parts)} batches ({part.stop:,} rows)")


def read_batch(
    loaded: LoadedConfig,
    source: Source,
    models: Sequence[Model],
    name: str,
    part: Partition,
    where: str | None = None,
) -> Batch:
    """One batch of rows, read, checked, predicted and aligned with the target (``where``:
    the process reading, for messages about a file it cannot read)."""
    from mlci.evaluate.alignment import AlignmentError, align, infer_task
    from mlci.stages import model_frame

    cfg = loaded.config.data
    data, keys = _read_rows(loaded, source, part, where)
    check_rows(loaded, data.columns, source.kinds, part.start, every_row=False)
    predictions = [m.predict(model_frame(m, data)) for m in models]
    task = infer_task(predictions[0], models[0].info.task)
    if task != "regression" and predictions[0].classes is None:
        raise DataError(
            f"{name}: a batch-by-batch evaluation needs a classifier that names its classes, "
            "so that every batch numbers them alike",
            tip="export the model with its class labels, or use engine: local",
        )
    try:
        aligned = align(task, data.columns[cfg.target], predictions, min_classes=1)
    except AlignmentError as exc:
        raise DataError(f"{source.display}: model '{name}': {exc}") from None
    if aligned.task != "regression":
        assert aligned.classes is not None
        task = "binary" if len(aligned.classes) == 2 else "multiclass"
    return Batch(part, task, aligned.classes, data, aligned.y_true, aligned.outputs, keys)


def _read_rows(
    loaded: LoadedConfig, source: Source, part: Partition, where: str | None
) -> tuple[Dataset, np.ndarray]:
    """A batch's rows as a dataset, and each row's resampling unit key."""
    cfg = loaded.config.data
    try:
        columns, text_codes = read_partition(str(cfg.path), part, source.dtypes, source.display)
    except OSError as exc:
        at = "" if where is None else f"{where}: "
        raise DataError(
            f"{at}cannot read rows {part.start:,} to {part.stop - 1:,} of {source.display} ({exc})",
            tip="workers need the client's mlci.yaml, models and data at the same paths"
            if where
            else None,
        ) from None
    data = dataset_of(
        loaded, "parquet", source.sha256, columns, source.kinds, source.features, text_codes
    )
    unit = cfg.group or cfg.id
    keys = np.arange(part.start, part.stop) if unit is None else columns[unit]
    return data, keys


class Spill:
    """Each batch's target and scores, kept on disk between the two passes, so that the
    second pass reads the rows again (for slices and resampling units) but does not predict
    them. The folder lies where ``TMPDIR`` points (else /tmp) and goes with the run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def keep(self, i: int, batch: Batch) -> None:
        np.save(self.folder / f"{i}-y.npy", batch.y)
        for m, out in enumerate(batch.outputs):
            for name in _OUTPUTS:
                values = getattr(out, name)
                if values is not None:
                    np.save(self.folder / f"{i}-{m}-{name}.npy", values)

    def batch(self, loaded: LoadedConfig, source: Source, fold: Fold, i: int) -> Batch:
        """Batch ``i`` as the first pass saw it."""
        data, keys = _read_rows(loaded, source, source.parts[i], None)
        y = np.load(self.folder / f"{i}-y.npy")
        outputs = []
        for m in range(fold.models):
            kept = {name: self.folder / f"{i}-{m}-{name}.npy" for name in _OUTPUTS}
            outputs.append(Outputs(**{k: np.load(f) for k, f in kept.items() if f.exists()}))
        return Batch(source.parts[i], fold.task, fold.classes, data, y, tuple(outputs), keys)


_OUTPUTS = ("labels", "proba", "values")  # the fields of Outputs


def fold_one(loaded: LoadedConfig, batch: Batch, models: int) -> Fold:
    """The fold of one batch alone (merge with :func:`merge_folds`)."""
    fold = start(loaded, batch, models)
    fold_batch(fold, loaded, batch)
    return fold


def fold_batch(fold: Fold, loaded: LoadedConfig, batch: Batch) -> None:
    """Add one batch's statistics to the fold."""
    from mlci.evaluate.stage import CALIBRATION_BINS, calibration_kind, curve_sums

    y, weight = batch.y, batch.weight
    if fold.task != "regression":
        fold.classes_seen.update(np.unique(y).tolist())
    for feature in batch.data.features:
        if (
            feature not in fold.features_seen
            and not missing_mask(batch.data.columns[feature]).all()
        ):
            fold.features_seen.add(feature)
    if weight is not None:
        fold.weight_total += float(weight.sum())
    fold_selections(fold, batch, selections_of(loaded, batch))
    check_value_slices(loaded, fold, batch.data.kinds)
    if fold.task != "regression":
        assert batch.outputs[0].labels is not None
        right = [out.labels == y for out in batch.outputs]
        if len(right) == 2:
            fold.discordant[0] += int(np.count_nonzero(right[0] & ~right[1]))
            fold.discordant[1] += int(np.count_nonzero(right[1] & ~right[0]))
    if fold.task != "regression" and batch.outputs[0].proba is not None:
        kind = calibration_kind(fold.task)
        if not fold.curves:
            fold.curves = [None] * len(batch.outputs)
        for m, out in enumerate(batch.outputs):
            if out.proba is None:
                continue
            counts = curve_sums(kind, y, out.proba, weight, CALIBRATION_BINS)
            before = fold.curves[m]
            fold.curves[m] = counts if before is None else before + counts


def fold_selections(fold: Fold, batch: Batch, chosen: dict[tuple[Any, ...], Chosen]) -> None:
    """Add one batch's rows of each selection to the fold."""
    from mlci.evaluate.stage import row_errors

    y, weight = batch.y, batch.weight
    evaluator = Evaluator(
        fold.task,
        y,
        metrics=fold.metrics,
        n_classes=None if fold.classes is None else len(fold.classes),
        weight=weight,
        keys=batch.keys,
        bootstrap=fold.bootstrap,
    )
    errors = row_errors(fold.task, y, batch.outputs[0])
    resample = fold.bootstrap is not None
    for key, (name, definition, value, mask) in chosen.items():
        sel = fold.selection(key, name, definition, value)
        rows = None if mask is None else np.flatnonzero(mask)
        n = len(y) if rows is None else len(rows)
        sel.size += n
        if mask is not None:
            sel.inside.add(errors[rows])
            sel.outside.add(errors[~mask])
        if n == 0:
            continue
        for m, out in enumerate(batch.outputs):
            sums = evaluator.sums(out, rows, resample=resample, ranking=False)
            previous = sel.sums[m]
            sel.sums[m] = sums if previous is None else merge_sums(previous, sums)
            if fold.ranking:
                assert out.proba is not None
                scores, positive = _ranking_rows(y, out.proba, rows)
                sel.sketches[m].add(scores, positive, _take(weight, rows))


Grids = dict[tuple[Any, ...], list[list[np.ndarray]]]  # selection -> model -> column cuts
Histograms = dict[tuple[Any, ...], list[np.ndarray]]  # selection -> model -> histograms


def grids(fold: Fold) -> Grids:
    """The bootstrap grid of every selection's and model's scores, from the whole data."""
    return {
        key: [sketch.cuts(SCORE_BINS) for sketch in sel.sketches]
        for key, sel in fold.selections.items()
    }


def ranking_histograms(
    resampling: tuple[int, int], cuts: Grids, chosen: dict[tuple[Any, ...], Chosen], batch: Batch
) -> Histograms:
    """Second pass: one batch's per-bucket score histograms of each ``chosen`` selection on
    the whole data's grids."""
    boot = _bootstrap(*resampling)
    buckets = boot.assign(batch.keys)
    weight = batch.weight
    out: Histograms = {}
    for key, (_, _, _, mask) in chosen.items():
        rows = None if mask is None else np.flatnonzero(mask)
        if key not in cuts or (rows is not None and len(rows) == 0):
            continue
        out[key] = []
        for m, out_m in enumerate(batch.outputs):
            assert out_m.proba is not None
            scores, positive = _ranking_rows(batch.y, out_m.proba, rows)
            out[key].append(
                M.ranking_histograms(
                    bin_scores(cuts[key][m], scores),
                    positive,
                    _take(weight, rows),
                    SCORE_BINS,
                    _take(buckets, rows),
                    boot.n_buckets,
                )
            )
    return out


def add_histograms(fold: Fold, histograms: Histograms) -> None:
    for key, per_model in histograms.items():
        sel = fold.selections[key]
        for m, hist in enumerate(per_model):
            before = sel.hist[m]
            sel.hist[m] = hist if before is None else before + hist


def merge_folds(into: Fold, other: Fold) -> None:
    """Fold ``other`` (of rows after ``into``'s) into ``into``."""
    if (other.task, other.classes, other.metrics) != (into.task, into.classes, into.metrics):
        raise DataError(
            f"batches of the data disagree on the task or the classes ({into.task}, "
            f"{into.classes} against {other.task}, {other.classes})"
        )
    for key, theirs in other.selections.items():
        ours = into.selection(key, theirs.name, theirs.definition, theirs.value)
        ours.size += theirs.size
        ours.inside.merge(theirs.inside)
        ours.outside.merge(theirs.outside)
        for m in range(into.models):
            a, b = ours.sums[m], theirs.sums[m]
            ours.sums[m] = b if a is None else a if b is None else merge_sums(a, b)
            if ours.sketches:
                ours.sketches[m].merge(theirs.sketches[m])
    into.discordant = [a + b for a, b in zip(into.discordant, other.discordant, strict=True)]
    if not into.curves:
        into.curves = list(other.curves)
    elif other.curves:
        into.curves = [
            b if a is None else a if b is None else a + b
            for a, b in zip(into.curves, other.curves, strict=True)
        ]
    into.classes_seen |= other.classes_seen
    into.features_seen |= other.features_seen
    into.weight_total += other.weight_total


def _ranking_rows(
    y: np.ndarray, proba: np.ndarray, rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    return M.ranking_columns(_take(y, rows), _take(proba, rows))


def _take(values: np.ndarray | None, rows: np.ndarray | None) -> Any:
    if values is None or rows is None:
        return values
    return np.take(values, rows, axis=0)


# ------------------------------------------------------------------ slices of a batch


def check_value_slices(loaded: LoadedConfig, fold: Fold, kinds: dict[str, ColumnKind]) -> None:
    """A numeric column sliced by value may not have more values than ``mlci check`` allows;
    checked after every batch, since each slice keeps statistics of its own."""
    for i, spec in enumerate(loaded.config.evaluation.slices):
        feature = spec.feature
        if feature is None or spec.values is not None or spec.bins is not None:
            continue
        if kinds.get(feature) == "numeric":
            count = sum(1 for key in fold.selections if key and key[0] == i)
            if count > slicing.MAX_VALUE_SLICES:
                exc = slicing.too_many_values(feature, count)
                raise loaded.error(("evaluation", "slices", i, *exc.field), str(exc))


Chosen = tuple[str, str, Any, np.ndarray | None]  # name, definition, value, row mask


def selections_of(loaded: LoadedConfig, batch: Batch) -> dict[tuple[Any, ...], Chosen]:
    """All rows (key ``()``), then every declared slice's rows in this batch.

    A slice is keyed by its definition's index and its place within it: a bin's number, or
    for slices by value the value (or pair) itself, since batches meet values in any order.
    """
    from mlci.suggest import did_you_mean

    data = batch.data
    out: dict[tuple[Any, ...], Chosen] = {(): ("all rows", "", None, None)}
    for i, spec in enumerate(loaded.config.evaluation.slices):
        fields = spec.model_dump()
        try:
            if spec.where is not None or spec.bins is not None:
                defs = slicing.expand(fields, data.columns, data.kinds, data.display, data.encoded)
                for j, d in enumerate(defs):
                    out[(i, j)] = (d.name, d.definition, None, d.mask)
                continue
            features = spec.cross if spec.cross is not None else [str(spec.feature)]
            encoded = []
            for k, feature in enumerate(features):
                if feature not in data.columns:
                    where = ("cross", k) if spec.cross is not None else ("feature",)
                    hint = did_you_mean(feature, data.columns)
                    raise slicing.SliceError(
                        f"no column '{feature}' in {data.display}{hint}", where
                    )
                encoded.append(data.encoded(feature))
        except slicing.SliceError as exc:
            raise loaded.error(("evaluation", "slices", i, *exc.field), str(exc)) from None
        prefix = f"{spec.name}: " if spec.name else ""
        if len(encoded) == 1:
            codes, levels = encoded[0]
            wanted = None if spec.values is None else {slicing.value_key(v) for v in spec.values}
            for code, value in enumerate(levels):
                if wanted is not None and slicing.value_key(value) not in wanted:
                    continue
                name, definition = slicing.value_slice(features[0], value)
                out[(i, slicing.value_key(value))] = (
                    prefix + name,
                    definition,
                    value,
                    codes == code,
                )
            continue
        (a_codes, a_levels), (b_codes, b_levels) = encoded
        pair = np.where((a_codes >= 0) & (b_codes >= 0), a_codes * len(b_levels) + b_codes, -1)
        for code in np.unique(pair[pair >= 0]).tolist():
            a, b = a_levels[code // len(b_levels)], b_levels[code % len(b_levels)]
            a_name, a_def = slicing.value_slice(features[0], a)
            b_name, b_def = slicing.value_slice(features[1], b)
            key = (i, slicing.value_key(a), slicing.value_key(b))
            name = f"{prefix}{a_name}, {b_name}"
            out[key] = (name, f"{a_def} and {b_def}", (a, b), pair == code)
    return out


def ordered_slices(
    loaded: LoadedConfig, fold: Fold, kinds: dict[str, ColumnKind]
) -> list[Selection]:
    """The declared slices in the order one pass over the whole file lists them."""
    result: list[Selection] = []
    for i, spec in enumerate(loaded.config.evaluation.slices):
        mine = {k[1:]: s for k, s in fold.selections.items() if k and k[0] == i}
        if spec.where is not None or spec.bins is not None:
            result += [mine[k] for k in sorted(mine)]
            continue
        try:
            if spec.cross is None:
                assert spec.feature is not None
                values = sorted_levels([s.value for s in mine.values()])
                by_key = {slicing.value_key(v): v for v in values}
                chosen = slicing.chosen_values(
                    spec.feature, kinds[spec.feature], by_key, spec.values
                )
                picked = [mine[(key,)] for key, _ in chosen]
            else:
                lefts = sorted_levels(list({s.value[0] for s in mine.values()}))
                rights = sorted_levels(list({s.value[1] for s in mine.values()}))
                rank_a = {slicing.value_key(v): r for r, v in enumerate(lefts)}
                rank_b = {slicing.value_key(v): r for r, v in enumerate(rights)}
                picked = [mine[k] for k in sorted(mine, key=lambda k: (rank_a[k[0]], rank_b[k[1]]))]
        except slicing.SliceError as exc:
            raise loaded.error(("evaluation", "slices", i, *exc.field), str(exc)) from None
        result += picked
    return result


def sorted_levels(values: list[Any]) -> list[Any]:
    """Values in the order :func:`mlci.evaluate.sliceline.encode_categorical` gives them."""
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=lambda x: (type(x).__name__, repr(x)))


# ------------------------------------------------------------------ finishing


def evaluate_model(
    loaded: LoadedConfig,
    source: Source,
    spec: ModelConfig,
    models: Sequence[Model],
    progress: Progress,
) -> R.Evaluation:
    """The evaluation section of one model."""
    from mlci.evaluate.stage import primary_metric

    cfg = loaded.config.evaluation
    found = None
    with tempfile.TemporaryDirectory(prefix="mlci-scores-") as folder:
        discovery = None
        if cfg.discover.enabled:
            from mlci.scale.discovery import Discovery

            discovery = Discovery(loaded, source, Path(folder), len(models) == 2)
        if loaded.config.engine.kind == "dask":
            from mlci.scale.dask_engine import fold_on_cluster

            fold, found = fold_on_cluster(loaded, source, spec, models, progress, discovery)
        else:
            spill = Spill(Path(folder))
            first = fold_here(loaded, source, spec, models, progress, spill, discovery)

            def kept(i: int, part: Partition) -> Batch:
                return spill.batch(loaded, source, first, i)

            def chosen(i: int, batch: Batch) -> dict[tuple[Any, ...], Chosen]:
                return selections_of(loaded, batch) | (discovery.chosen(i) if discovery else {})

            if discovery is not None:
                found = search_whole(loaded, source, first, discovery, progress, spec.name)
                if found.slices:
                    what = f"{spec.name}: evaluated the slices found in"
                    for i, batch in enumerate(batches(source, kept, progress, what)):
                        fold_selections(first, batch, discovery.chosen(i))

            def resampled(resampling: tuple[int, int], cuts: Grids) -> Iterator[Histograms]:
                what = f"{spec.name}: resampled ranks of"
                for i, batch in enumerate(batches(source, kept, progress, what)):
                    yield ranking_histograms(resampling, cuts, chosen(i, batch), batch)

            fold = finish_fold(loaded, source, first, resampled)
    return _section(loaded, source, fold, primary_metric(cfg, fold.task, fold.metrics), found)


def search_whole(
    loaded: LoadedConfig,
    source: Source,
    fold: Fold,
    discovery: Discovery,
    progress: Progress,
    name: str,
) -> Found:
    """SliceLine's search once the first pass folded the whole file, in this process or on
    a cluster; the checks of the whole file come first, so a refused file is not searched."""
    check_whole(loaded, source, fold)
    progress(f"{name}: finding slices (SliceLine)")
    return discovery.search()


def finish_fold(
    loaded: LoadedConfig,
    source: Source,
    fold: Fold,
    second: Callable[[tuple[int, int], Grids], Iterable[Histograms]],
) -> Fold:
    """Finish the first pass's ``fold`` of the whole file, in this process or on a cluster:
    check what only the whole file shows, then, when ROC AUC or average precision need
    bootstrap replicates, add the ``second`` pass's score histograms on the whole data's
    grids (given the resampling and the grids)."""
    check_whole(loaded, source, fold)
    if fold.ranking and fold.resampling is not None:
        for histograms in second(fold.resampling, grids(fold)):
            add_histograms(fold, histograms)
    return fold


def fold_here(
    loaded: LoadedConfig,
    source: Source,
    spec: ModelConfig,
    models: Sequence[Model],
    progress: Progress,
    spill: Spill,
    discovery: Discovery | None,
) -> Fold:
    """The first pass, in this process; the outputs go to ``spill`` when a later pass needs
    them, and ``discovery`` learns what it needs of each batch."""

    def predicted(i: int, part: Partition) -> Batch:
        return read_batch(loaded, source, models, spec.name, part)

    fold = None
    for i, batch in enumerate(batches(source, predicted, progress, f"{spec.name}: evaluated")):
        if fold is None:
            fold = start(loaded, batch, len(models))
        fold_batch(fold, loaded, batch)
        if (fold.ranking and fold.resampling is not None) or discovery is not None:
            spill.keep(i, batch)
        if discovery is not None:
            discovery.first(i, batch)
    assert fold is not None
    return fold


def start(loaded: LoadedConfig, batch: Batch, models: int) -> Fold:
    """An empty fold for the task, classes and metrics of ``batch``."""
    from mlci.evaluate.stage import checked_primary, chosen_metrics

    cfg = loaded.config.evaluation
    metrics = chosen_metrics(loaded, batch.task, batch.outputs[0].proba is not None)
    checked_primary(loaded, batch.task, metrics)
    resampling = (cfg.bootstrap, cfg.seed) if cfg.bootstrap > 0 else None
    return Fold(batch.task, batch.classes, metrics, models, resampling)


def check_whole(loaded: LoadedConfig, source: Source, fold: Fold) -> None:
    """What only the whole file can show: the checks ``mlci check`` runs on all rows."""
    cfg = loaded.config.data
    for feature in source.features:
        if feature not in fold.features_seen:
            raise DataError(
                f"{source.display}: feature column '{feature}' is missing in every row",
                tip="fill the column, or leave it out with data.features",
            )
    if cfg.weight is not None and fold.weight_total <= 0:
        raise no_weight(loaded)
    if fold.task != "regression" and len(fold.classes_seen) < 2:
        assert fold.classes is not None
        from mlci.evaluate.alignment import label_key

        only = label_key(fold.classes[next(iter(fold.classes_seen))])
        raise DataError(
            f"{source.display}: the target holds one class ('{only}') in all {source.rows} "
            "rows; a classifier can only be evaluated on data with at least two classes"
        )


def _section(
    loaded: LoadedConfig, source: Source, fold: Fold, primary: str, found: Found | None
) -> R.Evaluation:
    from mlci.evaluate.stage import (
        SliceMeasure,
        calibration_section,
        evaluation_section,
        metric_tables,
        resampling_unit,
        slice_results,
        sliceline_score,
    )

    cfg = loaded.config.evaluation
    data = loaded.config.data
    n_classes = None if fold.classes is None else len(fold.classes)
    empty = np.zeros(0, dtype=np.float64 if fold.task == "regression" else np.intp)
    final = Evaluator(
        fold.task,
        empty,
        metrics=fold.metrics,
        n_classes=n_classes,
        n_boot=cfg.bootstrap,
        confidence=cfg.confidence,
        seed=cfg.seed,
        bootstrap=fold.bootstrap,
    )
    error = 0.0

    def tables(sel: Selection) -> R.MetricTables:
        nonlocal error
        finished: list[tuple[dict[str, float], Resampled | None]] = []
        for m in range(fold.models):
            sums = sel.sums[m]
            assert sums is not None
            if fold.ranking:
                sketch = sel.sketches[m]
                error = max(error, sketch.roc_auc_error())
                buckets = dict(sums.buckets)
                hist = sel.hist[m]
                if hist is not None:
                    buckets["ranking"] = hist
                sums = Sums(sums.point, buckets, sketch.metrics(fold.ranking), sums.rows)
            finished.append(final.finish(sums))
        estimates = [final.estimates(*f) for f in finished]
        if fold.models == 1:
            return metric_tables(estimates[0])
        delta: dict[str, Estimate] = final.deltas(*finished[0], *finished[1])
        return metric_tables(estimates[0], estimates[1], delta)

    overall = tables(fold.selections[()])
    slices = ordered_slices(loaded, fold, source.kinds)
    scores: list[R.SliceLineScore | None] = [None] * len(slices)
    if found is not None:
        slices += [fold.selections[("found", j)] for j in range(len(found.slices))]
        scores += [sliceline_score(s) for s in found.slices]
    measured: dict[int, SliceMeasure] = {}
    for i, sel in enumerate(slices):
        if sel.size >= cfg.min_slice_size:
            measured[i] = SliceMeasure(
                tables(sel),
                sel.inside.mean,
                sel.outside.mean if sel.outside.n else None,
                welch_greater(sel.inside, sel.outside),
            )
    has_baseline = fold.models == 2
    mcnemar = None
    if has_baseline and fold.task != "regression":
        from mlci.evaluate.stats import mcnemar_exact

        mcnemar = R.McNemar(
            candidate_only=fold.discordant[0],
            baseline_only=fold.discordant[1],
            p_value=mcnemar_exact(*fold.discordant),
        )
    calibration = None
    if fold.curves and fold.curves[0] is not None:
        baseline = fold.curves[1] if len(fold.curves) > 1 else None
        calibration = calibration_section(fold.task, fold.curves[0], baseline)
    return evaluation_section(
        cfg,
        fold.task,
        fold.classes,
        fold.metrics,
        primary,
        resampling_unit(data.group, data.id),
        metrics=overall,
        mcnemar=mcnemar,
        slices=slice_results(
            [
                (s.name, s.definition, "declared" if score is None else "discovered", score)
                for s, score in zip(slices, scores, strict=True)
            ],
            [s.size for s in slices],
            measured,
            has_baseline,
            primary,
            cfg,
        ),
        discovery=None if found is None else R.Discovery(error=found.mode, **found.info),
        calibration=calibration,
        roc_auc_sketch_error=error if fold.ranking else None,
    )


def documents(
    loaded: LoadedConfig, stages: Sequence[str], progress: Progress
) -> list[tuple[str, Results]]:
    """Each model's results document, evaluated batch by batch (and judged, with gate)."""
    import time

    from mlci import __version__
    from mlci.hashing import sha256_file
    from mlci.pipeline import model_record
    from mlci.results import ConfigRef, DataRecord, StageOutcome
    from mlci.stages import StageSkipped, load_models

    refuse_unsupported(loaded, stages)
    source = open_source(loaded)
    loaded = with_quantile_edges(loaded, source)
    data = loaded.config.data
    out = []
    for spec in loaded.config.models:
        progress(f"{spec.name}: loading models")
        loaded_models = load_models(spec, loaded)
        models = [m for m, _ in loaded_models]
        started = time.perf_counter()
        section = evaluate_model(loaded, source, spec, models, progress)
        outcome = StageOutcome(status="ran", duration_s=round(time.perf_counter() - started, 3))
        document = Results(
            mlci_version=__version__,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            config=ConfigRef(path=str(loaded.path), sha256=sha256_file(loaded.path)),
            model=model_record(models[0], section.task, loaded_models[0][1]),
            baseline=None
            if len(models) == 1
            else model_record(models[1], section.task, loaded_models[1][1]),
            data=DataRecord(
                path=source.display,
                sha256=source.sha256,
                rows=source.rows,
                format="parquet",
                target=data.target,
                features=list(source.features),
                id=data.id,
                weight=data.weight,
            ),
            conversion=None,
        )
        document = document.with_section("evaluation", section).with_stage("evaluate", outcome)
        if "gate" in stages:
            from mlci.gate.stage import judge

            try:
                gate = judge(loaded, document)
                document = document.with_section("gate", gate)
                document = document.with_stage("gate", StageOutcome(status="ran"))
            except StageSkipped as skipped:
                outcome = StageOutcome(status="skipped", reason=skipped.reason)
                document = document.with_stage("gate", outcome)
        out.append((spec.name, document))
    return out
