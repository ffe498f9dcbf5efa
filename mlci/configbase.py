"""Building blocks of the mlci.yaml schema shared by every section's model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is None or value.is_absolute():
        return value
    return Path(base) / value


# A path written relative to mlci.yaml, made absolute against the file's folder.
ConfigPath = Annotated[Path, AfterValidator(_resolve)]


class Strict(BaseModel):
    """A configuration section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
