"""The ``image`` section: the serving image, its SBOM, signatures and attestations."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlci.results.base import Count, Digest, Section, Sha256

SignatureKind = Literal["signature", "sbom", "evaluation", "other"]


class Layer(Section):
    digest: Digest
    size: Count
    media_type: str | None = None
    role: str | None = Field(None, description="base, dependencies, runtime or model.")


class SbomRecord(Section):
    path: str | None = None
    format: str | None = None
    sha256: Sha256 | None = None
    components: Count | None = None
    attached: bool = Field(
        False, description="True once the SBOM is attached to the image as a signed attestation."
    )
    referrer: Digest | None = None


class Signature(Section):
    """A signature or attestation attached to the image, who signed it, whether it verified."""

    kind: SignatureKind
    predicate_type: str | None = None
    referrer: Digest
    identity: str | None = Field(
        None, description="Certificate identity (keyless) or key:sha256:<fingerprint>."
    )
    issuer: str | None = None
    key_id: str | None = None
    verified: bool
    reason: str | None = None


class Verification(Section):
    verified: bool
    reason: str
    policy: dict[str, str] = Field(default_factory=dict)
    checked: str | None = None


class Image(Section):
    """Where the image was built and pushed, its digest, layers, SBOM and signatures."""

    output: str | None = Field(
        None, description="Where the build wrote it: oci:DIR or docker-archive:FILE."
    )
    reference: str | None = Field(
        None, description="The reference pushed to or verified, host/repository[:tag][@digest]."
    )
    repository: str | None = Field(None, description="host/repository without tag or digest.")
    digest: Digest | None = None
    media_type: str | None = None
    size: Count | None = Field(None, description="Bytes of config, layers and manifests.")
    layers: list[Layer] = Field(default_factory=list)
    pushed: str | None = None
    sbom: SbomRecord | None = None
    signatures: list[Signature] = Field(default_factory=list)
    verification: Verification | None = None

    @property
    def signed(self) -> list[Signature]:
        """Signatures proper (attestations are listed beside them)."""
        return [s for s in self.signatures if s.kind == "signature"]

    def for_digest(self, digest: str) -> Image:
        """This section when it describes ``digest``; a fresh one for another image."""
        return self if self.digest in (None, digest) else Image()
