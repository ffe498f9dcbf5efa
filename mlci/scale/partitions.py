"""Row ranges of a Parquet file cut on prediction-chunk boundaries, and reading one of them.

Every engine that reads the evaluation data in parts (Dask workers, the streaming fold)
cuts it here, so each part starts on a chunk boundary and the models predict the chunks of
rows one process predicts (see ``PREDICT_CHUNK_ROWS``).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlci.errors import DataError
from mlci.models.interface import PREDICT_CHUNK_ROWS

if TYPE_CHECKING:
    from mlci.data import TextCodes


@dataclass(frozen=True)
class Partition:
    """Rows ``[start, stop)`` of the data, which lie in ``row_groups`` from row ``skip`` of the
    first of them on."""

    row_groups: tuple[int, ...]
    start: int
    stop: int
    skip: int = 0


def plan_partitions(
    row_group_rows: Sequence[int], partition_rows: int, chunk: int = PREDICT_CHUNK_ROWS
) -> list[Partition]:
    """Row ranges of ``partition_rows`` rounded up to whole prediction chunks, and the row
    groups each one reads.

    Every partition starts on a chunk boundary, so the models predict the same chunks of rows
    as in one process (see ``PREDICT_CHUNK_ROWS``); a partition reads the row groups it
    overlaps and keeps its own rows.
    """
    bounds = list(itertools.accumulate(row_group_rows, initial=0))
    total = bounds[-1]
    step = max(1, -(-partition_rows // chunk)) * chunk
    parts = []
    for start in range(0, total, step):
        stop = min(start + step, total)
        first = bisect.bisect_right(bounds, start) - 1
        last = bisect.bisect_left(bounds, stop) - 1  # the group holding row stop - 1
        parts.append(Partition(tuple(range(first, last + 1)), start, stop, start - bounds[first]))
    return parts


def read_partition(
    path: str, part: Partition, dtypes: Mapping[str, str], where: str
) -> tuple[dict[str, np.ndarray], dict[str, TextCodes]]:
    """The partition's rows of ``dtypes``' columns, converted as ``mlci check`` converts them,
    and the level codes of its text columns found while reading.

    Columns take the given numpy dtypes: a partition may lack the nulls that made the whole
    column float or object. OSError when the file cannot be read.
    """
    import pyarrow.parquet as pq

    from mlci.data import to_numpy

    table = pq.ParquetFile(path).read_row_groups(list(part.row_groups), columns=list(dtypes))
    table = table.slice(part.skip, part.stop - part.start)
    if table.num_rows != part.stop - part.start:
        raise DataError(
            f"{where}: {path} changed while it was being evaluated",
            tip="evaluate data that no job writes to while mlci runs",
        )
    columns: dict[str, np.ndarray] = {}
    text_codes: dict[str, TextCodes] = {}
    for name, dtype in dtypes.items():
        values, _, text = to_numpy(table.column(name), name, path, first_row=part.start)
        columns[name] = np.asarray(values, dtype=np.dtype(dtype))
        if text is not None and text.column is columns[name]:
            text_codes[name] = text
    return columns, text_codes
