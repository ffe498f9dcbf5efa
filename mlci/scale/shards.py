"""Sharded evaluation: each job predicts on a share of the rows; one job merges.

``mlci evaluate --shard I/N`` predicts the candidate (and its baseline) on the I-th of N
shares of the evaluation data's rows and writes them into a shard file.
``mlci report --merge`` checks that the shard files cover every row exactly once, for the
same mlci.yaml, data and models, puts the predictions back together in row order and runs
the evaluation and the gate on them. Predicting is the part of an evaluation that grows with
the model; the statistics are computed once, on exactly the predictions one job would have
made, so the merged document is the single-run document.

Shards are runs of whole prediction chunks (``PREDICT_CHUNK_ROWS``), so every chunk of rows
is predicted exactly as one job predicts it. A shard file is a NumPy ``.npz`` archive read
with ``allow_pickle=False``: a JSON header and the prediction arrays, never Python objects.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlci.errors import InputError, ModelError, UsageError
from mlci.models.interface import PREDICT_CHUNK_ROWS, Predictions
from mlci.models.outputs import check_predictions, concatenate

FORMAT = "mlci-shard"
VERSION = 1
ROLES = ("candidate", "baseline")
_FIELDS = ("labels", "proba", "values")
_HEADER = "header.json"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: a contiguous share of the rows."""

    index: int
    count: int

    def rows(self, total: int, chunk: int = PREDICT_CHUNK_ROWS) -> tuple[int, int]:
        """First and past-the-last row of this shard among ``total`` rows.

        Shards are runs of whole prediction chunks (``PREDICT_CHUNK_ROWS``), so the models
        predict the same chunks of rows as in one job; with fewer chunks than shards, some
        shards are empty.
        """
        chunks = -(-total // chunk)
        first, last = (i * chunks // self.count for i in (self.index, self.index + 1))
        return min(first * chunk, total), min(last * chunk, total)

    @property
    def filename(self) -> str:
        return f"shard-{self.index}-of-{self.count}.npz"


def parse_shard(text: str) -> Shard:
    """``I/N`` with 0 <= I < N, as ``--shard`` takes it (a job matrix counts from 0)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise UsageError(
            f"--shard {text!r} is not I/N", tip="give the shard's index and the count, e.g. 0/4"
        )
    index, count = int(match[1]), int(match[2])
    if count < 1 or count > 10_000 or index >= count:
        raise UsageError(
            f"--shard {text}: the index must be in 0..{max(count - 1, 0)} and the count in "
            "1..10000",
            tip="a job matrix of N jobs uses --shard 0/N to --shard N-1/N",
        )
    return Shard(index, count)


@dataclass(frozen=True)
class ShardFile:
    """What one shard job wrote: where it sits among the rows and what the models said."""

    path: Path
    header: dict[str, Any]
    predictions: tuple[Predictions, ...]  # the candidate's, then the baseline's if any

    @property
    def model(self) -> str:
        return str(self.header["model"])


def write_shard(
    path: Path,
    header: dict[str, Any],
    predictions: Sequence[Predictions],
) -> None:
    """Write one shard file atomically (``header`` names the shard, data, config and models)."""
    from mlci.files import write_atomic

    arrays: dict[str, np.ndarray] = {}
    classes: dict[str, list[Any] | None] = {}
    for role, p in zip(ROLES, predictions, strict=False):
        classes[role] = None if p.classes is None else [_plain(c) for c in p.classes]
        for field in _FIELDS:
            value = getattr(p, field)
            if value is not None:
                arrays[f"{role}.{field}"] = _storable(value, f"{role} {field}")
    full = {"format": FORMAT, "version": VERSION, **header, "classes": classes}
    arrays[_HEADER] = np.frombuffer(json.dumps(full, sort_keys=True).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    write_atomic(path, buffer.getvalue())


def read_shard(path: Path) -> ShardFile:
    """Read a shard file; InputError naming the file when it is not one mlci wrote."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if _HEADER not in names:
                raise ValueError(f"it has no {_HEADER}")
            header = json.loads(bytes(archive[_HEADER]).decode())
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise ValueError("its header is not an mlci shard header")
            if header.get("version") != VERSION:
                raise ValueError(f"it is version {header.get('version')!r}, not {VERSION}")
            _check_header(header)
            predictions = []
            empty = header["start"] == header["stop"]
            for role in ROLES[: 2 if header["baseline"] else 1]:
                if not empty and not any(f"{role}.{f}" in names for f in _FIELDS):
                    raise ValueError(f"it holds no {role} predictions")
                fields = {f: archive[f"{role}.{f}"] for f in _FIELDS if f"{role}.{f}" in names}
                listed = header["classes"].get(role)
                predictions.append(
                    Predictions(**fields, classes=None if listed is None else tuple(listed))
                )
    except FileNotFoundError:
        raise InputError(f"{path}: no such shard file") from None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(
            f"{path}: not an mlci shard file ({exc})",
            tip="pass the shard-I-of-N.npz files that mlci evaluate --shard wrote",
        ) from None
    rows = header["stop"] - header["start"]
    for role, p in zip(ROLES, predictions, strict=False):
        for field in _FIELDS:
            value = getattr(p, field)
            if value is not None and len(value) != rows:
                raise InputError(
                    f"{path}: {role} {field} has {len(value)} rows, the header says {rows}",
                    tip="write the shard again with mlci evaluate --shard",
                )
    # The checks every model's output passes: shapes, finite values, probabilities.
    try:
        checked = [
            check_predictions(p, rows, f"{path} ({role})") if rows else p
            for role, p in zip(ROLES, predictions, strict=False)
        ]
    except ModelError as exc:
        raise InputError(
            exc.message, tip="write the shard again with mlci evaluate --shard"
        ) from None
    return ShardFile(path, header, tuple(checked))


_INTS = ("shard", "shards", "start", "stop", "rows")
_TEXTS = ("model", "config_sha256", "data_sha256")


def _check_header(header: dict[str, Any]) -> None:
    for key in _INTS:
        if not isinstance(header.get(key), int) or isinstance(header.get(key), bool):
            raise ValueError(f"header field {key!r} is not an integer")
    for key in _TEXTS:
        if not isinstance(header.get(key), str):
            raise ValueError(f"header field {key!r} is not text")
    if not isinstance(header.get("baseline"), bool):
        raise ValueError("header field 'baseline' is not true or false")
    if not isinstance(header.get("classes"), dict):
        raise ValueError("header field 'classes' is not a mapping")
    shard = Shard(header["shard"], header["shards"]) if header["shards"] > 0 else None
    if shard is None or not 0 <= shard.index < shard.count:
        raise ValueError("its shard index is not below its shard count")
    if (header["start"], header["stop"]) != shard.rows(header["rows"]):
        raise ValueError("its rows do not match its shard index and count")


def merge_shards(files: Sequence[ShardFile]) -> tuple[Predictions, ...]:
    """One model's predictions on every row, from shard files that cover them exactly once.

    InputError naming a file when the shards disagree on the data, configuration or models,
    overlap, or leave rows out.
    """
    first = files[0]
    agreed = ("model", "shards", "rows", "config_sha256", "data_sha256", "candidate_sha256")
    for f in files[1:]:
        for key in (*agreed, "baseline_sha256"):
            if f.header.get(key) != first.header.get(key):
                raise InputError(
                    f"{f.path}: {key} is {f.header.get(key)!r}, but {first.path} has "
                    f"{first.header.get(key)!r}",
                    tip="merge shards of one run: the same mlci.yaml, data and models",
                )
    seen: dict[int, Path] = {}
    for f in files:
        index = f.header["shard"]
        if index in seen:
            raise InputError(
                f"{f.path}: shard {index} of {f.header['shards']} was already given "
                f"({seen[index]})",
                tip="pass each shard file once",
            )
        seen[index] = f.path
    missing = [i for i in range(first.header["shards"]) if i not in seen]
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise InputError(
            f"{first.path}: shards {shown} of {first.header['shards']} are missing "
            f"(model '{first.model}')",
            tip="pass every shard-I-of-N.npz that the job matrix wrote",
        )
    # Shards past the last chunk of rows are empty and predicted nothing.
    filled = [f for f in files if f.header["start"] < f.header["stop"]]
    for i, role in enumerate(ROLES[: len(first.predictions)]):
        parts = [f.predictions[i] for f in filled]
        if len({tuple(map(str, p.classes)) if p.classes else None for p in parts}) > 1:
            raise InputError(
                f"{first.path}: the shards' {role} predictions name different classes",
                tip="merge shards of one run: the same models",
            )
        for field in _FIELDS:
            if len({getattr(p, field) is None for p in parts}) > 1:
                raise InputError(
                    f"{first.path}: some shards hold {role} {field} and others do not",
                    tip="merge shards of one run: the same models",
                )
    ordered = sorted(filled, key=lambda f: int(f.header["shard"]))
    return concatenate([f.predictions for f in ordered])


def _plain(value: Any) -> Any:
    """A class label as JSON holds it (numpy scalars become Python ones)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise ModelError(f"class label {value!r} cannot be written to a shard file")


def _storable(values: np.ndarray, what: str) -> np.ndarray:
    """The array itself, or object arrays of text or integers as fixed-width arrays."""
    array = np.asarray(values)
    if array.dtype != object:
        return array
    items = array.tolist()
    for kind in (str, int, float):
        if all(type(v) is kind or (kind is int and type(v) is bool) for v in items):
            return np.asarray(items)
    raise ModelError(
        f"the {what} mix types, which a shard file cannot hold",
        tip="make the model return labels of one type",
    )
