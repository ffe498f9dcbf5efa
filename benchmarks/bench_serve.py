"""Serving throughput and latency: mlci.serve against MLServer, same model, same client.

    apt-get install wrk               # the load generator
    pip install -e '.[bench]'         # mlserver and mlserver-sklearn
    python benchmarks/bench_serve.py [--rounds 3] [--seconds 5] [--concurrency 1 8 64]

The model is a scikit-learn StandardScaler + LogisticRegression on 8 features: tiny, so the
servers are measured rather than the model. MLServer (1.7, mlserver-sklearn, one process:
``parallel_workers: 0``) serves the fitted estimator; mlci serves its ONNX conversion
(skl2onnx). Both get the same request bytes: one row as an Open Inference Protocol JSON
request to ``/v2/models/m/infer``. MLServer answers the ``predict`` output; mlci answers
both of the ONNX model's outputs (label and probabilities), so it does a little more.
Before timing, both answers are checked against scikit-learn's own prediction.

The client is wrk (one thread, keep-alive, a closed loop over C connections, the same Lua
script for both servers): a C load generator spends far less of the machine's CPUs than a
Python one would, and measures every server the same way. Every round runs each
(concurrency, server) pair once, alternating which server goes first, and the table shows
medians over rounds: throughput, p50 and p99 latency, and mlci / MLServer ratios.

The floor is ``InferenceSession.run`` on the same row in a loop in this process (one
thread, no HTTP, no JSON): the most any server of this model could do per core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = 8
MODEL = "m"
LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("MLCI_BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout))
end
"""


@dataclass(frozen=True)
class Run:
    """One wrk run: requests per second and latency percentiles in milliseconds."""

    throughput: float
    p50_ms: float
    p99_ms: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):  # noqa: PERF203 - polling
            time.sleep(0.2)
    raise SystemExit(f"{url} did not become ready within {timeout:.0f} s")


def make_model(folder: Path) -> tuple[Any, np.ndarray]:
    """Fit the model, save it for both servers, and return it with one request row."""
    import joblib
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(n_samples=2000, n_features=FEATURES, random_state=0)
    x = x.astype(np.float32)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    (folder / "mlserver").mkdir()
    joblib.dump(model, folder / "mlserver" / "model.joblib")
    onnx = to_onnx(
        model,
        initial_types=[("x", FloatTensorType([None, FEATURES]))],
        options={LogisticRegression: {"zipmap": False}},
    )
    (folder / "model.onnx").write_bytes(onnx.SerializeToString())
    return model, x[:1]


@contextmanager
def servers(folder: Path, threads: int | None) -> Iterator[dict[str, str]]:
    """Start mlci.serve and MLServer on loopback; yield their inference URLs."""
    mlci_port, ml_port = free_port(), free_port()
    (folder / "mlserver" / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": ml_port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": 0,
            }
        )
    )
    (folder / "mlserver" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    mlserver = shutil.which("mlserver", path=str(Path(sys.executable).parent)) or shutil.which(
        "mlserver"
    )
    if mlserver is None:
        raise SystemExit("MLServer is not installed: pip install -e '.[bench]'")
    command = [sys.executable, "-m", "mlci.serve", "--model", str(folder / "model.onnx"),
               "--name", MODEL, "--host", "127.0.0.1", "--port", str(mlci_port)]  # fmt: skip
    if threads:
        command += ["--threads", str(threads)]
    logs = [open(folder / name, "wb") for name in ("mlci.log", "mlserver.log")]  # noqa: SIM115
    processes = [
        subprocess.Popen(command, stdout=logs[0], stderr=subprocess.STDOUT),
        subprocess.Popen(
            [mlserver, "start", str(folder / "mlserver")],
            stdout=logs[1],
            stderr=subprocess.STDOUT,
            cwd=folder / "mlserver",
        ),
    ]
    try:
        for port, process in zip((mlci_port, ml_port), processes, strict=True):
            wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", process)
        yield {
            "mlci": f"http://127.0.0.1:{mlci_port}/v2/models/{MODEL}/infer",
            "MLServer": f"http://127.0.0.1:{ml_port}/v2/models/{MODEL}/infer",
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            stop(process)
        for log in logs:
            log.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def check_answers(urls: dict[str, str], body: bytes, expected_label: int) -> None:
    """Both servers predict what scikit-learn predicts for the row."""
    for name, url in urls.items():
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        outputs = {o["name"]: o["data"] for o in answer["outputs"]}
        label = outputs.get("label", outputs.get("predict"))
        if label is None or int(label[0]) != expected_label:
            raise SystemExit(f"{name} answered {answer}, expected label {expected_label}")


def run_wrk(url: str, connections: int, seconds: float, lua: Path, body: Path) -> Run:
    env = {**os.environ, "MLCI_BENCH_BODY": str(body)}
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
         "-s", str(lua), url],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not line.startswith("{"):
        raise SystemExit(f"wrk failed against {url}: {done.stderr.strip() or done.stdout}")
    result = json.loads(line)
    if result["errors"]:
        raise SystemExit(f"{url}: {result['errors']} failed requests at c={connections}")
    return Run(
        result["requests"] / (result["duration_us"] / 1e6),
        result["p50_us"] / 1000,
        result["p99_us"] / 1000,
    )


def floor(model_path: Path, row: np.ndarray, seconds: float) -> Run:
    """``session.run`` on the row in a loop, one thread, no HTTP."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    feeds = {"x": row}
    for _ in range(200):
        session.run(None, feeds)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    total = sum(times)
    p50, p99 = np.percentile(times, [50, 99]) * 1000
    return Run(len(times) / total, float(p50), float(p99))


def installed(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return f"{name} (not installed)"


def versions() -> str:
    names = ("uvicorn", "httptools", "uvloop", "orjson", "onnxruntime", "mlserver")
    return ", ".join(installed(name) for name in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 8, 64], help="client connections"
    )
    parser.add_argument("--threads", type=int, default=None, help="mlci worker threads")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="mlci-bench-serve-") as tmp:
        folder = Path(tmp)
        model, row = make_model(folder)
        body = folder / "body.json"
        request = {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1, FEATURES], "data": row[0].tolist()}
            ]
        }
        body.write_bytes(json.dumps(request).encode())
        lua = folder / "post.lua"
        lua.write_text(LUA)
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start,"
              f" Python {platform.python_version()}")  # fmt: skip
        print(f"packages: {versions()}")
        results: dict[tuple[str, int], list[Run]] = {}
        floors: list[Run] = []
        with servers(folder, args.threads) as urls:
            check_answers(urls, body.read_bytes(), int(model.predict(row)[0]))
            names = list(urls)
            for c in args.concurrency:  # warm both up: JIT-free, but caches and pools
                for name in names:
                    run_wrk(urls[name], c, 1, lua, body)
            for round_ in range(args.rounds):
                order = names if round_ % 2 == 0 else names[::-1]
                for c in args.concurrency:
                    for name in order:
                        results.setdefault((name, c), []).append(
                            run_wrk(urls[name], c, args.seconds, lua, body)
                        )
                floors.append(floor(folder / "model.onnx", row, min(args.seconds, 2.0)))
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    med = statistics.median
    print(f"\nmedians of {args.rounds} interleaved rounds, {args.seconds:g} s each, "
          "wrk 1 thread, one-row JSON requests")  # fmt: skip
    header = (
        f"{'clients':>7}  {'server':<9} {'req/s':>8} {'(min-max)':>13} {'p50 ms':>8} {'p99 ms':>8}"
        f"   {'req/s ratio':>11} {'p99 ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    for c in args.concurrency:
        stats = {
            name: (
                Run(
                    med(r.throughput for r in runs),
                    med(r.p50_ms for r in runs),
                    med(r.p99_ms for r in runs),
                ),
                f"({min(r.throughput for r in runs):.0f}-{max(r.throughput for r in runs):.0f})",
            )
            for (name, conc), runs in results.items()
            if conc == c
        }
        for name, (s, spread) in stats.items():
            ratio = ""
            if name == "mlci":
                peer = stats["MLServer"][0]
                ratio = (
                    f"   {s.throughput / peer.throughput:>10.2f}x {s.p99_ms / peer.p99_ms:>8.2f}x"
                )
            print(
                f"{c:>7}  {name:<9} {s.throughput:>8.0f} {spread:>13} {s.p50_ms:>8.2f}"
                f" {s.p99_ms:>8.2f}{ratio}"
            )
    f = Run(
        med(r.throughput for r in floors),
        med(r.p50_ms for r in floors),
        med(r.p99_ms for r in floors),
    )
    print(f"{'floor':>7}  {'run loop':<9} {f.throughput:>8.0f} {'':>13} {f.p50_ms:>8.3f} {f.p99_ms:>8.3f}"
          "   (InferenceSession.run, 1 thread, in process)")  # fmt: skip
    print("ratios are mlci / MLServer: req/s above 1 and p99 below 1 favour mlci")


if __name__ == "__main__":
    main()
