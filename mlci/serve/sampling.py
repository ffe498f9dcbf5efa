"""A sample of served traffic, written to files for ``mlci watch``.

The sampler is an observer of the inference server: it runs on the event loop after each
answer has been sent, decides whether to keep the request (a fraction of requests, and at
most a rate per second), and hands it to a bounded queue. When the queue is full the request
is dropped and counted; the request path never waits. A background thread turns queued
requests into one record per row and appends them to a file:

    {"request_id": "...", "row": 0, "timestamp": "2026-12-01T09:30:00.123456Z",
     "model": "credit", "version": "1", "model_sha256": "<hex>",
     "inputs": {"income": 52000.0, "region": "north"},
     "outputs": {"label": 1, "probabilities": [0.31, 0.69]}}

``request_id`` is the Open Inference Protocol request's ``id`` when the client sent one (so
that labels arriving later can be joined to it), else a generated UUID; ``row`` is the row's
position in the request. Inputs are written only when named: no input is written unless
``columns`` lists it (or ``columns`` is None, meaning every input), and ``exclude`` removes
inputs from that list, so personal data never reaches a file by default.

Files are JSON Lines (standard library only, the default inside serving images) or Parquet
(needs pyarrow, which serving images do not carry). A file being written is hidden
(``.mlci-sample-*.open``) and becomes ``mlci-sample-*.jsonl`` (or ``.parquet``) when it
reaches ``file_bytes``, is ``rotate_seconds`` old, or the server stops; the oldest finished
files are removed once all of them together exceed ``max_bytes``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import queue
import random
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from mlci.serve.model import Inference

FORMATS = ("jsonl", "parquet")
PREFIX = "mlci-sample-"
_BATCH = 128  # requests encoded and written at once, then the GIL is offered back
FLUSH_SECONDS = 0.25  # how often the writer wakes


class SampleError(Exception):
    """Sampling options that cannot work (an unknown input name, no pyarrow for Parquet)."""


@dataclass(frozen=True)
class SampleOptions:
    """Where and how much traffic to write."""

    directory: Path
    fraction: float = 1.0  # share of requests kept, (0, 1]
    rate: float | None = None  # at most this many requests per second kept
    columns: tuple[str, ...] | None = ()  # inputs written; None: every input
    exclude: tuple[str, ...] = ()  # inputs never written
    format: str = "jsonl"
    file_bytes: int = 64 << 20  # a file is finished at this size
    max_bytes: int = 1 << 30  # finished files kept, in all; the oldest go first
    rotate_seconds: float = 3600.0  # a file is finished at this age
    queue_size: int = 10_000  # requests waiting to be written; more are dropped


@dataclass(frozen=True)
class SampleStats:
    """What the sampler did so far."""

    seen: int
    queued: int
    dropped: int
    rows_written: int
    files_finished: int
    files_removed: int
    errors: int


def parse_columns(text: str | None) -> tuple[str, ...] | None:
    """``--sample-columns``: 'all' -> None (every input), 'a,b' -> ('a', 'b'), '' -> ()."""
    if text is None:
        return ()
    if text.strip().lower() == "all":
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def model_sha256(path: Path) -> str:
    """The hex sha256 of the served model file (what ``mlci watch`` matches samples by)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def chosen_inputs(options: SampleOptions, inputs: Sequence[str]) -> tuple[str, ...]:
    """The inputs that will be written; SampleError naming an input the model lacks."""
    known = list(inputs)
    for option, names in (("--sample-columns", options.columns or ()), ("--sample-exclude",
                                                                        options.exclude)):  # fmt: skip
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SampleError(
                f"{option}: the model has no input {unknown[0]!r}; its inputs are "
                + ", ".join(repr(n) for n in known)
            )
    wanted = known if options.columns is None else [n for n in known if n in options.columns]
    return tuple(n for n in wanted if n not in options.exclude)


def check_options(options: SampleOptions) -> None:
    """SampleError for options no sampler could honour."""
    if not 0.0 < options.fraction <= 1.0:
        raise SampleError(f"--sample-fraction must be in (0, 1], got {options.fraction:g}")
    if options.rate is not None and options.rate <= 0:
        raise SampleError(f"--sample-rate must be greater than 0, got {options.rate:g}")
    if options.format not in FORMATS:
        raise SampleError(f"--sample-format must be one of {', '.join(FORMATS)}")
    if options.format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise SampleError(
                "--sample-format parquet needs pyarrow, which this environment lacks; "
                "use jsonl (the default) or install pyarrow"
            ) from None
    if options.file_bytes <= 0 or options.max_bytes <= 0 or options.rotate_seconds <= 0:
        raise SampleError("sample file sizes and the rotation age must be greater than 0")
    if options.queue_size < 1:
        raise SampleError("--sample-queue must be at least 1")


def _timestamp(seconds: float) -> str:
    when = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _per_row(array: np.ndarray, rows: int) -> list[Any]:
    """One value per row: a scalar where a row holds one element, else a flat list."""
    values = np.asarray(array)
    if values.ndim == 0:
        values = np.broadcast_to(values, (rows,))
    flat = values.reshape(values.shape[0], -1) if values.shape[0] == rows else None
    if flat is None:  # an output that is not per row: the whole tensor on every row
        whole = _plain(values.reshape(-1).tolist())
        return [whole] * rows
    if flat.shape[1] == 1:
        return _plain(flat[:, 0].tolist())
    return [_plain(row) for row in flat.tolist()]


def _plain(values: list[Any]) -> list[Any]:
    # BYTES tensors hold bytes: text for the file, undecodable bytes replaced.
    if values and isinstance(values[0], bytes):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
    return values


class _File:
    """The file being written: hidden until finished."""

    def __init__(self, directory: Path, fmt: str, stem: str, opened: float) -> None:
        self.final = directory / f"{stem}.{fmt}"
        self.path = directory / f".{stem}.open"
        self.format = fmt
        self.opened = opened
        self.size = 0
        self.rows = 0
        self._handle: IO[bytes] | None = None
        self._writer: Any = None
        self._schema: Any = None
        if fmt == "jsonl":
            self._handle = open(self.path, "xb")  # noqa: SIM115 - closed in finish()

    def write(self, records: list[dict[str, Any]]) -> None:
        if self._handle is not None:
            data = b"".join(orjson.dumps(r) + b"\n" for r in records)
            self._handle.write(data)
            self._handle.flush()
            self.size += len(data)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist(records)
            if self._writer is None:
                self._schema = table.schema
                self._writer = pq.ParquetWriter(str(self.path), self._schema)
            else:
                table = table.cast(self._schema)
            self._writer.write_table(table)
            self.size = self.path.stat().st_size
        self.rows += len(records)

    def finish(self) -> Path | None:
        """Close and reveal the file (None when it holds no rows)."""
        if self._handle is not None:
            self._handle.close()
        if self._writer is not None:
            self._writer.close()
        if self.rows == 0:
            self.path.unlink(missing_ok=True)
            return None
        os.replace(self.path, self.final)
        return self.final


class TrafficSampler:
    """An observer that writes a sample of the traffic; see the module's documentation."""

    def __init__(
        self,
        options: SampleOptions,
        *,
        model: str,
        version: str,
        model_path: Path,
        inputs: Sequence[str],
        clock: Callable[[], float] = time.time,
        chance: Callable[[], float] = random.random,
    ) -> None:
        """Check the options, create the folder and start the writer thread."""
        check_options(options)
        self.options = options
        self.inputs = chosen_inputs(options, inputs)
        self.meta = {"model": model, "version": version, "model_sha256": model_sha256(model_path)}
        self.clock = clock
        self.chance = chance
        try:
            options.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SampleError(
                f"{options.directory}: cannot create the sample folder ({exc})"
            ) from None
        if not os.access(options.directory, os.W_OK):
            raise SampleError(f"{options.directory}: the sample folder is not writable")
        host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:40] or "host"
        self._stem = f"{host}-{os.getpid()}"
        self._sequence = 0
        self._queue: queue.Queue[Any] = queue.Queue(options.queue_size)
        self._tokens = float(options.rate or 0.0)
        self._refilled = clock()
        self._counts = {"seen": 0, "queued": 0, "dropped": 0}
        self._rows = 0
        self._finished = 0
        self._removed = 0
        self._errors = 0
        self._on_drop: Callable[[], None] | None = None
        self._on_write: Callable[[int], None] | None = None
        self._file: _File | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlci-sample-writer", daemon=True)
        self._thread.start()

    # -- the request path (event loop) -------------------------------------------------------

    def __call__(self, inference: Inference) -> None:
        """Keep this answered request (or not); never blocks."""
        counts = self._counts
        counts["seen"] += 1
        options = self.options
        if options.fraction < 1.0 and self.chance() >= options.fraction:
            return
        if options.rate is not None:
            now = self.clock()
            self._tokens = min(options.rate, self._tokens + (now - self._refilled) * options.rate)
            self._refilled = now
            if self._tokens < 1.0:
                return
            self._tokens -= 1.0
        try:
            self._queue.put_nowait((self.clock(), inference))
        except queue.Full:
            counts["dropped"] += 1
            if self._on_drop is not None:
                self._on_drop()
            return
        counts["queued"] += 1

    def on_events(
        self, dropped: Callable[[], None] | None, written: Callable[[int], None] | None
    ) -> None:
        """Callbacks for each dropped request and each batch of rows written (metrics)."""
        self._on_drop = dropped
        self._on_write = written

    def stats(self) -> SampleStats:
        """Counts so far."""
        return SampleStats(
            seen=self._counts["seen"],
            queued=self._counts["queued"],
            dropped=self._counts["dropped"],
            rows_written=self._rows,
            files_finished=self._finished,
            files_removed=self._removed,
            errors=self._errors,
        )

    def close(self, timeout: float = 30.0) -> SampleStats:
        """Write what is queued, finish the file, stop the thread; return the final counts."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return self.stats()

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        # Wake a few times a second and write whatever has queued, rather than on every
        # request: each wake-up takes the GIL from the event loop, and a batch costs little
        # more than one request.
        while not self._stop.wait(FLUSH_SECONDS):
            self._drain()
            self._guard(self._rotate_if_due)
        self._drain()
        self._guard(self._finish)

    def _drain(self) -> None:
        while not self._queue.empty():
            batch: list[tuple[float, Inference]] = []
            while len(batch) < _BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())  # the only consumer: never empty here
            self._guard(partial(self._write, batch))
            time.sleep(0)  # let the event loop run between chunks: bounds its wait (p99)

    def _guard(self, step: Callable[[], None]) -> None:
        # A full disk or a bad value must not stop sampling for good, nor the server.
        try:
            step()
        except Exception:
            self._errors += 1
            print("mlci.serve: the traffic sampler failed to write:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)

    def _write(self, batch: list[tuple[float, Inference]]) -> None:
        records: list[dict[str, Any]] = []
        for when, inference in batch:
            records.extend(self.records(when, inference))
        if not records:
            return
        if self._file is None:
            self._open(batch[0][0])
        assert self._file is not None
        self._file.write(records)
        self._rows += len(records)
        if self._on_write is not None:
            self._on_write(len(records))
        if self._file.size >= self.options.file_bytes:
            self._finish()

    def records(self, when: float, inference: Inference) -> list[dict[str, Any]]:
        """One record per row of an answered request."""
        request = inference.request
        rows = inference.rows
        request_id = request.id or uuid.uuid4().hex
        stamp = _timestamp(when)
        columns = {n: _per_row(request.feeds[n], rows) for n in self.inputs if n in request.feeds}
        outputs = {
            wanted.spec.name: _per_row(value, rows)
            for wanted, value in zip(request.outputs, inference.outputs, strict=True)
        }
        return [
            {
                "request_id": request_id,
                "row": i,
                "timestamp": stamp,
                **self.meta,
                "inputs": {name: values[i] for name, values in columns.items()},
                "outputs": {name: values[i] for name, values in outputs.items()},
            }
            for i in range(rows)
        ]

    def _open(self, when: float) -> None:
        self._sequence += 1
        stamp = dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        stem = f"{PREFIX}{stamp}-{self._stem}-{self._sequence:06d}"
        self._file = _File(self.options.directory, self.options.format, stem, self.clock())

    def _rotate_if_due(self) -> None:
        if (
            self._file is not None
            and self.clock() - self._file.opened >= self.options.rotate_seconds
        ):
            self._finish()

    def _finish(self) -> None:
        current, self._file = self._file, None
        if current is None:
            return
        if current.finish() is not None:
            self._finished += 1
        self._enforce_budget()

    def _enforce_budget(self) -> None:
        """Remove the oldest finished files while all of them exceed ``max_bytes``."""
        files = []
        for path in self.options.directory.glob(f"{PREFIX}*"):
            if path.suffix.lstrip(".") in FORMATS:
                try:
                    files.append((path.stat().st_mtime, path.name, path.stat().st_size, path))
                except FileNotFoundError:
                    continue
        files.sort()
        total = sum(size for _, _, size, _ in files)
        for _, _, size, path in files[:-1]:  # the newest file always stays
            if total <= self.options.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            self._removed += 1
