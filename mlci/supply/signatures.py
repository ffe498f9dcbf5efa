"""Sign an image and attach the signature and attestations to it, in any store.

One code path for ``mlci sign`` and the ``sign`` and ``attest`` stages of ``mlci check``:
statements are built and checked against each other before anything is signed, so a refused
binding leaves the store untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlci.errors import InputError
from mlci.supply import attest

if TYPE_CHECKING:
    from mlci.results import Results
    from mlci.results.image import Signature
    from mlci.supply.oci import Descriptor
    from mlci.supply.signing import Signer
    from mlci.supply.store import Store
    from mlci.supply.verify import ImageVerification


def statements(
    store: Store,
    subject: Descriptor,
    *,
    signature: bool = True,
    sbom: dict[str, Any] | None = None,
    evaluation: Results | None = None,
) -> list[dict[str, Any]]:
    """The in-toto statements to sign for ``subject``; InputError when they disagree."""
    from mlci.supply.sbom import sbom_image_digest, sbom_models

    if sbom is not None and sbom_image_digest(sbom) != subject.digest:
        raise InputError(
            f"the SBOM describes image {sbom_image_digest(sbom)}, not {subject.digest}",
            tip="generate the SBOM from the image that is signed",
        )
    found = []
    if signature:
        found.append(attest.statement(store.name, subject.digest, attest.SIGN_PREDICATE, {}))
    if sbom is not None:
        found.append(attest.statement(store.name, subject.digest, attest.SBOM_PREDICATE, sbom))
    if evaluation is not None:
        if sbom is not None and evaluation.model.sha256 not in sbom_models(sbom):
            raise InputError(
                f"model sha256 {str(evaluation.model.sha256)[:12]} is not in the image's SBOM",
                tip="the image must be built from the evaluated model",
            )
        gated = evaluation.gate.image_digest if evaluation.gate else None
        if gated and gated != subject.digest:
            raise InputError(f"the gate decided on image {gated}, not {subject.digest}")
        predicate = attest.evaluation_predicate(
            image_digest=subject.digest, image_name=store.name, document=evaluation
        )
        found.append(
            attest.statement(store.name, subject.digest, attest.EVALUATION_PREDICATE, predicate)
        )
    return found


def sign_and_attach(
    store: Store, subject: Descriptor, signer: Signer, signed: Sequence[dict[str, Any]]
) -> list[Signature]:
    """Sign each statement and attach its bundle to ``subject``; what was attached, by whom."""
    from mlci.results.image import Signature
    from mlci.supply.referrers import attach_bundle

    bundles = [signer.sign_statement(s) for s in signed]
    identity = signer.identity
    attached = []
    for statement, bundle in zip(signed, bundles, strict=True):
        descriptor = attach_bundle(store, subject, bundle)
        attached.append(
            Signature(
                kind=attest.KIND_OF_PREDICATE[statement["predicateType"]],
                predicate_type=statement["predicateType"],
                referrer=descriptor.digest,
                identity=identity.identity,
                issuer=identity.issuer,
                key_id=identity.key_id,
                verified=False,
            )
        )
    return attached


def with_verification(
    signatures: Sequence[Signature], outcome: ImageVerification
) -> list[Signature]:
    """``signatures`` marked verified (or not, with the reason) as verification found them."""
    findings = {f.referrer: f for f in outcome.findings}
    marked = []
    for s in signatures:
        finding = findings.get(s.referrer)
        marked.append(
            s.model_copy(
                update={
                    "verified": bool(finding and finding.verified),
                    "reason": None if finding is None else finding.reason,
                }
            )
            if finding is not None or not s.verified
            else s
        )
    return marked
