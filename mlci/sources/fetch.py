"""Fetch a model from its source into a local file that the loaders can open.

resolve the source -> fetch into the cache (keyed by sha256) -> check the digest (the
source's own: a pinned sha256, a Git LFS oid, a DVC md5, an OCI layer digest, the sha256 mlci
recorded on an MLflow version) -> check the signature policy when one is configured -> hand
the local file to the loaders. Nothing unchecked is ever loaded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlci.errors import ConfigError, ModelError
from mlci.files import write_atomic
from mlci.hashing import sha256_file
from mlci.sources import reference as refs
from mlci.sources.cache import ModelCache, read_chunks, safe_name

if TYPE_CHECKING:
    from mlci.config import LoadedConfig, ModelSource
    from mlci.results.source import SourceRecord
    from mlci.sources.config import SignaturePolicyConfig
    from mlci.sources.git import Repo
    from mlci.sources.pointers import LfsPointer
    from mlci.supply.verify import Policy

BUNDLE_SUFFIX = ".sigstore.json"
ENV_BASE_REF = "MLCI_BASE_REF"


@dataclass(frozen=True)
class Fetched:
    """A model file on local disk, and where it came from."""

    path: Path
    scheme: refs.Scheme
    reference: str
    resolved: str | None
    digest: str  # hex sha256 of the file
    verified_by: str | None = None

    def record(self) -> SourceRecord:
        from mlci.results.source import SourceRecord

        scheme = "git" if self.scheme == "base-branch" else self.scheme
        return SourceRecord(
            scheme=scheme,
            reference=self.reference,
            resolved=self.resolved,
            digest=f"sha256:{self.digest}",
            verified_by=self.verified_by,
        )


@dataclass(frozen=True)
class Request:
    """What to fetch and how to check it."""

    ref: refs.SourceRef
    base_dir: Path  # relative paths and the git repository start here
    pin: str | None = None  # hex sha256 the file must have
    policy: SignaturePolicyConfig | None = None


def materialize(
    source: ModelSource,
    loaded: LoadedConfig,
    *,
    candidate: ModelSource | None = None,
    env: Mapping[str, str] | None = None,
    cache: ModelCache | None = None,
) -> Fetched | None:
    """The model ``source`` of mlci.yaml as a checked local file (None for entry points).

    ``candidate`` is the model a ``base-branch`` baseline stands in for."""
    environ = os.environ if env is None else env
    base_dir = loaded.path.parent
    pin = refs.parse_sha256(source.sha256) if source.sha256 else None
    if source.entrypoint is not None:
        return None
    if source.path is not None:
        # mlci.yaml's paths are already joined with its folder when the file is read.
        ref: refs.SourceRef = refs.LocalSource(str(Path(source.path).absolute()))
    else:
        assert source.source is not None
        ref = refs.parse_source(source.source, source.sha256)
    if isinstance(ref, refs.BaseBranchSource):
        ref = base_branch(candidate, loaded, environ)
    return fetch(Request(ref, base_dir, pin, source.verify), cache or ModelCache.from_env(environ))


def fetch(request: Request, cache: ModelCache) -> Fetched:
    """Fetch and check one model file."""
    ref = request.ref
    if isinstance(ref, refs.LocalSource):
        fetched = _local(request, ref)
    elif isinstance(ref, refs.GitSource):
        fetched = _git(request, ref, cache)
    elif isinstance(ref, refs.OciSource):
        fetched = _oci(request, ref, cache)
    elif isinstance(ref, refs.MlflowSource):
        fetched = _mlflow(request, ref, cache)
    elif isinstance(ref, refs.HttpsSource):
        fetched = _https(request, ref, cache)
    else:  # base-branch is expanded before this point
        raise ModelError(f"{ref}: cannot be fetched directly")
    if request.pin is not None and fetched.digest != request.pin:
        raise ModelError(
            f"{ref}: sha256 is {fetched.digest}, not the pinned {request.pin}",
            tip="the model changed since it was pinned; nothing was loaded",
        )
    return fetched


# --- signature policy ----------------------------------------------------------------------------


def policy_of(config: SignaturePolicyConfig) -> Policy:
    from mlci.supply.verify import Policy

    return Policy(public_key=config.key, identity=config.identity, issuer=config.issuer)


def verify_file(path: Path, bundle: bytes | None, where: str, config: SignaturePolicyConfig) -> str:
    """Check a file's signature bundle against the policy; the signer's identity."""
    from mlci.supply import attest
    from mlci.supply.verify import VerificationError, verify_bundle

    if bundle is None:
        raise VerificationError(
            f"{where}: no signature bundle ({where}{BUNDLE_SUFFIX}) and the configuration "
            "requires one",
            tip="sign the file with 'mlci sign FILE --key/--keyless' and keep FILE.sigstore.json "
            "beside it",
        )
    parsed = attest.parse_bundle(bundle, f"{where}{BUNDLE_SUFFIX}")
    verified = verify_bundle(parsed, policy_of(config), artifact=path.read_bytes(), what=where)
    return verified.identity


# --- local files ---------------------------------------------------------------------------------


def _local(request: Request, ref: refs.LocalSource) -> Fetched:
    path = Path(ref.path)
    if not path.is_absolute():
        path = request.base_dir / path
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, not a model file")
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    _refuse_pointer(path, str(path))
    digest = sha256_file(path)
    who = None
    if request.policy is not None:
        bundle = Path(str(path) + BUNDLE_SUFFIX)
        data = bundle.read_bytes() if bundle.is_file() else None
        who = verify_file(path, data, str(path), request.policy)
    return Fetched(path, "path", str(path), None, digest, who)


def _refuse_pointer(path: Path, where: str) -> None:
    """A checked-out Git LFS pointer is not a model: say how to get the real file."""
    from mlci.sources.pointers import LFS_MAX_SIZE, parse_lfs_pointer

    if path.stat().st_size < LFS_MAX_SIZE:
        pointer = parse_lfs_pointer(path.read_bytes())
        if pointer is not None:
            raise ModelError(
                f"{where}: is a Git LFS pointer (sha256 {pointer.oid[:12]}, {pointer.size:,} "
                "bytes), not the model",
                tip="fetch the content with 'git lfs pull' (in GitHub Actions: actions/checkout "
                "with lfs: true)",
            )


# --- git -----------------------------------------------------------------------------------------


def base_branch(
    candidate: ModelSource | None, loaded: LoadedConfig, env: Mapping[str, str]
) -> refs.GitSource:
    """``base-branch``: the candidate's file on the pull request's base branch."""
    from mlci.sources.git import Repo

    rev = env.get("GITHUB_BASE_REF") or env.get(ENV_BASE_REF)
    if not rev:
        raise ConfigError(
            f"{loaded.path}: a baseline is 'source: base-branch' but there is no base branch "
            "(GITHUB_BASE_REF is set only in pull requests)",
            tip=f"set {ENV_BASE_REF}=main (a branch, tag or commit) to compare with it outside "
            "a pull request",
        )
    if candidate is None:
        raise ConfigError(f"{loaded.path}: 'base-branch' needs the candidate's path")
    if candidate.path is not None:
        local = Path(candidate.path)
    else:
        assert candidate.source is not None
        local = Path(candidate.source)
        local = local if local.is_absolute() else loaded.path.parent / local
    repo = Repo.find(loaded.path.parent)
    try:
        relative = local.resolve().relative_to(repo.root.resolve())
    except ValueError:
        raise ConfigError(
            f"{loaded.path}: the candidate {local} is outside the git repository {repo.root}"
        ) from None
    return refs.GitSource(rev, relative.as_posix())


def _git(request: Request, ref: refs.GitSource, cache: ModelCache) -> Fetched:
    from mlci.sources.git import Repo

    repo = Repo.find(request.base_dir)
    found = repo.resolve_commit(ref.rev)
    if found is None:
        raise ModelError(
            f"{ref}: no branch, tag or commit '{ref.rev}' in {repo.root}",
            tip=f"fetch it first: 'git fetch origin {ref.rev}' (in GitHub Actions "
            "actions/checkout fetches one commit unless fetch-depth: 0)",
        )
    commit, used = found
    shown = str(refs.GitSource(used.removeprefix("refs/remotes/"), ref.path))
    resolved = f"{commit}:{ref.path}"
    blob = repo.blob_id(commit, ref.path)
    if blob is None:
        return _dvc(request, ref, repo, commit, shown, resolved, cache)
    name = safe_name(ref.path)
    path, digest = _git_blob(repo, blob, name, shown, cache)
    from mlci.sources.pointers import parse_lfs_pointer

    pointer = parse_lfs_pointer(path.read_bytes()) if path.stat().st_size < 1024 else None
    if pointer is not None:
        path, digest = _lfs(repo, pointer, name, shown, ref, cache)
    who = None
    if request.policy is not None:
        bundle_blob = repo.blob_id(commit, ref.path + BUNDLE_SUFFIX)
        bundle = repo.read_blob(bundle_blob) if bundle_blob else None
        who = verify_file(path, bundle, shown, request.policy)
    return Fetched(path, "git", shown, resolved, digest, who)


def _git_blob(repo: Repo, blob: str, name: str, what: str, cache: ModelCache) -> tuple[Path, str]:
    # git names blobs by SHA-1 of their content; the cache is keyed by sha256, so read it
    # unless the same blob was cached before (remembered by its id).
    marker = cache.root / "git-blobs" / blob
    if marker.is_file():
        hexdigest = marker.read_text().strip()
        cached = cache.lookup(hexdigest, name)
        if cached is not None:
            return cached, hexdigest
    path, hexdigest = cache.store(repo.stream_blob(blob), name, None, what)
    write_atomic(marker, hexdigest + "\n")
    return path, hexdigest


def _lfs(
    repo: Repo, pointer: LfsPointer, name: str, shown: str, ref: refs.GitSource, cache: ModelCache
) -> tuple[Path, str]:
    from mlci.sources.pointers import lfs_object_path

    cached = cache.lookup(pointer.oid, name)
    if cached is not None:
        return cached, pointer.oid
    stored = lfs_object_path(repo.common_dir(), pointer)
    if not stored.is_file():
        raise ModelError(
            f"{shown}: is a Git LFS pointer (sha256 {pointer.oid[:12]}, {pointer.size:,} bytes) "
            "whose content is not in this clone",
            tip=f"fetch it with 'git lfs fetch origin {ref.rev} --include={ref.path}' (in GitHub "
            "Actions: actions/checkout with lfs: true, and fetch the base branch)",
        )
    return cache.store_file(stored, name, pointer.oid, f"{shown} (Git LFS object)")


def _dvc(
    request: Request,
    ref: refs.GitSource,
    repo: Repo,
    commit: str,
    shown: str,
    resolved: str,
    cache: ModelCache,
) -> Fetched:
    from mlci.sources.pointers import dvc_cache_paths, dvc_file_for, parse_dvc_file

    dvc_blob = repo.blob_id(commit, dvc_file_for(ref.path))
    if dvc_blob is None:
        raise ModelError(f"{shown}: no such file at {commit[:12]}")
    pointer = parse_dvc_file(
        repo.read_blob(dvc_blob).decode("utf-8", errors="replace"), ref.path.rsplit("/", 1)[-1]
    )
    if pointer is None:
        raise ModelError(f"{shown}: {dvc_file_for(ref.path)} does not track a single file")
    found = next((p for p in dvc_cache_paths(repo.root, pointer) if p.is_file()), None)
    if found is None:
        raise ModelError(
            f"{shown}: is tracked by DVC (md5 {pointer.md5[:12]}) and its content is not in the "
            f"DVC cache of {repo.root}",
            tip=f"fetch it into the DVC cache ('dvc fetch --all-branches', or 'dvc pull' on a "
            f"checkout of {ref.rev}) and run again",
        )
    md5 = hashlib.md5(usedforsecurity=False)
    for chunk in read_chunks(found):
        md5.update(chunk)
    if md5.hexdigest() != pointer.md5:
        raise ModelError(
            f"{shown}: the DVC cache's copy has md5 {md5.hexdigest()}, not {pointer.md5}",
            tip="the cache is damaged: remove the file and fetch it again",
        )
    path, digest = cache.store_file(found, safe_name(ref.path), None, shown)
    who = None
    if request.policy is not None:
        bundle_blob = repo.blob_id(commit, ref.path + BUNDLE_SUFFIX)
        bundle = repo.read_blob(bundle_blob) if bundle_blob else None
        who = verify_file(path, bundle, shown, request.policy)
    return Fetched(path, "git", shown, resolved + f" (DVC md5 {pointer.md5})", digest, who)


# --- OCI (ModelPack) -----------------------------------------------------------------------------


def _oci(request: Request, ref: refs.OciSource, cache: ModelCache) -> Fetched:
    from mlci.sources import modelpack
    from mlci.supply.registry import Reference, RegistryClient

    client = RegistryClient(Reference.parse(ref.image))
    raw, _, manifest_digest = client.get_manifest(ref.digest or str(ref.tag))
    where = str(ref)
    manifest = modelpack.parse_manifest(raw, where)
    layer = modelpack.weight_layer(manifest, where)
    who = None
    if request.policy is not None:
        who = verify_oci(ref, manifest_digest, request.policy)
    name = modelpack.file_name(layer)
    cached = cache.lookup(layer.hex, name) if layer.media_type == modelpack.WEIGHT_RAW else None
    if cached is not None:
        path, digest = cached, layer.hex
    else:
        blob = client.get_blob(layer.digest)  # checked against the layer digest
        name, chunks = modelpack.unpack(layer, blob, where)
        path, digest = cache.store(chunks, name, None, where)
    resolved = f"{ref.repository}@{manifest_digest}"
    return Fetched(path, "oci", where, resolved, digest, who)


def verify_oci(ref: refs.OciSource, digest: str, config: SignaturePolicyConfig) -> str:
    """Check the artifact's signature referrers against the policy; the signer's identity."""
    from mlci.supply.registry import Reference, RegistryClient
    from mlci.supply.store import RegistryStore
    from mlci.supply.verify import VerificationError, verify_image

    pinned = RegistryClient(Reference.parse(f"{ref.repository}@{digest}"))
    outcome = verify_image(
        RegistryStore(pinned), policy_of(config), require=("signature",), expected_digest=digest
    )
    if not outcome.ok:
        raise VerificationError(f"{ref}: {outcome.reason()}")
    signed = next(f for f in outcome.findings if f.verified and f.kind == "signature")
    return str(signed.identity)


# --- MLflow --------------------------------------------------------------------------------------


def _mlflow(request: Request, ref: refs.MlflowSource, cache: ModelCache) -> Fetched:
    from mlci.sources import mlflow_registry as registry

    mlflow = registry.client()
    version = registry.version_for(mlflow, ref.name, ref.version, ref.alias)
    number = str(version.version)
    where = str(ref)
    recorded = (version.tags or {}).get(registry.TAG_SHA256)
    with registry.downloaded(ref.name, number) as folder:
        model = registry.find_model_file(folder, where)
        path, digest = cache.store_file(model, model.name, None, where)
        if recorded and recorded != digest:
            raise ModelError(
                f"{where}: version {number}'s model file has sha256 {digest}, but mlci recorded "
                f"{recorded} when it was promoted",
                tip="the version's artifacts changed after promotion; nothing was loaded",
            )
        who = None
        if request.policy is not None:
            bundle = Path(str(model) + BUNDLE_SUFFIX)
            data = bundle.read_bytes() if bundle.is_file() else None
            who = verify_file(path, data, where, request.policy)
    return Fetched(path, "mlflow", where, f"models:/{ref.name}/{number}", digest, who)


# --- HTTPS ---------------------------------------------------------------------------------------


def _https(request: Request, ref: refs.HttpsSource, cache: ModelCache) -> Fetched:
    from mlci.sources import https

    path = https.download(ref.url, ref.sha256, cache)
    who = None
    if request.policy is not None:
        bundle = https.fetch_small(https.sibling_url(ref.url, BUNDLE_SUFFIX))
        who = verify_file(path, bundle, ref.url, request.policy)
    return Fetched(path, "https", str(ref), ref.url, ref.sha256, who)
