"""Where a model came from: the ``source`` of the ``model`` and ``baseline`` records."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlci.results.base import Digest, Section

SourceScheme = Literal["path", "git", "oci", "mlflow", "https"]


class SourceRecord(Section):
    """The source a model was fetched from, what it resolved to, and who vouched for it."""

    scheme: SourceScheme
    reference: str = Field(
        description="The source as configured ('base-branch' written out as the git:REF:PATH "
        "it stood for)."
    )
    resolved: str | None = Field(
        None,
        description="What the reference pointed at when it was fetched: a commit and path, a "
        "manifest digest, a model version, a URL.",
    )
    digest: Digest = Field(description="sha256 of the model file that was loaded.")
    verified_by: str | None = Field(
        None,
        description="The signer a signature policy accepted (key:sha256:... or a certificate "
        "identity); null when no policy was configured.",
    )
