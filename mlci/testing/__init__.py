"""Model tests: declarative behavioural tests, data checks and the pytest plugin.

The assertion helpers for pytest files are importable from here::

    from mlci.testing import assert_invariant, assert_directional, assert_metric_at_least
"""

from __future__ import annotations

from typing import Any

_HELPERS = (
    "assert_directional",
    "assert_invariant",
    "assert_metric_at_least",
    "assert_no_drift",
    "assert_probabilities_valid",
    "assert_robust",
)
__all__ = list(_HELPERS)


def __getattr__(name: str) -> Any:
    # Imported on first use, so that reading mlci.yaml does not import numpy.
    if name in _HELPERS:
        from mlci.testing import assertions

        return getattr(assertions, name)
    raise AttributeError(f"module 'mlci.testing' has no attribute {name!r}")
