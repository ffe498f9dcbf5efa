"""``mlci push-model``, ``mlci promote``, ``mlci rollback`` and ``mlci promotions``: publish a
model, move the production pointer to what the gate decided, move it back, read its history."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.commands._base import command, results_arg, set_outputs, update_results
from mlci.errors import UsageError

if TYPE_CHECKING:
    from mlci.results import Results
    from mlci.sources.promote import Outcome
    from mlci.supply.signing import Signer


def _say(quiet: bool) -> Any:
    if quiet:
        return lambda message: None
    return lambda message: print(f"mlci: {message}", file=sys.stderr, flush=True)


def _signer(args: argparse.Namespace, *, required: bool) -> Signer | None:
    from mlci.supply.signing import make_signer

    if args.key is None and not args.keyless:
        if required:
            raise UsageError(
                "the move is recorded as a signed attestation: give --key FILE or --keyless"
            )
        return None
    return make_signer(
        key=args.key,
        keyless=args.keyless,
        password_env=args.password_env,
        identity_token=args.identity_token,
        staging=args.staging,
    )


def _signing_args(p: argparse.ArgumentParser, what: str) -> None:
    how = p.add_mutually_exclusive_group()
    how.add_argument("--key", type=Path, metavar="FILE", help=f"sign {what} with this private key")
    how.add_argument("--keyless", action="store_true", help=f"sign {what} keylessly with Sigstore")
    p.add_argument(
        "--password-env",
        default="COSIGN_PASSWORD",
        metavar="NAME",
        help="environment variable holding the key's password (default: COSIGN_PASSWORD)",
    )
    p.add_argument("--identity-token", metavar="TOKEN", help="an OIDC identity token for --keyless")
    p.add_argument(
        "--staging", action="store_true", help="use Sigstore's staging instance (--keyless)"
    )


def _move_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", metavar="TEXT", help="why, in words, for the history")
    p.add_argument(
        "--request-id",
        metavar="ID",
        help="an id for this request, so that running it again changes nothing "
        "(default: GITHUB_RUN_ID in GitHub Actions)",
    )
    p.add_argument(
        "--push",
        metavar="REMOTE",
        help="for a git:TAG:PATH pointer: publish the tags to this remote, atomically",
    )


def _report(outcome: Outcome, verb: str) -> None:
    from mlci.github.workflow import append_summary

    entry = outcome.entry
    if outcome.changed:
        print(
            f"{verb} {outcome.pointer} -> {entry.target} (model sha256 {entry.model_sha256}; "
            f"entry #{entry.seq}, attestation {entry.attestation})"
        )
    else:
        print(f"unchanged: {outcome.message}")
    set_outputs(
        {
            "pointer": outcome.pointer,
            "target": entry.target,
            "model-sha256": entry.model_sha256,
            "previous": entry.previous or "",
            "seq": entry.seq,
            "changed": "true" if outcome.changed else "false",
        }
    )
    append_summary(
        f"### mlci {entry.action}: `{outcome.pointer}`\n\n"
        f"In production now: `{entry.target}` (model sha256 `{entry.model_sha256[:12]}`), "
        f"{'moved' if outcome.changed else 'already there'} by entry #{entry.seq}"
        f"{f' from `{entry.previous}`' if entry.previous else ''}. Reason: {entry.reason}\n"
    )


# --- push-model ----------------------------------------------------------------------------------


def run_push_model(args: argparse.Namespace) -> int:
    from mlci.results import load
    from mlci.sources.publish import push_model
    from mlci.supply.registry import Reference, RegistryClient

    image = args.image.removeprefix("oci://")
    reference = Reference.parse(image)
    if reference.digest:
        raise UsageError(f"{args.image}: push to a tag (host/repo:tag), not a digest")
    if not reference.tag:
        reference = Reference(reference.host, reference.repository, "latest")
    document = load(args.results) if args.results else None
    signer = _signer(args, required=False)  # fail on a bad key before anything is pushed
    client = RegistryClient(reference, insecure=True if args.insecure else None)
    pushed = push_model(
        args.model,
        reference,
        client=client,
        name=args.name,
        version=args.model_version,
        files=args.file or [],
        card=args.card,
        results=args.results,
        document=document,
        signer=signer,
        progress=_say(args.quiet),
    )
    for signature in pushed.signatures:
        print(f"attached {signature.kind} {signature.referrer}", file=sys.stderr)
    print(f"oci://{pushed.pinned}")
    set_outputs(
        {
            "digest": pushed.digest,
            "model": f"oci://{pushed.pinned}",
            "model-sha256": pushed.model_sha256,
        }
    )
    return 0


# --- promote and rollback ------------------------------------------------------------------------


def run_promote(args: argparse.Namespace) -> int:
    from mlci.hashing import sha256_file
    from mlci.results import load
    from mlci.sources.promote import promote
    from mlci.sources.targets import open_target

    document = load(args.results)
    signer = _signer(args, required=True)
    assert signer is not None
    target = open_target(args.to, Path.cwd(), push=args.push)
    outcome = promote(
        target,
        document,
        where=str(args.results),
        results_sha256=sha256_file(args.results),
        model=args.model,
        signer=signer,
        reason=args.reason,
        env=os.environ,
        request=args.request_id,
    )
    _report(outcome, "promoted")

    def record(doc: Results) -> Results:
        return doc.with_section("promotion", outcome.record())

    update_results(args.results, record)
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from mlci.sources.promote import rollback
    from mlci.sources.targets import open_target

    signer = _signer(args, required=True)
    assert signer is not None
    target = open_target(args.pointer, Path.cwd(), push=args.push)
    outcome = rollback(
        target, signer=signer, reason=args.reason, env=os.environ, request=args.request_id
    )
    _report(outcome, "rolled back")
    if args.results is not None:

        def record(doc: Results) -> Results:
            return doc.with_section("promotion", outcome.record())

        update_results(args.results, record)
    return 0


def run_promotions(args: argparse.Namespace) -> int:
    from mlci.sources.history import production
    from mlci.sources.targets import open_target

    target = open_target(args.pointer, Path.cwd(), push=args.fetch)
    state = target.read()
    if args.json:
        print(
            json.dumps(
                {
                    "pointer": target.name,
                    "target": state.pointer,
                    "entries": [e.to_json() for e in state.entries],
                },
                indent=2,
            )
        )
        return 0
    versions = production(state.entries)
    print(f"{target.name}: {state.pointer or 'not set'}")
    if versions and versions[-1].target != state.pointer:
        print(f"  (the history says {versions[-1].target}: a move did not finish)")
    for entry in state.entries:
        print(
            f"#{entry.seq} {entry.time} {entry.action} {entry.target} "
            f"(model {entry.model_sha256[:12]}, from {entry.previous or 'nothing'}) "
            f"by {entry.actor or '?'}: {entry.reason}"
        )
    return 0


# --- parsers -------------------------------------------------------------------------------------


def register(sub: Any) -> None:
    push = command(
        sub,
        "push-model",
        "publish a model file as a ModelPack artifact (signed like images)",
        "Push MODEL to IMAGE (host/repository[:tag]) as an OCI artifact following the CNCF "
        "ModelPack specification (artifact type application/vnd.cncf.model.manifest.v1+json): "
        "the weights, their configuration files (--file), the model card (--card) and the "
        "results (--results) as layers. With --key or --keyless, also attach a signature and "
        "the evaluation attestation as referrers. Prints oci://IMAGE@DIGEST.",
    )
    push.add_argument("model", type=Path, metavar="MODEL", help="the model file")
    push.add_argument("image", metavar="IMAGE", help="where to push: host/repository[:tag]")
    push.add_argument("--name", metavar="NAME", help="the model's name (default: from --results)")
    push.add_argument("--model-version", metavar="VERSION", help="the model's version")
    push.add_argument(
        "--file",
        type=Path,
        action="append",
        metavar="FILE",
        help="a configuration file of the weights (tokenizer, config.json); repeat for several",
    )
    push.add_argument("--card", type=Path, metavar="FILE", help="the model card to include")
    results_arg(push, "the results document to include (and attest, when signing)")
    _signing_args(push, "the artifact")
    push.add_argument("--insecure", action="store_true", help="talk plain HTTP to the registry")
    push.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    push.set_defaults(run=run_push_model)

    promote = command(
        sub,
        "promote",
        "move the production pointer to exactly the model the gate decided to promote",
        "Move POINTER (oci://HOST/REPO:TAG, models:/NAME@ALIAS or git:TAG:PATH) to the version "
        "--model names (default: the one RESULTS was evaluated from; for git, HEAD). Refuses "
        "unless RESULTS' gate decided promote, its section is intact, and the version's model "
        "file has exactly the sha256 the gate decided on. Records who promoted what and why as "
        "a signed attestation in the pointer's history, and the move in RESULTS. Running it "
        "again changes nothing; of two concurrent runs one wins and the other exits 1.",
    )
    promote.add_argument("results", type=Path, metavar="RESULTS", help="results.json with the gate")
    promote.add_argument("--to", required=True, metavar="POINTER", help="the production pointer")
    promote.add_argument(
        "--model",
        metavar="REF",
        help="the version: oci://...@sha256:..., models:/NAME/N, git:REV:PATH",
    )
    _move_args(promote)
    _signing_args(promote, "the promotion")
    promote.set_defaults(run=run_promote)

    back = command(
        sub,
        "rollback",
        "move the production pointer back to the previously promoted version",
        "Move POINTER back to the version before the current one, as its promotion history "
        "records it, and record the rollback there as a signed attestation. With the same "
        "--request-id (in GitHub Actions: the run), running it again changes nothing.",
    )
    back.add_argument("pointer", metavar="POINTER", help="the production pointer")
    _move_args(back)
    results_arg(back, "record the rollback in this results.json")
    _signing_args(back, "the rollback")
    back.set_defaults(run=run_rollback)

    listing = command(
        sub,
        "promotions",
        "show where a production pointer is and its promotion history",
        "Print what POINTER points at and every promotion and rollback in its history.",
    )
    listing.add_argument("pointer", metavar="POINTER", help="the production pointer")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument(
        "--fetch", metavar="REMOTE", help="for a git:TAG:PATH pointer: read the remote's tags"
    )
    listing.set_defaults(run=run_promotions)
