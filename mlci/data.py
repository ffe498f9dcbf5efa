"""Datasets: CSV and Parquet through pyarrow, with the checks that catch bad evaluation data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mlci.config import LoadedConfig
from mlci.errors import DataError
from mlci.hashing import sha256_file
from mlci.suggest import did_you_mean

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

ColumnKind = Literal["numeric", "categorical", "bool"]


@dataclass(frozen=True)
class Dataset:
    """A table held as numpy columns (object arrays for strings, NaN or None for missing)."""

    path: Path
    display: str
    format: str
    sha256: str
    columns: dict[str, np.ndarray]
    kinds: dict[str, ColumnKind]
    target: str
    features: tuple[str, ...]
    id: str | None = None
    weight: str | None = None
    group: str | None = None

    @property
    def rows(self) -> int:
        return len(self.columns[self.target])

    def column(self, name: str) -> np.ndarray:
        return self.columns[name]


def read_table(path: Path, fmt: str = "auto") -> tuple[str, pa.Table]:
    """Read a CSV or Parquet file; raise DataError with the path on any failure."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "auto":
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            fmt = "parquet"
        elif suffix in (".csv", ".txt", ".tsv"):
            fmt = "csv"
        else:
            raise DataError(
                f"{path}: cannot tell the data format from the suffix '{suffix}'",
                tip="use a .csv or .parquet file, or set data.format",
            )
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    try:
        if fmt == "parquet":
            return fmt, pq.read_table(path)
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        return fmt, pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter))
    except (pa.ArrowException, OSError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise DataError(f"{path}: not a readable {fmt.upper()} file ({detail})") from None


def to_numpy(column: pa.ChunkedArray) -> tuple[np.ndarray, ColumnKind]:
    """One Arrow column as a numpy array and its kind."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_boolean(kind):
        if column.null_count:
            return np.array(column.to_pylist(), dtype=object), "categorical"
        return column.to_numpy(), "bool"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        if column.null_count or pa.types.is_decimal(kind):
            column = pc.cast(column, pa.float64())
            return column.to_numpy(zero_copy_only=False).astype(np.float64), "numeric"
        return column.to_numpy(), "numeric"
    if pa.types.is_null(kind):
        return np.full(len(column), None, dtype=object), "categorical"
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        column = pc.cast(column, pa.string())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object), "categorical"


def load_dataset(loaded: LoadedConfig) -> Dataset:
    """Load the configured evaluation data and check it against the configuration."""
    cfg = loaded.config.data
    display = str(cfg.path)
    fmt, table = read_table(cfg.path, cfg.format)
    names = list(table.column_names)

    def require(loc: tuple[str | int, ...], column: str) -> None:
        if column not in names:
            raise loaded.error(
                loc, f"no column '{column}' in {display}{did_you_mean(column, names)}"
            )

    require(("data", "target"), cfg.target)
    for field in ("id", "weight", "group"):
        value = getattr(cfg, field)
        if value is not None:
            require(("data", field), value)
    reserved = {c for c in (cfg.target, cfg.id, cfg.weight) if c is not None}
    if cfg.features is not None:
        # A cluster column may be a feature when named; by default it is not one.
        for i, feature in enumerate(cfg.features):
            require(("data", "features", i), feature)
            if feature in reserved:
                raise loaded.error(
                    ("data", "features", i),
                    f"'{feature}' is the target, id or weight column and cannot be a feature",
                )
        features = tuple(cfg.features)
    else:
        features = tuple(n for n in names if n not in reserved and n != cfg.group)
    if table.num_rows == 0:
        raise DataError(f"{display}: no rows to evaluate", tip="check the file and data.path")
    if not features:
        raise DataError(f"{display}: no feature columns besides the target, id and weight")

    columns: dict[str, np.ndarray] = {}
    kinds: dict[str, ColumnKind] = {}
    for name in names:
        columns[name], kinds[name] = to_numpy(table.column(name))

    _check_target(columns[cfg.target], kinds[cfg.target], cfg.target, display)
    if cfg.weight is not None:
        _check_weight(columns[cfg.weight], kinds[cfg.weight], cfg.weight, display)
    if cfg.group is not None:
        _check_group(columns[cfg.group], cfg.group, display)
    return Dataset(
        path=cfg.path,
        display=display,
        format=fmt,
        sha256=sha256_file(cfg.path),
        columns=columns,
        kinds=kinds,
        target=cfg.target,
        features=features,
        id=cfg.id,
        weight=cfg.weight,
        group=cfg.group,
    )


def missing_mask(values: np.ndarray) -> np.ndarray:
    """True where a value is missing (NaN for numbers, None or NaN for objects)."""
    import numpy as np

    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype == object:
        return np.fromiter(
            (v is None or (isinstance(v, float) and v != v) for v in values),
            dtype=bool,
            count=len(values),
        )
    return np.zeros(len(values), dtype=bool)


def _check_target(values: np.ndarray, kind: ColumnKind, name: str, display: str) -> None:
    missing = missing_mask(values)
    if missing.any():
        first = int(missing.argmax())
        raise DataError(
            f"{display}: target '{name}' is missing in {int(missing.sum())} rows "
            f"(first at data row {first + 1})",
            tip="drop or fill those rows; a model cannot be scored against an unknown answer",
        )


def _check_weight(values: np.ndarray, kind: ColumnKind, name: str, display: str) -> None:
    import numpy as np

    if kind != "numeric":
        raise DataError(f"{display}: weight column '{name}' must be numeric, found text")
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        raise DataError(
            f"{display}: weight column '{name}' has {int(bad.sum())} negative, missing or "
            f"infinite values (first at data row {int(bad.argmax()) + 1})"
        )
    if not (values > 0).any():
        raise DataError(f"{display}: weight column '{name}' is zero everywhere")


def _check_group(values: np.ndarray, name: str, display: str) -> None:
    missing = missing_mask(values)
    if missing.any():
        raise DataError(
            f"{display}: group column '{name}' is missing in {int(missing.sum())} rows "
            f"(first at data row {int(missing.argmax()) + 1})",
            tip="give every row its cluster (a row of its own can use its id)",
        )
