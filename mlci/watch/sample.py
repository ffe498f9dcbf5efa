"""Read the traffic sample the serving runtime wrote (JSON Lines or Parquet) and the labels
that arrive later.

A sample is a file, a folder (every finished ``*.jsonl``, ``*.json`` and ``*.parquet`` file in
it; files being written are hidden and skipped) or a glob. Records are flattened: inputs become
``inputs.NAME`` and outputs ``outputs.NAME``. Every input column passes mlci's one data
conversion (``mlci.data.to_numpy``), so a sample is refused for the same reasons as any data.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.errors import DataError, InputError

if TYPE_CHECKING:
    import pyarrow as pa

SUFFIXES = (".jsonl", ".json", ".parquet")
REQUIRED = ("request_id", "timestamp")


@dataclass(frozen=True)
class Traffic:
    """Sampled rows: ids, times (microseconds since the epoch, UTC), inputs and outputs."""

    files: tuple[str, ...]
    request_id: np.ndarray  # object (str)
    row: np.ndarray  # int64: the row within its request
    time_us: np.ndarray  # int64
    model_sha256: np.ndarray  # object (str or None)
    inputs: dict[str, np.ndarray]
    kinds: dict[str, str]
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # 1-D, or 2-D for lists

    @property
    def rows(self) -> int:
        return len(self.request_id)


def find_files(spec: str | Path, base: Path | None = None) -> list[Path]:
    """The sample files a path, folder or glob names; InputError when there are none."""
    text = str(spec)
    path = Path(text)
    if base is not None and not path.is_absolute():
        path = base / path
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.suffix in SUFFIXES and not p.name.startswith(".")
        )
        where = f"the folder {path}"
    elif any(c in text for c in "*?["):
        files = sorted(
            Path(p)
            for p in glob.glob(str(path), recursive=True)
            if Path(p).suffix in SUFFIXES and not Path(p).name.startswith(".")
        )
        where = f"files matching {path}"
    elif path.is_file():
        files = [path]
        where = str(path)
    else:
        raise InputError(
            f"{path}: no such traffic sample",
            tip="point --sample (or watch.sample) at the folder python -m mlci.serve "
            "--sample-dir writes, a file or a glob",
        )
    if not files:
        raise InputError(
            f"no sample files ({', '.join(SUFFIXES)}) in {where}",
            tip="files being written are hidden until finished; see --sample-rotate-seconds",
        )
    return files


def _read(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
        else:
            table = pj.read_json(path, read_options=pj.ReadOptions(block_size=1 << 24))
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise DataError(
            f"{path}: not a readable traffic sample ({reason})",
            tip="sample files are JSON Lines or Parquet as python -m mlci.serve writes them",
        ) from None
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


def read_sample(files: Sequence[Path]) -> Traffic:
    """Every record of ``files`` as one Traffic, in the order the files hold them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlci.data import to_numpy

    tables = [_read(p) for p in files]
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise DataError(
            f"the sample files disagree on column types ({str(exc).splitlines()[0][:160]})",
            tip="read files written by one model at a time",
        ) from None
    where = str(files[0]) if len(files) == 1 else f"{files[0]} (and {len(files) - 1} more)"
    names = table.column_names
    for name in REQUIRED:
        if name not in names:
            raise DataError(
                f"{where}: no '{name}' in the traffic sample",
                tip="sample files are written by python -m mlci.serve --sample-dir",
            )
    if table.num_rows == 0:
        raise DataError(f"{where}: the traffic sample has no rows")
    stamps = table.column("timestamp")
    try:
        if not pa.types.is_timestamp(stamps.type):
            stamps = pc.cast(stamps, pa.timestamp("us", tz="UTC"))
        stamps = pc.cast(stamps, pa.timestamp("us", tz="UTC"))
        time_us = pc.cast(stamps, pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowException:
        raise DataError(f"{where}: 'timestamp' holds values that are not ISO 8601 times") from None
    if stamps.null_count:
        raise DataError(f"{where}: 'timestamp' is missing in {stamps.null_count} rows")
    ids = table.column("request_id")
    if ids.null_count:
        raise DataError(f"{where}: 'request_id' is missing in {ids.null_count} rows")
    inputs: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    outputs: dict[str, np.ndarray] = {}
    for name in names:
        column = table.column(name)
        if name.startswith("inputs."):
            key = name[len("inputs.") :]
            if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
                inputs[key] = _matrix(column, name, where)
                kinds[key] = "list"
            else:
                inputs[key], kinds[key], _ = to_numpy(column, key, where)
        elif name.startswith("outputs."):
            key = name[len("outputs.") :]
            if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
                outputs[key] = _matrix(column, name, where)
            else:
                outputs[key] = to_numpy(column, key, where)[0]
    rows = (
        table.column("row").to_numpy(zero_copy_only=False).astype(np.int64)
        if "row" in names
        else np.zeros(table.num_rows, dtype=np.int64)
    )
    digests = (
        np.asarray(table.column("model_sha256").to_pylist(), dtype=object)
        if "model_sha256" in names
        else np.full(table.num_rows, None, dtype=object)
    )
    return Traffic(
        files=tuple(str(p) for p in files),
        request_id=np.asarray(pc.cast(ids, pa.string()).to_pylist(), dtype=object),
        row=rows,
        time_us=np.asarray(time_us, dtype=np.int64),
        model_sha256=digests,
        inputs=inputs,
        kinds=kinds,
        outputs=outputs,
    )


def _matrix(column: Any, name: str, where: str) -> np.ndarray:
    """A list column of equal-length numeric lists as a 2-D float array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if column.null_count or len(set(lengths.tolist())) > 1:
        raise DataError(f"{where}: '{name}' holds lists of different lengths or missing lists")
    width = int(lengths[0]) if len(lengths) else 0
    try:
        flat = pc.cast(column.flatten(), pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowException:
        raise DataError(f"{where}: '{name}' holds lists that are not numbers") from None
    return np.asarray(flat, dtype=np.float64).reshape(len(column), width)


def read_labels(
    path: Path, key: str, target: str, row: str | None
) -> tuple[dict[tuple[str, int], Any], str]:
    """Labels by (request id, row) from a CSV or Parquet file, and its display name."""
    from mlci.data import missing_mask, read_columns
    from mlci.suggest import did_you_mean

    _, _, columns, _ = read_columns(path)
    for field_name, column in (("key", key), ("target", target), ("row", row)):
        if column is not None and column not in columns:
            raise DataError(
                f"{path}: no column '{column}' (watch.labels.{field_name})"
                f"{did_you_mean(column, list(columns))}"
            )
    ids = [str(v) for v in columns[key].tolist()]
    rows = columns[row].astype(np.int64).tolist() if row else [0] * len(ids)
    values = columns[target]
    missing = missing_mask(values)
    labels: dict[tuple[str, int], Any] = {}
    for i, (request, position) in enumerate(zip(ids, rows, strict=True)):
        if not missing[i]:
            labels[(request, int(position))] = (
                values[i].item() if hasattr(values[i], "item") else values[i]
            )
    return labels, str(path)


def join_labels(traffic: Traffic, labels: Mapping[tuple[str, int], Any]) -> np.ndarray:
    """The label of every sampled row (None where none has arrived)."""
    return np.asarray(
        [labels.get((r, int(i))) for r, i in zip(traffic.request_id, traffic.row, strict=True)],
        dtype=object,
    )
