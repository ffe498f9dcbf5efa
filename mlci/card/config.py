"""The ``card:`` section of mlci.yaml: what only people can say about a model."""

from __future__ import annotations

from pydantic import Field

from mlci.configbase import ConfigPath, Strict


class DatasetNote(Strict):
    """A dataset named on the card."""

    name: str = Field(description="Short name of the dataset.")
    description: str | None = Field(None, description="Where it comes from, what it covers.")
    path: ConfigPath | None = Field(
        None, description="The file, relative to mlci.yaml; the card records its sha256."
    )
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="Its digest, when the file is not at hand."
    )


class Risk(Strict):
    """A risk and how it is mitigated."""

    name: str
    mitigation: str | None = None


class CardConfig(Strict):
    """Free-text fields of the model card; everything measurable comes from the results."""

    description: str | None = Field(None, description="What the model does, in a paragraph.")
    version: str | None = Field(None, description="Version of the model.")
    owners: list[str] = Field(default_factory=list, description="People or teams answerable.")
    license: str | None = Field(None, description="SPDX license id or name.")
    architecture: str | None = Field(None, description="Model family, e.g. 'gradient boosting'.")
    intended_use: str | None = Field(None, description="Who should use it, and for what.")
    users: list[str] = Field(default_factory=list, description="Intended users.")
    out_of_scope: list[str] = Field(default_factory=list, description="Uses it is not fit for.")
    training_data: list[DatasetNote] = Field(
        default_factory=list, description="Data the model learned from."
    )
    limitations: list[str] = Field(default_factory=list, description="Known limitations.")
    risks: list[Risk] = Field(default_factory=list, description="Risks and their mitigations.")
    fairness: list[str] = Field(
        default_factory=list, description="Groups whose results deserve attention (slice names)."
    )
