"""Verify Sigstore bundles against a policy, for an image in a registry or a plain file.

A policy is either a public key (bundles made with ``mlci sign --key`` or ``cosign --key``) or a
certificate identity and OIDC issuer (keyless bundles, checked offline by sigstore-python
against the public-good trust root it ships: certificate chain, transparency log inclusion,
signed timestamps). For an image, verification walks the referrers of its digest, verifies
every Sigstore bundle among them, and requires a signature, an SBOM attestation and an mlci
evaluation attestation that all name this exact digest and agree on the model's sha256.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import InputError, MlciError, UsageError
from mlci.supply import attest
from mlci.supply.bundle_schema import BundleFormatError, check_bundle
from mlci.supply.sbom import sbom_image_digest, sbom_models

if TYPE_CHECKING:
    from mlci.results.image import Signature
    from mlci.supply.store import Store

KINDS = ("signature", "sbom", "evaluation")


class VerificationError(MlciError):
    """A signature, attestation or binding that does not hold."""

    exit_code = 1


@dataclass(frozen=True)
class Policy:
    """Who must have signed: a public key, or a certificate identity and its OIDC issuer."""

    public_key: Path | None = None
    identity: str | None = None
    issuer: str | None = None

    def __post_init__(self) -> None:
        if self.public_key and (self.identity or self.issuer):
            raise UsageError(
                "give either --key or --certificate-identity/--certificate-oidc-issuer"
            )
        if not self.public_key and not (self.identity and self.issuer):
            raise UsageError(
                "no verification policy",
                tip="give --key PUBLIC_KEY, or both --certificate-identity and "
                "--certificate-oidc-issuer (as with cosign)",
            )

    def describe(self) -> dict[str, Any]:
        if self.public_key:
            return {"key": str(self.public_key)}
        return {"identity": self.identity, "issuer": self.issuer}


@dataclass(frozen=True)
class Verified:
    """A bundle that verified: its statement (for DSSE) and who signed it."""

    identity: str
    issuer: str | None
    key_id: str | None
    statement: dict[str, Any] | None


def _public_key(policy: Policy) -> Any:
    from mlci.supply.signing import load_public_key

    assert policy.public_key is not None
    return load_public_key(policy.public_key)


def _ecdsa_ok(public_key: Any, signature: bytes, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def _key_names(public_key: Any) -> set[str]:
    """How a bundle may name this key: mlci's hex key id, or the base64 of the same sha256."""
    from mlci.supply.signing import key_id

    kid = key_id(public_key)
    return {kid, base64.b64encode(bytes.fromhex(kid)).decode("ascii")}


def _checked_shape(bundle: dict[str, Any], what: str) -> None:
    try:
        check_bundle(bundle)
    except BundleFormatError as exc:
        raise VerificationError(
            f"{what}: malformed Sigstore bundle: {exc}",
            tip="a bundle whose fields do not all check out is refused; sign again",
        ) from None


def _file_digest_matches(message: dict[str, Any], artifact: bytes, what: str) -> None:
    # The schema admits only SHA2_256, so the digest is compared with the file's sha256.
    signed = base64.b64decode(message["messageDigest"]["digest"])
    if signed != hashlib.sha256(artifact).digest():
        raise VerificationError(f"{what}: the file's sha256 differs from the signed digest")


def _verify_with_key(
    bundle: dict[str, Any], policy: Policy, artifact: bytes | None, what: str
) -> Verified:
    from mlci.supply.signing import key_id

    key = _public_key(policy)
    kid = key_id(key)
    names = _key_names(key)
    material = bundle["verificationMaterial"]
    if "publicKey" not in material:
        raise VerificationError(
            f"{what}: signed keylessly (with a certificate), not with a key",
            tip="verify it with --certificate-identity and --certificate-oidc-issuer",
        )
    if material["publicKey"]["hint"] not in names:
        raise VerificationError(
            f"{what}: the bundle names key {material['publicKey']['hint'][:16]}, not the key "
            f"given ({kid[:12]})"
        )
    if material["tlogEntries"] or (material.get("timestampVerificationData") or {}).get(
        "rfc3161Timestamps"
    ):
        # Nothing in a key policy can check them; a field that is not checked is refused.
        raise VerificationError(
            f"{what}: a key-signed bundle carries transparency-log entries or timestamps that "
            "mlci cannot check"
        )
    if "dsseEnvelope" in bundle:
        signature = bundle["dsseEnvelope"]["signatures"][0]
        if signature.get("keyid") not in names:
            raise VerificationError(
                f"{what}: the envelope's signature names key {str(signature.get('keyid'))[:16]}, "
                f"not the key given ({kid[:12]})"
            )
        envelope = attest.envelope_of(bundle, what)
        signed = attest.pae(envelope.payload_type, envelope.payload)
        if not _ecdsa_ok(key, envelope.signatures[0], signed):
            raise VerificationError(f"{what}: the signature does not verify with key {kid[:12]}")
        statement = envelope.statement()
        if artifact is not None:
            digest = "sha256:" + hashlib.sha256(artifact).hexdigest()
            if digest not in attest.subject_digests(statement):
                raise VerificationError(
                    f"{what}: the statement does not name this file ({digest[:19]})"
                )
        return Verified(f"key:sha256:{kid}", None, kid, statement)
    message = bundle["messageSignature"]
    if artifact is None:
        raise VerificationError(f"{what}: a message signature needs the signed file")
    _file_digest_matches(message, artifact, what)
    signature = base64.b64decode(message["signature"])
    if not _ecdsa_ok(key, signature, artifact):
        raise VerificationError(f"{what}: the signature does not verify with key {kid[:12]}")
    return Verified(f"key:sha256:{kid}", None, kid, None)


_VERIFIER: Any = None


def _keyless_verifier() -> Any:
    global _VERIFIER
    if _VERIFIER is None:
        from sigstore.verify import Verifier

        try:
            _VERIFIER = Verifier.production(offline=True)
        except Exception as exc:
            raise VerificationError(
                f"cannot load Sigstore's trust root ({exc.__class__.__name__}: {exc})"
            ) from None
    return _VERIFIER


def _verify_keyless(
    bundle: dict[str, Any], policy: Policy, artifact: bytes | None, what: str
) -> Verified:
    from sigstore.models import Bundle
    from sigstore.verify.policy import Identity

    if "publicKey" in bundle["verificationMaterial"]:
        raise VerificationError(
            f"{what}: signed with a key, not keylessly",
            tip="verify it with --key PUBLIC_KEY",
        )
    try:
        parsed = Bundle.from_json(json.dumps(bundle))
    except Exception as exc:
        raise VerificationError(f"{what}: not a usable Sigstore bundle ({exc})") from None
    verifier = _keyless_verifier()
    identity = Identity(identity=str(policy.identity), issuer=policy.issuer)
    statement = None
    try:
        if "dsseEnvelope" in bundle:
            payload_type, payload = verifier.verify_dsse(parsed, identity)
            statement = attest.Envelope(payload_type, payload, ()).statement()
            if artifact is not None:
                digest = "sha256:" + hashlib.sha256(artifact).hexdigest()
                if digest not in attest.subject_digests(statement):
                    raise VerificationError(f"{what}: the statement does not name this file")
        else:
            if artifact is None:
                raise VerificationError(f"{what}: a message signature needs the signed file")
            # sigstore-python compares the digest's bytes but not its algorithm.
            _file_digest_matches(bundle["messageSignature"], artifact, what)
            verifier.verify_artifact(artifact, parsed, identity)
    except VerificationError:
        raise
    except Exception as exc:  # sigstore.errors.VerificationError and friends
        text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise VerificationError(f"{what}: {text}") from None
    return Verified(str(policy.identity), policy.issuer, None, statement)


def verify_bundle(
    bundle: dict[str, Any], policy: Policy, *, artifact: bytes | None = None, what: str = "bundle"
) -> Verified:
    """Verify one bundle against ``policy`` (and against ``artifact``'s bytes when given).

    The bundle's shape is checked first, field by field (see ``bundle_schema``), so every
    field either checks out or makes the verification fail.
    """
    _checked_shape(bundle, what)
    if policy.public_key:
        return _verify_with_key(bundle, policy, artifact, what)
    return _verify_keyless(bundle, policy, artifact, what)


def verify_file(path: Path, bundle_path: Path, policy: Policy) -> Verified:
    """Verify a plain file with its bundle (``FILE.sigstore.json``)."""
    try:
        artifact = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    try:
        raw = bundle_path.read_bytes()
    except FileNotFoundError:
        raise InputError(
            f"{bundle_path}: no such bundle", tip="give the bundle with --bundle FILE"
        ) from None
    try:
        bundle = attest.parse_bundle(raw, str(bundle_path))
    except InputError as exc:  # a malformed bundle fails verification, like a forged one
        raise VerificationError(exc.message, tip=exc.tip) from None
    return verify_bundle(bundle, policy, artifact=artifact, what=path.name)


# --- images ---------------------------------------------------------------------------------------


@dataclass
class Finding:
    """One referrer of the image and what verifying it found."""

    kind: str
    predicate_type: str | None
    referrer: str
    verified: bool
    identity: str | None = None
    issuer: str | None = None
    key_id: str | None = None
    reason: str | None = None

    def record(self) -> Signature:
        """The finding as the results document records it."""
        from mlci.results.image import Signature

        return Signature(
            kind=self.kind,
            predicate_type=self.predicate_type,
            referrer=self.referrer,
            identity=self.identity,
            issuer=self.issuer,
            key_id=self.key_id,
            verified=self.verified,
            reason=self.reason,
        )


@dataclass
class ImageVerification:
    """The outcome of verifying an image: every referrer looked at, and the verdict."""

    reference: str
    digest: str
    findings: list[Finding] = field(default_factory=list)
    sbom: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def reason(self) -> str:
        return "; ".join(self.problems) if self.problems else "verified"


def verify_image(
    store: Store,
    policy: Policy,
    *,
    require: tuple[str, ...] = KINDS,
    expected_digest: str | None = None,
) -> ImageVerification:
    """Verify the signature and attestations of the image in ``store`` against ``policy``."""
    from mlci.supply.referrers import fetch_bundle, list_referrers
    from mlci.supply.registry import RegistryError
    from mlci.supply.store import StoreError

    subject = store.resolve()
    if expected_digest and subject.digest != expected_digest:
        raise VerificationError(f"{store.name} resolved to {subject.digest}, not {expected_digest}")
    result = ImageVerification(store.name, subject.digest)
    referrers = list_referrers(store, subject.digest)
    bundles = [r for r in referrers if r.artifact_type in attest.BUNDLE_MEDIA_TYPES]
    valid: dict[str, list[tuple[Verified, dict[str, Any]]]] = {k: [] for k in KINDS}
    for referrer in bundles:
        short = referrer.descriptor.digest[:19]
        predicate_type = referrer.predicate_type
        kind = attest.KIND_OF_PREDICATE.get(predicate_type or "", "other")
        finding = Finding(kind, predicate_type, referrer.descriptor.digest, False)
        result.findings.append(finding)
        try:
            bundle = fetch_bundle(store, referrer, subject.digest)
            verified = verify_bundle(bundle, policy, what=f"referrer {short}")
            statement = verified.statement or {}
            actual_type = statement.get("predicateType")
            if actual_type != predicate_type:
                raise VerificationError(
                    f"referrer {short}: annotated as {predicate_type} but holds {actual_type}"
                )
            if subject.digest not in attest.subject_digests(statement):
                raise VerificationError(
                    f"referrer {short}: the statement names "
                    f"{', '.join(d[:19] for d in attest.subject_digests(statement)) or 'nothing'}"
                    f", not {subject.digest[:19]}"
                )
        except (VerificationError, RegistryError, StoreError, InputError) as exc:
            finding.reason = exc.message
            continue
        finding.verified = True
        finding.identity, finding.issuer, finding.key_id = (
            verified.identity,
            verified.issuer,
            verified.key_id,
        )
        if kind in valid:
            valid[kind].append((verified, statement.get("predicate") or {}))

    def failed_reasons(kind: str) -> str:
        reasons = [f.reason for f in result.findings if f.kind == kind and f.reason]
        return f" ({reasons[0]})" if reasons else ""

    for kind in require:
        if not valid[kind]:
            label = {
                "signature": "signature",
                "sbom": "SBOM attestation",
                "evaluation": "evaluation attestation",
            }[kind]
            result.problems.append(
                f"no valid {label} for {subject.digest[:19]}{failed_reasons(kind)}"
            )
    # The attestations must agree with each other and with this digest
    sbom_digests: list[str] = []
    for _, predicate in valid["sbom"]:
        described = sbom_image_digest(predicate)
        if described != subject.digest:
            result.problems.append(
                f"the SBOM describes {str(described)[:19]}, not {subject.digest[:19]}"
            )
        else:
            result.sbom = predicate
            sbom_digests.extend(sbom_models(predicate))
    for _, predicate in valid["evaluation"]:
        named = (predicate.get("image") or {}).get("digest")
        if named != subject.digest:
            result.problems.append(
                f"the evaluation attestation names image {str(named)[:19]}, not {subject.digest[:19]}"
            )
            continue
        model_sha = (predicate.get("model") or {}).get("sha256")
        if sbom_digests and model_sha not in sbom_digests:
            result.problems.append(
                f"the evaluation attestation's model sha256 {str(model_sha)[:12]} is not in the SBOM"
            )
            continue
        result.evaluation = predicate
    return result
