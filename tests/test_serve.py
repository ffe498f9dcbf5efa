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
from serve_client import call, request_for

from mlci.models.onnx import OnnxModel
from mlci.serve import InferenceServer, ModelLoadError, ModelRunner, ServeOptions
from mlci.serve.model import Inference
from mlci.serve.server import available_cpus
from project import FEATURES, Project, make_frame

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ServeOptions(host="127.0.0.1", port=0, max_body_bytes=1 << 20, request_timeout=3.0)


@pytest.fixture(scope="module")
def server(built_project: Project) -> Iterator[InferenceServer]:
    runner = ModelRunner(built_project.root / "models" / "candidate.onnx", "demo")
    with InferenceServer(runner, OPTIONS).running() as srv:
        yield srv


def test_health_and_metadata(server: InferenceServer) -> None:
    assert call(server.port, "GET", "/v2/health/live")[:2] == (200, {"live": True})
    assert call(server.port, "GET", "/v2/health/ready")[:2] == (200, {"ready": True})
    status, meta, _ = call(server.port, "GET", "/v2")
    assert status == 200 and meta["name"] == "mlci-serve"
    status, model, _ = call(server.port, "GET", "/v2/models/demo")
    assert status == 200
    assert model["name"] == "demo" and model["platform"] == "onnxruntime_onnx"
    assert [i["name"] for i in model["inputs"]] == FEATURES
    assert {i["name"]: i["datatype"] for i in model["inputs"]}["region"] == "BYTES"
    assert model["inputs"][0]["shape"] == [-1, 1]
    assert [o["name"] for o in model["outputs"]] == ["label", "probabilities"]
    assert call(server.port, "GET", "/v2/models/demo/versions/1")[0] == 200
    assert call(server.port, "GET", "/v2/models/demo/ready")[:2] == (
        200,
        {"name": "demo", "ready": True},
    )


def test_infer_matches_mlci_evaluation(server: InferenceServer, built_project: Project) -> None:
    frame = make_frame(300, seed=11)
    expected = OnnxModel(built_project.root / "models" / "candidate.onnx").predict(
        {k: frame[k] for k in FEATURES}
    )
    for nested in (False, True):
        status, body, _ = call(
            server.port, "POST", "/v2/models/demo/infer", request_for(frame, nested)
        )
        assert status == 200, body
        assert body["model_name"] == "demo" and body["id"] == "req-1"
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["label"]["datatype"] == "INT64" and outputs["label"]["shape"] == [300]
        np.testing.assert_array_equal(np.array(outputs["label"]["data"]), expected.labels)
        proba = outputs["probabilities"]
        assert proba["datatype"] == "FP32" and proba["shape"] == [300, 2]
        assert expected.proba is not None
        np.testing.assert_allclose(
            np.array(proba["data"]).reshape(300, 2), expected.proba, rtol=0, atol=1e-6
        )


def test_infer_selected_outputs_and_version_path(server: InferenceServer) -> None:
    body = request_for(make_frame(3, seed=1))
    body["outputs"] = [{"name": "probabilities"}]
    status, answer, _ = call(server.port, "POST", "/v2/models/demo/versions/1/infer", body)
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
        ("not-json", "cannot read the request as JSON"),
        ("nan", "cannot read the request as JSON"),
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
        ("unknown-output", "unknown output 'scores'"),
    ],
)
def test_bad_requests_get_400_with_one_line(server: InferenceServer, kind: str, words: str) -> None:
    bad = _bad(kind)
    raw = bad if isinstance(bad, bytes) else json.dumps(bad).encode()
    status, body, _ = call(server.port, "POST", "/v2/models/demo/infer", raw=raw)
    assert status == 400, body
    assert words in body["error"] and "\n" not in body["error"]


def test_wrong_model_version_method_and_path(server: InferenceServer) -> None:
    port = server.port
    status, body, _ = call(port, "POST", "/v2/models/other/infer", request_for(make_frame(1, 1)))
    assert status == 404 and "unknown model 'other'" in body["error"]
    for path in ("/v2/models/demo/versions/7", "/v2/models/demo/versions/7/infer"):
        status, body, _ = call(port, "POST" if path.endswith("infer") else "GET", path, {})
        assert status == 404
        assert body["error"] == "model 'demo' has no version '7'; this server has version '1'"
    status, body, headers = call(port, "GET", "/v2/models/demo/infer")
    assert (status, headers["allow"]) == (405, "POST")
    assert call(port, "POST", "/v2/health/live", {})[0] == 405
    assert call(port, "GET", "/nowhere")[0] == 404


def test_oversized_body_gets_413_before_it_is_read(server: InferenceServer) -> None:
    client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    client.sendall(
        b"POST /v2/models/demo/infer HTTP/1.1\r\nHost: x\r\n"
        + f"Content-Length: {2 << 20}\r\n\r\n".encode()
    )
    response = b""
    while chunk := client.recv(65536):
        response += chunk
    client.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"connection: close" in head
    assert "over 1048576 bytes" in json.loads(body)["error"]


Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Series:
    """Every sample on /metrics, read with Prometheus' own text parser."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text, headers = call(port, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_per_model_version_in_prometheus_format(server: InferenceServer) -> None:
    port = server.port
    before = scrape(port)
    call(port, "POST", "/v2/models/demo/infer", request_for(make_frame(5, seed=4)))
    call(port, "POST", "/v2/models/demo/versions/1/infer", request_for(make_frame(2, seed=4)))
    call(port, "POST", "/v2/models/demo/infer", raw=b"nope")
    call(port, "POST", "/v2/models/demo/versions/9/infer", raw=b"{}")  # not this version's
    after = scrape(port)
    version = (("model", "demo"), ("version", "1"))

    def delta(name: str, labels: tuple[tuple[str, str], ...]) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    def code(status: str) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((*version, ("code", status))))

    assert delta("mlci_serve_inference_requests_total", code("200")) == 2
    assert delta("mlci_serve_inference_requests_total", code("400")) == 1
    assert delta("mlci_serve_inference_errors_total", code("400")) == 1
    assert delta("mlci_serve_inference_rows_total", version) == 7
    # The latency histogram counts successful requests, with cumulative le buckets.
    assert delta("mlci_serve_inference_duration_seconds_count", version) == 2
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in after.items()
        if name == "mlci_serve_inference_duration_seconds_bucket"
    )
    assert [le for le, _ in buckets][-1] == float("inf") and len(buckets) >= 10
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:], strict=False))
    assert buckets[-1][1] == after[("mlci_serve_inference_duration_seconds_count", version)]
    assert after[("mlci_serve_inference_duration_seconds_sum", version)] > 0
    assert after[("mlci_serve_model_ready", version)] == 1
    # A request for a version this server does not have has no series of its own.
    assert not any(dict(labels).get("version") == "9" for _, labels in after)
    http = (("code", "404"), ("handler", "infer"))
    assert delta("mlci_serve_http_requests_total", http) == 1


def test_in_flight_gauge_counts_requests_waiting_for_a_worker(
    built_project: Project,
) -> None:
    runner = ModelRunner(built_project.root / "models" / "candidate.onnx", "demo", "3")
    options = ServeOptions(host="127.0.0.1", port=0, threads=1)
    with InferenceServer(runner, options).running() as srv:
        gauge = ("mlci_serve_inference_requests_in_flight", (("model", "demo"), ("version", "3")))
        release = threading.Event()
        srv.executor.submit(release.wait, 30)  # the only worker is busy
        answers: list[int] = []
        client = threading.Thread(
            target=lambda: answers.append(
                call(srv.port, "POST", "/v2/models/demo/infer", request_for(make_frame(3, 1)))[0]
            )
        )
        client.start()
        deadline = time.monotonic() + 10
        while scrape(srv.port)[gauge] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert scrape(srv.port)[gauge] == 1
        release.set()
        client.join(10)
        assert answers == [200] and scrape(srv.port)[gauge] == 0


def test_two_versions_report_separately(built_project: Project) -> None:
    """What a canary analysis compares: the same metric names, told apart by version."""
    models = built_project.root / "models"
    stable = ModelRunner(models / "baseline.onnx", "demo", "1")
    canary = ModelRunner(models / "candidate.onnx", "demo", "2")
    options = ServeOptions(host="127.0.0.1", port=0)
    with (
        InferenceServer(stable, options).running() as a,
        InferenceServer(canary, options).running() as b,
    ):
        for srv, count in ((a, 3), (b, 1)):
            for _ in range(count):
                status, _, _ = call(srv.port, "POST", "/v2/models/demo/infer",
                                    request_for(make_frame(2, seed=8)))  # fmt: skip
                assert status == 200
        for srv, version, count in ((a, "1", 3), (b, "2", 1)):
            series = scrape(srv.port)
            key = (("code", "200"), ("model", "demo"), ("version", version))
            assert series[("mlci_serve_inference_requests_total", key)] == count
            versions = {dict(labels).get("version") for _, labels in series} - {None}
            assert versions == {version}


def test_observers_see_each_answer_after_it_is_sent(
    built_project: Project, capfd: pytest.CaptureFixture[str]
) -> None:
    seen: list[Inference] = []

    def broken(_: Inference) -> None:
        raise ValueError("an observer's bug")

    runner = ModelRunner(built_project.root / "models" / "candidate.onnx", "demo")
    options = ServeOptions(host="127.0.0.1", port=0)
    frame = make_frame(4, seed=2)
    with InferenceServer(runner, options, observers=[seen.append, broken]).running() as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        answers = []
        for body in (request_for(frame), {}, request_for(frame)):  # the second is refused
            conn.request("POST", "/v2/models/demo/infer", body=json.dumps(body))
            response = conn.getresponse()
            answers.append((response.status, json.loads(response.read())))
        conn.close()
    # The same connection served all three: an observer's failure does not close it.
    assert [status for status, _ in answers] == [200, 400, 200]
    assert len(seen) == 2 and "an observer's bug" in capfd.readouterr().err
    inference = seen[0]
    assert inference.rows == 4 and inference.request.id == "req-1"
    np.testing.assert_array_equal(inference.request.feeds["age"].ravel(), frame["age"])
    labels = next(o for o in answers[0][1]["outputs"] if o["name"] == "label")["data"]
    np.testing.assert_array_equal(inference.outputs[0], labels)


@pytest.mark.parametrize(
    ("cpu_max", "cap"), [("150000 100000\n", 2), ("50000 100000", 1), ("max 100000", None),
                         ("garbage", None)]
)  # fmt: skip
def test_worker_threads_follow_a_container_cpu_quota(
    tmp_path: Path, cpu_max: str, cap: int | None
) -> None:
    cgroup = tmp_path / "cpu.max"
    cgroup.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus(cgroup) == (min(affinity, cap) if cap else affinity)
    assert available_cpus(tmp_path / "absent") == affinity


def test_health_checks_answer_while_a_large_request_is_decoded(
    built_project: Project,
) -> None:
    """A request of over 10 MB is decoded and run on worker threads: the event loop keeps
    answering health checks sent after it and before its answer."""
    runner = ModelRunner(built_project.root / "models" / "candidate.onnx", "demo")
    rows = 400_000
    frame = make_frame(rows, seed=6)
    body = json.dumps(request_for(frame)).encode()
    assert len(body) > 10_000_000
    with InferenceServer(runner, ServeOptions(host="127.0.0.1", port=0)).running() as srv:
        events: list[tuple[str, float]] = []
        big: list[Any] = []

        def send_big() -> None:
            big.append(call(srv.port, "POST", "/v2/models/demo/infer", raw=body))
            events.append(("big answered", time.monotonic()))

        thread = threading.Thread(target=send_big)
        thread.start()
        while thread.is_alive():
            start = time.monotonic()
            status, answer, _ = call(srv.port, "GET", "/v2/health/ready")
            assert (status, answer) == (200, {"ready": True})
            events.append(("health", start))
            time.sleep(0.02)
        thread.join()
    status, answer, _ = big[0]
    assert status == 200, answer
    labels = next(o for o in answer["outputs"] if o["name"] == "label")["data"]
    assert len(labels) == rows
    # Health checks began and were answered while the large request was being handled.
    answered_at = events[-1][1]
    during = [t for kind, t in events if kind == "health" and t < answered_at]
    assert len(during) >= 3


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
        assert b"connection: close" in head
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
