"""ONNX models run with ONNX Runtime on the CPU."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlci.errors import DataError, ModelError
from mlci.hashing import sha256_file
from mlci.models.frames import (
    ORT_PREFIX,
    missing_columns_error,
    one_line,
    single_output_values,
)
from mlci.models.interface import Frame, InputSpec, Model, ModelInfo, Predictions, Task

# ONNX Runtime element type -> (numpy dtype, InputSpec dtype).
_ORT_TYPES: dict[str, tuple[Any, str]] = {
    "tensor(float)": (np.float32, "float"),
    "tensor(double)": (np.float64, "float"),
    "tensor(float16)": (np.float16, "float"),
    "tensor(int64)": (np.int64, "int"),
    "tensor(int32)": (np.int32, "int"),
    "tensor(int16)": (np.int16, "int"),
    "tensor(int8)": (np.int8, "int"),
    "tensor(uint64)": (np.uint64, "int"),
    "tensor(uint32)": (np.uint32, "int"),
    "tensor(uint16)": (np.uint16, "int"),
    "tensor(uint8)": (np.uint8, "int"),
    "tensor(bool)": (np.bool_, "bool"),
    "tensor(string)": (np.object_, "string"),
}
_FLOAT_OUTPUTS = {"tensor(float)", "tensor(double)", "tensor(float16)"}
_LABEL_OUTPUTS = {"tensor(int64)", "tensor(int32)", "tensor(string)"}


def _ort_reason(exc: BaseException) -> str:
    # ONNX Runtime prefixes every message with a status code and "Load model from PATH
    # failed:"; the path is already at the start of our message.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = ORT_PREFIX.sub("", text)
    text = re.sub(r"^Load model from .*? failed:\s*", "", text)
    return text.rstrip(".") or type(exc).__name__


# --------------------------------------------------------------------------- graph reading


@dataclass(frozen=True)
class _Output:
    name: str
    type: str
    shape: tuple[int | str | None, ...]


def _dims(shape: Sequence[Any]) -> tuple[int | str | None, ...]:
    return tuple(d if isinstance(d, int | str) or d is None else None for d in shape)


def _read_graph(path: Path) -> tuple[tuple[Any, ...] | None, dict[str, Any]]:
    """Class labels and a few facts (producer, opsets) read from the ONNX graph."""
    import onnx

    # External tensor data is not needed to read node attributes.
    proto = onnx.load(str(path), load_external_data=False)
    facts = {
        "producer": f"{proto.producer_name} {proto.producer_version}".strip() or None,
        "opsets": {imp.domain or "ai.onnx": imp.version for imp in proto.opset_import},
    }
    return _graph_classes(proto), facts


def _graph_classes(proto: Any) -> tuple[Any, ...] | None:
    """Class labels from the ZipMap node, else from the classifier nodes' attributes."""
    from onnx import helper

    zipmaps: list[tuple[Any, ...]] = []
    classifiers: list[tuple[Any, ...]] = []
    for node in proto.graph.node:
        attrs = {a.name: a for a in node.attribute}
        keys: tuple[str, ...]
        if node.op_type == "ZipMap":
            keys = ("classlabels_int64s", "classlabels_strings")
            target = zipmaps
        elif node.op_type.endswith("Classifier"):
            keys = ("classlabels_ints", "classlabels_strings", "classlabels_int64s")
            target = classifiers
        else:
            continue
        for key in keys:
            if key in attrs:
                values = helper.get_attribute_value(attrs[key])
                if values:
                    target.append(tuple(_label(v) for v in values))
                    break
    for found in (zipmaps, classifiers):
        # Several classifier nodes (ensembles, one-vs-rest) only count when they agree.
        if found and all(labels == found[0] for labels in found):
            return found[0]
    return None


def _label(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return int(value) if isinstance(value, np.integer) else value


# --------------------------------------------------------------------------- the model


class OnnxModel(Model):
    """An ONNX file run with ONNX Runtime's CPUExecutionProvider.

    Feeds either one input per frame column (matched by name, shape ``[N, 1]`` or ``[N]``,
    cast to the input's element type) or, for a model with a single 2-D input ``[N, d]``,
    the frame's columns stacked in frame order.
    """

    def __init__(self, path: str | Path, *, name: str | None = None) -> None:
        """Open ``path`` with ONNX Runtime; ModelError when it is not a usable ONNX model."""
        import onnxruntime as ort

        self.path = Path(path)
        where = str(self.path)
        if not self.path.is_file():
            raise ModelError(f"{where}: no such model file")
        size = self.path.stat().st_size
        if size == 0:
            raise ModelError(f"{where}: not a valid ONNX model (the file is empty)")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: warnings would go straight to stderr
        try:
            self.session = ort.InferenceSession(
                where, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelError(
                f"{where}: not a valid ONNX model ({_ort_reason(exc)})",
                tip="re-export the model, or check that the file was not truncated",
            ) from exc

        self._inputs = list(self.session.get_inputs())
        self.input_specs = tuple(
            InputSpec(i.name, _ORT_TYPES.get(i.type, (None, "unknown"))[1], _dims(i.shape))
            for i in self._inputs
        )
        outputs = [_Output(o.name, o.type, _dims(o.shape)) for o in self.session.get_outputs()]
        self._label_out, self._proba_out, self._value_out = _pick_outputs(where, outputs)
        try:
            classes, facts = _read_graph(self.path)
        except Exception:
            # ORT accepted the file, so only our attribute reading failed; classes stay unknown
            # and are taken from ZipMap keys at prediction time if there are any.
            classes, facts = None, {}
        width = self._proba_width()
        if classes is not None and width is not None and len(classes) != width:
            classes = None
        self.classes = classes
        self.tensor_input = self._single_tensor_input()

        features = () if self.tensor_input else tuple(i.name for i in self._inputs)
        self.info = ModelInfo(
            name=name or self.path.stem,
            path=where,
            format="onnx",
            sha256=sha256_file(self.path),
            size_bytes=size,
            inputs=self.input_specs,
            features=features,
            classes=classes,
            task=self._task(),
            extra={
                **facts,
                "outputs": [o.name for o in outputs],
                "input_mode": "tensor" if self.tensor_input else "columns",
            },
        )

    # -- description ----------------------------------------------------------------------

    def _proba_width(self) -> int | None:
        out = self._proba_out
        if out is None or not out.type.startswith("tensor") or len(out.shape) != 2:
            return None
        width = out.shape[1]
        return width if isinstance(width, int) else None

    def _task(self) -> Task | None:
        if self.classes is not None:
            return "binary" if len(self.classes) <= 2 else "multiclass"
        if self._proba_out is not None:
            width = self._proba_width()
            if width is None:
                return None
            return "binary" if width <= 2 else "multiclass"
        if self._value_out is not None:
            return "regression"
        return None

    def _single_tensor_input(self) -> bool:
        """True when the frame's columns are to be stacked into the model's only input."""
        if len(self._inputs) != 1:
            return False
        shape = self.input_specs[0].shape
        if len(shape) != 2:
            return False
        # [N, 1] is ambiguous: one column fed by name or a one-feature tensor; decided per call.
        return shape[1] != 1

    # -- prediction -----------------------------------------------------------------------

    def _predict(self, frame: Frame) -> Predictions:
        """Run the model on the rows of ``frame`` (one chunk: see ``Model.predict``)."""
        where = str(self.path)
        feeds = self._feeds(frame)
        classes = self.classes
        wanted = [o.name for o in (self._label_out, self._proba_out, self._value_out) if o]
        try:
            result = dict(zip(wanted, self.session.run(wanted, feeds), strict=True))
        except Exception as exc:
            raise ModelError(f"{where}: ONNX Runtime failed on the data ({one_line(exc)})") from exc
        if self._value_out is not None:
            return Predictions(values=self._values(result[self._value_out.name]))
        proba_all = None
        if self._proba_out:
            proba_all, classes = self._proba(result[self._proba_out.name], classes)
        if self._label_out:
            label_all = np.asarray(result[self._label_out.name]).reshape(-1)
            if label_all.dtype.kind in "OSU":
                label_all = label_all.astype(object)
        elif proba_all is not None:
            # No label output: the most probable class is the prediction.
            idx = proba_all.argmax(axis=1)
            label_all = np.asarray(classes, dtype=object)[idx] if classes else idx
        else:
            label_all = None
        return Predictions(labels=label_all, proba=proba_all, classes=classes)

    def _proba(
        self, raw: Any, classes: tuple[Any, ...] | None
    ) -> tuple[np.ndarray, tuple[Any, ...] | None]:
        if isinstance(raw, list):  # ZipMap: one {class: probability} dict per row
            if classes is None and raw:
                classes = tuple(_label(k) for k in raw[0])
            if classes is None:
                return np.zeros((0, 0)), classes
            proba = np.array([[row[c] for c in classes] for row in raw], dtype=np.float64)
            return proba.reshape(len(raw), len(classes)), classes
        proba = np.asarray(raw, dtype=np.float64)
        if proba.ndim == 1:
            proba = proba.reshape(-1, 1)
        return proba, classes

    def _values(self, raw: Any) -> np.ndarray:
        return single_output_values(raw, str(self.path))

    def _feeds(self, frame: Frame) -> dict[str, np.ndarray]:
        where = str(self.path)
        spec = self._inputs[0] if self._inputs else None
        stacked = self.tensor_input or (
            # A single [N, 1] input whose name is not a column takes the frame's only column.
            spec is not None
            and len(self._inputs) == 1
            and len(spec.shape) == 2
            and spec.name not in frame
            and len(frame) == 1
        )
        if stacked and spec is not None:
            return {spec.name: self._stack(frame, spec)}

        missing = [i.name for i in self._inputs if i.name not in frame]
        if missing:
            raise missing_columns_error(where, missing, frame.keys())
        feeds = {}
        for inp in self._inputs:
            column = _cast(where, inp.name, np.asarray(frame[inp.name]), inp.type)
            if len(inp.shape) == 2:
                column = column.reshape(-1, 1)
            elif len(inp.shape) != 1:
                raise ModelError(
                    f"{where}: input {inp.name!r} has shape {list(inp.shape)}; "
                    "only [N], [N, 1] per-column inputs or one [N, d] tensor are supported"
                )
            feeds[inp.name] = column
        return feeds

    def _stack(self, frame: Frame, spec: Any) -> np.ndarray:
        where = str(self.path)
        width = spec.shape[1]
        if isinstance(width, int) and width != len(frame):
            raise DataError(
                f"{where}: model input {spec.name!r} takes {width} columns but the data has "
                f"{len(frame)} ({', '.join(list(frame)[:10])}{', ...' if len(frame) > 10 else ''})",
                tip="pass exactly the model's feature columns, in the order it was trained on",
            )
        if spec.type != "tensor(string)":
            text = [name for name, col in frame.items() if not _numeric(np.asarray(col))]
            if text:
                raise DataError(
                    f"{where}: model input {spec.name!r} is a numeric tensor but column(s) "
                    f"{', '.join(repr(t) for t in text)} are not numeric",
                    tip="encode text columns before evaluation or export the model with per-column inputs",
                )
        columns = [_cast(where, name, np.asarray(col), spec.type) for name, col in frame.items()]
        return np.stack(columns, axis=1) if columns else np.zeros((0, 0))


def _numeric(column: np.ndarray) -> bool:
    if column.dtype.kind in "biuf":
        return True
    if column.dtype.kind != "O":
        return False
    try:
        column.astype(np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _cast(where: str, name: str, column: np.ndarray, ort_type: str) -> np.ndarray:
    """Convert one frame column to the element type an ONNX input declares."""
    if column.ndim != 1:
        column = column.reshape(len(column), -1)
        if column.shape[1] != 1:
            raise DataError(f"{where}: column {name!r} is not one value per row")
        column = column[:, 0]
    target = _ORT_TYPES.get(ort_type, (None, "unknown"))[0]
    if target is None:
        raise ModelError(f"{where}: input {name!r} has unsupported element type {ort_type}")
    if target is np.object_:
        # ORT string tensors want Python str objects.
        if column.dtype.kind == "O" and all(isinstance(v, str) for v in column):
            return column
        return column.astype(str).astype(object)
    try:
        if np.issubdtype(target, np.integer) and column.dtype.kind in "fO":
            as_float = column.astype(np.float64)
            if not np.all(np.isfinite(as_float)) or np.any(as_float != np.round(as_float)):
                raise ValueError("non-integer or missing values")
        return column.astype(target)
    except (TypeError, ValueError) as exc:
        kind = {"int": "integer", "float": "numeric", "bool": "boolean"}.get(
            _ORT_TYPES[ort_type][1], ort_type
        )
        raise DataError(
            f"{where}: column {name!r} cannot be read as the {kind} values model input "
            f"{name!r} expects ({one_line(exc, 120)})"
        ) from exc


def _pick_outputs(
    where: str, outputs: Sequence[_Output]
) -> tuple[_Output | None, _Output | None, _Output | None]:
    """Split outputs into (label, probability, regression value)."""
    label = next((o for o in outputs if o.type in _LABEL_OUTPUTS), None)
    zipmap = next((o for o in outputs if o.type.startswith("seq(map(")), None)
    floats = [o for o in outputs if o.type in _FLOAT_OUTPUTS]
    proba = zipmap or (floats[0] if floats and (label is not None) else None)
    if label is not None or proba is not None:
        return label, proba, None
    if floats:
        first = floats[0]
        width = first.shape[1] if len(first.shape) == 2 else 1
        if isinstance(width, int) and width > 1:
            # (n, k) scores with no label output: a probability-only classifier.
            return None, first, None
        return None, None, first
    kinds = ", ".join(f"{o.name}: {o.type}" for o in outputs) or "none"
    raise ModelError(
        f"{where}: cannot tell what the model predicts from its outputs ({kinds})",
        tip="export a classifier with a label and a probability output, or a regressor with one float output",
    )
