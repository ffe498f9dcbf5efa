"""The one small interface every model runtime implements."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

from mlci.models.formats import ModelFormat

Task = Literal["binary", "multiclass", "regression"]

# A batch of input rows: column name -> 1-D numpy array (object dtype for strings).
Frame = Mapping[str, "np.ndarray"]

# Models predict in chunks of this many rows, counted from the frame's first row. It bounds
# the memory of one call, and it makes a model's output for a row independent of how the rows
# were split among jobs: runtimes choose their kernels and their summation order by batch
# size (ONNX Runtime's tree ensembles sum over trees for small batches, over rows for large
# ones), so shards and Dask partitions start on chunk boundaries and every chunk is predicted
# exactly as one job predicts it.
PREDICT_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class InputSpec:
    """One input the model declares (ONNX) or was fitted on (scikit-learn)."""

    name: str
    dtype: str  # "float", "int", "string", "bool" or "unknown"
    shape: tuple[int | str | None, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    """What we record about a model file."""

    name: str
    path: str
    format: ModelFormat
    sha256: str
    size_bytes: int
    inputs: tuple[InputSpec, ...] = ()
    # Feature columns the model reads, in the order it needs them (empty when unknown).
    features: tuple[str, ...] = ()
    # Class labels in the order of the probability columns; None for regressors or unknown.
    classes: tuple[Any, ...] | None = None
    task: Task | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Predictions:
    """What a model said about a batch of rows.

    Classifiers fill ``labels`` (raw class labels, as the model names them) and, when they
    can, ``proba`` with one column per entry of ``classes``. Regressors fill ``values``.
    """

    labels: np.ndarray | None = None
    proba: np.ndarray | None = None
    classes: tuple[Any, ...] | None = None
    values: np.ndarray | None = None


class Model(abc.ABC):
    """A loaded model that can predict on a frame of feature columns.

    Runtimes implement ``_predict``; ``predict`` checks what it returns, so no caller ever sees
    predictions of the wrong length or shape, or NaN probabilities.
    """

    info: ModelInfo

    def predict(self, frame: Frame) -> Predictions:
        """Predict for every row of ``frame`` in chunks of ``PREDICT_CHUNK_ROWS``; raise
        ModelError on failure or bad output."""
        from mlci.models.frames import frame_length
        from mlci.models.outputs import check_predictions, concatenate

        where = self.info.path or self.info.name
        rows = frame_length(frame, where)
        if rows <= PREDICT_CHUNK_ROWS:
            return check_predictions(self._predict(frame), rows, where)
        parts = []
        for start in range(0, rows, PREDICT_CHUNK_ROWS):
            chunk = {k: v[start : start + PREDICT_CHUNK_ROWS] for k, v in frame.items()}
            n = min(PREDICT_CHUNK_ROWS, rows - start)
            parts.append((check_predictions(self._predict(chunk), n, where),))
        return concatenate(parts)[0]

    @abc.abstractmethod
    def _predict(self, frame: Frame) -> Predictions:
        """What the runtime predicts for every row of ``frame``, unchecked."""
