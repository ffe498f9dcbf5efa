"""The ``promotion`` section: what ``mlci promote`` put in production, and the proof."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlci.results.base import Section, Sha256


class Promotion(Section):
    """The production pointer after ``mlci promote``: where it is, what it points at, why."""

    pointer: str = Field(description="The production pointer: oci://..., models:/...@..., git:...")
    action: Literal["promote", "rollback"]
    target: str = Field(
        description="What the pointer points at now: a manifest digest, a model "
        "version or a commit."
    )
    model_sha256: Sha256
    previous: str | None = Field(None, description="What the pointer pointed at before.")
    seq: int = Field(ge=1, description="The entry's number in the pointer's promotion history.")
    changed: bool = Field(description="False when the pointer was already there (a re-run).")
    attestation: str | None = Field(
        None, description="Where the signed promotion attestation is stored."
    )
    signer: str | None = None
    actor: str | None = None
    time: str
