"""Startup and end-to-end time of the mlci command line.

    python benchmarks/bench_cli.py            # needs the example built: python examples/credit/train.py

Times `mlci --help` against a bare interpreter start (the floor any Python CLI pays), and
`mlci check` on the bundled credit example end to end. Medians of several runs; the machine is
shared, so read the ratios and the spread, not single numbers.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "credit"


def timed(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def show(label: str, times: list[float]) -> float:
    median = statistics.median(times)
    print(
        f"{label:<34} median {median:7.3f} s   min {min(times):7.3f}   max {max(times):7.3f}   (n={len(times)})"
    )
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--check-runs", type=int, default=3)
    args = parser.parse_args()

    python = sys.executable
    timed([python, "-m", "mlci", "--help"], 2)  # warm the file cache
    bare = show("python -c pass", timed([python, "-c", "pass"], args.runs))
    helped = show("mlci --help", timed([python, "-m", "mlci", "--help"], args.runs))
    show("mlci check --help", timed([python, "-m", "mlci", "check", "--help"], args.runs))
    print(
        f"mlci --help costs {helped - bare:.3f} s over a bare interpreter (ratio {helped / bare:.2f}); target <= 0.3 s in all"
    )

    if not (EXAMPLE / "models" / "candidate.onnx").exists():
        print("example not built; run: python examples/credit/train.py")
        return
    with tempfile.TemporaryDirectory() as out:
        check = show(
            "mlci check (credit example)",
            timed(
                [python, "-m", "mlci", "check", "-c", str(EXAMPLE / "mlci.yaml"), "-o", out],
                args.check_runs,
            ),
        )
    print(f"mlci check end to end: {check:.2f} s; target <= 20 s")


if __name__ == "__main__":
    main()
