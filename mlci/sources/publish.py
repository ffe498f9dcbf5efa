"""``mlci push-model``: publish a model file as a ModelPack artifact, signed like images are.

The weights, their configuration files, the model card and the results document each become
a layer; with a signer, the manifest digest gets a signature and, from the results, the
evaluation attestation (the same statements ``mlci sign`` attaches to images), as referrers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from mlci.errors import InputError
from mlci.sources import modelpack

if TYPE_CHECKING:
    from mlci.results import Results
    from mlci.results.image import Signature
    from mlci.supply.oci import Descriptor
    from mlci.supply.registry import Reference, RegistryClient
    from mlci.supply.signing import Signer


@dataclass(frozen=True)
class Pushed:
    reference: Reference
    digest: str
    model_sha256: str
    layers: int
    signatures: list[Signature]

    @property
    def pinned(self) -> str:
        return f"{self.reference.name}@{self.digest}"


def created_at(env: Mapping[str, str]) -> str:
    """``SOURCE_DATE_EPOCH`` when set (same inputs, same digest), else now."""
    epoch = env.get("SOURCE_DATE_EPOCH")
    moment = (
        datetime.fromtimestamp(int(epoch), timezone.utc)
        if epoch and epoch.isdigit()
        else datetime.now(timezone.utc)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pack_files(
    model: Path, *, files: Sequence[Path], card: Path | None, results: Path | None
) -> list[modelpack.PackFile]:
    found = [modelpack.PackFile(model, model.name, modelpack.WEIGHT_RAW)]
    found += [modelpack.PackFile(f, f.name, modelpack.WEIGHT_CONFIG_RAW) for f in files]
    if card is not None:
        found.append(modelpack.PackFile(card, card.name, modelpack.DOC_RAW))
    if results is not None:
        found.append(modelpack.PackFile(results, results.name, modelpack.DOC_RAW))
    return found


def push_model(
    model: Path,
    reference: Reference,
    *,
    client: RegistryClient,
    name: str | None = None,
    version: str | None = None,
    files: Sequence[Path] = (),
    card: Path | None = None,
    results: Path | None = None,
    document: Results | None = None,
    signer: Signer | None = None,
    env: Mapping[str, str] | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> Pushed:
    """Push ``model`` (and what describes it) as a ModelPack artifact; sign it when asked."""
    from mlci.hashing import sha256_file
    from mlci.models.formats import format_of
    from mlci.supply.oci import MEDIA_MANIFEST

    environ = os.environ if env is None else env
    if not model.is_file():
        raise InputError(f"{model}: no such model file")
    model_sha = sha256_file(model)
    if document is not None and document.model.sha256 != model_sha:
        raise InputError(
            f"{results}: describes model sha256 {str(document.model.sha256)[:12]}, not "
            f"{model} ({model_sha[:12]})",
            tip="push the model file that was evaluated",
        )
    fmt = format_of("auto", model.suffix) or model.suffix.lstrip(".").lower() or "unknown"
    repository = environ.get("GITHUB_REPOSITORY")
    built = modelpack.build(
        pack_files(model, files=files, card=card, results=results),
        name=name or (document.model.name if document else model.stem),
        model_format=fmt,
        created=created_at(environ),
        version=version,
        revision=environ.get("GITHUB_SHA"),
        source_url=f"{environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{repository}"
        if repository
        else None,
    )
    for descriptor, path in built.layers:
        _, sent = client.push_blob(path, descriptor.digest)
        progress(f"{'pushed' if sent else 'exists'} {descriptor.digest[:19]} ({path.name})")
    client.push_blob(built.config)
    client.put_manifest(built.manifest, MEDIA_MANIFEST, built.digest)
    if reference.tag:
        client.put_manifest(built.manifest, MEDIA_MANIFEST, reference.tag)
        progress(f"tagged {reference}")
    signatures: list[Signature] = []
    if signer is not None:
        signatures = sign_artifact(client, built.descriptor, signer, document)
    return Pushed(reference, built.digest, model_sha, len(built.layers), signatures)


def sign_artifact(
    client: RegistryClient, subject: Descriptor, signer: Signer, document: Results | None
) -> list[Signature]:
    """Attach a signature (and the evaluation attestation) to an artifact, as for images."""
    from mlci.supply import attest
    from mlci.supply.signatures import sign_and_attach
    from mlci.supply.store import RegistryStore

    store = RegistryStore(client)
    statements = [attest.statement(store.name, subject.digest, attest.SIGN_PREDICATE, {})]
    if document is not None:
        predicate = attest.evaluation_predicate(
            image_digest=subject.digest, image_name=store.name, document=document
        )
        statements.append(
            attest.statement(store.name, subject.digest, attest.EVALUATION_PREDICATE, predicate)
        )
    return sign_and_attach(store, subject, signer, statements)
