"""Text columns are read through Arrow's dictionary encoding: the values must be those Arrow
holds, rows of one value share one string, and the level codes found while reading must equal
what encoding the values afterwards gives."""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from mlci.config import load_config
from mlci.data import load_dataset, to_numpy
from mlci.evaluate.sliceline import encode_categorical
from project import Project

text = st.one_of(st.none(), st.sampled_from(["a", "b", "é", "B", "", "a b", "zz", "ä"]), st.text())


@settings(max_examples=200, deadline=None)
@given(
    pool=st.lists(text, min_size=1, max_size=8),
    picks=st.lists(st.integers(0, 7), max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=4),
)
def test_text_codes_match_encoding_the_values(
    pool: list[str | None], picks: list[int], cuts: list[int]
) -> None:
    rows = [pool[i % len(pool)] for i in picks]
    bounds = sorted({0, len(rows), *(c for c in cuts if c <= len(rows))})
    chunks = [pa.array(rows[a:b], pa.string()) for a, b in zip(bounds, bounds[1:], strict=False)]
    column = pa.chunked_array(chunks, pa.string())
    values, kind, found = to_numpy(column, "x")
    assert kind == "categorical" and values.dtype == object
    assert values.tolist() == rows
    # Columns whose values mostly differ are read plainly, without codes.
    assert (found is None) == (len(set(rows)) * 2 > len(rows))
    if found is None:
        return
    assert found.column is values
    codes, labels = encode_categorical(values)
    assert found.codes.dtype == codes.dtype == np.int32
    assert found.codes.tolist() == codes.tolist()
    assert found.labels == labels


def test_rows_of_one_value_share_one_string() -> None:
    column = pa.chunked_array([pa.array(["left", "right", None] * 1000)] * 3)
    values, _, found = to_numpy(column, "side")
    assert len({id(v) for v in values}) == 3  # "left", "right" and None
    assert found is not None and found.labels == ["left", "right"]
    before = sys.getrefcount(values[0])
    assert before > 2_000  # one string held by every "left" row


def test_mostly_distinct_text_is_read_plainly() -> None:
    ids = [f"request-{i}" for i in range(100_000)]
    values, kind, found = to_numpy(
        pa.chunked_array([pa.array(ids[:70_000]), pa.array(ids[70_000:])]), "id"
    )
    assert kind == "categorical" and found is None and values.tolist() == ids


def test_dates_become_text_with_codes() -> None:
    days = [dt.date(2026, 1, 2), None, dt.date(2025, 12, 31), dt.date(2026, 1, 2)] * 5
    values, kind, found = to_numpy(pa.chunked_array([pa.array(days)]), "day")
    assert kind == "categorical"
    assert values.tolist() == ["2026-01-02", None, "2025-12-31", "2026-01-02"] * 5
    assert found is not None and found.codes.tolist() == [1, -1, 0, 1] * 5


def test_a_dataset_ignores_codes_of_a_replaced_column(project: Project) -> None:
    data = load_dataset(load_config(project.config))
    name = "region"
    assert name in data.text_codes
    assert data.encoded(name)[0] is data.text_codes[name].codes
    reversed_values = data.columns[name][::-1].copy()
    other = replace(data, columns={**data.columns, name: reversed_values})
    codes, labels = other.encoded(name)
    expected_codes, expected_labels = encode_categorical(reversed_values)
    assert codes.tolist() == expected_codes.tolist() and labels == expected_labels


def test_empty_text_column(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"x": pa.array([], pa.string())}), path)
    values, kind, found = to_numpy(pq.read_table(path).column("x"), "x")
    assert kind == "categorical" and len(values) == 0
    assert found is not None and len(found.codes) == 0 and found.labels == []
