"""The Open Inference Protocol (KServe v2) JSON tensor format, checked against a model.

Pure functions of JSON and numpy arrays: ``decode_inputs`` turns a request body into
ONNX Runtime feeds (or raises ``BadRequest`` with one line saying what is wrong) and
``encode_output`` turns an output array into a response tensor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# ONNX Runtime element type -> (OIP datatype, numpy dtype).
ORT_TO_OIP: dict[str, tuple[str, Any]] = {
    "tensor(bool)": ("BOOL", np.bool_),
    "tensor(uint8)": ("UINT8", np.uint8),
    "tensor(uint16)": ("UINT16", np.uint16),
    "tensor(uint32)": ("UINT32", np.uint32),
    "tensor(uint64)": ("UINT64", np.uint64),
    "tensor(int8)": ("INT8", np.int8),
    "tensor(int16)": ("INT16", np.int16),
    "tensor(int32)": ("INT32", np.int32),
    "tensor(int64)": ("INT64", np.int64),
    "tensor(float16)": ("FP16", np.float16),
    "tensor(float)": ("FP32", np.float32),
    "tensor(double)": ("FP64", np.float64),
    "tensor(string)": ("BYTES", np.object_),
}
OIP_TO_NUMPY = dict(ORT_TO_OIP.values())
_INT_RANGES = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}


class BadRequest(Exception):
    """A request the server answers with 400 and this message."""


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, OIP datatype and shape (-1 for any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        """The tensor metadata entry of ``GET /v2/models/{name}``."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def spec_from_ort(node: Any) -> TensorSpec | None:
    """A TensorSpec for an ONNX Runtime NodeArg, or None when it is not a tensor."""
    kind = ORT_TO_OIP.get(node.type)
    if kind is None:
        return None
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or []))
    return TensorSpec(node.name, kind[0], shape)


def _reject_constant(name: str) -> Any:
    raise BadRequest(f"the request body holds {name}, which is not valid JSON")


def parse_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object; BadRequest when it is not one."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise BadRequest("the request body is not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object with an 'inputs' list")
    return data


def decode_inputs(data: Mapping[str, Any], specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Feeds for ONNX Runtime from an inference request, checked against the model's inputs."""
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    by_name = {spec.name: spec for spec in specs}
    feeds: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise BadRequest(f"inputs[{i}] must be an object with name, shape, datatype, data")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"inputs[{i}] has no 'name'")
        spec = by_name.get(name)
        if spec is None:
            raise BadRequest(
                f"unknown input {name!r}; the model takes {', '.join(sorted(by_name))}"
            )
        if name in feeds:
            raise BadRequest(f"input {name!r} is given twice")
        feeds[name] = decode_tensor(tensor, spec)
    missing = [spec.name for spec in specs if spec.name not in feeds]
    if missing:
        raise BadRequest(f"missing input(s) {', '.join(repr(m) for m in missing)}")
    return feeds


def decode_tensor(tensor: Mapping[str, Any], spec: TensorSpec) -> np.ndarray:
    """One request tensor as a numpy array of the input's dtype and declared shape."""
    name = spec.name
    datatype = tensor.get("datatype")
    if datatype != spec.datatype:
        raise BadRequest(
            f"input {name!r} has datatype {datatype!r}; the model expects {spec.datatype}"
        )
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BadRequest(f"input {name!r}: 'shape' must be a list of non-negative integers")
    if len(shape) != len(spec.shape) or any(
        want != -1 and want != got for want, got in zip(spec.shape, shape, strict=True)
    ):
        raise BadRequest(
            f"input {name!r} has shape {shape}; the model expects {list(spec.shape)} (-1: any size)"
        )
    if "data" not in tensor:
        raise BadRequest(f"input {name!r} has no 'data'")
    flat = _flatten(tensor["data"], name)
    count = math.prod(shape)
    if len(flat) != count:
        raise BadRequest(f"input {name!r} has {len(flat)} value(s) but shape {shape} needs {count}")
    return _to_array(flat, spec.datatype, name).reshape(shape)


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r}: 'data' must be a list (flat or nested, row-major)")
    if not any(isinstance(x, list) for x in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _to_array(flat: list[Any], datatype: str, name: str) -> np.ndarray:
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise BadRequest(f"input {name!r} is BYTES: every value must be a string")
        return np.array(flat, dtype=object)
    if datatype == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise BadRequest(f"input {name!r} is BOOL: every value must be true or false")
        return np.array(flat, dtype=np.bool_)
    if datatype.startswith(("INT", "UINT")):
        low, high = _INT_RANGES[datatype]
        for v in flat:
            if not isinstance(v, int) or isinstance(v, bool):
                raise BadRequest(f"input {name!r} is {datatype}: {v!r} is not an integer")
            if not low <= v <= high:
                raise BadRequest(f"input {name!r} is {datatype}: {v} is out of range")
        return np.array(flat, dtype=OIP_TO_NUMPY[datatype])
    for v in flat:
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise BadRequest(f"input {name!r} is {datatype}: {v!r} is not a number")
    return np.array(flat, dtype=OIP_TO_NUMPY[datatype])


def encode_output(name: str, value: Any) -> dict[str, Any]:
    """A response tensor (flat row-major data) from an ONNX Runtime output."""
    array = np.asarray(value)
    if array.dtype.kind in "OUS":
        datatype = "BYTES"
        data: list[Any] = [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in array.reshape(-1)
        ]
    else:
        found = next(
            (oip for oip, dtype in ORT_TO_OIP.values() if np.dtype(dtype) == array.dtype), None
        )
        if found is None:
            raise ValueError(f"output {name!r} has unsupported dtype {array.dtype}")
        datatype = found
        data = array.reshape(-1).tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def requested_outputs(data: Mapping[str, Any], available: Sequence[str]) -> list[str]:
    """The output names a request asks for (all tensor outputs when it names none)."""
    wanted = data.get("outputs")
    if wanted is None:
        return list(available)
    if not isinstance(wanted, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in wanted
    ):
        raise BadRequest("'outputs' must be a list of objects with a 'name'")
    names = [o["name"] for o in wanted]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise BadRequest(
            f"unknown output(s) {', '.join(repr(u) for u in unknown)}; "
            f"the model has {', '.join(available)}"
        )
    return names or list(available)
