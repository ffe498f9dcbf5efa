"""``mlci push``, ``mlci sbom``, ``mlci sign`` and ``mlci verify``: one supply-chain step each.

They run the same code as the image, sbom, sign and attest stages of ``mlci check``. Each may
update the ``image`` section of a results.json (``--results``), which the gate's supply-chain
rules and the model card read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.commands._base import (
    command,
    results_arg,
    set_outputs,
    update_results,
    write_or_print,
)
from mlci.errors import InputError, UsageError

if TYPE_CHECKING:
    from mlci.results import Results
    from mlci.results.image import Image


def _say(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda message: None
    return lambda message: print(f"mlci: {message}", file=sys.stderr, flush=True)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _update_image(path: Path | None, update: Callable[[Image], Image]) -> None:
    """Apply ``update`` to the image section of results.json and write it atomically."""
    from mlci.results.image import Image

    def apply(document: Results) -> Results:
        return document.with_section("image", update(document.image or Image()))

    update_results(path, apply)


def _load_results(path: Path | None) -> Results | None:
    if path is None:
        return None
    from mlci.results import load

    return load(path)


# --- push -----------------------------------------------------------------------------------------


def run_push(args: argparse.Namespace) -> int:
    from mlci.results.image import Layer
    from mlci.supply.layout import read_image_layout, split_layout_argument
    from mlci.supply.registry import Reference, RegistryClient, push_layout

    folder, tag = split_layout_argument(args.layout)
    reference = Reference.parse(args.image)
    layout = read_image_layout(folder, tag)
    if reference.digest and reference.digest != layout.descriptor.digest:
        raise InputError(
            f"{args.image}: the layout's image is {layout.descriptor.digest}, not {reference.digest}"
        )
    if not reference.tag and not reference.digest:
        reference = Reference(reference.host, reference.repository, "latest")
    client = RegistryClient(reference, insecure=True if args.insecure else None)
    result = push_layout(layout, reference, client=client, progress=_say(args.quiet))
    print(result.pinned)
    set_outputs({"digest": result.digest, "image": result.pinned})
    if args.digest_file:
        write_or_print(result.digest + "\n", args.digest_file)

    def update(image: Image) -> Image:
        return image.for_digest(result.digest).model_copy(
            update={
                "reference": str(reference),
                "repository": reference.name,
                "digest": result.digest,
                "media_type": result.media_type,
                "size": result.size,
                "layers": [
                    Layer(digest=d.digest, size=d.size, media_type=d.media_type)
                    for d in result.layers
                ],
                "pushed": _now(),
            }
        )

    _update_image(args.results, update)
    return 0


# --- sbom -----------------------------------------------------------------------------------------


def run_sbom(args: argparse.Namespace) -> int:
    from mlci.files import check_out_file, write_atomic
    from mlci.hashing import sha256_file
    from mlci.results.image import SbomRecord
    from mlci.supply.layout import split_layout_argument
    from mlci.supply.sbom import build_sbom, load_model_card

    check_out_file(args.out)
    folder, tag = split_layout_argument(args.layout)
    results = _load_results(args.results)
    card = load_model_card(args.card) if args.card else None
    sbom = build_sbom(
        folder,
        tag=tag,
        image_name=args.name,
        results=results,
        model_card=card,
        model_path=args.model_path,
    )
    if (
        results is not None
        and results.image
        and results.image.digest
        not in (
            None,
            sbom.image_digest,
        )
    ):
        raise InputError(
            f"{args.results}: its image is {results.image.digest}, the SBOM is of "
            f"{sbom.image_digest}",
            tip="describe the image the results name",
        )
    write_atomic(args.out, sbom.dumps())
    models = ", ".join(f"{m.path} ({m.sha256[:12]})" for m in sbom.models) or "no model file"
    print(
        f"wrote {args.out}: CycloneDX 1.6, {len(sbom.document.get('components') or [])} "
        f"components ({sbom.packages} packages; {models}) for {sbom.image_digest}"
    )

    def update(image: Image) -> Image:
        digest = sha256_file(args.out)
        previous = image.sbom
        return image.model_copy(
            update={
                "digest": image.digest or sbom.image_digest,
                "sbom": SbomRecord(
                    path=str(args.out),
                    format="CycloneDX 1.6",
                    sha256=digest,
                    components=len(sbom.document.get("components") or []),
                    attached=bool(previous and previous.attached and previous.sha256 == digest),
                    referrer=previous.referrer if previous else None,
                ),
            }
        )

    _update_image(args.results, update)
    return 0


# --- sign -----------------------------------------------------------------------------------------


def _is_file(target: str) -> bool:
    return Path(target).is_file()


def run_sign(args: argparse.Namespace) -> int:
    from mlci.supply.signatures import sign_and_attach, statements
    from mlci.supply.signing import make_signer
    from mlci.supply.store import open_store

    if args.key is None and not args.keyless:
        raise UsageError("choose how to sign: --key FILE or --keyless")
    if args.bundle and not _is_file(args.target):
        raise UsageError("--bundle is for files; image bundles are stored with the image")
    # Everything that can fail locally fails before anything is attached.
    signer = make_signer(
        key=args.key,
        keyless=args.keyless,
        password_env=args.password_env,
        identity_token=args.identity_token,
        staging=args.staging,
    )
    if _is_file(args.target) and not args.target.startswith("oci:"):
        target = Path(args.target)
        bundle = signer.sign_file(target)
        out = args.bundle or Path(f"{target}.sigstore.json")
        write_or_print(json.dumps(bundle, indent=2) + "\n", out)
        print(f"wrote {out} (signed by {signer.identity.identity})")
        return 0

    results = _load_results(args.results)
    sbom_doc = _read_sbom(args.sbom) if args.sbom else None
    store = open_store(args.target, insecure=True if args.insecure else None)
    subject = store.resolve()
    wanted = _pinned_digest(args.target)
    if wanted and subject.digest != wanted:
        raise InputError(f"{args.target} resolved to {subject.digest}")
    try:
        signed = statements(store, subject, sbom=sbom_doc, evaluation=results)
    except InputError as exc:
        where = args.sbom if "SBOM" in exc.message and sbom_doc is not None else args.results
        raise InputError(f"{where}: {exc.message}", tip=exc.tip) from None
    attached = sign_and_attach(store, subject, signer, signed)
    for signature in attached:
        print(f"attached {signature.kind} {signature.referrer} to {store.name}@{subject.digest}")

    def update(image: Image) -> Image:
        image = image.for_digest(subject.digest)
        kept = [s for s in image.signatures if s.referrer not in {a.referrer for a in attached}]
        changes: dict[str, Any] = {
            "digest": subject.digest,
            "reference": image.reference or args.target,
            "signatures": kept + attached,
        }
        if sbom_doc is not None:
            from mlci.hashing import sha256_file
            from mlci.results.image import SbomRecord

            previous = image.sbom or SbomRecord(format="CycloneDX 1.6")
            changes["sbom"] = previous.model_copy(
                update={
                    "attached": True,
                    "referrer": next(a.referrer for a in attached if a.kind == "sbom"),
                    "components": previous.components or len(sbom_doc.get("components") or []),
                    "path": previous.path or str(args.sbom),
                    "sha256": sha256_file(args.sbom),
                }
            )
        return image.model_copy(update=changes)

    _update_image(args.results, update)
    return 0


def _pinned_digest(target: str) -> str | None:
    _, at, digest = target.rpartition("@")
    return digest if at and digest.startswith("sha256:") else None


def _read_sbom(path: Path) -> dict[str, Any]:
    from mlci.supply.sbom import validate_sbom

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such SBOM file") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a JSON SBOM ({exc.__class__.__name__})") from None
    try:
        validate_sbom(document)
    except Exception as exc:
        raise InputError(f"{path}: {getattr(exc, 'message', exc)}") from None
    return dict(document)


# --- verify ---------------------------------------------------------------------------------------


def run_verify(args: argparse.Namespace) -> int:
    import logging

    from mlci.results.image import Verification
    from mlci.supply.store import open_store
    from mlci.supply.verify import KINDS, Policy, VerificationError, verify_file, verify_image

    logging.getLogger("sigstore").setLevel(logging.ERROR)
    policy = Policy(
        public_key=args.key, identity=args.certificate_identity, issuer=args.certificate_oidc_issuer
    )
    if (_is_file(args.target) and not args.target.startswith("oci:")) or args.bundle:
        target = Path(args.target)
        bundle = args.bundle or Path(f"{target}.sigstore.json")
        verified = verify_file(target, bundle, policy)
        who = verified.identity + (f" ({verified.issuer})" if verified.issuer else "")
        print(f"OK: {target} is signed by {who}")
        return 0
    require = tuple(k.strip() for k in args.require.split(",") if k.strip())
    unknown = [k for k in require if k not in KINDS]
    if unknown:
        raise UsageError(f"--require: unknown kind '{unknown[0]}' (choose from {', '.join(KINDS)})")
    store = open_store(args.target, insecure=True if args.insecure else None)
    outcome = verify_image(
        store, policy, require=require, expected_digest=_pinned_digest(args.target)
    )
    for finding in outcome.findings:
        state = "verified" if finding.verified else f"rejected: {finding.reason}"
        print(f"{finding.kind} {finding.referrer[:19]}: {state}")
    if args.sbom_out and outcome.sbom is not None:
        write_or_print(json.dumps(outcome.sbom, indent=2) + "\n", args.sbom_out)

    def update(image: Image) -> Image:
        from mlci.results.image import SbomRecord

        image = image.for_digest(outcome.digest)
        sbom = image.sbom
        if outcome.sbom is not None:
            sbom = (sbom or SbomRecord(format="CycloneDX 1.6")).model_copy(
                update={
                    "attached": True,
                    "components": (sbom.components if sbom else None)
                    or len(outcome.sbom.get("components") or []),
                }
            )
        return image.model_copy(
            update={
                "digest": outcome.digest,
                "reference": image.reference or args.target,
                "signatures": [f.record() for f in outcome.findings],
                "sbom": sbom,
                "verification": Verification(
                    verified=outcome.ok,
                    reason=outcome.reason(),
                    policy={k: str(v) for k, v in policy.describe().items() if v},
                    checked=_now(),
                ),
            }
        )

    _update_image(args.results, update)
    if not outcome.ok:
        raise VerificationError(f"{outcome.reference}: {outcome.reason()}")
    kinds = sorted({f.kind for f in outcome.findings if f.verified})
    print(f"OK: {store.name}@{outcome.digest} ({', '.join(kinds)})")
    return 0


# --- parsers --------------------------------------------------------------------------------------


def _registry_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--insecure",
        action="store_true",
        help="talk plain HTTP to the registry (loopback registries use HTTP anyway)",
    )


def register(sub: Any) -> None:
    push = command(
        sub,
        "push",
        "push an OCI image layout to a registry; print its digest",
        "Push the image of an OCI image layout (LAYOUT or LAYOUT:TAG) to IMAGE "
        "(host/repository[:tag]). Blobs the registry has are skipped; the tag moves only after "
        "every blob and manifest is stored. Credentials: MLCI_REGISTRY_USERNAME and "
        "MLCI_REGISTRY_PASSWORD, else the Docker or Podman auth file; anonymous otherwise. "
        "Prints IMAGE@DIGEST and writes 'digest' to GITHUB_OUTPUT when set.",
    )
    push.add_argument("layout", metavar="LAYOUT", help="an OCI image layout folder")
    push.add_argument("image", metavar="IMAGE", help="where to push: host/repository[:tag]")
    push.add_argument("--digest-file", type=Path, metavar="FILE", help="also write the digest here")
    results_arg(push, "record the image (reference, digest, size, layers) in this results.json")
    _registry_args(push)
    push.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    push.set_defaults(run=run_push)

    sbom = command(
        sub,
        "sbom",
        "write a CycloneDX 1.6 SBOM of an image layout",
        "Describe the image in an OCI image layout as CycloneDX 1.6 JSON: the operating "
        "system and its Debian packages, Python packages, the mlci serving runtime, and the "
        "model as a machine-learning-model component with its sha256 and model card. The "
        "document is checked with CycloneDX's strict schema validator.",
    )
    sbom.add_argument("layout", metavar="LAYOUT", help="an OCI image layout folder (or LAYOUT:TAG)")
    sbom.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("sbom.cdx.json"),
        metavar="FILE",
        help="where to write the SBOM (default: sbom.cdx.json)",
    )
    sbom.add_argument("--name", metavar="NAME", help="the image's name in the SBOM")
    sbom.add_argument(
        "--card",
        type=Path,
        metavar="FILE",
        help="a JSON model card (a CycloneDX modelCard, or a BOM/component holding one)",
    )
    sbom.add_argument("--model-path", metavar="PATH", help="the model file's path inside the image")
    results_arg(
        sbom, "take the model's name, hash and metrics from, and record the SBOM in, this file"
    )
    sbom.set_defaults(run=run_sbom)

    sign = command(
        sub,
        "sign",
        "sign an image (and attach SBOM and evaluation attestations), or a file",
        "Sign IMAGE's digest and attach in-toto attestations as OCI 1.1 referrers holding "
        "Sigstore bundles: the SBOM (--sbom, predicate https://cyclonedx.org/bom) and the "
        "mlci evaluation (--results: image digest, model sha256, gate decision, headline "
        "metrics). Keyless with Sigstore (--keyless; GitHub Actions' OIDC credential when the "
        "job has 'id-token: write', or SIGSTORE_ID_TOKEN) or with a key (--key: a cosign key "
        "file, password from --password-env, or a PEM EC P-256 key). Given a FILE instead of an "
        "image, writes FILE.sigstore.json.",
    )
    sign.add_argument(
        "target", metavar="IMAGE|FILE", help="host/repository[:tag|@digest], or a file"
    )
    how = sign.add_mutually_exclusive_group()
    how.add_argument("--key", type=Path, metavar="FILE", help="sign with this private key")
    how.add_argument("--keyless", action="store_true", help="sign keylessly with Sigstore")
    sign.add_argument(
        "--password-env",
        default="COSIGN_PASSWORD",
        metavar="NAME",
        help="environment variable holding the key's password (default: COSIGN_PASSWORD)",
    )
    sign.add_argument(
        "--identity-token", metavar="TOKEN", help="an OIDC identity token for --keyless"
    )
    sign.add_argument(
        "--staging", action="store_true", help="use Sigstore's staging instance (--keyless)"
    )
    sign.add_argument(
        "--sbom", type=Path, metavar="FILE", help="attach this SBOM as an attestation"
    )
    results_arg(
        sign,
        "attach the evaluation attestation from this results.json and record the signatures in it",
    )
    sign.add_argument(
        "--bundle", type=Path, metavar="FILE", help="for a FILE: where to write its bundle"
    )
    _registry_args(sign)
    sign.set_defaults(run=run_sign)

    verify = command(
        sub,
        "verify",
        "verify an image's signature and attestations (or a file's bundle)",
        "Verify IMAGE against a policy: a public key (--key), or a certificate identity and "
        "OIDC issuer (--certificate-identity, --certificate-oidc-issuer, as with cosign; checked "
        "offline against Sigstore's trust root). Requires a signature, an SBOM attestation and "
        "an evaluation attestation that name this exact digest and agree on the model; exits "
        "1 with the reason otherwise. Given a FILE, verifies it with FILE.sigstore.json or "
        "--bundle.",
    )
    verify.add_argument(
        "target", metavar="IMAGE|FILE", help="host/repository[:tag|@digest], or a file"
    )
    verify.add_argument("--key", type=Path, metavar="FILE", help="the signer's public key (PEM)")
    verify.add_argument(
        "--certificate-identity",
        metavar="IDENTITY",
        help="the signer's certificate identity (e.g. a workflow URL)",
    )
    verify.add_argument(
        "--certificate-oidc-issuer",
        metavar="URL",
        help="the identity's OIDC issuer (e.g. https://token.actions.githubusercontent.com)",
    )
    verify.add_argument("--bundle", type=Path, metavar="FILE", help="for a FILE: its bundle")
    verify.add_argument(
        "--require",
        default="signature,sbom,evaluation",
        metavar="KINDS",
        help="what must be attached and valid (default: signature,sbom,evaluation)",
    )
    verify.add_argument(
        "--sbom-out", type=Path, metavar="FILE", help="write the verified SBOM here"
    )
    results_arg(verify, "record what was verified in this results.json")
    _registry_args(verify)
    verify.set_defaults(run=run_verify)
