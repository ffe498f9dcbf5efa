"""The ``image:`` section of mlci.yaml: the serving image, where it goes, how it is signed."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlci.configbase import ConfigPath, Strict, check_inside

# Base image sources that name a file or folder (docker:// names a registry).
FILE_SCHEMES = ("oci", "docker-archive", "oci-archive")


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

    @field_validator("base")
    @classmethod
    def _base_inside(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A base given as a path is resolved against mlci.yaml and must stay in its folder."""
        base_dir = (info.context or {}).get("base_dir")
        if value is None or base_dir is None:
            return value
        scheme, sep, rest = value.partition(":")
        if sep and rest.startswith("//"):
            return value
        if sep and scheme in FILE_SCHEMES:
            given = rest
            if scheme == "oci" and ":" in rest and not (Path(base_dir) / rest).exists():
                given = rest.rsplit(":", 1)[0]  # oci:DIR:TAG
        else:
            scheme, given = "", value
        path = Path(given) if Path(given).is_absolute() else Path(base_dir) / given
        check_inside(given, path, info.context)
        return f"{scheme}:{Path(base_dir) / rest}" if scheme else str(path)

    @model_validator(mode="after")
    def _registry_for_push(self) -> ImageConfig:
        if self.push and not self.registry:
            raise ValueError("'push: true' needs 'registry' (host/repository)")
        return self
