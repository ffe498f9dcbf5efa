"""The protocol's pure functions: every datatype's range, JSON and binary decoding against
tritonclient's own encoders, the binary layout of answers, and classification."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from mlci.serve.protocol import (
    BY_NAME,
    DATATYPES,
    BadRequest,
    Datatype,
    InferenceRequest,
    OutputRequest,
    TensorSpec,
    classify,
    encode_response,
    header_length,
    parse_request,
)

INTEGERS = [d for d in DATATYPES if d.kind in "iu"]
FLOATS = [d for d in DATATYPES if d.kind == "f"]


def spec(name: str) -> TensorSpec:
    return TensorSpec("x", BY_NAME[name], (-1,))


def parse_json(datatype: str, values: list[object]) -> np.ndarray:
    body = json.dumps(
        {"inputs": [{"name": "x", "datatype": datatype, "shape": [len(values)], "data": values}]}
    ).encode()
    return parse_request(body, None, [spec(datatype)], [spec(datatype)]).feeds["x"]


def parse_binary(datatype: str, count: int, blob: bytes) -> np.ndarray:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": datatype,
                    "shape": [count],
                    "parameters": {"binary_data_size": len(blob)},
                }
            ]
        }
    ).encode()
    return parse_request(header + blob, len(header), [spec(datatype)], [spec(datatype)]).feeds["x"]


@pytest.mark.parametrize("datatype", INTEGERS, ids=lambda d: d.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_integers_are_exact_within_range_and_refused_outside(
    datatype: Datatype, data: st.DataObject
) -> None:
    info = np.iinfo(datatype.dtype)
    inside = data.draw(st.lists(st.integers(int(info.min), int(info.max)), max_size=5))
    assert parse_json(datatype.name, list(inside)).tolist() == inside
    outside = data.draw(
        st.one_of(
            st.integers(max_value=int(info.min) - 1), st.integers(min_value=int(info.max) + 1)
        )
    )
    with pytest.raises(BadRequest, match=rf"is {datatype.name}: .* out of range"):
        parse_json(datatype.name, [*inside, outside])


@pytest.mark.parametrize("datatype", FLOATS, ids=lambda d: d.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_floats_within_range_and_refused_outside(datatype: Datatype, data: st.DataObject) -> None:
    limit = float(np.finfo(datatype.dtype).max)
    inside = data.draw(st.lists(st.floats(-limit, limit), max_size=5))
    got = parse_json(datatype.name, list(inside))
    assert got.dtype == datatype.dtype.newbyteorder("=")
    np.testing.assert_array_equal(got, np.array(inside, dtype=np.float64).astype(datatype.dtype))
    if datatype.name != "FP64":  # beyond FP64 is beyond JSON numbers: the parser refuses it
        beyond = data.draw(st.floats(min_value=limit * 1.0001, max_value=1e300))
        sign = data.draw(st.sampled_from([1.0, -1.0]))
        with pytest.raises(BadRequest, match="out of range"):
            parse_json(datatype.name, [*inside, sign * beyond])
    for bad in (float("nan"), float("inf"), -float("inf")):
        blob = np.array([bad], dtype=datatype.dtype).tobytes()
        with pytest.raises(BadRequest, match="not a finite number"):
            parse_binary(datatype.name, 1, blob)


def test_numbers_of_the_wrong_kind_are_refused() -> None:
    with pytest.raises(BadRequest, match="1.5 is not an integer"):
        parse_json("INT32", [1, 1.5])
    with pytest.raises(BadRequest, match="True is not an integer"):
        parse_json("INT64", [True])
    with pytest.raises(BadRequest, match="'1' is not a number"):
        parse_json("FP32", ["1"])
    with pytest.raises(BadRequest, match="every value must be true or false"):
        parse_json("BOOL", [1, 0])
    with pytest.raises(BadRequest, match="binary values must be bytes 0 or 1"):
        parse_binary("BOOL", 2, b"\x01\x02")


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.text(max_size=20), max_size=6),
    cut=st.integers(1, 3),
)
def test_bytes_tensors_read_what_tritonclient_writes(values: list[str], cut: int) -> None:
    array = np.array(values, dtype=object)
    blob = serialize_byte_tensor(array).item() if values else b""
    assert parse_binary("BYTES", len(values), blob).tolist() == values
    if blob:
        with pytest.raises(BadRequest, match="length-prefixed strings"):
            parse_binary("BYTES", len(values), blob[:-cut] if len(blob) >= cut else b"")
        with pytest.raises(BadRequest, match="length-prefixed strings"):
            parse_binary("BYTES", len(values), blob + b"\0")


def test_binary_sizes_must_match_the_shape_and_the_body() -> None:
    with pytest.raises(BadRequest, match="needs 12"):
        parse_binary("FP32", 3, b"\0" * 8)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1],
                    "parameters": {"binary_data_size": 4},
                }
            ]
        }  # fmt: skip
    ).encode()
    blob = struct.pack("<f", 1.5)
    with pytest.raises(BadRequest, match="2 bytes of binary data that no input declares"):
        parse_request(header + blob + b"!!", len(header), [spec("FP32")], [spec("FP32")])
    with pytest.raises(BadRequest, match="only 4 bytes"):
        parse_request(header[:4], len(header), [spec("FP32")], [spec("FP32")])
    # A binary tensor that starts at an odd offset is still read correctly (aligned copy).
    feeds = parse_request(header + blob, len(header), [spec("FP32")], [spec("FP32")]).feeds
    assert feeds["x"].tolist() == [1.5] and feeds["x"].flags.aligned


@pytest.mark.parametrize("text", ["-1", "abc", "1.5", " ", "１２"])
def test_header_length_must_be_a_non_negative_integer(text: str) -> None:
    with pytest.raises(BadRequest, match="Inference-Header-Content-Length"):
        header_length(text)


def test_header_length_reads_digits() -> None:
    assert header_length(None) is None and header_length(" 42 ") == 42


def test_binary_answers_are_laid_out_as_the_extension_says() -> None:
    labels = np.array(["yes", "ño"], dtype=object)
    proba = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    outputs = (
        OutputRequest(TensorSpec("label", BY_NAME["BYTES"], (-1,)), binary=True),
        OutputRequest(TensorSpec("p", BY_NAME["FP32"], (-1, 2)), binary=True),
        OutputRequest(TensorSpec("q", BY_NAME["FP32"], (-1, 2)), binary=False),
    )
    request = InferenceRequest({}, outputs, "r")
    body, size = encode_response("m", "2", request, [labels, proba, proba])
    assert size is not None
    document = json.loads(body[:size])
    assert (document["model_name"], document["model_version"], document["id"]) == ("m", "2", "r")
    first, second, third = document["outputs"]
    blob = body[size:]
    cut = first["parameters"]["binary_data_size"]
    assert [v.decode() for v in deserialize_bytes_tensor(blob[:cut])] == ["yes", "ño"]
    assert second["parameters"]["binary_data_size"] == len(blob) - cut == 16
    np.testing.assert_array_equal(np.frombuffer(blob[cut:], "<f4").reshape(2, 2), proba)
    assert third["data"] == [0.25, 0.75, 0.5, 0.5] and third["shape"] == [2, 2]
    body, size = encode_response("m", "2", InferenceRequest({}, outputs[2:]), [proba])
    assert size is None and "id" not in json.loads(body)


def test_classification_keeps_the_k_largest_in_order() -> None:
    values = np.array([[0.1, 0.7, 0.2], [0.3, 0.3, 0.4]], dtype=np.float32)
    assert classify(values, 2).tolist() == [["0.7:1", "0.2:2"], ["0.4:2", "0.3:0"]]
    assert classify(values, 9).shape == (2, 3)  # at most the number of classes
    assert classify(np.array([[3, 9]], dtype=np.int64), 1).tolist() == [["9:1"]]
