"""What traffic sampling costs the inference server: p50 and p99 with and without it.

    apt-get install wrk
    python benchmarks/bench_watch_sampling.py [--rounds 5] [--seconds 5] [--concurrency 1 8]

The model and request are bench_serve.py's (StandardScaler + LogisticRegression, one row of 8
features, JSON). Three servers of the same model run side by side: sampling off, sampling
every request to JSON Lines (--sample-fraction 1, every input written), and sampling every
request to Parquet. The client is wrk (one thread, keep-alive, C connections); each round
runs every (concurrency, server) pair once, in a rotating order, and the table shows medians
over rounds and the ratios to the server without sampling. The floor is the server without
sampling itself: sampling can only add to it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serve import LUA, MODEL, free_port, make_model, run_wrk, stop, wait_ready  # noqa: E402

VARIANTS = {
    "off": [],
    "jsonl": ["--sample-format", "jsonl"],
    "parquet": ["--sample-format", "parquet"],
}


def start(folder: Path, name: str, extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "mlci.serve", "--model", str(folder / "model.onnx"),
            "--name", MODEL, "--host", "127.0.0.1", "--port", str(port), "--threads", "1"]  # fmt: skip
    if extra:
        args += ["--sample-dir", str(folder / f"sample-{name}"), "--sample-columns", "all", *extra]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", process)
    return process, f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _, row = make_model(folder)
        body = folder / "body.json"
        body.write_text(json.dumps({"id": "r", "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [1, 8], "data": row.ravel().tolist()}]}))  # fmt: skip
        lua = folder / "bench.lua"
        lua.write_text(LUA)
        processes = {}
        try:
            for name, extra in VARIANTS.items():
                processes[name] = start(folder, name, extra)
            results: dict[tuple[int, str], list] = {}
            names = list(VARIANTS)
            for r in range(args.rounds):
                for c in args.concurrency:
                    order = names[r % len(names) :] + names[: r % len(names)]
                    for name in order:
                        run = run_wrk(processes[name][1], c, args.seconds, lua, body)
                        results.setdefault((c, name), []).append(run)
        finally:
            for process, _ in processes.values():
                stop(process)
        written = {n: sum(1 for p in (folder / f"sample-{n}").glob("*") for _ in [p])
                   for n in VARIANTS if n != "off"}  # fmt: skip
    print(f"{args.rounds} rounds of {args.seconds:g} s, wrk 1 thread, one-row JSON requests; "
          f"sample files written: {written}")  # fmt: skip
    print("| clients | sampling | req/s | p50 ms | p99 ms | p50 ratio | p99 ratio |")
    print("|---|---|---|---|---|---|---|")
    for c in args.concurrency:
        base = results[(c, "off")]
        b50 = statistics.median(x.p50_ms for x in base)
        b99 = statistics.median(x.p99_ms for x in base)
        for name in VARIANTS:
            runs = results[(c, name)]
            p50 = statistics.median(x.p50_ms for x in runs)
            p99 = statistics.median(x.p99_ms for x in runs)
            rps = statistics.median(x.throughput for x in runs)
            print(f"| {c} | {name} | {rps:,.0f} | {p50:.3f} | {p99:.2f} | {p50 / b50:.2f}x | "
                  f"{p99 / b99:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
