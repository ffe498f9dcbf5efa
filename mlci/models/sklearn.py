"""scikit-learn estimators (and anything shaped like one) behind the Model interface.

scikit-learn, skops, joblib and pandas are optional and heavy, so they are imported inside
the functions that need them.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlci.errors import DataError, ModelError
from mlci.hashing import sha256_file
from mlci.models.formats import ModelFormat
from mlci.models.frames import frame_length, missing_columns_error, one_line, single_output_values
from mlci.models.interface import Frame, InputSpec, Model, ModelInfo, Predictions, Task

_SKOPS_TIP = "re-save the model with skops: skops.io.dump(model, 'model.skops')"


class SklearnModel(Model):
    """An object with ``predict`` (and optionally ``predict_proba`` and ``classes_``).

    Estimators fitted on a DataFrame (``feature_names_in_``) get a pandas DataFrame with those
    columns; others get a 2-D array of the frame's columns in frame order.
    """

    def __init__(
        self,
        estimator: Any,
        *,
        name: str,
        path: str = "",
        format: ModelFormat = "skops",
        sha256: str = "",
        size_bytes: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Wrap ``estimator``; ``path`` names it in error messages and in ModelInfo."""
        if not callable(getattr(estimator, "predict", None)):
            raise ModelError(
                f"{path or name}: the loaded {type(estimator).__name__} object has no predict method",
                tip="save a fitted estimator or pipeline",
            )
        self.estimator = estimator
        self.where = path or name
        names = getattr(estimator, "feature_names_in_", None)
        self.feature_names: tuple[str, ...] | None = (
            tuple(str(n) for n in names) if names is not None else None
        )
        n_features = getattr(estimator, "n_features_in_", None)
        self.n_features: int | None = int(n_features) if n_features is not None else None
        raw_classes = getattr(estimator, "classes_", None)
        self.classes: tuple[Any, ...] | None = (
            tuple(_plain(c) for c in np.asarray(raw_classes).reshape(-1))
            if raw_classes is not None
            else None
        )
        self.has_proba = callable(getattr(estimator, "predict_proba", None))
        self.task = _task(estimator, self.classes)

        if self.feature_names is not None:
            inputs = tuple(InputSpec(n, "unknown", (None,)) for n in self.feature_names)
        elif self.n_features is not None:
            inputs = (InputSpec("X", "unknown", (None, self.n_features)),)
        else:
            inputs = ()
        self.info = ModelInfo(
            name=name,
            path=path,
            format=format,
            sha256=sha256,
            size_bytes=size_bytes,
            inputs=inputs,
            features=self.feature_names or (),
            classes=self.classes,
            task=self.task,
            extra={"estimator": _describe(estimator), **(extra or {})},
        )

    def _predict(self, frame: Frame) -> Predictions:
        """Predict labels and probabilities (classifiers) or values (regressors)."""
        X = self.features(frame)
        try:
            raw = np.asarray(self.estimator.predict(X))
            proba = None
            if self.task != "regression" and self.has_proba and _wants_proba(self.task, raw):
                proba = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)
        except Exception as exc:
            raise ModelError(
                f"{self.where}: the model failed to predict ({one_line(exc)})"
            ) from exc

        if self.task == "regression" or (
            self.task is None and proba is None and raw.dtype.kind == "f"
        ):
            return Predictions(values=self._values(raw))
        labels = raw.reshape(-1) if raw.ndim == 2 and raw.shape[1] == 1 else raw
        if labels.dtype.kind in "OSU":
            labels = labels.astype(object)
        return Predictions(labels=labels, proba=proba, classes=self.classes)

    def features(self, frame: Frame) -> Any:
        """The input the estimator expects: a DataFrame by feature name, else a 2-D array."""
        n = frame_length(frame, self.where)
        if self.feature_names is not None:
            import pandas as pd

            missing = [c for c in self.feature_names if c not in frame]
            if missing:
                raise missing_columns_error(self.where, missing, frame.keys())
            return pd.DataFrame({c: np.asarray(frame[c]) for c in self.feature_names})
        if self.n_features is not None and self.n_features != len(frame):
            raise _column_count_error(self.where, self.n_features, list(frame))
        columns = [np.asarray(c).reshape(-1) for c in frame.values()]
        if any(c.dtype.kind in "OSU" for c in columns):
            return np.column_stack([c.astype(object) for c in columns]).reshape(n, len(columns))
        return np.column_stack(columns).reshape(n, len(columns))

    def _values(self, raw: np.ndarray) -> np.ndarray:
        return single_output_values(raw, self.where)


def _column_count_error(where: str, expected: int, columns: list[str]) -> DataError:
    """The error for an array-fed estimator given the wrong number of columns."""
    shown = ", ".join(columns[:10]) + (", ..." if len(columns) > 10 else "")
    return DataError(
        f"{where}: the model was fitted on {expected} columns but the data has {len(columns)} ({shown})",
        tip="pass exactly the model's feature columns, in the order it was trained on",
    )


def _wants_proba(task: Task | None, raw: np.ndarray) -> bool:
    # An entry point of unknown task that returns floats from predict is a regressor even if
    # it happens to have a predict_proba attribute we cannot trust.
    return task is not None or raw.dtype.kind != "f"


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars so class labels compare and serialise plainly."""
    return value.item() if isinstance(value, np.generic) else value


def _task(estimator: Any, classes: tuple[Any, ...] | None) -> Task | None:
    if classes is not None:
        return "binary" if len(classes) <= 2 else "multiclass"
    if hasattr(estimator, "__sklearn_tags__"):
        try:
            from sklearn.base import is_regressor

            if is_regressor(estimator):
                return "regression"
        except Exception:
            # Tags of a third-party estimator can be incomplete; the task then stays unknown.
            return None
    elif getattr(estimator, "_estimator_type", None) == "regressor":
        return "regression"
    return None


def _describe(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps:
        return "Pipeline(" + ", ".join(type(s[1]).__name__ for s in steps) + ")"
    return type(estimator).__name__


# --------------------------------------------------------------------------- loaders


def load_skops(path: Path, *, name: str, trusted_types: Sequence[str] = ()) -> SklearnModel:
    """Load a skops file, refusing types skops does not trust unless ``trusted_types`` lists them."""
    import skops.io as sio

    where = str(path)
    if path.stat().st_size == 0:
        raise ModelError(f"{where}: not a valid skops file (the file is empty)")
    if not zipfile.is_zipfile(path):
        raise ModelError(
            f"{where}: not a valid skops file (not a zip archive)",
            tip="save the model with skops.io.dump, or set the model's format",
        )
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ModelError(f"{where}: not a valid skops file ({one_line(exc)})") from exc
    allowed = set(trusted_types)
    refused = [t for t in untrusted if t not in allowed]
    if refused:
        raise ModelError(
            f"{where}: the skops file contains types skops does not trust by default: "
            f"{', '.join(refused)}; loading them can run their code",
            tip="review them and, if you trust them, list them under trusted_types: "
            f"[{', '.join(refused)}]",
        )
    try:
        estimator = sio.load(path, trusted=[t for t in untrusted if t in allowed] or None)
    except Exception as exc:
        raise ModelError(f"{where}: could not load the skops file ({one_line(exc)})") from exc
    return SklearnModel(
        estimator,
        name=name,
        path=where,
        format="skops",
        sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
        extra={"trusted_types": sorted(allowed & set(untrusted))} if untrusted else None,
    )


def load_pickle(path: Path, *, name: str, trust_pickle: bool = False) -> SklearnModel:
    """Load a pickle or joblib file, only when the user said they trust it."""
    where = str(path)
    if not trust_pickle:
        raise ModelError(
            f"{where}: refusing to load a pickle/joblib file: unpickling runs arbitrary code "
            "from the file",
            tip=f"{_SKOPS_TIP}, or set trust_pickle: true for files you produced yourself",
        )
    if path.stat().st_size == 0:
        raise ModelError(f"{where}: not a valid pickle file (the file is empty)")
    try:
        import joblib

        # joblib reads both its own format and plain pickles.
        estimator = joblib.load(path)
    except ImportError:
        import pickle

        with open(path, "rb") as handle:
            estimator = _unpickle(where, pickle.load, handle)
    except Exception as exc:
        raise ModelError(f"{where}: could not unpickle the file ({one_line(exc)})") from exc
    return SklearnModel(
        estimator,
        name=name,
        path=where,
        format="pickle",
        sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
    )


def _unpickle(where: str, load: Any, handle: Any) -> Any:
    try:
        return load(handle)
    except Exception as exc:
        raise ModelError(f"{where}: could not unpickle the file ({one_line(exc)})") from exc
