"""The Open Inference Protocol (KServe v2) tensor formats, checked against a model.

Pure functions of bytes and numpy arrays, no I/O:

- ``parse_request`` turns a request body (JSON, or JSON followed by binary tensor data as
  the binary data extension lays it out) into ONNX Runtime feeds and the outputs asked for,
  or raises ``BadRequest`` with one line saying what is wrong;
- ``encode_response`` turns output arrays into a response body, JSON or with binary data,
  applying the classification extension where an output asks for it.

Every value is checked against its datatype: integers must fit, floats must be finite and
within the type's range, strings must be UTF-8. JSON nesting is bounded by the parser
(1024 levels) and then must match the tensor's shape exactly.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson


class BadRequest(Exception):
    """A request the server refuses; ``status`` is the HTTP status (400 unless said)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Datatype:
    """One OIP tensor datatype: its ONNX Runtime element type and little-endian numpy dtype."""

    name: str  # "FP32"
    ort: str  # "tensor(float)"
    dtype: np.dtype[Any]

    @property
    def kind(self) -> str:
        """``f`` (float), ``i`` (signed), ``u`` (unsigned), ``b`` (bool) or ``O`` (BYTES)."""
        return self.dtype.kind


# The one table of datatypes: OIP name, ONNX Runtime type, wire dtype (little-endian).
DATATYPES: tuple[Datatype, ...] = (
    Datatype("BOOL", "tensor(bool)", np.dtype("?")),
    Datatype("UINT8", "tensor(uint8)", np.dtype("<u1")),
    Datatype("UINT16", "tensor(uint16)", np.dtype("<u2")),
    Datatype("UINT32", "tensor(uint32)", np.dtype("<u4")),
    Datatype("UINT64", "tensor(uint64)", np.dtype("<u8")),
    Datatype("INT8", "tensor(int8)", np.dtype("<i1")),
    Datatype("INT16", "tensor(int16)", np.dtype("<i2")),
    Datatype("INT32", "tensor(int32)", np.dtype("<i4")),
    Datatype("INT64", "tensor(int64)", np.dtype("<i8")),
    Datatype("FP16", "tensor(float16)", np.dtype("<f2")),
    Datatype("FP32", "tensor(float)", np.dtype("<f4")),
    Datatype("FP64", "tensor(double)", np.dtype("<f8")),
    Datatype("BYTES", "tensor(string)", np.dtype("O")),
)
BY_NAME = {d.name: d for d in DATATYPES}
BY_ORT = {d.ort: d for d in DATATYPES}
_BY_DTYPE = {d.dtype.newbyteorder("="): d for d in DATATYPES if d.kind != "O"}
_FLOAT_LIMITS = {d.name: float(np.finfo(d.dtype).max) for d in DATATYPES if d.kind == "f"}

# Parameters this server reads; others in a request are ignored, except shared memory.
_SHARED_MEMORY = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")
OUTPUT_PARAMETERS = ("binary_data", "classification")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, datatype and shape (-1 for any size)."""

    name: str
    datatype: Datatype
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        """The tensor metadata entry of ``GET /v2/models/{name}``."""
        return {"name": self.name, "datatype": self.datatype.name, "shape": list(self.shape)}


def spec_from_ort(node: Any) -> TensorSpec | None:
    """A TensorSpec for an ONNX Runtime NodeArg, or None when it is not a tensor."""
    datatype = BY_ORT.get(node.type)
    if datatype is None:
        return None
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or []))
    return TensorSpec(node.name, datatype, shape)


@dataclass(frozen=True)
class OutputRequest:
    """One output a request asks for: binary or JSON data, and top-k classification."""

    spec: TensorSpec
    binary: bool
    class_count: int = 0  # 0: the tensor itself


@dataclass(frozen=True)
class InferenceRequest:
    """A checked inference request: feeds for ONNX Runtime and the outputs wanted."""

    feeds: dict[str, np.ndarray]
    outputs: tuple[OutputRequest, ...]
    id: str | None = None

    @property
    def rows(self) -> int:
        """The first dimension of the inputs (1 for scalars)."""
        return next((int(v.shape[0]) for v in self.feeds.values() if v.ndim), 1)


# --------------------------------------------------------------------------- requests


def header_length(value: str | None) -> int | None:
    """The ``Inference-Header-Content-Length`` header as a byte count (None when absent)."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise BadRequest(
            f"Inference-Header-Content-Length {value[:40]!r} is not a non-negative integer"
        )
    return int(text)


def parse_request(
    body: bytes,
    json_length: int | None,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
) -> InferenceRequest:
    """Check an inference request body against the model's inputs and outputs.

    ``json_length`` is the ``Inference-Header-Content-Length``: the first that many bytes
    are the JSON request and the rest is binary tensor data, in the order of the inputs
    that declare a ``binary_data_size``.
    """
    document: bytes | memoryview
    if json_length is None:
        document, binary = body, memoryview(b"")
    else:
        if json_length > len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length is {json_length} but the body has only "
                f"{len(body)} bytes"
            )
        view = memoryview(body)
        document, binary = view[:json_length], view[json_length:]
    data = _parse_json(document)
    request_id = data.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    parameters = _parameters(data, "the request")
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise BadRequest("parameter 'binary_data_output' must be true or false")
    feeds = _decode_inputs(data.get("inputs"), inputs, binary, json_length is not None)
    wanted = _requested_outputs(data.get("outputs"), outputs, binary_output)
    return InferenceRequest(feeds, wanted, request_id)


def _parse_json(document: bytes | memoryview) -> dict[str, Any]:
    if not len(document):
        raise BadRequest("the request has no body; send the inference request as JSON")
    try:
        data = orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        # orjson's messages name the problem and its position; they hold no Python detail.
        # Besides syntax, it refuses nesting over 1024 levels and numbers beyond a double.
        hint = ""
        if b"binary_data_size" in document:
            hint = "; binary tensor data needs an Inference-Header-Content-Length header"
        raise BadRequest(f"cannot read the request as JSON ({exc}){hint}") from None
    if not isinstance(data, dict):
        raise BadRequest("the request must be a JSON object with an 'inputs' list")
    return data


def _parameters(holder: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    parameters = holder.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise BadRequest(f"'parameters' of {where} must be an object")
    return parameters


def _decode_inputs(
    given: Any, specs: Sequence[TensorSpec], binary: memoryview, has_header: bool
) -> dict[str, np.ndarray]:
    if not isinstance(given, list) or not given:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    by_name = {spec.name: spec for spec in specs}
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for i, tensor in enumerate(given):
        if not isinstance(tensor, dict):
            raise BadRequest(f"inputs[{i}] must be an object with name, shape, datatype, data")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"inputs[{i}] has no 'name'")
        spec = by_name.get(name)
        if spec is None:
            raise BadRequest(
                f"unknown input {name[:100]!r}; the model takes {', '.join(sorted(by_name))}"
            )
        if name in feeds:
            raise BadRequest(f"input {name!r} is given twice")
        shape = _check_header(tensor, spec)
        size = _binary_size(tensor, spec)
        if size is None:
            if "data" not in tensor:
                raise BadRequest(f"input {name!r} has neither 'data' nor binary_data_size")
            feeds[name] = from_json(tensor["data"], spec, shape)
            continue
        if not has_header:
            raise BadRequest(
                f"input {name!r} declares binary_data_size but the request has no "
                "Inference-Header-Content-Length header"
            )
        if "data" in tensor:
            raise BadRequest(f"input {name!r} has both 'data' and binary_data_size")
        if offset + size > len(binary):
            raise BadRequest(
                f"input {name!r} declares {size} bytes of binary data but only "
                f"{len(binary) - offset} remain in the body"
            )
        feeds[name] = from_binary(binary[offset : offset + size], spec, shape)
        offset += size
    if offset != len(binary):
        raise BadRequest(
            f"the body has {len(binary) - offset} bytes of binary data that no input declares"
        )
    missing = [spec.name for spec in specs if spec.name not in feeds]
    if missing:
        raise BadRequest(f"missing input(s) {', '.join(repr(m) for m in missing)}")
    return feeds


def _check_header(tensor: Mapping[str, Any], spec: TensorSpec) -> list[int]:
    name = spec.name
    datatype = tensor.get("datatype")
    if datatype != spec.datatype.name:
        shown = datatype[:20] if isinstance(datatype, str) else datatype
        raise BadRequest(
            f"input {name!r} has datatype {shown!r}; the model expects {spec.datatype.name}"
        )
    shape = tensor.get("shape")
    if type(shape) is not list:
        raise BadRequest(f"input {name!r}: 'shape' must be a list of non-negative integers")
    fits = len(shape) == len(spec.shape)
    for want, got in zip(spec.shape, shape, strict=False):  # a rank mismatch fails below
        if type(got) is not int or got < 0:
            raise BadRequest(f"input {name!r}: 'shape' must be a list of non-negative integers")
        fits = fits and (want == -1 or want == got)
    if not fits:
        raise BadRequest(
            f"input {name!r} has shape {shape[:8]}; the model expects {list(spec.shape)} "
            "(-1: any size)"
        )
    return shape


def _binary_size(tensor: Mapping[str, Any], spec: TensorSpec) -> int | None:
    if "parameters" not in tensor:
        return None
    parameters = _parameters(tensor, f"input {spec.name!r}")
    if any(key in parameters for key in _SHARED_MEMORY):
        raise BadRequest(f"input {spec.name!r}: shared memory is not supported by this server")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise BadRequest(
            f"input {spec.name!r}: binary_data_size must be a non-negative integer, not {size!r}"
        )
    return size


def from_json(data: Any, spec: TensorSpec, shape: list[int]) -> np.ndarray:
    """A JSON tensor's data (flat, or nested exactly as ``shape``) as an array."""
    name = spec.name
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r}: 'data' must be a list (flat or nested, row-major)")
    count = math.prod(shape)
    flat = data
    types = set(map(type, flat))
    if list in types and shape:
        # Nested: one level per dimension, each list as long as its dimension.
        level: list[Any] = [data]
        for depth, size in enumerate(shape):
            if set(map(type, level)) != {list} or set(map(len, level)) - {size}:
                raise BadRequest(
                    f"input {name!r}: nested 'data' does not match shape {shape} "
                    f"at depth {depth + 1}"
                )
            level = list(chain.from_iterable(level))
        flat = level
        types = set(map(type, flat))
        if list in types:
            raise BadRequest(f"input {name!r}: 'data' is nested deeper than shape {shape}")
    if len(flat) != count:
        raise BadRequest(f"input {name!r} has {len(flat)} value(s) but shape {shape} needs {count}")
    return _to_array(flat, types, spec).reshape(shape)


_NUMBERS = {int, float}


def _to_array(flat: list[Any], types: set[type], spec: TensorSpec) -> np.ndarray:
    name, datatype = spec.name, spec.datatype
    kind = datatype.kind
    if kind == "O":
        if not types <= {str}:
            raise BadRequest(f"input {name!r} is BYTES: every value must be a string")
        return np.array(flat, dtype=object)
    if kind == "b":
        if not types <= {bool}:
            raise BadRequest(f"input {name!r} is BOOL: every value must be true or false")
        return np.array(flat, dtype=np.bool_)
    if kind in "iu":
        if not types <= {int}:
            bad = next(v for v in flat if type(v) is not int)
            if type(bad) is float and bad.is_integer():
                raise BadRequest(f"input {name!r} is {datatype.name}: {bad!r} is out of range")
            raise BadRequest(f"input {name!r} is {datatype.name}: {bad!r} is not an integer")
        try:
            wide = np.array(flat, dtype=np.uint64 if kind == "u" else np.int64)
        except OverflowError:
            wide = None
        info = np.iinfo(datatype.dtype)
        if wide is None or (wide.size and (wide.min() < info.min or wide.max() > info.max)):
            bad = next(v for v in flat if not info.min <= v <= info.max)
            raise BadRequest(
                f"input {name!r} is {datatype.name}: {bad} is out of range [{info.min}, {info.max}]"
            )
        return wide.astype(datatype.dtype, copy=False)
    if not types <= _NUMBERS:
        bad = next(v for v in flat if type(v) not in _NUMBERS)
        raise BadRequest(f"input {name!r} is {datatype.name}: {bad!r} is not a number")
    try:
        wide = np.array(flat, dtype=np.float64)
    except OverflowError:  # an integer beyond any float
        raise BadRequest(f"input {name!r} is {datatype.name}: a value is out of range") from None
    # JSON numbers are finite doubles already; narrower types need a range check.
    limit = _FLOAT_LIMITS[datatype.name]
    if flat and limit < _FLOAT_LIMITS["FP64"] and not -limit <= min(flat) <= max(flat) <= limit:
        _check_floats(wide, spec)
    return wide.astype(datatype.dtype, copy=False)


def _check_floats(values: np.ndarray, spec: TensorSpec) -> None:
    """Every value finite and within the datatype's range."""
    datatype = spec.datatype
    if not values.size:
        return
    limit = _FLOAT_LIMITS[datatype.name]
    low, high = float(values.min()), float(values.max())  # NaN propagates to both
    if -limit <= low and high <= limit:
        return
    flat = values.reshape(-1).astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = flat[int(np.argmin(np.abs(flat) <= limit))]
    what = "not a finite number" if not np.isfinite(bad) else "out of range"
    raise BadRequest(
        f"input {spec.name!r} is {datatype.name}: {float(bad)!r} is {what} "
        f"(largest magnitude {limit:g})"
    )


def from_binary(raw: memoryview, spec: TensorSpec, shape: list[int]) -> np.ndarray:
    """Binary tensor data (little-endian, row-major; BYTES as 4-byte length + bytes)."""
    name, datatype = spec.name, spec.datatype
    count = math.prod(shape)
    if datatype.kind == "O":
        return _bytes_tensor(raw, spec, count).reshape(shape)
    expected = count * datatype.dtype.itemsize
    if len(raw) != expected:
        raise BadRequest(
            f"input {name!r} declares {len(raw)} bytes of binary data but shape {shape} of "
            f"{datatype.name} needs {expected}"
        )
    array = np.frombuffer(raw, dtype=datatype.dtype)
    if datatype.kind == "b" and array.size and array.view(np.uint8).max() > 1:
        raise BadRequest(f"input {name!r} is BOOL: binary values must be bytes 0 or 1")
    if datatype.kind == "f":
        _check_floats(array, spec)
    # ONNX Runtime reads native-endian, aligned memory; frombuffer of a slice may be neither.
    return np.require(
        array.astype(datatype.dtype.newbyteorder("="), copy=False), requirements="A"
    ).reshape(shape)


def _bytes_tensor(raw: memoryview, spec: TensorSpec, count: int) -> np.ndarray:
    values: list[str] = []
    offset, end = 0, len(raw)
    for _ in range(count):
        if offset + 4 > end:
            break
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > end:
            offset = end + 1
            break
        try:
            values.append(str(raw[offset : offset + size], "utf-8"))
        except UnicodeDecodeError:
            raise BadRequest(
                f"input {spec.name!r} is BYTES: element {len(values)} is not UTF-8"
            ) from None
        offset += size
    if len(values) != count or offset != end:
        raise BadRequest(
            f"input {spec.name!r}: {len(raw)} bytes of binary data do not hold exactly {count} "
            "length-prefixed strings"
        )
    return np.array(values, dtype=object)


def _requested_outputs(
    wanted: Any, specs: Sequence[TensorSpec], binary_default: bool
) -> tuple[OutputRequest, ...]:
    if wanted is None:
        return tuple(OutputRequest(spec, binary_default) for spec in specs)
    if not isinstance(wanted, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in wanted
    ):
        raise BadRequest("'outputs' must be a list of objects with a 'name'")
    by_name = {spec.name: spec for spec in specs}
    chosen: list[OutputRequest] = []
    for entry in wanted:
        name = entry["name"]
        spec = by_name.get(name)
        if spec is None:
            raise BadRequest(f"unknown output {name[:100]!r}; the model has {', '.join(by_name)}")
        if any(c.spec.name == name for c in chosen):
            raise BadRequest(f"output {name!r} is asked for twice")
        parameters = _parameters(entry, f"output {name!r}")
        unknown = sorted(set(parameters) - set(OUTPUT_PARAMETERS))
        if unknown:
            raise BadRequest(
                f"output {name!r}: unsupported parameter {unknown[0][:40]!r} (this server "
                f"reads {', '.join(OUTPUT_PARAMETERS)})"
            )
        binary = parameters.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise BadRequest(f"output {name!r}: binary_data must be true or false")
        classes = parameters.get("classification", 0)
        if type(classes) is not int or classes < 0:
            raise BadRequest(f"output {name!r}: classification must be a non-negative integer")
        if classes and (len(spec.shape) < 2 or spec.datatype.kind not in "fiu"):
            raise BadRequest(
                f"output {name!r} cannot be classified: the classification extension needs "
                f"a numeric [batch, classes] output and {name!r} is {spec.datatype.name} "
                f"{list(spec.shape)}"
            )
        chosen.append(OutputRequest(spec, binary, classes))
    return tuple(chosen) or tuple(OutputRequest(spec, binary_default) for spec in specs)


# --------------------------------------------------------------------------- responses


def classify(values: np.ndarray, class_count: int) -> np.ndarray:
    """The classification extension: per row, the ``class_count`` largest values as
    ``"value:index"`` strings, largest first (a ``[batch, k]`` BYTES tensor)."""
    rows = values.reshape(values.shape[0], -1)
    k = min(class_count, rows.shape[1])
    # A stable sort of the negated values keeps the lower index first among ties.
    order = np.argsort(-rows.astype(np.float64), axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(rows, order, axis=1)
    # str() of a numpy scalar is the shortest text that reads back as the same value.
    labels = [
        f"{value!s}:{index}"
        for value, index in zip(top.reshape(-1), order.reshape(-1).tolist(), strict=True)
    ]
    return np.array(labels, dtype=object).reshape(rows.shape[0], k)


def datatype_of(array: np.ndarray) -> Datatype:
    """The OIP datatype of an output array (strings and objects are BYTES)."""
    if array.dtype.kind in "OUS":
        return BY_NAME["BYTES"]
    found = _BY_DTYPE.get(array.dtype.newbyteorder("="))
    if found is None:
        raise ValueError(f"outputs of dtype {array.dtype} have no Open Inference Protocol type")
    return found


def _strings(array: np.ndarray) -> list[str]:
    return [
        v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        for v in array.reshape(-1).tolist()
    ]


def tensor_bytes(array: np.ndarray) -> bytes:
    """An array in the binary data extension's layout."""
    if array.dtype.kind in "OUS":
        parts: list[bytes] = []
        for text in _strings(array):
            encoded = text.encode("utf-8")
            parts += (struct.pack("<I", len(encoded)), encoded)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def encode_response(
    model: str,
    version: str,
    request: InferenceRequest,
    values: Sequence[np.ndarray],
) -> tuple[bytes, int | None]:
    """The response body for output ``values`` (in the order of ``request.outputs``), and
    the length of its JSON part when binary data follows it (else None)."""
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for wanted, value in zip(request.outputs, values, strict=True):
        array = np.asarray(value)
        if wanted.class_count:
            array = classify(array, wanted.class_count)
        entry: dict[str, Any] = {
            "name": wanted.spec.name,
            "datatype": datatype_of(array).name,
            "shape": list(array.shape),
        }
        if wanted.binary:
            blob = tensor_bytes(array)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif array.dtype.kind in "OUS":
            entry["data"] = _strings(array)
        else:
            entry["data"] = np.ascontiguousarray(array.reshape(-1))
        tensors.append(entry)
    response: dict[str, Any] = {"model_name": model, "model_version": version}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = tensors
    document = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return document, None
    return b"".join((document, *blobs)), len(document)


def dumps(data: Any) -> bytes:
    """Compact JSON."""
    return orjson.dumps(data)


def error_body(message: str) -> bytes:
    """The protocol's error response: ``{"error": "..."}``."""
    return orjson.dumps({"error": message})
