"""What SliceLine's first pass learns of each batch merges into what one pass over all of
them learns, whichever process learned each batch (a Dask worker, or this one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlci.data import Dataset
from mlci.scale.discovery import Levels

BINS = 4


def batch(values: list[float | None], text: list[str | None]) -> Dataset:
    number = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    words = np.array(text, dtype=object)
    return Dataset(
        Path("batch.parquet"),
        "batch.parquet",
        "parquet",
        "0" * 64,
        {"x": number, "word": words, "y": np.zeros(len(values))},
        {"x": "numeric", "word": "categorical", "y": "numeric"},
        "y",
        ("x", "word"),
    )


def state(levels: Levels) -> tuple[object, ...]:
    # ``missing`` only counts towards the bins while a column is not binned.
    missing = None if levels.binned else levels.missing
    return (levels.binned, sorted(levels.values), missing, levels.lowest, levels.highest)


VALUES = st.lists(st.one_of(st.none(), st.sampled_from([-1.5, 0.0, 2.0, 3.25, 7.0, 1e300])))
WORDS = st.lists(st.one_of(st.none(), st.sampled_from("abcdefgh")))


@given(st.lists(st.tuples(VALUES, WORDS), max_size=6))
@settings(max_examples=300, deadline=None)
def test_merged_batches_learn_what_one_pass_learns(batches: list[tuple[list, list]]) -> None:
    batches = [(v, (w + [None] * len(v))[: len(v)]) for v, w in batches]
    for feature, numeric in (("x", True), ("word", False)):
        one_pass = Levels(numeric)
        merged = Levels(numeric)
        for values, words in batches:
            data = batch(values, words)
            one_pass.add(data, feature, BINS)
            alone = Levels(numeric)
            alone.add(data, feature, BINS)
            merged.merge(alone, BINS)
        assert state(merged) == state(one_pass)


def test_text_is_never_binned() -> None:
    text = Levels(numeric=False, values=set("abc"))
    text.merge(Levels(numeric=False, values=set("defgh")), BINS)
    assert not text.binned and text.values == set("abcdefgh")
