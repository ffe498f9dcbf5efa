"""The serving runtime: Open Inference Protocol endpoints, validation, metrics, shutdown."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlci.models.onnx import OnnxModel
from mlci.serve.server import InferenceServer, ModelLoadError, ModelRunner
from project import FEATURES, Project, make_frame

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(built_project: Project) -> Iterator[InferenceServer]:
    runner = ModelRunner(built_project.root / "models" / "candidate.onnx", "demo")
    srv = InferenceServer(("127.0.0.1", 0), runner, max_body_bytes=1 << 20)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield srv
    srv.stop()
    thread.join(10)
    srv.drain(5)
    srv.server_close()


def call(
    srv: InferenceServer, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data)
    response = conn.getresponse()
    payload = response.read()
    headers = dict(response.getheaders())
    conn.close()
    if headers.get("Content-Type", "").startswith("application/json"):
        return response.status, json.loads(payload), headers
    return response.status, payload.decode(), headers


def request_for(frame: dict[str, np.ndarray], nested: bool = False) -> dict[str, Any]:
    inputs = []
    for name in FEATURES:
        column = frame[name]
        n = len(column)
        if name == "region":
            values: list[Any] = [str(v) for v in column]
            datatype = "BYTES"
        else:
            values = [float(v) for v in column]
            datatype = "FP32"
        data: list[Any] = [[v] for v in values] if nested else values
        inputs.append({"name": name, "datatype": datatype, "shape": [n, 1], "data": data})
    return {"id": "req-1", "inputs": inputs}


def test_health_and_metadata(server: InferenceServer) -> None:
    assert call(server, "GET", "/v2/health/live")[:2] == (200, {"live": True})
    assert call(server, "GET", "/v2/health/ready")[:2] == (200, {"ready": True})
    status, meta, _ = call(server, "GET", "/v2")
    assert status == 200 and meta["name"] == "mlci-serve"
    status, model, _ = call(server, "GET", "/v2/models/demo")
    assert status == 200
    assert model["name"] == "demo" and model["platform"] == "onnxruntime_onnx"
    assert [i["name"] for i in model["inputs"]] == FEATURES
    assert {i["name"]: i["datatype"] for i in model["inputs"]}["region"] == "BYTES"
    assert model["inputs"][0]["shape"] == [-1, 1]
    assert [o["name"] for o in model["outputs"]] == ["label", "probabilities"]
    assert call(server, "GET", "/v2/models/demo/versions/1")[0] == 200
    assert call(server, "GET", "/v2/models/demo/ready")[:2] == (
        200,
        {"name": "demo", "ready": True},
    )


def test_infer_matches_mlci_evaluation(server: InferenceServer, built_project: Project) -> None:
    frame = make_frame(300, seed=11)
    expected = OnnxModel(built_project.root / "models" / "candidate.onnx").predict(
        {k: frame[k] for k in FEATURES}
    )
    for nested in (False, True):
        status, body, _ = call(server, "POST", "/v2/models/demo/infer", request_for(frame, nested))
        assert status == 200, body
        assert body["model_name"] == "demo" and body["id"] == "req-1"
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["label"]["datatype"] == "INT64" and outputs["label"]["shape"] == [300]
        np.testing.assert_array_equal(np.array(outputs["label"]["data"]), expected.labels)
        proba = outputs["probabilities"]
        assert proba["datatype"] == "FP32" and proba["shape"] == [300, 2]
        np.testing.assert_allclose(
            np.array(proba["data"]).reshape(300, 2), expected.proba, rtol=0, atol=1e-6
        )


def test_infer_selected_outputs_and_version_path(server: InferenceServer) -> None:
    body = request_for(make_frame(3, seed=1))
    body["outputs"] = [{"name": "probabilities"}]
    status, answer, _ = call(server, "POST", "/v2/models/demo/versions/1/infer", body)
    assert status == 200
    assert [o["name"] for o in answer["outputs"]] == ["probabilities"]


def _bad(kind: str) -> dict[str, Any] | bytes:
    good = request_for(make_frame(2, seed=3))
    age = good["inputs"][0]
    if kind == "not-json":
        return b"{inputs: nope"
    if kind == "nan":
        return json.dumps(good).replace("[", "[NaN, ", 1).encode()
    if kind == "not-object":
        return b"[1, 2]"
    if kind == "no-inputs":
        return {"inputs": []}
    if kind == "unknown-input":
        age["name"] = "agee"
    elif kind == "missing-input":
        good["inputs"] = good["inputs"][1:]
    elif kind == "duplicate-input":
        good["inputs"].append(dict(age))
    elif kind == "wrong-datatype":
        age["datatype"] = "INT64"
    elif kind == "wrong-rank":
        age["shape"] = [2]
    elif kind == "wrong-dim":
        age["shape"] = [1, 2]
    elif kind == "count-mismatch":
        age["data"] = [1.0, 2.0, 3.0]
    elif kind == "not-a-number":
        age["data"] = [1.0, "x"]
    elif kind == "bool-as-number":
        age["data"] = [True, 1.0]
    elif kind == "bytes-not-string":
        good["inputs"][2]["data"] = [1, 2]
    elif kind == "negative-shape":
        age["shape"] = [-2, 1]
    elif kind == "unknown-output":
        good["outputs"] = [{"name": "scores"}]
    return good


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("not-json", "not valid JSON"),
        ("nan", "not valid JSON"),
        ("not-object", "JSON object"),
        ("no-inputs", "non-empty list"),
        ("unknown-input", "unknown input 'agee'"),
        ("missing-input", "missing input(s) 'age'"),
        ("duplicate-input", "given twice"),
        ("wrong-datatype", "expects FP32"),
        ("wrong-rank", "the model expects [-1, 1]"),
        ("wrong-dim", "the model expects [-1, 1]"),
        ("count-mismatch", "3 value(s) but shape [2, 1] needs 2"),
        ("not-a-number", "'x' is not a number"),
        ("bool-as-number", "True is not a number"),
        ("bytes-not-string", "must be a string"),
        ("negative-shape", "non-negative integers"),
        ("unknown-output", "unknown output(s) 'scores'"),
    ],
)
def test_bad_requests_get_400_with_one_line(server: InferenceServer, kind: str, words: str) -> None:
    bad = _bad(kind)
    raw = bad if isinstance(bad, bytes) else json.dumps(bad).encode()
    status, body, _ = call(server, "POST", "/v2/models/demo/infer", raw=raw)
    assert status == 400, body
    assert words in body["error"] and "\n" not in body["error"]


def test_wrong_model_method_and_path(server: InferenceServer) -> None:
    status, body, _ = call(server, "POST", "/v2/models/other/infer", request_for(make_frame(1, 1)))
    assert status == 404 and "unknown model 'other'" in body["error"]
    assert call(server, "GET", "/v2/models/demo/versions/7")[0] == 404
    assert call(server, "GET", "/v2/models/demo/infer")[0] == 405
    assert call(server, "POST", "/v2/health/live", {})[0] == 405
    assert call(server, "GET", "/nowhere")[0] == 404


def test_oversized_body_gets_413_before_it_is_read(server: InferenceServer) -> None:
    client = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10)
    client.sendall(
        b"POST /v2/models/demo/infer HTTP/1.1\r\nHost: x\r\n"
        + f"Content-Length: {2 << 20}\r\n\r\n".encode()
    )
    response = b""
    while chunk := client.recv(65536):
        response += chunk
    client.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"Connection: close" in head
    assert "over 1048576 bytes" in json.loads(body)["error"]


def test_metrics_in_prometheus_format(server: InferenceServer) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text, headers = call(server, "GET", "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return values

    before = scrape()
    call(server, "POST", "/v2/models/demo/infer", request_for(make_frame(5, seed=4)))
    call(server, "POST", "/v2/models/demo/infer", raw=b"nope")
    after = scrape()
    model = (("model", "demo"),)

    def delta(name: str, labels: tuple[tuple[str, str], ...]) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    assert delta("mlci_serve_inference_requests_total", model) == 2
    assert delta("mlci_serve_inference_rows_total", model) == 5
    assert delta("mlci_serve_inference_errors_total", (("code", "400"), ("model", "demo"))) == 1
    assert delta("mlci_serve_inference_duration_seconds_count", model) == 2
    assert delta("mlci_serve_inference_duration_seconds_bucket", (("le", "+Inf"), *model)) == 2
    assert after[("mlci_serve_inference_duration_seconds_sum", model)] > 0
    assert delta("mlci_serve_http_requests_total", (("code", "200"), ("handler", "infer"))) == 1
    assert after[("mlci_serve_model_ready", model)] == 1


def test_runner_rejects_missing_and_corrupt_models(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model file"):
        ModelRunner(tmp_path / "nope.onnx", "x")
    corrupt = tmp_path / "bad.onnx"
    corrupt.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="not a usable ONNX model"):
        ModelRunner(corrupt, "x")


def _start(model: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlci.serve", "--model", str(model), "--name", "demo",
         "--host", "127.0.0.1", "--port", "0", *extra],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    line = process.stderr.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert match, line
    return process, int(match.group(1))


def test_sigterm_lets_the_request_in_flight_finish(built_project: Project) -> None:
    process, port = _start(built_project.root / "models" / "candidate.onnx")
    try:
        body = json.dumps(request_for(make_frame(4, seed=5))).encode()
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.sendall(
            b"POST /v2/models/demo/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(0.3)  # the request is now in flight: headers read, body pending
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None, "the server quit with a request in flight"
        with pytest.raises(OSError):  # no new connections while draining
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        client.sendall(body[10:])
        response = b""
        while chunk := client.recv(65536):
            response += chunk
        client.close()
        head, _, payload = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"Connection: close" in head
        assert json.loads(payload)["outputs"][0]["shape"] == [4]
        assert process.wait(timeout=10) == 0
        assert process.stderr is not None
        assert "mlci.serve: stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigterm_closes_idle_keepalive_connections(built_project: Project) -> None:
    process, port = _start(built_project.root / "models" / "candidate.onnx")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v2/health/ready")
        assert conn.getresponse().read() == b'{"ready":true}'
        start = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - start < 5  # did not wait for the idle connection's timeout
        conn.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_command_reports_a_missing_model(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlci.serve", "--model", str(tmp_path / "m.onnx")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"mlci.serve: error: {tmp_path / 'm.onnx'}: no such model file"
    ]
