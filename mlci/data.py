"""Datasets: CSV and Parquet through pyarrow, with the checks that catch bad evaluation data."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from mlci.config import LoadedConfig
from mlci.errors import DataError
from mlci.hashing import sha256_file
from mlci.suggest import did_you_mean

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

ColumnKind = Literal["numeric", "categorical", "bool"]


@dataclass(frozen=True)
class TextCodes:
    """A text column's level codes, as ``encode_categorical`` gives them, found while reading.

    ``column`` is the array they encode: a dataset whose column was replaced ignores them.
    """

    column: np.ndarray
    codes: np.ndarray
    labels: list[Any]


class Converted(NamedTuple):
    """One data column as mlci holds it: values, kind, and for text its level codes."""

    values: np.ndarray
    kind: ColumnKind
    text: TextCodes | None = None


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
    # ``file:line:col: data.features`` when mlci.yaml lists the features (None: every column).
    features_declared_at: str | None = None
    text_codes: dict[str, TextCodes] = field(default_factory=dict)

    @property
    def unit_keys(self) -> np.ndarray:
        """Each row's bootstrap resampling unit: its cluster (group), else its id, else its
        position. Rows with one key are resampled together."""
        import numpy as np

        column = self.group or self.id
        return np.arange(self.rows) if column is None else self.columns[column]

    @property
    def rows(self) -> int:
        return len(self.columns[self.target])

    def column(self, name: str) -> np.ndarray:
        return self.columns[name]

    def encoded(self, name: str) -> tuple[np.ndarray, list[Any]]:
        """Column ``name`` as level codes and labels (``encode_categorical``'s result), from
        the codes found while reading when they are still this column's."""
        known = self.text_codes.get(name)
        if known is not None and known.column is self.columns[name]:
            return known.codes, known.labels
        from mlci.evaluate.sliceline import encode_categorical

        return encode_categorical(self.columns[name])


# The largest magnitude a numeric value may have: the largest finite 32-bit float, since most
# models read float32 and a larger value would reach them as infinity.
MAX_MAGNITUDE = 3.4028234663852886e38
# Fewer rows than this cannot give a metric with an interval or a comparison.
MIN_ROWS = 2


def read_table(path: Path, fmt: str = "auto") -> tuple[str, pa.Table]:
    """Read a CSV or Parquet file; raise DataError with the path on any failure.

    Messages never quote the file's content: a path may name a file that is not data at all.
    """
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
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        if fmt == "parquet":
            # Arrow cannot even read a table whose columns share a name: check them first.
            check_names(path, list(pq.read_schema(path).names))
            table = pq.read_table(path)
        else:
            options = pacsv.ParseOptions(delimiter=delimiter)
            table = pacsv.read_csv(path, parse_options=options)
    except (pa.ArrowException, OSError) as exc:
        ragged = _first_ragged_line(path, delimiter) if fmt == "csv" else None
        if ragged is not None:
            line, fields, header = ragged
            detail = f"line {line} has {fields} fields where the header has {header}"
        else:
            detail = _arrow_reason(exc)
        raise DataError(
            f"{path}: not a readable {fmt.upper()} file ({detail})",
            tip="check that the path names the data file and that its format is right",
        ) from None
    check_names(path, list(table.column_names))
    return fmt, table


def _first_ragged_line(path: Path, delimiter: str) -> tuple[int, int, int] | None:
    """(line, fields, header fields) of the first CSV row that does not fit the header.

    Only run once Arrow has refused the file: Arrow's own message quotes the row, and its
    row-handler hook fails on bytes that are not UTF-8.
    """
    import csv

    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                return None
            for row in reader:
                if row and len(row) != len(header):
                    return reader.line_num, len(row), len(header)
    except (csv.Error, OSError):
        return None
    return None


def _arrow_reason(exc: BaseException) -> str:
    # Arrow quotes the offending row or value after the reason; keep only the reason.
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    conversion = re.match(
        r"In CSV column #(\d+): (?:Row #(\d+): )?CSV conversion error to (\w+)", text
    )
    if conversion:
        column, row, kind = conversion.groups()
        at = f"row {row}" if row else "a row"
        return (
            f"{at} of column {int(column) + 1} is not {kind} like the rows before it; "
            "make the column's values one type"
        )
    text = re.sub(r"^(CSV parse error|In CSV column #\d+): ", "", text)
    return re.split(r": |'", text, maxsplit=1)[0].strip() or exc.__class__.__name__


def check_names(path: Path, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name.strip():
            raise DataError(
                f"{path}: column {i + 1} has no name", tip="give every column a name in the header"
            )
        if name in seen:
            raise DataError(
                f"{path}: column '{name}' appears twice (columns {seen[name] + 1} and {i + 1})",
                tip="rename one of them; mlci finds columns by name",
            )
        seen[name] = i


def read_columns(
    path: Path, fmt: str = "auto"
) -> tuple[str, int, dict[str, np.ndarray], dict[str, ColumnKind]]:
    """Read a data file into checked numpy columns: (format, rows, columns, kinds)."""
    fmt, table = read_table(path, fmt)
    columns: dict[str, np.ndarray] = {}
    kinds: dict[str, ColumnKind] = {}
    for name in table.column_names:
        columns[name], kinds[name], _ = to_numpy(table.column(name), name, str(path))
    return fmt, table.num_rows, columns, kinds


def to_numpy(
    column: pa.ChunkedArray, name: str = "", where: str = "the data", first_row: int = 0
) -> Converted:
    """One Arrow column as a numpy array and its kind; every data column passes through here.

    Numbers become float64 or int64 and must be finite and within ``MAX_MAGNITUDE`` (missing
    values are NaN); text, dates and times become Python strings; nested types are refused.
    ``first_row`` is the file's row index of the column's first value, for messages.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_boolean(kind):
        if column.null_count:
            return Converted(np.array(column.to_pylist(), dtype=object), "categorical")
        return Converted(column.to_numpy(), "bool")
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        if pa.types.is_integer(kind) and not column.null_count:
            values = column.to_numpy()
            if values.dtype.kind == "u" and len(values) and values.max() > np.iinfo(np.int64).max:
                values = values.astype(np.float64)
            return Converted(_finite(values, name, where, first_row), "numeric")
        try:
            column = pc.cast(column, pa.float64(), safe=False)
        except pa.ArrowException:
            raise DataError(
                f"{where}: column '{name}' has numbers beyond what a 64-bit float holds"
            ) from None
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
        return Converted(_finite(values, name, where, first_row), "numeric")
    if pa.types.is_null(kind):
        return Converted(np.full(len(column), None, dtype=object), "categorical")
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            column = pc.cast(column, pa.string())
        except pa.ArrowException:
            raise DataError(
                f"{where}: column '{name}' holds bytes that are not UTF-8 text",
                tip="save the file as UTF-8",
            ) from None
        kind = column.type
    plain = (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_temporal(kind)
        or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(kind))
    )
    if not plain:
        raise DataError(
            f"{where}: column '{name}' has type {kind}, which mlci cannot evaluate",
            tip="flatten nested values into plain columns (numbers, text, booleans, dates), "
            "or drop the column from the file",
        )
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        column = pc.cast(column, pa.string())
    if not _repeats(column):
        return Converted(
            np.asarray(column.to_numpy(zero_copy_only=False), dtype=object), "categorical"
        )
    return _text(column)


# Rows whose text values decide whether a column repeats its values (see ``_repeats``).
_REPEAT_SAMPLE = 65_536


def _repeats(column: pa.ChunkedArray) -> bool:
    """Whether the column's first rows repeat their values: at most half of them distinct.

    Dictionary encoding pays for categories; for mostly distinct values (ids, free text)
    hashing millions of strings costs several times what reading them plainly does.
    """
    import pyarrow.compute as pc

    head = column.slice(0, _REPEAT_SAMPLE)
    return bool(pc.count_distinct(head, mode="all").as_py() * 2 <= len(head))


def _text(column: pa.ChunkedArray) -> Converted:
    """A text column through Arrow's dictionary encoding: rows of one value share one Python
    string (ten million rows of a few values hold a few strings, not ten million), and the
    level codes that slicing needs come along."""
    import numpy as np
    import pyarrow as pa

    from mlci.evaluate.sliceline import dictionary_codes

    encoded = column.dictionary_encode().combine_chunks()
    if not isinstance(encoded, pa.DictionaryArray):  # an empty column has no chunk
        encoded = pa.array([], pa.dictionary(pa.int32(), column.type))
    codes, labels = dictionary_codes(encoded)
    strings = np.empty(len(labels) + 1, dtype=object)
    strings[:-1] = labels  # the last one, None, is for missing rows (code -1)
    values = strings[codes]
    return Converted(values, "categorical", TextCodes(values, codes, labels))


def _finite(values: np.ndarray, name: str, where: str, first_row: int = 0) -> np.ndarray:
    """``values`` when every number is finite and within MAX_MAGNITUDE (NaN means missing)."""
    import numpy as np

    if values.dtype.kind in "iu":
        return values  # 64-bit integers always fit
    with np.errstate(invalid="ignore"):
        bad = np.isinf(values) | (np.abs(values) > MAX_MAGNITUDE)
    if bad.any():
        first = first_row + int(bad.argmax())
        raise DataError(
            f"{where}: column '{name}' has {int(bad.sum())} infinite or out-of-range numbers "
            f"(first at data row {first + 1}); numbers must lie within ±{MAX_MAGNITUDE:.4g}",
            tip="fix or drop those values; a model would receive them as infinity",
        )
    return values


def column_roles(loaded: LoadedConfig, names: list[str]) -> tuple[str, ...]:
    """Check that the columns mlci.yaml names exist and return the feature columns."""
    cfg = loaded.config.data
    display = str(cfg.path)

    def require(loc: tuple[str | int, ...], column: str) -> None:
        if column not in names:
            raise loaded.error(
                loc, f"no column '{column}' in {display}{did_you_mean(column, names)}"
            )

    require(("data", "target"), cfg.target)
    for key in ("id", "weight", "group"):
        value = getattr(cfg, key)
        if value is not None:
            require(("data", key), value)
    if cfg.group is not None and cfg.group in (cfg.target, cfg.weight):
        role = "target" if cfg.group == cfg.target else "weight"
        raise loaded.error(
            ("data", "group"),
            f"'{cfg.group}' is the {role} column, not clusters of correlated rows",
            tip="name the column that identifies each row's cluster (a user, a session)",
        )
    reserved = {c for c in (cfg.target, cfg.id, cfg.weight) if c is not None}
    if cfg.features is not None:
        # A cluster column may be a feature when named; by default it is not one.
        for i, feature in enumerate(cfg.features):
            require(("data", "features", i), feature)
        features = tuple(cfg.features)
    else:
        features = tuple(n for n in names if n not in reserved and n != cfg.group)
    return features


def load_dataset(loaded: LoadedConfig) -> Dataset:
    """Load the configured evaluation data and check it against the configuration."""
    cfg = loaded.config.data
    display = str(cfg.path)
    fmt, table = read_table(cfg.path, cfg.format)
    names = list(table.column_names)
    features = column_roles(loaded, names)
    if table.num_rows == 0:
        raise DataError(f"{display}: no rows to evaluate", tip="check the file and data.path")
    if table.num_rows < MIN_ROWS:
        raise DataError(
            f"{display}: only {table.num_rows} row; an evaluation needs at least {MIN_ROWS}",
            tip="check the file and data.path",
        )
    if not features:
        raise DataError(f"{display}: no feature columns besides the target, id and weight")

    columns: dict[str, np.ndarray] = {}
    kinds: dict[str, ColumnKind] = {}
    text_codes: dict[str, TextCodes] = {}
    for name in names:
        columns[name], kinds[name], text = to_numpy(table.column(name), name, display)
        if text is not None:
            text_codes[name] = text

    check_rows(loaded, columns, kinds)
    for feature in features:
        if missing_mask(columns[feature]).all():
            raise DataError(
                f"{display}: feature column '{feature}' is missing in every row",
                tip="fill the column, or leave it out with data.features",
            )
    return dataset_of(loaded, fmt, sha256_file(cfg.path), columns, kinds, features, text_codes)


def dataset_of(
    loaded: LoadedConfig,
    fmt: str,
    sha256: str,
    columns: dict[str, np.ndarray],
    kinds: dict[str, ColumnKind],
    features: tuple[str, ...],
    text_codes: dict[str, TextCodes] | None = None,
) -> Dataset:
    """The configured data's checked columns (all its rows, or one batch of them)."""
    cfg = loaded.config.data
    return Dataset(
        path=cfg.path,
        display=str(cfg.path),
        format=fmt,
        sha256=sha256,
        columns=columns,
        kinds=kinds,
        target=cfg.target,
        features=features,
        id=cfg.id,
        weight=cfg.weight,
        group=cfg.group,
        features_declared_at=None if cfg.features is None else loaded.where(("data", "features")),
        text_codes=text_codes or {},
    )


def check_rows(
    loaded: LoadedConfig,
    columns: dict[str, np.ndarray],
    kinds: dict[str, ColumnKind],
    first_row: int = 0,
    *,
    every_row: bool = True,
) -> None:
    """Check the target, weight and group of rows that start at file row ``first_row``
    (``every_row``: and that they are all the rows, as a weight that is never positive)."""
    cfg = loaded.config.data
    display = str(cfg.path)
    _check_target(columns[cfg.target], cfg.target, display, first_row)
    if cfg.weight is not None:
        weight = columns[cfg.weight]
        _check_weight(weight, kinds[cfg.weight], cfg.weight, display, first_row)
        if every_row and not (weight > 0).any():
            raise no_weight(loaded)
    if cfg.group is not None:
        _check_group(columns[cfg.group], cfg.group, display, first_row)


def no_weight(loaded: LoadedConfig) -> DataError:
    cfg = loaded.config.data
    return DataError(f"{cfg.path}: weight column '{cfg.weight}' is zero everywhere")


def missing_mask(values: np.ndarray) -> np.ndarray:
    """True where a value is missing (NaN for numbers, None or NaN for objects)."""
    import numpy as np

    if values.dtype.kind == "f":
        return np.asarray(np.isnan(values))
    if values.dtype == object:
        return np.fromiter(
            (v is None or (isinstance(v, float) and v != v) for v in values),
            dtype=bool,
            count=len(values),
        )
    return np.zeros(len(values), dtype=bool)


def _check_target(values: np.ndarray, name: str, display: str, first_row: int) -> None:
    missing = missing_mask(values)
    if missing.any():
        first = first_row + int(missing.argmax())
        raise DataError(
            f"{display}: target '{name}' is missing in {int(missing.sum())} rows "
            f"(first at data row {first + 1})",
            tip="drop or fill those rows; a model cannot be scored against an unknown answer",
        )


def _check_weight(
    values: np.ndarray, kind: ColumnKind, name: str, display: str, first_row: int
) -> None:
    import numpy as np

    if kind != "numeric":
        raise DataError(f"{display}: weight column '{name}' must be numeric, found text")
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        raise DataError(
            f"{display}: weight column '{name}' has {int(bad.sum())} negative, missing or "
            f"infinite values (first at data row {first_row + int(bad.argmax()) + 1})"
        )


def _check_group(values: np.ndarray, name: str, display: str, first_row: int) -> None:
    missing = missing_mask(values)
    if missing.any():
        raise DataError(
            f"{display}: group column '{name}' is missing in {int(missing.sum())} rows "
            f"(first at data row {first_row + int(missing.argmax()) + 1})",
            tip="give every row its cluster (a row of its own can use its id)",
        )
