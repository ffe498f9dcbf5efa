"""ROC AUC and average precision from a bounded sketch of score counts.

An evaluation folded batch by batch cannot keep an exact table of every distinct score: a
gradient-boosted model gives millions of distinct scores on a hundred million rows, and
merging such tables batch after batch costs time that grows with the table. The sketch
instead counts positive and negative rows in a fixed grid of cells over [0, 1], of bounded
size, that adds across batches and shards.

The grid is fine where ranking needs it. A score s is placed by its distance to the nearer
end, u = min(s, 1 - s): by u's binary exponent (down to 2**-40) and the top ``MANTISSA_BITS``
(10) bits of its mantissa. A cell therefore spans a relative 2**-10 (0.1%) of the distance
to 0 or 1: 0.00024 wide just below 0.5, 2.4e-7 wide near 0.999, so the confident scores of a
good model, which crowd towards 0 and 1, stay apart. Scores closer than 2**-40 to an end
share that end's cell. There are 2 * (1 + 40 * 1024) = 81,922 cells, of which a sketch keeps
the occupied ones: at most 1.3 MB per score column, whatever the number of rows, and far
less for a small slice.

Error. Within a cell, scores are ties. ROC AUC counts each tied positive-negative pair one
half, so the sketch's ROC AUC differs from the exact one by at most half the share of
positive-negative pairs that share a cell, sum_c pos_c neg_c / (2 P N), which
:meth:`ScoreSketch.roc_auc_error` computes from the sketch itself and mlci reports. Average
precision has no bound this simple (a cell's rows share one threshold, so their precision is
the cell's pooled one): it is exact when no cell holds two distinct scores, and
``tests/test_stream.py`` measures how far it moves on real data (at most 1.2e-3 on the
example's slices).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mlci.evaluate import metrics as M

MANTISSA_BITS = 10
MIN_EXPONENT = -40
_PER_EXPONENT = 1 << MANTISSA_BITS
_HALF = 1 + (-MIN_EXPONENT) * _PER_EXPONENT  # cells for u in [0, 0.5]
CELLS = 2 * _HALF


def score_cells(scores: np.ndarray) -> np.ndarray:
    """Each score's cell, in [0, CELLS): cells order as the scores do (ties share one)."""
    s = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    upper = s > 0.5
    u = np.where(upper, 1.0 - s, s)
    fraction, exponent = np.frexp(u)  # u = fraction * 2**exponent, fraction in [0.5, 1)
    tiny = u < 2.0**MIN_EXPONENT
    mantissa = ((fraction - 0.5) * (2 * _PER_EXPONENT)).astype(np.int64)
    cell = 1 + (exponent.astype(np.int64) - MIN_EXPONENT - 1) * _PER_EXPONENT + mantissa
    cell = np.where(tiny, 0, cell)
    return np.where(upper, CELLS - 1 - cell, cell)


class ScoreSketch:
    """Weighted negative and positive counts per occupied cell, for each one-vs-rest score
    column. Only occupied cells are kept (sorted), so a small slice's sketch stays small."""

    def __init__(self, columns: int) -> None:
        empty = (np.zeros(0, dtype=np.int64), np.zeros((0, 2), dtype=np.float64))
        self.columns: list[tuple[np.ndarray, np.ndarray]] = [empty] * columns

    def add(self, scores: np.ndarray, positive: np.ndarray, weight: np.ndarray | None) -> None:
        """Count rows: ``scores`` and ``positive`` of shape (n, columns)."""
        for c in range(len(self.columns)):
            # Dense counts over every cell, then only the occupied ones: a bincount is
            # several times faster than sorting the rows' cells.
            cell = score_cells(scores[:, c])
            cells = np.flatnonzero(np.bincount(cell, minlength=CELLS))
            dense = np.bincount(cell * 2 + positive[:, c], weights=weight, minlength=2 * CELLS)
            counts = dense.reshape(CELLS, 2)[cells]
            self.columns[c] = _merge(self.columns[c], (cells, counts))

    def merge(self, other: ScoreSketch) -> None:
        self.columns = [_merge(a, b) for a, b in zip(self.columns, other.columns, strict=True)]

    def tables(self) -> list[M.ScoreTable]:
        """Score tables over the occupied cells, the cell index standing for the score."""
        return [
            M.ScoreTable(cells.astype(np.float64), counts[:, 1], counts[:, 0])
            for cells, counts in self.columns
        ]

    def metrics(self, names: Iterable[str]) -> dict[str, float]:
        """ROC AUC and average precision, macro-averaged over the columns."""
        return M.ranking_metrics_from_tables(self.tables(), names)

    def roc_auc_error(self) -> float:
        """The largest difference between the sketch's ROC AUC and the exact one."""
        bounds = []
        for _, counts in self.columns:
            neg, pos = counts[:, 0], counts[:, 1]
            pairs = float(pos.sum() * neg.sum())
            bounds.append(float(np.sum(pos * neg)) / (2.0 * pairs) if pairs > 0 else 0.0)
        return float(np.mean(bounds)) if bounds else 0.0

    def cuts(self, n_bins: int) -> list[np.ndarray]:
        """Per column, cut points (in cells) of at most ``n_bins`` quantile bins of the
        sketched scores: the bootstrap's grid (see :mod:`mlci.evaluate.bootstrap`)."""
        return [M.score_cuts(table, n_bins) for table in self.tables()]


def bin_scores(cuts: list[np.ndarray], scores: np.ndarray) -> np.ndarray:
    """Each row's bin per column (shape of ``scores``) on the grids :meth:`ScoreSketch.cuts`
    gave."""
    out = np.empty(scores.shape, dtype=np.intp)
    for c, column_cuts in enumerate(cuts):
        out[:, c] = np.searchsorted(column_cuts, score_cells(scores[:, c]))
    return out


def _merge(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The counts of two sketches' columns, over the union of their occupied cells."""
    cells = np.union1d(a[0], b[0])
    counts = np.zeros((len(cells), 2), dtype=np.float64)
    counts[np.searchsorted(cells, a[0])] += a[1]
    counts[np.searchsorted(cells, b[0])] += b[1]
    return cells, counts
