"""The ``card`` section: the model card files written beside the results."""

from __future__ import annotations

from pydantic import Field

from mlci.results.base import Section, Sha256


class CardFile(Section):
    path: str = Field(description="File name, beside results.json.")
    sha256: Sha256


class Card(Section):
    """The model card: Markdown, and CycloneDX 1.6 with a modelCard when it could be made."""

    markdown: CardFile
    cyclonedx: CardFile | None = None
    note: str | None = Field(None, description="Why a format is missing.")
