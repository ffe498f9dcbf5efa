"""``mlci watch``: the traffic sample against the reference, window by window.

Loads the model and the reference, reads the sample (and labels), then for every window:
feature drift (the data checks' statistics, Benjamini-Hochberg across features), drift of the
model's score, measured metrics with bootstrap intervals where labels arrived (the
evaluation's own Evaluator), estimated metrics (CBPE) with their intervals, the same for every
declared slice, and the alarms. Returns the results document with its ``watch`` section.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mlci import __version__
from mlci.config import LoadedConfig, ModelConfig
from mlci.data import Dataset, read_columns
from mlci.errors import ConfigError, DataError
from mlci.evaluate.alignment import label_key
from mlci.evaluate.evaluator import Estimate, Evaluator, Outputs
from mlci.hashing import sha256_file
from mlci.models.interface import Model, Predictions, Task
from mlci.results import ConfigRef, DataRecord, Results
from mlci.results.watch import (
    Calibration,
    FeatureDrift,
    Watch,
    WatchMetric,
    WatchSlice,
    Window,
)
from mlci.watch import rules
from mlci.watch.config import ESTIMABLE, WatchConfig
from mlci.watch.drift import SignificantAndLarge, feature_drift, to_result, window_drift
from mlci.watch.estimate import Calibrator, estimate_accuracy, estimate_binary, fit_isotonic
from mlci.watch.sample import Traffic, find_files, join_labels, read_labels, read_sample
from mlci.watch.windows import Slot, iso, split

Progress = Callable[[str], None]


@dataclass(frozen=True)
class WatchOptions:
    """What the command line adds to mlci.yaml's watch section for one run."""

    sample: str | None = None
    labels: Path | None = None
    window: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Scored:
    """Model outputs in class-index space (classification) or values (regression)."""

    labels: np.ndarray | None  # int64 class indices
    proba: np.ndarray | None  # (n, k)
    values: np.ndarray | None

    def take(self, rows: np.ndarray) -> Scored:
        return Scored(
            None if self.labels is None else self.labels[rows],
            None if self.proba is None else self.proba[rows],
            None if self.values is None else self.values[rows],
        )

    @property
    def score(self) -> np.ndarray:
        """What prediction drift compares: p(positive) for binary, the value for regression,
        the predicted class otherwise."""
        if self.values is not None:
            return self.values
        if self.proba is not None and self.proba.shape[1] == 2:
            return self.proba[:, 1]
        assert self.labels is not None
        return self.labels.astype(object)


def watch_config(loaded: LoadedConfig, options: WatchOptions) -> WatchConfig:
    cfg = loaded.config.watch
    if cfg is None:
        raise ConfigError(
            f"{loaded.path}: no watch section",
            tip="add watch: {sample: DIR} to mlci.yaml (see the README's Production watch)",
        )
    if options.window is not None:
        try:
            cfg = WatchConfig.model_validate({**cfg.model_dump(), "window": options.window})
        except Exception:
            raise ConfigError(
                f"--window {options.window!r}: use 'daily' or 'N rows', e.g. '1000 rows'"
            ) from None
    return cfg


def pick_model(loaded: LoadedConfig, cfg: WatchConfig, name: str | None) -> ModelConfig:
    wanted = name or cfg.model
    models = loaded.config.models
    if wanted is None:
        return models[0]
    for spec in models:
        if spec.name == wanted:
            return spec
    names = ", ".join(m.name for m in models)
    if name is not None:
        raise ConfigError(f"--model {name!r}: no such model in {loaded.path} ({names})")
    raise loaded.error(("watch", "model"), f"no model named '{wanted}' ({names})")


def reference_dataset(loaded: LoadedConfig, cfg: WatchConfig) -> Dataset:
    """The reference the traffic is compared with, as a Dataset (its target may be absent)."""
    data = loaded.config.data
    path = cfg.reference or data.reference or data.path
    fmt, _, columns, kinds = read_columns(path, "auto")
    features = tuple(data.features or [c for c in columns if c not in (data.target, data.id,
                                                                         data.weight)])  # fmt: skip
    return Dataset(
        path=path,
        display=str(path),
        format=fmt,
        sha256=sha256_file(path),
        columns=columns,
        kinds=kinds,
        target=data.target,
        features=features,
        id=data.id,
        weight=data.weight,
    )


def run_watch(
    loaded: LoadedConfig,
    options: WatchOptions,
    progress: Progress,
    previous: Results | None = None,
) -> Results:
    """The results document with the ``watch`` section for one model."""
    from mlci.pipeline import model_record
    from mlci.stages import load_source

    cfg = watch_config(loaded, options)
    spec = pick_model(loaded, cfg, options.model)
    progress(f"{spec.name}: loading the model and the reference")
    model = load_source(spec, spec.name, loaded)
    reference = reference_dataset(loaded, cfg)
    features = _features(loaded, cfg, model, reference)

    sample_spec = options.sample or cfg.sample
    if sample_spec is None:
        raise ConfigError(
            f"{loaded.path}: watch.sample is not set and no --sample was given",
            tip="pass --sample DIR (the folder python -m mlci.serve --sample-dir writes)",
        )
    files = find_files(sample_spec, None if options.sample else loaded.path.parent)
    progress(f"reading {len(files)} sample file(s)")
    traffic = read_sample(files)
    progress(f"{traffic.rows:,} sampled rows; predicting on the reference")

    ref_predictions = model.predict(
        {f: reference.columns[f] for f in _model_inputs(model, reference)}
    )
    task = _task(model, ref_predictions)
    classes = _classes(model, ref_predictions, task)
    ref_scored = _score(ref_predictions, classes, task)
    traffic_scored = _traffic_outputs(traffic, model, classes, task)
    ref_target = _reference_target(reference, classes, task)
    calibrator, calibration = _calibrate(cfg, task, ref_scored, ref_target)
    y_traffic = _traffic_labels(loaded, cfg, options, traffic, classes, task)

    slices = _slices(loaded, cfg, reference)
    analysis = _Analysis(
        cfg, task, features, reference, ref_scored, traffic, traffic_scored, y_traffic,
        calibrator, slices, len(classes) if classes else 0,
    )  # fmt: skip
    slots = split(traffic.time_us, cfg.window_rows)[-cfg.history :]
    windows = []
    for i, slot in enumerate(slots):
        progress(f"window {i + 1}/{len(slots)}: {slot.key} ({slot.rows.size:,} rows)")
        windows.append(analysis.window(slot))
    windows = _merge_history(previous, windows, cfg.history)
    latest = [w for w in windows if w.status == "analysed"]
    status = "no data" if not latest else ("alarm" if latest[-1].alarms else "ok")
    section = Watch(
        sample=list(traffic.files),
        rows=traffic.rows,
        reference=reference.display,
        reference_rows=len(next(iter(reference.columns.values()))),
        window="daily" if cfg.window_rows is None else cfg.window,
        features=list(features),
        critical_features=list(cfg.critical_features),
        fdr=cfg.drift.fdr,
        min_psi=cfg.drift.min_psi,
        calibration=calibration,
        estimate_method=None if task == "regression" else "cbpe",
        estimate_note=(
            "no estimate for regression models: CBPE needs class probabilities"
            if task == "regression"
            else None
        ),
        rules=rules.describe(cfg),
        windows=windows,
        status=status,
    )
    document = Results(
        mlci_version=__version__,
        created=dt.datetime.now(dt.timezone.utc)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        config=ConfigRef(path=str(loaded.path), sha256=sha256_file(loaded.path)),
        model=model_record(model, task),
        baseline=None,
        data=DataRecord(
            path=reference.display,
            sha256=reference.sha256,
            rows=max(1, len(next(iter(reference.columns.values())))),
            format="parquet" if reference.format == "parquet" else "csv",
            target=reference.target,
            features=list(features),
            id=reference.id,
            weight=reference.weight,
        ),
    )
    return document.with_section("watch", section)


# -- inputs ----------------------------------------------------------------------------------


def _model_inputs(model: Model, reference: Dataset) -> list[str]:
    wanted = list(model.info.features or reference.features)
    missing = [f for f in wanted if f not in reference.columns]
    if missing:
        raise DataError(
            f"{reference.display}: the reference lacks '{missing[0]}', which model "
            f"'{model.info.name}' reads",
            tip="the reference needs every column the model reads",
        )
    return wanted


def _features(
    loaded: LoadedConfig, cfg: WatchConfig, model: Model, reference: Dataset
) -> list[str]:
    wanted = cfg.drift.features or list(model.info.features or reference.features)
    for i, feature in enumerate(wanted):
        if feature not in reference.columns:
            raise loaded.error(
                ("watch", "drift", "features", i), f"no column '{feature}' in {reference.display}"
            )
    for i, feature in enumerate(cfg.critical_features):
        if feature not in wanted:
            raise loaded.error(
                ("watch", "critical_features", i),
                f"'{feature}' is not among the features watched ({', '.join(wanted)})",
            )
    return wanted


def _task(model: Model, predictions: Predictions) -> Task:
    from mlci.evaluate.alignment import infer_task

    return infer_task(predictions, model.info.task)


def _classes(model: Model, predictions: Predictions, task: Task) -> tuple[Any, ...]:
    if task == "regression":
        return ()
    classes = predictions.classes or model.info.classes
    if classes is None:
        raise DataError(f"model '{model.info.name}' does not name its classes")
    return tuple(classes)


def _index(values: np.ndarray, classes: Sequence[Any], what: str) -> np.ndarray:
    lookup = {label_key(c): i for i, c in enumerate(classes)}
    out = np.full(len(values), -1, dtype=np.int64)
    for i, value in enumerate(values.tolist()):
        if value is None or (isinstance(value, float) and value != value):
            continue
        key = label_key(value)
        if key not in lookup:
            raise DataError(
                f"{what} has label {key!r}, which is not among the model's classes "
                f"({', '.join(label_key(c) for c in classes)})"
            )
        out[i] = lookup[key]
    return out


def _score(predictions: Predictions, classes: Sequence[Any], task: Task) -> Scored:
    if task == "regression":
        assert predictions.values is not None
        return Scored(None, None, np.asarray(predictions.values, dtype=np.float64))
    proba = None
    if predictions.proba is not None:
        own = [label_key(c) for c in (predictions.classes or classes)]
        order = [own.index(label_key(c)) for c in classes]
        proba = np.asarray(predictions.proba, dtype=np.float64)[:, order]
    if predictions.labels is not None:
        labels = _index(np.asarray(predictions.labels, dtype=object), classes, "a prediction")
    else:
        assert proba is not None
        labels = np.argmax(proba, axis=1)
    return Scored(labels, proba, None)


def _traffic_outputs(traffic: Traffic, model: Model, classes: Sequence[Any], task: Task) -> Scored:
    """What the model answered: the logged outputs when they hold probabilities (what was
    served), else the model run again on the logged inputs."""
    k = len(classes)
    proba_name = next(
        (n for n, v in traffic.outputs.items() if v.ndim == 2 and v.shape[1] == k and k >= 2),
        None,
    )
    if task != "regression" and proba_name is not None:
        proba = traffic.outputs[proba_name]
        label_name = next((n for n, v in traffic.outputs.items() if v.ndim == 1), None)
        labels = (
            _index(traffic.outputs[label_name].astype(object), classes, "the sample's labels")
            if label_name is not None
            else np.argmax(proba, axis=1)
        )
        return Scored(labels, proba, None)
    wanted = list(model.info.features)
    missing = [f for f in wanted if f not in traffic.inputs]
    if missing:
        raise DataError(
            f"the traffic sample has neither the model's probabilities nor its input "
            f"'{missing[0]}'",
            tip="ask the server for the probabilities output, or sample that input with "
            "--sample-columns",
        )
    predictions = model.predict({f: traffic.inputs[f] for f in wanted})
    return _score(predictions, classes, task)


def _reference_target(reference: Dataset, classes: Sequence[Any], task: Task) -> np.ndarray | None:
    column = reference.columns.get(reference.target)
    if column is None or task == "regression":
        return None if column is None else np.asarray(column, dtype=np.float64)
    return _index(np.asarray(column, dtype=object), classes, f"{reference.display}'s target")


def _calibrate(
    cfg: WatchConfig, task: Task, ref: Scored, target: np.ndarray | None
) -> tuple[Calibrator | None, Calibration | None]:
    if task == "regression":
        return None, None
    if task != "binary":
        return None, Calibration(
            method="none", reason="multiclass probabilities are used as the model gives them"
        )
    if not cfg.estimate.calibrate:
        return None, Calibration(method="none", reason="watch.estimate.calibrate is off")
    if target is None:
        return None, Calibration(
            method="none", reason="the reference has no target column to calibrate on"
        )
    known = target >= 0
    assert ref.proba is not None
    calibrator = fit_isotonic(ref.proba[known, 1], target[known] == 1)
    return calibrator, Calibration(
        method="isotonic",
        rows=int(known.sum()),
        reason="isotonic regression of the reference's labels on the model's probabilities",
    )


def _traffic_labels(
    loaded: LoadedConfig,
    cfg: WatchConfig,
    options: WatchOptions,
    traffic: Traffic,
    classes: Sequence[Any],
    task: Task,
) -> np.ndarray | None:
    labels_cfg = cfg.labels
    path = options.labels or (labels_cfg.path if labels_cfg else None)
    if path is None:
        return None
    key = labels_cfg.key if labels_cfg else "request_id"
    row = labels_cfg.row if labels_cfg else None
    target = (labels_cfg.target if labels_cfg else None) or loaded.config.data.target
    found, display = read_labels(path, key, target, row)
    joined = join_labels(traffic, found)
    if task == "regression":
        return np.asarray([np.nan if v is None else float(v) for v in joined])
    return _index(joined, classes, display)


def _slices(loaded: LoadedConfig, cfg: WatchConfig, reference: Dataset) -> list[tuple[str, str]]:
    """Declared slices as (name, definition), expanded on the reference so that every window
    uses the same bins."""
    if not cfg.slices or not loaded.config.evaluation.slices:
        return []
    from mlci.evaluate.rows import declared_slices

    return [(s.name, s.definition) for s in declared_slices(loaded, reference)]


def _merge_history(previous: Results | None, windows: list[Window], keep: int) -> list[Window]:
    """Windows of an earlier run that this sample no longer holds, then this run's."""
    if previous is None or previous.watch is None:
        return windows
    fresh = {w.key for w in windows}
    older = [w for w in previous.watch.windows if w.key not in fresh]
    merged = sorted([*older, *windows], key=lambda w: (w.start, w.key))
    return merged[-keep:]


# -- one window ------------------------------------------------------------------------------


@dataclass
class _Analysis:
    cfg: WatchConfig
    task: Task
    features: list[str]
    reference: Dataset
    ref: Scored
    traffic: Traffic
    scored: Scored
    y: np.ndarray | None
    calibrator: Calibrator | None
    slices: list[tuple[str, str]]
    n_classes: int

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.decide = SignificantAndLarge(cfg.drift.fdr, cfg.drift.min_psi)
        missing = [f for f in self.features if f not in self.traffic.inputs]
        self.drift_features = [
            f
            for f in self.features
            if f in self.traffic.inputs and self.traffic.kinds.get(f) != "list"
        ]
        self.unsampled = missing
        self.ref_rows = len(next(iter(self.reference.columns.values())))
        self.ref_masks = {
            name: self._mask(definition, self.reference.columns, self.ref_rows)
            for name, definition in self.slices
        }

    def _mask(self, definition: str, columns: dict[str, np.ndarray], rows: int) -> np.ndarray:
        from mlci.evaluate.rows import where_mask

        view = replace(self.reference, columns=columns)
        try:
            return where_mask(definition, view)
        except Exception:  # a slice over a column the sample does not hold: no rows
            return np.zeros(rows, dtype=bool)

    def window(self, slot: Slot) -> Window:
        rows = slot.rows
        traffic = self.traffic
        labelled = 0 if self.y is None else int(self._known(self.y[rows]).sum())
        digests = sorted({str(d) for d in traffic.model_sha256[rows].tolist() if d})
        base = Window(
            key=slot.key,
            start=iso(slot.start_us),
            end=iso(slot.end_us),
            rows=int(rows.size),
            labelled=labelled,
            status="too_small" if rows.size < self.cfg.min_rows else "analysed",
            model_sha256=digests,
        )
        if base.status == "too_small":
            return base
        current = {f: traffic.inputs[f][rows] for f in self.drift_features}
        drift = window_drift(
            self.reference.columns,
            current,
            self.reference.kinds,
            self.drift_features,
            self.decide,
            bins=self.cfg.drift.bins,
            critical=self.cfg.critical_features,
        )
        scored = self.scored.take(rows)
        y = None if self.y is None else self.y[rows]
        columns = {name: values[rows] for name, values in traffic.inputs.items()}
        judge = self._evaluator(y)
        window_slices = [
            self._slice(name, definition, columns, scored, judge)
            for name, definition in self.slices
        ]
        window = base.model_copy(
            update={
                "drift": drift,
                "prediction_drift": self._prediction_drift(self.ref.score, scored.score),
                "measured": self._measured(scored, judge),
                "estimated": self._estimated(scored),
                "slices": window_slices,
            }
        )
        return window.model_copy(update={"alarms": rules.alarms(window, self.cfg)})

    def _known(self, y: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return np.asarray(np.isfinite(y))
        return np.asarray(y >= 0)

    def _prediction_drift(self, reference: np.ndarray, current: np.ndarray) -> FeatureDrift:
        kind = "categorical" if reference.dtype == object else "numeric"
        drift, rows = feature_drift(reference, current, kind, self.cfg.drift.bins)
        name = {"numeric": "score", "categorical": "predicted class"}[kind]
        if self.task == "regression":
            name = "prediction"
        return to_result(name, drift, rows, drift.p_value, self.decide, False)

    def _metrics(self) -> list[str]:
        if self.task == "regression":
            names = ["mae", "rmse", "r2"]
        elif self.task == "binary":
            names = list(self.cfg.estimate.metrics)
        else:
            names = ["accuracy"]
        return list(dict.fromkeys([*names, *(f.metric for f in self.cfg.floors)]))

    def _evaluator(self, y: np.ndarray | None) -> tuple[Evaluator, np.ndarray] | None:
        """One evaluator per window (its bootstrap shared by every slice), and the window's
        labelled rows."""
        if y is None:
            return None
        known = np.flatnonzero(self._known(y))
        if known.size < 2:
            return None
        cfg = self.cfg
        evaluator = Evaluator(
            self.task,
            y[known],
            metrics=self._metrics(),
            n_classes=self.n_classes if self.task != "regression" else None,
            n_boot=cfg.bootstrap,
            confidence=cfg.confidence,
            seed=cfg.seed,
        )
        return evaluator, known

    def _measured(
        self,
        scored: Scored,
        judge: tuple[Evaluator, np.ndarray] | None,
        mask: np.ndarray | None = None,
    ) -> dict[str, WatchMetric]:
        if judge is None:
            return {}
        evaluator, known = judge
        rows = None if mask is None else mask[known]
        if rows is not None and rows.sum() < 2:
            return {}
        part = scored.take(known)
        outputs = Outputs(labels=part.labels, proba=part.proba, values=part.values)
        estimates = evaluator.estimate(outputs, rows)
        return {name: _measured(e) for name, e in estimates.items()}

    def _estimated(self, scored: Scored) -> dict[str, WatchMetric]:
        cfg = self.cfg
        if self.task == "regression" or scored.proba is None or scored.labels is None:
            return {}
        if self.task == "binary":
            raw = scored.proba[:, 1]
            p = raw if self.calibrator is None else self.calibrator(raw)
            found = estimate_binary(
                p,
                scored.labels == 1,
                raw,
                cfg.estimate.metrics,
                replicates=cfg.estimate.replicates,
                confidence=cfg.confidence,
                seed=cfg.seed,
            )
        else:
            correct = scored.proba[np.arange(len(scored.labels)), scored.labels]
            found = {
                "accuracy": estimate_accuracy(
                    correct,
                    replicates=cfg.estimate.replicates,
                    confidence=cfg.confidence,
                    seed=cfg.seed,
                )
            }
        return {
            name: WatchMetric(
                kind="estimated", value=e.value, ci_low=e.ci_low, ci_high=e.ci_high, method="cbpe"
            )
            for name, e in found.items()
            if name in ESTIMABLE
        }

    def _slice(
        self,
        name: str,
        definition: str,
        columns: dict[str, np.ndarray],
        scored: Scored,
        judge: tuple[Evaluator, np.ndarray] | None,
    ) -> WatchSlice:
        n = len(scored.score)
        mask = self._mask(definition, columns, n)
        ref_mask = self.ref_masks[name]
        rows = int(mask.sum())
        piece = WatchSlice(
            name=name,
            definition=definition,
            rows=rows,
            share=rows / n if n else None,
            reference_share=float(ref_mask.mean()) if ref_mask.size else None,
        )
        if rows < self.cfg.min_rows:
            return piece
        idx = np.flatnonzero(mask)
        part = scored.take(idx)
        ref_score = self.ref.score[ref_mask]
        return piece.model_copy(
            update={
                "prediction_drift": (
                    self._prediction_drift(ref_score, part.score) if ref_score.size else None
                ),
                "measured": self._measured(scored, judge, mask),
                "estimated": self._estimated(part),
            }
        )


def _measured(e: Estimate) -> WatchMetric:
    return WatchMetric(
        kind="measured", value=e.value, ci_low=e.ci_low, ci_high=e.ci_high, method=e.method
    )
