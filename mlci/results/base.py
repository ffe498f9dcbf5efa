"""Building blocks of the results document's typed sections."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _finite_or_none(value: Any) -> Any:
    # Metrics are NaN where undefined (a slice with one class has no ROC AUC); JSON has no
    # NaN, so the document says null.
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# A number that may be undefined: NaN and infinities become null.
Number = Annotated[float | None, BeforeValidator(_finite_or_none)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0)]
# A class label as it appears in the data.
Label = str | int | float | bool


def jsonable(value: Any) -> Any:
    """Plain JSON values from numpy scalars, tuples and paths; non-finite floats become null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    value = _finite_or_none(value)
    if isinstance(value, Path):
        return str(value)
    return value


class Section(BaseModel):
    """A part of the results document: immutable, and unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Open(BaseModel):
    """Evidence whose fields vary by kind (a test's examples, a rule's observations)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Estimate(Section):
    """A metric value and its confidence interval (null where undefined)."""

    value: Number
    ci_low: Number
    ci_high: Number

    @property
    def has_interval(self) -> bool:
        return self.value is not None and self.ci_low is not None and self.ci_high is not None
