"""The ``image:`` section of mlci.yaml: the serving image, where it goes, how it is signed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlci.configbase import ConfigPath, Strict


class SignConfig(Strict):
    """How the image, its SBOM and the evaluation decision are signed."""

    method: Literal["none", "key", "keyless"] = Field(
        "none",
        description="'key': a private key file (PEM P-256 or cosign); 'keyless': Sigstore with "
        "the workflow's OIDC identity (GitHub Actions with id-token: write); 'none'.",
    )
    key: ConfigPath | None = Field(None, description="The private key for method 'key'.")
    password_env: str = Field(
        "COSIGN_PASSWORD", description="Environment variable holding the key's password."
    )
    staging: bool = Field(False, description="Keyless: use Sigstore's staging instance.")

    @model_validator(mode="after")
    def _key_for_key(self) -> SignConfig:
        if self.method == "key" and self.key is None:
            raise ValueError("method 'key' needs 'key': the private key file")
        if self.method != "key" and self.key is not None:
            raise ValueError(f"'key' goes with method 'key', not '{self.method}'")
        return self


class ImageConfig(Strict):
    """The serving image `mlci check` builds, describes and signs."""

    base: str | None = Field(
        None,
        description="Base image with Python: an OCI layout folder, oci:DIR[:TAG], "
        "docker-archive:FILE (paths relative to mlci.yaml) or docker://HOST/REPO[:TAG] "
        "(default: `mlci check --image-base`).",
    )
    format: Literal["oci", "docker-archive"] = Field(
        "oci",
        description="How the image is written beside the results: an OCI layout folder "
        "(image/) or a docker-archive tar (image.tar; no SBOM or signatures on it).",
    )
    registry: str | None = Field(
        None, description="host/repository to push to, e.g. ghcr.io/acme/credit-model."
    )
    tag: str | None = Field(None, description="Tag to push (default: the model name).")
    push: bool = Field(False, description="Push to the registry after the build.")
    requirements: list[str] | None = Field(
        None, description="Python requirements of the dependency layer (default: mlci's own)."
    )
    sbom: bool = Field(True, description="Write the image's SBOM (CycloneDX 1.6).")
    sign: SignConfig = Field(default_factory=SignConfig)

    @model_validator(mode="after")
    def _registry_for_push(self) -> ImageConfig:
        if self.push and not self.registry:
            raise ValueError("'push: true' needs 'registry' (host/repository)")
        return self
