"""The timing harness: prebuilt calls timed one by one with ``time.perf_counter_ns``.

Every query is a prebuilt zero-argument callable (a ``functools.partial`` of ``session.run``
with its feed already converted, or of ``session.run_with_iobinding`` with inputs already on
the device), so the timed region holds nothing but the call itself. Measured overhead of the
loop around the call is well under a microsecond (benchmarks/bench_latency_proofs.py overhead).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

Call = Callable[[], object]


def back_to_back(
    calls: Sequence[Call], start: int, max_queries: int, max_ns: int
) -> tuple[np.ndarray, int]:
    """Run queries one after another; stop after ``max_queries`` or ``max_ns`` nanoseconds.

    Returns the latencies in nanoseconds and the index of the next call to use.
    """
    clock = time.perf_counter_ns
    latencies: list[int] = []
    append = latencies.append
    count = len(calls)
    i = start % count
    deadline = clock() + max_ns
    for _ in range(max_queries):
        call = calls[i]
        i += 1
        if i == count:
            i = 0
        t0 = clock()
        call()
        t1 = clock()
        append(t1 - t0)
        if t1 >= deadline:
            break
    return np.asarray(latencies, dtype=np.int64), i


def poisson_arrivals(
    calls: Sequence[Call], start: int, gaps_ns: np.ndarray, max_ns: int
) -> tuple[np.ndarray, int]:
    """Issue queries at scheduled arrival times (``gaps_ns`` between them) on one worker.

    A query's latency runs from its scheduled arrival to its completion, so time spent waiting
    behind a slow query counts, as in LoadGen's server scenario. Stops after ``max_ns``.
    """
    clock = time.perf_counter_ns
    sleep = time.sleep
    latencies: list[int] = []
    append = latencies.append
    count = len(calls)
    i = start % count
    begin = clock()
    deadline = begin + max_ns
    arrival = begin
    for gap in gaps_ns.tolist():
        arrival += gap
        now = clock()
        if now >= deadline:
            break
        wait = arrival - now
        if wait > 2_000_000:
            sleep((wait - 1_000_000) / 1e9)  # sleep most of a long gap, spin the rest
        while clock() < arrival:
            pass
        call = calls[i]
        i += 1
        if i == count:
            i = 0
        call()
        append(clock() - arrival)
    return np.asarray(latencies, dtype=np.int64), i


# --------------------------------------------------------------------------- memory


def _status_field(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def resident_bytes() -> int | None:
    """Resident memory of this process (Linux), or None."""
    return _status_field("VmRSS")


def reset_peak() -> bool:
    """Reset the process's peak resident memory (Linux: ``clear_refs`` 5); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")
    except OSError:
        return False
    return True


def peak_bytes() -> int | None:
    """Peak resident memory since the last reset (Linux ``VmHWM``), or None."""
    return _status_field("VmHWM")
