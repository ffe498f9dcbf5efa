"""SliceLine's search when a Parquet file is evaluated batch by batch.

It finds the slices the in-memory evaluation finds (:func:`mlci.evaluate.stage.discover_slices`),
holding a batch at a time:

* the first pass keeps each batch's errors on disk and learns what the features' level codes
  need: the levels of a text column, a numeric column's distinct values (until there are more
  than ``numeric_bins``) and its least and greatest values;
* a numeric column with more distinct values than bins gets its edges from exact quantiles
  of the whole column (:mod:`mlci.scale.order_statistics`, about two passes over it);
* one pass writes each batch's level codes and which of its rows the search sees (the same
  seeded draws, drawn batch after batch);
* the search reads those blocks one at a time (:func:`find_slices_in_blocks`), and the found
  slices' tested rows in each batch come from the codes kept.

What the first pass learns of a batch (:func:`learn`) can be learned where the batch was
predicted, a Dask worker included, and kept here in row order (:meth:`Discovery.keep`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlci.config import LoadedConfig
from mlci.evaluate.sliceline import FoundSlice

if TYPE_CHECKING:
    from mlci.data import Dataset
    from mlci.scale.stream import Batch, Chosen, Source


@dataclass
class Levels:
    """What the first pass learns of one feature's values."""

    numeric: bool
    values: set[Any] = field(default_factory=set)  # distinct values, missing ones aside
    missing: bool = False  # a NaN (np.unique counts it as one more distinct value)
    binned: bool = False  # more distinct values than bins: quantile bins
    lowest: float = math.inf
    highest: float = -math.inf

    def add(self, data: Dataset, feature: str, bins: int) -> None:
        column = data.columns[feature]
        if not self.numeric:
            self.values.update(data.encoded(feature)[1])
            return
        v = np.asarray(column, dtype=np.float64)
        present = v[~np.isnan(v)]
        if present.size:
            self.lowest = min(self.lowest, float(present.min()))
            self.highest = max(self.highest, float(present.max()))
        if self.binned:
            return
        self.missing |= present.size < v.size
        self.values.update(np.unique(column[~np.isnan(v)]).tolist())
        self._bin_past(bins)

    def merge(self, later: Levels, bins: int) -> None:
        """Add what ``later`` learned of the rows after ours; the same as adding them here."""
        if not self.numeric:
            self.values |= later.values
            return
        self.lowest = min(self.lowest, later.lowest)
        self.highest = max(self.highest, later.highest)
        if self.binned:
            return
        if later.binned:
            self.binned, self.values = True, set()
            return
        self.missing |= later.missing
        self.values |= later.values
        self._bin_past(bins)

    def _bin_past(self, bins: int) -> None:
        if len(self.values) + self.missing > bins:
            self.binned, self.values = True, set()


@dataclass
class Learned:
    """What the first pass learns of one batch: its rows' errors and its features' levels."""

    errors: np.ndarray
    levels: dict[str, Levels]


def learn(
    loaded: LoadedConfig,
    known: Mapping[str, Levels],
    mode: Literal["model", "regression"],
    batch: Batch,
) -> Learned:
    """One batch's :class:`Learned`; runs wherever the batch was predicted, a Dask worker
    included. ``known``: what is known of each feature so far (a numeric feature known to be
    binned needs only its least and greatest values)."""
    from mlci.evaluate.stage import discovery_errors

    outputs = batch.outputs
    baseline = outputs[1] if len(outputs) > 1 else None
    errors = discovery_errors(batch.task, batch.y, outputs[0], baseline, mode)
    bins = loaded.config.evaluation.discover.numeric_bins
    levels = {f: Levels(k.numeric, binned=k.binned) for f, k in known.items()}
    for feature, of_feature in levels.items():
        of_feature.add(batch.data, feature, bins)
    return Learned(errors, levels)


@dataclass
class Found:
    """A search's result: the slices, the settings and sizes it reports, its error mode."""

    slices: list[FoundSlice]
    info: dict[str, Any]
    mode: Literal["model", "regression"]


class Discovery:
    """SliceLine over a file read batch by batch; its files go in ``folder``."""

    def __init__(
        self, loaded: LoadedConfig, source: Source, folder: Path, has_baseline: bool
    ) -> None:
        from mlci.evaluate.stage import discovery_mode

        cfg = loaded.config.evaluation.discover
        self.loaded, self.source, self.folder = loaded, source, folder
        self.features = list(cfg.features) if cfg.features is not None else list(source.features)
        for i, feature in enumerate(self.features):
            if feature not in source.dtypes:
                raise loaded.error(
                    ("evaluation", "discover", "features", i),
                    f"no column '{feature}' in {source.display}",
                )
        self.mode = discovery_mode(loaded, has_baseline)
        self.levels = {f: Levels(source.kinds[f] == "numeric") for f in self.features}
        self.labels: dict[str, list[Any]] = {}
        self.found: list[FoundSlice] = []

    def first(self, i: int, batch: Batch) -> None:
        """Learn batch ``i`` here (the first pass, in this process)."""
        self.keep(i, learn(self.loaded, self.levels, self.mode, batch))

    def keep(self, i: int, learned: Learned) -> None:
        """Keep batch ``i``'s errors and what it shows of the features (batches in order)."""
        np.save(self.folder / f"{i}-errors.npy", learned.errors)
        bins = self.loaded.config.evaluation.discover.numeric_bins
        for feature, levels in self.levels.items():
            levels.merge(learned.levels[feature], bins)

    def search(self) -> Found:
        """Bin, code and search the kept batches (after the first pass)."""
        from mlci.evaluate.sliceline import find_slices_in_blocks
        from mlci.evaluate.stage import Holdout, discovery_info, discovery_support

        cfg = self.loaded.config.evaluation.discover
        edges = {f: self._edges(f) for f, levels in self.levels.items() if levels.binned}
        self.labels = {f: self._labels(f, edges.get(f)) for f in self.features}
        holdout = Holdout(cfg.holdout, self.loaded.config.evaluation.seed)
        searched_rows = tested_rows = 0
        for i, data in enumerate(self._columns(self.features)):
            n = self.source.parts[i].stop - self.source.parts[i].start
            searched, tested = holdout.split(n)
            searched_rows += int(searched.sum())
            tested_rows += int(tested.sum())
            np.save(self.folder / f"{i}-searched.npy", searched)
            for j, feature in enumerate(self.features):
                codes = self._codes(feature, data, edges.get(feature))
                np.save(
                    self.folder / f"{i}-codes-{j}.npy", _narrow(codes, len(self.labels[feature]))
                )
        support = discovery_support(self.loaded, searched_rows)
        if searched_rows >= support:
            self.found = find_slices_in_blocks(
                _KeptBlocks(self),
                self.labels,
                k=cfg.top_k,
                max_level=cfg.max_level,
                alpha=cfg.alpha,
                min_support=support,
            )
        info = discovery_info(
            self.loaded, self.features, searched_rows, tested_rows, support, self.found
        )
        return Found(self.found, info, self.mode)

    def chosen(self, i: int) -> dict[tuple[Any, ...], Chosen]:
        """The slices found, as the fold selects rows: each with its tested rows in batch
        ``i``."""
        from mlci.evaluate.stage import found_definition, found_name

        if not self.found:
            return {}
        holdout = self.loaded.config.evaluation.discover.holdout
        searched = np.load(self.folder / f"{i}-searched.npy")
        tested = ~searched if holdout else searched
        codes: dict[str, np.ndarray] = {}
        out: dict[tuple[Any, ...], Chosen] = {}
        for j, s in enumerate(self.found):
            mask = tested.copy()
            for feature, label in s.predicates:
                if feature not in codes:
                    k = self.features.index(feature)
                    codes[feature] = np.load(self.folder / f"{i}-codes-{k}.npy")
                mask &= codes[feature] == self.labels[feature].index(label)
            out[("found", j)] = (found_name(s), found_definition(s, self.source.kinds), None, mask)
        return out

    def _columns(self, features: Sequence[str]) -> Iterator[Dataset]:
        """Each batch's columns of ``features``, as the batches read them."""
        from mlci.data import dataset_of
        from mlci.scale.stream import column_batches

        source = self.source
        for columns, text in column_batches(self.loaded, source, features):
            yield dataset_of(
                self.loaded, "parquet", source.sha256, columns, source.kinds, source.features, text
            )

    def _edges(self, feature: str) -> np.ndarray:
        from mlci.evaluate.sliceline import bin_edges, bin_levels
        from mlci.scale.stream import whole_quantiles

        levels = self.levels[feature]
        bins = bin_levels(self.loaded.config.evaluation.discover.numeric_bins)
        quantiles = whole_quantiles(self.loaded, self.source, feature, bins)
        # No finite value: the edges are the infinities alone.
        finite = np.empty(0) if quantiles is None else quantiles
        return bin_edges(levels.lowest, finite, levels.highest)

    def _labels(self, feature: str, edges: np.ndarray | None) -> list[Any]:
        from mlci.evaluate.sliceline import bin_labels
        from mlci.scale.stream import sorted_levels

        if edges is not None:
            return list(bin_labels(edges))
        return sorted_levels(list(self.levels[feature].values))

    def _codes(self, feature: str, data: Dataset, edges: np.ndarray | None) -> np.ndarray:
        from mlci.evaluate.sliceline import bin_codes

        if edges is not None:
            return bin_codes(data.columns[feature], edges)
        codes, levels = data.encoded(feature)
        index = {value: k for k, value in enumerate(self.labels[feature])}
        remap = np.array([index[value] for value in levels] + [-1], dtype=np.int32)
        return np.asarray(remap[codes])  # code -1 (missing) takes the last entry, -1


class _KeptBlocks:
    """The kept batches' searched rows, as SliceLine reads blocks."""

    def __init__(self, discovery: Discovery) -> None:
        self.discovery = discovery

    def __len__(self) -> int:
        return len(self.discovery.source.parts)

    def read(self, i: int, features: Sequence[str]) -> tuple[Mapping[str, np.ndarray], np.ndarray]:
        d = self.discovery
        searched = np.load(d.folder / f"{i}-searched.npy")
        errors = np.load(d.folder / f"{i}-errors.npy")[searched]
        codes = {
            f: np.load(d.folder / f"{i}-codes-{d.features.index(f)}.npy")[searched]
            for f in features
        }
        return codes, errors


def _narrow(codes: np.ndarray, levels: int) -> np.ndarray:
    """Codes in the fewest bytes that hold ``levels`` levels and -1."""
    for dtype in (np.int8, np.int16):
        if levels <= np.iinfo(dtype).max:
            return codes.astype(dtype)
    return codes.astype(np.int32)
