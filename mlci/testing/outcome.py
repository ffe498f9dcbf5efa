"""The outcome of one model test or data check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["passed", "failed", "error", "skipped"]
# How many examples of offending rows or values a failure lists.
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Outcome:
    """What a check found: its status, one sentence, and the evidence.

    ``observed`` and ``threshold`` are the statistic and the limit it was held to; ``details``
    holds a few ``examples`` of offending rows or values, their ``count`` and anything else a
    reader needs to act on the failure.
    """

    status: Status
    message: str
    observed: float | str | None = None
    threshold: float | str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "passed"


def not_applicable(message: str) -> Outcome:
    """A check that cannot apply to this model: skipped, and not missing evidence for the gate.

    A contract's probability check on a regressor, or its ONNX-versus-scikit-learn parity on a
    model that is only ONNX, has nothing to look at; holding the gate for it would hold every
    such model.
    """
    return Outcome("skipped", message, details={"examples": [], "count": 0, "applicable": False})


def verdict(ok: bool) -> Status:
    return "passed" if ok else "failed"


def fmt(value: Any) -> str:
    """A number as it reads in a message: compact, integers without a point."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.4g}" if abs(value) >= 1e-3 else f"{value:.3g}"
    if hasattr(value, "item"):
        return fmt(value.item())
    return repr(value) if isinstance(value, str) else str(value)


def share(count: int, total: int) -> str:
    """``12 of 1,500 rows (0.8%)``."""
    pct = 100.0 * count / total if total else 0.0
    return f"{count:,} of {total:,} rows ({pct:.3g}%)"
