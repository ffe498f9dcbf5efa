"""Building blocks of the mlci.yaml schema shared by every section's model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

ALLOW_OUTSIDE_TIP = "move it into that folder, or set paths: {allow_outside: true} in mlci.yaml"


def inside(path: Path, folder: Path) -> bool:
    """True when ``path`` stays inside ``folder`` once '..' and symbolic links are resolved."""
    return path.resolve().is_relative_to(folder.resolve())


def check_inside(value: str | Path, path: Path, context: dict[str, Any] | None) -> None:
    """Raise ValueError when a path from mlci.yaml leaves the file's folder without leave.

    A configuration from a pull request must not make mlci read (and quote) files elsewhere on
    the machine, such as credentials, so every path mlci.yaml names must stay in its folder
    unless the file itself says ``paths: {allow_outside: true}``.
    """
    base = (context or {}).get("base_dir")
    if base is None or (context or {}).get("allow_outside") or inside(path, Path(base)):
        return
    raise ValueError(
        f"'{value}' is outside the folder that holds mlci.yaml ({base}); {ALLOW_OUTSIDE_TIP}"
    )


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is None:
        return value
    path = value if value.is_absolute() else Path(base) / value
    check_inside(value, path, info.context)
    return path


def too_few_replicates(replicates: int, confidence: float) -> str | None:
    """Why ``replicates`` bootstrap replicates cannot make ``confidence`` intervals, if so.

    0 means no intervals; otherwise each tail of the interval must hold at least five
    replicates. A 95% interval from 20 replicates is nothing but the two most extreme ones,
    and a gate would act on it.
    """
    least = math.ceil(round(10 / (1 - confidence), 9))
    if replicates == 0 or replicates >= least:
        return None
    return (
        f"{replicates} replicates are too few for {confidence:.0%} intervals (each tail "
        f"would hold {replicates * (1 - confidence) / 2:.2g}); use 0 for no intervals, "
        f"or at least {least}"
    )


def enough_replicates(replicates: int, info: ValidationInfo) -> int:
    """Validator of a ``bootstrap`` field declared after its model's ``confidence``."""
    confidence = info.data.get("confidence")
    problem = too_few_replicates(replicates, confidence) if isinstance(confidence, float) else None
    if problem:
        raise ValueError(problem)
    return replicates


# A path written relative to mlci.yaml, made absolute against the file's folder; it must stay
# inside that folder unless mlci.yaml sets paths.allow_outside.
ConfigPath = Annotated[Path, AfterValidator(_resolve)]


class Strict(BaseModel):
    """A configuration section: unknown keys are errors, values are immutable."""

    # Non-finite numbers (.nan, .inf in YAML) are refused: no threshold or setting means them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
