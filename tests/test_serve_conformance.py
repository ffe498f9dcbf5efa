"""A stock Open Inference Protocol client against mlci.serve: tritonclient's HTTP client with
its defaults (the binary tensor data extension) and with JSON tensors, checked against the
same model run in-process; every datatype round-trips through an echo model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from serve_client import check, inputs_for
from tritonclient.utils import InferenceServerException

from mlci.models.interface import Predictions
from mlci.models.onnx import OnnxModel
from mlci.serve import InferenceServer, ModelRunner, ServeOptions
from project import FEATURES, Project, make_frame

OPTIONS = ServeOptions(host="127.0.0.1", port=0)
DATATYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


@pytest.fixture(scope="module")
def server(built_project: Project) -> Iterator[InferenceServer]:
    runner = ModelRunner(built_project.root / "models" / "candidate.onnx", "demo")
    with InferenceServer(runner, OPTIONS).running() as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: InferenceServer) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    yield client
    client.close()


def expected(project: Project, frame: dict[str, np.ndarray]) -> Predictions:
    return OnnxModel(project.root / "models" / "candidate.onnx").predict(
        {k: frame[k] for k in FEATURES}
    )


def test_defaults_use_binary_data_both_ways(
    client: triton.InferenceServerClient, built_project: Project
) -> None:
    frame = make_frame(200, seed=31)
    tensors = inputs_for(client, frame, binary=None)
    assert all("binary_data_size" in t._get_tensor()["parameters"] for t in tensors)
    result = client.infer("demo", tensors, request_id="r-1")
    response = result.get_response()
    assert response["id"] == "r-1" and response["model_version"] == "1"
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
    check(result, expected(built_project, frame))


def test_json_tensors_both_ways(
    client: triton.InferenceServerClient, built_project: Project
) -> None:
    frame = make_frame(150, seed=32)
    outputs = [
        triton.InferRequestedOutput("label", binary_data=False),
        triton.InferRequestedOutput("probabilities", binary_data=False),
    ]
    result = client.infer("demo", inputs_for(client, frame, binary=False), outputs=outputs)
    assert all("data" in o for o in result.get_response()["outputs"])
    check(result, expected(built_project, frame))


def test_mixed_binary_and_json_and_a_version(
    client: triton.InferenceServerClient, built_project: Project
) -> None:
    frame = make_frame(40, seed=33)
    tensors = inputs_for(client, frame, binary=True)
    region = next(t for t in tensors if t.name() == "region")
    region.set_data_from_numpy(frame["region"].reshape(-1, 1).astype(object), binary_data=False)
    outputs = [
        triton.InferRequestedOutput("probabilities", binary_data=True),
        triton.InferRequestedOutput("label", binary_data=False),
    ]
    result = client.infer("demo", tensors, model_version="1", outputs=outputs)
    check(result, expected(built_project, frame))


def test_classification_extension(
    client: triton.InferenceServerClient, built_project: Project
) -> None:
    frame = make_frame(30, seed=34)
    for binary in (True, False):
        outputs = [triton.InferRequestedOutput("probabilities", binary, class_count=2)]
        result = client.infer("demo", inputs_for(client, frame, binary), outputs=outputs)
        top = result.as_numpy("probabilities")
        assert top.shape == (30, 2)
        proba = expected(built_project, frame).proba
        assert proba is not None
        for row, entries in zip(proba, top, strict=True):
            pairs = [e.decode() if isinstance(e, bytes) else e for e in entries]
            values = [float(p.split(":")[0]) for p in pairs]
            indexes = [int(p.split(":")[1]) for p in pairs]
            assert indexes == list(np.argsort(-row, kind="stable"))
            np.testing.assert_allclose(values, row[indexes], rtol=0, atol=1e-6)
    label = [triton.InferRequestedOutput("label", class_count=1)]
    with pytest.raises(InferenceServerException, match="'label' cannot be classified"):
        client.infer("demo", inputs_for(client, frame, True), outputs=label)


def test_metadata_readiness_and_errors(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("demo") and client.is_model_ready("demo", "1")
    assert not client.is_model_ready("demo", "2") and not client.is_model_ready("other")
    server = client.get_server_metadata()
    assert {"binary_tensor_data", "classification"} <= set(server["extensions"])
    metadata = client.get_model_metadata("demo", "1")
    assert metadata["versions"] == ["1"] and metadata["platform"] == "onnxruntime_onnx"
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [
        ("age", "FP32"), ("income", "FP32"), ("region", "BYTES"), ("tenure", "FP32")
    ]  # fmt: skip
    with pytest.raises(InferenceServerException) as wrong_version:
        client.get_model_metadata("demo", "2")
    assert wrong_version.value.status() == "404"
    assert "no version '2'" in wrong_version.value.message()
    frame = make_frame(3, seed=35)
    with pytest.raises(InferenceServerException) as wrong_version:
        client.infer("demo", inputs_for(client, frame, None), model_version="2")
    assert "no version '2'" in wrong_version.value.message()
    bad = triton.InferInput("age", [3, 1], "FP64")
    bad.set_data_from_numpy(frame["age"].reshape(-1, 1))
    tensors = [bad, *inputs_for(client, frame, None)[1:]]
    with pytest.raises(InferenceServerException, match="datatype 'FP64'; the model expects FP32"):
        client.infer("demo", tensors)


# --------------------------------------------------------------------------- every datatype


def echo_model(path: Path) -> Path:
    """An ONNX model whose outputs are its inputs, one of each datatype, shape [n, 3]."""
    import onnx
    from onnx import TensorProto, helper

    kinds = {
        "BOOL": TensorProto.BOOL, "UINT8": TensorProto.UINT8, "UINT16": TensorProto.UINT16,
        "UINT32": TensorProto.UINT32, "UINT64": TensorProto.UINT64, "INT8": TensorProto.INT8,
        "INT16": TensorProto.INT16, "INT32": TensorProto.INT32, "INT64": TensorProto.INT64,
        "FP16": TensorProto.FLOAT16, "FP32": TensorProto.FLOAT, "FP64": TensorProto.DOUBLE,
        "BYTES": TensorProto.STRING,
    }  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node("Identity", [f"in_{k}"], [f"out_{k}"]) for k in kinds],
        "echo",
        [helper.make_tensor_value_info(f"in_{k}", v, ["n", 3]) for k, v in kinds.items()],
        [helper.make_tensor_value_info(f"out_{k}", v, ["n", 3]) for k, v in kinds.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton.InferenceServerClient]:
    model = echo_model(tmp_path_factory.mktemp("echo") / "echo.onnx")
    with InferenceServer(ModelRunner(model, "echo"), OPTIONS).running() as srv:
        client = triton.InferenceServerClient(f"127.0.0.1:{srv.port}")
        yield client
        client.close()


def _arrays(rows: int) -> st.SearchStrategy[dict[str, np.ndarray]]:
    shape = (rows, 3)
    strategies: dict[str, st.SearchStrategy[np.ndarray]] = {}
    for name, dtype in DATATYPES.items():
        if name == "BYTES":
            strategies[name] = hnp.arrays(object, shape, elements=st.text(max_size=12))
        elif name.startswith("FP"):
            width = {"FP16": 16, "FP32": 32, "FP64": 64}[name]
            elements = st.floats(allow_nan=False, allow_infinity=False, width=width)  # type: ignore[arg-type]
            strategies[name] = hnp.arrays(dtype, shape, elements=elements)
        else:
            strategies[name] = hnp.arrays(dtype, shape)  # the full range, extremes included
    return st.fixed_dictionaries(strategies)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.integers(0, 4).flatmap(_arrays), binary=st.booleans())
def test_every_datatype_round_trips(
    echo: triton.InferenceServerClient, data: dict[str, np.ndarray], binary: bool
) -> None:
    tensors = []
    for name, array in data.items():
        tensor = triton.InferInput(f"in_{name}", list(array.shape), name)
        tensor.set_data_from_numpy(array, binary_data=binary)
        tensors.append(tensor)
    outputs = [triton.InferRequestedOutput(f"out_{n}", binary_data=binary) for n in data]
    result = echo.infer("echo", tensors, outputs=outputs)
    for name, array in data.items():
        got = result.as_numpy(f"out_{name}")
        assert got.shape == array.shape
        if name == "BYTES":
            decoded = [v.decode() if isinstance(v, bytes) else v for v in got.reshape(-1)]
            assert decoded == list(array.reshape(-1))
        else:
            assert got.dtype == np.dtype(DATATYPES[name])
            np.testing.assert_array_equal(got, array)
