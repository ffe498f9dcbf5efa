"""Cut sampled rows into windows: UTC days, or runs of N rows in time order."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Slot:
    """One window: a stable key, its time span (microseconds, UTC) and its rows."""

    key: str
    start_us: int
    end_us: int
    rows: np.ndarray  # positions in the sample, in time order


def iso(time_us: int) -> str:
    """An ISO 8601 UTC time with seconds."""
    when = dt.datetime.fromtimestamp(time_us / 1e6, dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_us(time_us: int) -> str:
    """An ISO 8601 UTC time with microseconds (window keys must not collide)."""
    when = dt.datetime.fromtimestamp(time_us // 1_000_000, dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{time_us % 1_000_000:06d}Z"


def split(time_us: np.ndarray, rows_per_window: int | None) -> list[Slot]:
    """Windows in time order: every UTC day with rows, or consecutive runs of rows.

    A run's key is the time of its first row, so the windows of a sample that grows keep
    their keys; the last run may be short (and is reported as too small when it is).
    """
    order = np.argsort(time_us, kind="stable")
    times = time_us[order]
    if times.size == 0:
        return []
    if rows_per_window is None:
        days = times // DAY_US
        edges = np.flatnonzero(np.r_[True, days[1:] != days[:-1], True])
        return [
            Slot(
                key=iso(int(days[a]) * DAY_US)[:10],
                start_us=int(days[a]) * DAY_US,
                end_us=(int(days[a]) + 1) * DAY_US,
                rows=order[a:b],
            )
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
    slots = []
    for a in range(0, times.size, rows_per_window):
        b = min(times.size, a + rows_per_window)
        slots.append(
            Slot(
                key=f"{iso_us(int(times[a]))}+{rows_per_window}",
                start_us=int(times[a]),
                end_us=int(times[b - 1]),
                rows=order[a:b],
            )
        )
    return slots
