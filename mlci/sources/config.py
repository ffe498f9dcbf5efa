"""mlci.yaml's settings for where a model comes from: the signature policy a fetched model must
satisfy before it is loaded (the same policy as ``mlci verify``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from mlci.configbase import ConfigPath, Strict


class SignaturePolicyConfig(Strict):
    """Who must have signed the model: a public key, or a certificate identity and issuer."""

    key: ConfigPath | None = Field(
        None, description="PEM public key (cosign.pub) the signature must verify with."
    )
    identity: str | None = Field(
        None,
        description="Keyless: the signer's certificate identity, e.g. "
        "https://github.com/ORG/REPO/.github/workflows/release.yml@refs/heads/main.",
    )
    issuer: str | None = Field(
        None,
        description="Keyless: the identity's OIDC issuer, e.g. "
        "https://token.actions.githubusercontent.com.",
    )

    @model_validator(mode="after")
    def _one_policy(self) -> SignaturePolicyConfig:
        if self.key is not None and (self.identity or self.issuer):
            raise ValueError("give either 'key' or 'identity' and 'issuer', not both")
        if self.key is None and not (self.identity and self.issuer):
            raise ValueError("give 'key', or both 'identity' and 'issuer'")
        return self
