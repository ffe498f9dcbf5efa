"""Serve the credit model with mlci's inference server and ask it about five applications.

    python examples/credit/serve_demo.py models/candidate.onnx

Starts `python -m mlci.serve` on a free loopback port, waits until it is ready, asks the
same question twice with the Open Inference Protocol (KServe v2): once with JSON tensors and
once with the binary tensor data extension (what tritonclient sends by default), checks both
answers against the same model run in-process, prints a line of the Prometheus metrics, and
stops the server with SIGTERM.
"""

from __future__ import annotations

import csv
import itertools
import json
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from mlci.models.onnx import OnnxModel

HERE = Path(__file__).resolve().parent
ROWS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):  # noqa: PERF203 - polling, not a hot loop
            time.sleep(0.2)
    raise SystemExit(f"the server at {url} did not become ready in {timeout:.0f} s")


def main() -> None:
    model_path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "models" / "candidate.onnx"
    model = OnnxModel(model_path)
    with open(HERE / "data" / "eval.csv", newline="") as handle:
        rows = list(itertools.islice(csv.DictReader(handle), ROWS))

    inputs, frame, blobs = [], {}, []
    for spec in model.info.inputs:
        text = spec.dtype == "string"
        values = [row[spec.name] for row in rows]
        frame[spec.name] = np.array(values, dtype=object if text else np.float64)
        inputs.append(
            {
                "name": spec.name,
                "datatype": "BYTES" if text else "FP32",
                "shape": [ROWS, 1],
                "data": values if text else [float(v) for v in values],
            }
        )
        # Binary tensor data: little-endian values; strings as a 4-byte length and UTF-8.
        if text:
            blobs.append(b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values))
        else:
            blobs.append(np.array(values, dtype="<f4").tobytes())
    binary_inputs = [
        {k: v for k, v in tensor.items() if k != "data"}
        | {"parameters": {"binary_data_size": len(blob)}}
        for tensor, blob in zip(inputs, blobs, strict=True)
    ]

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlci.serve",
            "--model",
            str(model_path),
            "--name",
            "credit",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ]  # fmt: skip
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/v2/health/ready")
        request = urllib.request.Request(
            f"{base}/v2/models/credit/infer",
            data=json.dumps({"id": "demo", "inputs": inputs}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        outputs = {o["name"]: o for o in answer["outputs"]}
        served = np.array(outputs["probabilities"]["data"]).reshape(ROWS, -1)

        header = json.dumps(
            {"inputs": binary_inputs, "parameters": {"binary_data_output": True}}
        ).encode()
        request = urllib.request.Request(
            f"{base}/v2/models/credit/infer",
            data=header + b"".join(blobs),
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            size = int(response.headers["Inference-Header-Content-Length"])
            body = response.read()
        offset, binary = size, {}
        for output in json.loads(body[:size])["outputs"]:
            length = output["parameters"]["binary_data_size"]
            binary[output["name"]] = (output, body[offset : offset + length])
            offset += length
        output, raw = binary["probabilities"]
        served_binary = np.frombuffer(raw, dtype="<f4").reshape(output["shape"])

        local = model.predict(frame).proba
        assert local is not None
        difference = float(max(np.abs(served - local).max(), np.abs(served_binary - local).max()))
        for i, p in enumerate(served[:, 1]):
            print(f"application {rows[i].get('application_id', i)}: P(default) = {p:.4f}")
        print(
            "served (JSON and binary tensors) and in-process predictions differ by at most "
            f"{difference:.1e}"
        )
        if difference > 1e-5:
            raise SystemExit("the served model does not answer like the evaluated one")
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        print(
            next(
                line
                for line in metrics.splitlines()
                if line.startswith('mlci_serve_inference_requests_total{model="credit"')
            )
        )
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    print(f"server stopped gracefully (exit {code})")


if __name__ == "__main__":
    main()
