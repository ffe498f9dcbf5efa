"""Open Inference Protocol on the client side: requests from data rows, predictions from
answers. Pure: metadata, columns and bodies in, bytes and arrays out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# The kind of Python value each OIP datatype carries in JSON.
_KINDS = {
    "BOOL": "b",
    "BYTES": "s",
    "FP16": "f",
    "FP32": "f",
    "FP64": "f",
    **{f"INT{b}": "i" for b in (8, 16, 32, 64)},
    **{f"UINT{b}": "i" for b in (8, 16, 32, 64)},
}
_PROBABILITIES = ("probabilities", "probability", "output_probability", "probs")


class ProtocolError(Exception):
    """An answer or metadata that does not follow the protocol (or the model's own)."""


@dataclass(frozen=True)
class Tensor:
    """An input or output of a served model, as its metadata describes it."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @classmethod
    def parse(cls, data: Any, where: str) -> Tensor:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ProtocolError(f"{where}: a tensor without a name")
        datatype = data.get("datatype")
        shape = data.get("shape", [])
        if datatype not in _KINDS:
            raise ProtocolError(f"{where}: tensor '{data['name']}' has datatype {datatype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
            raise ProtocolError(f"{where}: tensor '{data['name']}' has shape {shape!r}")
        return cls(data["name"], datatype, tuple(shape))


@dataclass(frozen=True)
class Signature:
    """A served model's inputs and outputs, and which outputs hold what to compare."""

    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]

    @classmethod
    def parse(cls, metadata: Any, where: str) -> Signature:
        if not isinstance(metadata, dict):
            raise ProtocolError(f"{where}: model metadata is not a JSON object")
        inputs = tuple(Tensor.parse(t, where) for t in metadata.get("inputs") or [])
        outputs = tuple(Tensor.parse(t, where) for t in metadata.get("outputs") or [])
        if not inputs or not outputs:
            raise ProtocolError(f"{where}: model metadata lists no inputs or no outputs")
        return cls(inputs, outputs)

    @property
    def label(self) -> str | None:
        """The output holding class labels: 'label', else the first non-float output."""
        names = [o.name for o in self.outputs]
        if "label" in names:
            return "label"
        return next((o.name for o in self.outputs if _KINDS[o.datatype] != "f"), None)

    @property
    def probabilities(self) -> str | None:
        """The output holding class probabilities: a float [rows, classes] tensor."""
        for o in self.outputs:
            if o.name in _PROBABILITIES and _KINDS[o.datatype] == "f":
                return o.name
        return next(
            (
                o.name
                for o in self.outputs
                if _KINDS[o.datatype] == "f" and len(o.shape) == 2 and o.shape[-1] not in (0, 1)
            ),
            None,
        )

    @property
    def value(self) -> str | None:
        """A regressor's output: the first float output, when there are no labels."""
        if self.label is not None or self.probabilities is not None:
            return None
        return next((o.name for o in self.outputs if _KINDS[o.datatype] == "f"), None)

    def compatible(self, other: Signature) -> str | None:
        """Why ``other`` cannot take the same requests (None when it can)."""
        mine = {t.name: t.datatype for t in self.inputs}
        theirs = {t.name: t.datatype for t in other.inputs}
        if mine != theirs:
            return f"inputs {sorted(mine.items())} against {sorted(theirs.items())}"
        return None


def _values(column: np.ndarray, datatype: str) -> list[Any]:
    kind = _KINDS[datatype]
    if kind == "s":
        return ["" if v is None else str(v) for v in column.tolist()]
    if kind == "b":
        return [bool(v) for v in column.tolist()]
    if kind == "i":
        return [int(v) for v in column.tolist()]
    return np.asarray(column, dtype=np.float64).tolist()  # type: ignore[no-any-return]


def plan_inputs(
    signature: Signature, columns: Mapping[str, np.ndarray], features: Sequence[str]
) -> list[tuple[Tensor, list[str]]]:
    """Which data columns feed each input: one column per input matched by name, or a single
    2-D input fed every feature in order. ProtocolError when the data cannot feed the model."""
    plan: list[tuple[Tensor, list[str]]] = []
    for tensor in signature.inputs:
        if tensor.name in columns:
            plan.append((tensor, [tensor.name]))
            continue
        width = tensor.shape[-1] if len(tensor.shape) == 2 else None
        if len(signature.inputs) == 1 and width in (-1, len(features)):
            plan.append((tensor, list(features)))
            continue
        raise ProtocolError(
            f"the served model's input '{tensor.name}' matches no column of the data"
        )
    return plan


def request_body(
    plan: Sequence[tuple[Tensor, list[str]]],
    columns: Mapping[str, np.ndarray],
    rows: np.ndarray,
    request_id: str,
) -> bytes:
    """One infer request (JSON) for the given rows."""
    import orjson

    inputs = []
    for tensor, names in plan:
        count = len(rows)
        if len(names) == 1:
            data = _values(columns[names[0]][rows], tensor.datatype)
            shape = [count, 1] if len(tensor.shape) == 2 else [count]
        else:
            matrix = np.column_stack([columns[n][rows] for n in names])
            data = _values(matrix.reshape(-1), tensor.datatype)
            shape = [count, len(names)]
        inputs.append(
            {"name": tensor.name, "datatype": tensor.datatype, "shape": shape, "data": data}
        )
    body: bytes = orjson.dumps({"id": request_id, "inputs": inputs})
    return body


@dataclass(frozen=True)
class Prediction:
    """What one answer predicted for its rows (each array has one entry per row)."""

    labels: np.ndarray | None  # as text, so that 1 and "1" compare equal
    probabilities: np.ndarray | None  # rows x classes
    values: np.ndarray | None  # regression

    @property
    def rows(self) -> int:
        for array in (self.labels, self.probabilities, self.values):
            if array is not None:
                return len(array)
        return 0


def decode(body: bytes, signature: Signature) -> Prediction:
    """The predictions in a JSON infer response; ProtocolError when they are not there."""
    import orjson

    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProtocolError("the answer is not JSON") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("outputs"), list):
        raise ProtocolError("the answer has no outputs")
    outputs = {o.get("name"): o for o in answer["outputs"] if isinstance(o, dict)}

    def tensor(name: str | None) -> np.ndarray | None:
        if name is None:
            return None
        found = outputs.get(name)
        if found is None:
            raise ProtocolError(f"the answer lacks output '{name}'")
        shape = found.get("shape")
        data = found.get("data")
        if not isinstance(shape, list) or not shape or not isinstance(data, list):
            raise ProtocolError(f"output '{name}' has no shape or data")
        array = np.asarray(data, dtype=object if found.get("datatype") == "BYTES" else None)
        try:
            return array.reshape(shape[0], -1) if len(shape) > 1 else array.reshape(shape[0])
        except ValueError:
            raise ProtocolError(f"output '{name}': data does not fit shape {shape}") from None

    labels = tensor(signature.label)
    probabilities = tensor(signature.probabilities)
    values = tensor(signature.value)
    if labels is not None:
        labels = np.asarray([str(v) for v in labels.reshape(len(labels), -1)[:, 0]], dtype=object)
    if probabilities is not None:
        probabilities = probabilities.astype(np.float64)
    if values is not None:
        values = values.astype(np.float64).reshape(len(values), -1)[:, 0]
    if labels is None and probabilities is None and values is None:
        raise ProtocolError("the answer holds no labels, probabilities or values")
    return Prediction(labels, probabilities, values)


def compare(primary: Prediction, canary: Prediction) -> tuple[np.ndarray | None, np.ndarray]:
    """Per row: whether the label flipped (None for regression) and the absolute difference
    (total variation distance between probability rows, or between values)."""
    if primary.rows != canary.rows:
        raise ProtocolError(f"the answers hold {primary.rows} and {canary.rows} rows")
    flips = None
    if primary.labels is not None and canary.labels is not None:
        flips = primary.labels != canary.labels
    elif primary.probabilities is not None and canary.probabilities is not None:
        flips = primary.probabilities.argmax(axis=1) != canary.probabilities.argmax(axis=1)
    if primary.probabilities is not None and canary.probabilities is not None:
        if primary.probabilities.shape != canary.probabilities.shape:
            raise ProtocolError(
                f"probabilities of shapes {primary.probabilities.shape} and "
                f"{canary.probabilities.shape}"
            )
        diffs = 0.5 * np.abs(primary.probabilities - canary.probabilities).sum(axis=1)
    elif primary.values is not None and canary.values is not None:
        diffs = np.abs(primary.values - canary.values)
    elif flips is not None:
        diffs = flips.astype(np.float64)
    else:
        raise ProtocolError("the two answers hold nothing comparable")
    return (None if flips is None else np.asarray(flips, dtype=bool)), diffs
