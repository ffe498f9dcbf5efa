"""``mlci push``, ``mlci sbom``, ``mlci sign`` and ``mlci verify``: parse, call, print.

Each command may update the ``image`` section of a results.json (``--results``), which the
gate's supply-chain rules and the model card read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlci.errors import InputError, UsageError

Command = Callable[[str, str, str], argparse.ArgumentParser]


def _say(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda message: None
    return lambda message: print(f"mlci: {message}", file=sys.stderr, flush=True)


def _load_results(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from mlci.results import load

    return load(path)


def _update_image(path: Path | None, update: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``update`` to the image section of results.json and write it atomically."""
    if path is None:
        return
    from mlci.results import dumps, load, write_atomic

    document = load(path)
    image = dict(document.get("image") or {})
    update(image)
    document["image"] = image
    write_atomic(path, dumps(document))


def _github_output(name: str, value: str) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(f"{name}={value}\n")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- push -----------------------------------------------------------------------------------------


def _push(args: argparse.Namespace) -> int:
    from mlci.supply.registry import (
        Reference,
        RegistryClient,
        push_layout,
        read_image_layout,
        split_layout_argument,
    )

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
    _github_output("digest", result.digest)
    _github_output("image", result.pinned)
    if args.digest_file:
        args.digest_file.write_text(result.digest + "\n", encoding="utf-8")

    def update(image: dict[str, Any]) -> None:
        if image.get("digest") != result.digest:
            image.clear()  # a new image: old signatures and SBOM are about another digest
        image.update(
            {
                "reference": str(reference),
                "repository": reference.name,
                "digest": result.digest,
                "media_type": result.media_type,
                "size": result.size,
                "layers": [
                    {"digest": d.digest, "size": d.size, "media_type": d.media_type}
                    for d in result.layers
                ],
                "pushed": _now(),
            }
        )

    _update_image(args.results, update)
    return 0


# --- sbom -----------------------------------------------------------------------------------------


def _sbom(args: argparse.Namespace) -> int:
    from mlci.files import check_out_file
    from mlci.hashing import sha256_file
    from mlci.results import write_atomic
    from mlci.supply.registry import split_layout_argument
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
    write_atomic(args.out, sbom.dumps())
    models = ", ".join(f"{m.path} ({m.sha256[:12]})" for m in sbom.models) or "no model file"
    print(
        f"wrote {args.out}: CycloneDX 1.6, {len(sbom.document.get('components') or [])} "
        f"components ({sbom.packages} packages; {models}) for {sbom.image_digest}"
    )

    def update(image: dict[str, Any]) -> None:
        if image.get("digest") not in (None, sbom.image_digest):
            raise InputError(
                f"{args.results}: its image is {image.get('digest')}, the SBOM is of "
                f"{sbom.image_digest}",
                tip="push the same layout you describe",
            )
        image.setdefault("digest", sbom.image_digest)
        previous = image.get("sbom") or {}
        image["sbom"] = {
            "path": str(args.out),
            "format": "CycloneDX 1.6",
            "sha256": sha256_file(args.out),
            "components": len(sbom.document.get("components") or []),
            "attached": bool(previous.get("attached"))
            and previous.get("sha256") == sha256_file(args.out),
        }

    _update_image(args.results, update)
    return 0


# --- sign -----------------------------------------------------------------------------------------


def _looks_like_file(target: str) -> bool:
    return Path(target).is_file()


def _sign(args: argparse.Namespace) -> int:
    from mlci.supply import attest
    from mlci.supply.signing import make_signer

    if args.key is None and not args.keyless:
        raise UsageError("choose how to sign: --key FILE or --keyless")
    if args.bundle and not _looks_like_file(args.target):
        raise UsageError("--bundle is for files; image bundles are stored in the registry")
    # Everything that can fail locally fails before anything is pushed.
    signer = make_signer(
        key=args.key,
        keyless=args.keyless,
        password_env=args.password_env,
        identity_token=args.identity_token,
        staging=args.staging,
    )
    if _looks_like_file(args.target):
        target = Path(args.target)
        bundle = signer.sign_file(target)
        out = args.bundle or Path(f"{target}.sigstore.json")
        from mlci.results import write_atomic

        write_atomic(out, json.dumps(bundle, indent=2) + "\n")
        print(f"wrote {out} (signed by {signer.identity.identity})")
        return 0

    from mlci.supply.referrers import attach_bundle
    from mlci.supply.registry import Reference, RegistryClient
    from mlci.supply.sbom import sbom_image_digest, sbom_models, validate_sbom

    reference = Reference.parse(args.target)
    results = _load_results(args.results)
    sbom_doc = None
    if args.sbom:
        try:
            sbom_doc = json.loads(args.sbom.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{args.sbom}: no such SBOM file") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"{args.sbom}: not a JSON SBOM ({exc.__class__.__name__})") from None
        try:
            validate_sbom(sbom_doc)
        except Exception as exc:
            raise InputError(f"{args.sbom}: {getattr(exc, 'message', exc)}") from None
    client = RegistryClient(reference, insecure=True if args.insecure else None)
    subject = client.resolve()
    if reference.digest and subject.digest != reference.digest:
        raise InputError(f"{reference} resolved to {subject.digest}")
    if sbom_doc is not None and sbom_image_digest(sbom_doc) != subject.digest:
        raise InputError(
            f"{args.sbom}: describes image {sbom_image_digest(sbom_doc)}, not {subject.digest}",
            tip="generate the SBOM from the layout that was pushed",
        )
    statements = [attest.statement(reference.name, subject.digest, attest.SIGN_PREDICATE, {})]
    if sbom_doc is not None:
        statements.append(
            attest.statement(reference.name, subject.digest, attest.SBOM_PREDICATE, sbom_doc)
        )
    if results is not None:
        model = results.get("model") or {}
        if sbom_doc is not None and model.get("sha256") not in sbom_models(sbom_doc):
            raise InputError(
                f"{args.results}: model sha256 {str(model.get('sha256'))[:12]} is not in the "
                "image's SBOM",
                tip="the image must be built from the evaluated model",
            )
        gated = (results.get("gate") or {}).get("image_digest")
        if gated and gated != subject.digest:
            raise InputError(
                f"{args.results}: the gate decided on image {gated}, not {subject.digest}"
            )
        predicate = attest.evaluation_predicate(
            image_digest=subject.digest, image_name=reference.name, model=model, document=results
        )
        statements.append(
            attest.statement(reference.name, subject.digest, attest.EVALUATION_PREDICATE, predicate)
        )
    bundles = [signer.sign_statement(s) for s in statements]
    identity = signer.identity
    findings = []
    for statement_, bundle in zip(statements, bundles, strict=True):
        descriptor = attach_bundle(client, subject, bundle)
        kind = attest.KIND_OF_PREDICATE[statement_["predicateType"]]
        print(f"attached {kind} {descriptor.digest} to {reference.name}@{subject.digest}")
        findings.append(
            {
                "kind": kind,
                "predicate_type": statement_["predicateType"],
                "referrer": descriptor.digest,
                "identity": identity.identity,
                "issuer": identity.issuer,
                "key_id": identity.key_id,
                "verified": False,
            }
        )

    def update(image: dict[str, Any]) -> None:
        if image.get("digest") not in (None, subject.digest):
            image.clear()
        image.setdefault("reference", str(reference))
        image["digest"] = subject.digest
        kept = [
            s
            for s in image.get("signatures") or []
            if s.get("referrer") not in {f["referrer"] for f in findings}
        ]
        image["signatures"] = kept + findings
        if sbom_doc is not None:
            sbom = dict(image.get("sbom") or {"format": "CycloneDX 1.6"})
            sbom["attached"] = True
            sbom["referrer"] = findings[1]["referrer"]
            sbom.setdefault("components", len(sbom_doc.get("components") or []))
            if args.sbom:
                from mlci.hashing import sha256_file

                sbom.setdefault("path", str(args.sbom))
                sbom["sha256"] = sha256_file(args.sbom)
            image["sbom"] = sbom

    _update_image(args.results, update)
    return 0


# --- verify ---------------------------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    import logging

    from mlci.supply.verify import KINDS, Policy, VerificationError, verify_file, verify_image

    logging.getLogger("sigstore").setLevel(logging.ERROR)
    policy = Policy(
        public_key=args.key, identity=args.certificate_identity, issuer=args.certificate_oidc_issuer
    )
    if _looks_like_file(args.target) or args.bundle:
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
    from mlci.supply.registry import Reference, RegistryClient

    reference = Reference.parse(args.target)
    client = RegistryClient(reference, insecure=True if args.insecure else None)
    outcome = verify_image(args.target, policy, require=require, client=client)
    for finding in outcome.findings:
        state = "verified" if finding.verified else f"rejected: {finding.reason}"
        print(f"{finding.kind} {finding.referrer[:19]}: {state}")
    if args.sbom_out and outcome.sbom is not None:
        from mlci.results import write_atomic

        write_atomic(args.sbom_out, json.dumps(outcome.sbom, indent=2) + "\n")

    def update(image: dict[str, Any]) -> None:
        if image.get("digest") not in (None, outcome.digest):
            image.clear()
        image.setdefault("reference", str(reference))
        image["digest"] = outcome.digest
        image["signatures"] = [f.to_json() for f in outcome.findings]
        if outcome.sbom is not None:
            sbom = dict(image.get("sbom") or {"format": "CycloneDX 1.6"})
            sbom["attached"] = True
            sbom.setdefault("components", len(outcome.sbom.get("components") or []))
            image["sbom"] = sbom
        image["verification"] = {
            "verified": outcome.ok,
            "reason": outcome.reason(),
            "policy": {k: v for k, v in policy.describe().items() if v},
            "checked": _now(),
        }

    _update_image(args.results, update)
    if not outcome.ok:
        raise VerificationError(f"{outcome.reference}: {outcome.reason()}")
    kinds = sorted({f.kind for f in outcome.findings if f.verified})
    print(f"OK: {reference.name}@{outcome.digest} ({', '.join(kinds)})")
    return 0


# --- parsers --------------------------------------------------------------------------------------


def _registry_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--insecure",
        action="store_true",
        help="talk plain HTTP to the registry (loopback registries use HTTP anyway)",
    )


def _results_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--results", type=Path, metavar="FILE", help=what)


def add_parsers(sub: Any, command: Command) -> None:
    """Add ``push``, ``sbom``, ``sign`` and ``verify`` using the CLI's ``command`` helper."""
    del sub  # the helper adds to it
    push = command(
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
    _results_arg(push, "record the image (reference, digest, size, layers) in this results.json")
    _registry_args(push)
    push.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    push.set_defaults(run=_push)

    sbom = command(
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
    _results_arg(
        sbom, "take the model's name, hash and metrics from, and record the SBOM in, this file"
    )
    sbom.set_defaults(run=_sbom)

    sign = command(
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
    _results_arg(
        sign,
        "attach the evaluation attestation from this results.json and record the signatures in it",
    )
    sign.add_argument(
        "--bundle", type=Path, metavar="FILE", help="for a FILE: where to write its bundle"
    )
    _registry_args(sign)
    sign.set_defaults(run=_sign)

    verify = command(
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
    _results_arg(verify, "record what was verified in this results.json")
    _registry_args(verify)
    verify.set_defaults(run=_verify)
