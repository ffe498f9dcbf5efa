"""Which rows: declared slices and ``where`` expressions, as every stage selects them.

This is the evaluation package's public API for row selection; the tests stage and the pytest
plugin use it, so a slice means the same rows everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlci.evaluate import slicing
from mlci.evaluate.expressions import ExpressionError, evaluate

if TYPE_CHECKING:
    from mlci.config import LoadedConfig
    from mlci.data import Dataset
    from mlci.evaluate.sliceline import FoundSlice


@dataclass(frozen=True)
class SliceRows:
    """A slice to evaluate: where it came from and its rows."""

    name: str
    definition: str
    source: str  # "declared" or "discovered"
    mask: np.ndarray
    found: FoundSlice | None = None


def declared_slices(loaded: LoadedConfig, data: Dataset) -> list[SliceRows]:
    """Expand every slice definition of ``evaluation.slices``, pointing errors at it."""
    result: list[SliceRows] = []
    for i, spec in enumerate(loaded.config.evaluation.slices):
        try:
            defs = slicing.expand(
                spec.model_dump(), data.columns, data.kinds, data.display, data.encoded
            )
        except slicing.SliceError as exc:
            raise loaded.error(("evaluation", "slices", i, *exc.field), str(exc)) from None
        result.extend(SliceRows(d.name, d.definition, "declared", d.mask) for d in defs)
    return result


def slice_masks(loaded: LoadedConfig, data: Dataset) -> dict[str, np.ndarray]:
    """Declared slice name -> boolean row mask."""
    return {s.name: s.mask for s in declared_slices(loaded, data)}


def where_mask(expression: str, data: Dataset) -> np.ndarray:
    """The rows a ``where`` expression selects; ExpressionError when it is not valid."""
    return np.asarray(evaluate(expression, data.columns), dtype=bool)


__all__ = ["ExpressionError", "SliceRows", "declared_slices", "slice_masks", "where_mask"]
