"""Fetching models from every kind of source, against real components: git repositories with
Git LFS and DVC pointers, the suite's OCI registry, an MLflow tracking server, and an HTTPS
server whose certificate comes from a CA the test trusts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from services_registry import Registry, run_cli
from services_sources import (
    HttpsServer,
    MlflowServer,
    commit_all,
    git,
    init_repo,
    make_key,
    onnx_model,
    register_onnx,
    sha256,
)

from mlci.errors import MlciError, ModelError
from mlci.sources import reference as refs
from mlci.sources.cache import DigestMismatch, ModelCache
from mlci.sources.config import SignaturePolicyConfig
from mlci.sources.fetch import Request, fetch
from mlci.supply.verify import VerificationError
from project import Project


@pytest.fixture
def cache(tmp_path: Path) -> ModelCache:
    return ModelCache(tmp_path / "cache")


def policy(public: Path) -> SignaturePolicyConfig:
    return SignaturePolicyConfig(key=public)


def sign_file(path: Path, key: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from mlci.commands import main

    monkeypatch.setenv("COSIGN_PASSWORD", "test-password")
    assert main(["sign", str(path), "--key", str(key)]) == 0
    return Path(f"{path}.sigstore.json")


# --- local files ---------------------------------------------------------------------------------


def test_local_file_with_a_pin(tmp_path: Path, cache: ModelCache) -> None:
    digest = onnx_model(tmp_path / "m.onnx", scale=2.0)
    got = fetch(Request(refs.LocalSource("m.onnx"), tmp_path, pin=digest), cache)
    assert got.path == tmp_path / "m.onnx" and got.digest == digest
    assert got.record().model_dump()["digest"] == f"sha256:{digest}"
    with pytest.raises(ModelError, match="not the pinned"):
        fetch(Request(refs.LocalSource("m.onnx"), tmp_path, pin="0" * 64), cache)


def test_local_signature_policy(
    tmp_path: Path, cache: ModelCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnx_model(tmp_path / "m.onnx", scale=2.0)
    good, other = make_key(tmp_path / "k1"), make_key(tmp_path / "k2")
    request = Request(refs.LocalSource("m.onnx"), tmp_path, policy=policy(good.public))
    with pytest.raises(VerificationError, match="no signature bundle"):
        fetch(request, cache)
    sign_file(tmp_path / "m.onnx", good.private, monkeypatch)
    got = fetch(request, cache)
    assert got.verified_by is not None and got.verified_by.startswith("key:sha256:")
    with pytest.raises(VerificationError, match="not the key given"):
        fetch(Request(request.ref, tmp_path, policy=policy(other.public)), cache)
    onnx_model(tmp_path / "m.onnx", scale=3.0)  # the file changed after it was signed
    with pytest.raises(VerificationError):
        fetch(request, cache)


# --- git -----------------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = init_repo(tmp_path / "repo")
    onnx_model(root / "models" / "m.onnx", scale=1.0)
    commit_all(root, "model v1")
    return root


def test_file_at_a_git_ref(repo: Path, cache: ModelCache) -> None:
    v1 = sha256(repo / "models" / "m.onnx")
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    onnx_model(repo / "models" / "m.onnx", scale=5.0)
    commit_all(repo, "model v2")
    got = fetch(Request(refs.GitSource("main", "models/m.onnx"), repo), cache)
    assert got.digest == v1 and sha256(got.path) == v1
    assert got.resolved == f"{first}:models/m.onnx"
    assert got.record().reference == "git:main:models/m.onnx"
    again = fetch(Request(refs.GitSource(first[:10], "models/m.onnx"), repo), cache)
    assert again.path == got.path  # cached by digest


def test_git_errors_say_how_to_fix(repo: Path, cache: ModelCache) -> None:
    with pytest.raises(ModelError, match="no branch, tag or commit 'nope'") as info:
        fetch(Request(refs.GitSource("nope", "models/m.onnx"), repo), cache)
    assert "git fetch origin nope" in info.value.diagnostics()
    with pytest.raises(ModelError, match="no such file"):
        fetch(Request(refs.GitSource("main", "models/other.onnx"), repo), cache)
    with pytest.raises(ModelError, match="not inside a git repository"):
        fetch(Request(refs.GitSource("main", "m.onnx"), repo.parent), cache)


def test_base_branch_only_as_a_remote_tracking_ref(
    repo: Path, tmp_path: Path, cache: ModelCache
) -> None:
    # A pull request checkout has the base branch only as origin/<base>.
    git(repo, "checkout", "-q", "-b", "feature")
    onnx_model(repo / "models" / "m.onnx", scale=7.0)
    commit_all(repo, "candidate")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", "feature", str(repo), str(clone)], check=True)
    assert git(clone, "branch", "--list", "main") == ""
    got = fetch(Request(refs.GitSource("main", "models/m.onnx"), clone), cache)
    assert got.record().reference == "git:origin/main:models/m.onnx"
    assert got.digest == git_sha(repo, "main")


def git_sha(repo: Path, rev: str) -> str:
    import hashlib

    data = subprocess.run(
        ["git", "-C", str(repo), "show", f"{rev}:models/m.onnx"], capture_output=True, check=True
    ).stdout
    return hashlib.sha256(data).hexdigest()


def lfs_repo(root: Path) -> Path:
    init_repo(root)
    git(root, "lfs", "install", "--local")
    git(root, "lfs", "track", "*.onnx")
    onnx_model(root / "models" / "m.onnx", scale=3.0)
    commit_all(root, "model through LFS")
    return root


def test_git_lfs_file_is_fetched_from_the_lfs_store(tmp_path: Path, cache: ModelCache) -> None:
    root = lfs_repo(tmp_path / "lfs")
    real = sha256(root / "models" / "m.onnx")
    stored = subprocess.run(
        ["git", "-C", str(root), "cat-file", "blob", "HEAD:models/m.onnx"],
        capture_output=True,
        check=True,
    ).stdout
    assert stored.startswith(b"version https://git-lfs.github.com/spec/v1")  # git holds a pointer
    got = fetch(Request(refs.GitSource("main", "models/m.onnx"), root), cache)
    assert got.digest == real and sha256(got.path) == real


def test_git_lfs_pointer_without_content_is_a_clear_error(
    tmp_path: Path, cache: ModelCache
) -> None:
    root = lfs_repo(tmp_path / "lfs")
    shutil.rmtree(root / ".git" / "lfs" / "objects")
    with pytest.raises(ModelError) as info:
        fetch(Request(refs.GitSource("main", "models/m.onnx"), root), cache)
    line = info.value.diagnostics()
    assert "is a Git LFS pointer" in line and "content is not in this clone" in line
    assert "git lfs fetch origin main --include=models/m.onnx" in line
    assert "lfs: true" in line


def test_checked_out_lfs_pointer_is_not_loaded(tmp_path: Path, cache: ModelCache) -> None:
    root = lfs_repo(tmp_path / "lfs")
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", str(root), str(clone)],
        check=True,
        env={"GIT_LFS_SKIP_SMUDGE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    with pytest.raises(ModelError, match="is a Git LFS pointer") as info:
        fetch(Request(refs.LocalSource("models/m.onnx"), clone), cache)
    assert "git lfs pull" in info.value.diagnostics()


def dvc_repo(root: Path) -> tuple[Path, str]:
    import hashlib

    init_repo(root)
    model = root / "models" / "m.onnx"
    onnx_model(model, scale=4.0)
    md5 = hashlib.md5(model.read_bytes()).hexdigest()
    (root / "models" / ".gitignore").write_text("/m.onnx\n")
    (root / "models" / "m.onnx.dvc").write_text(
        f"outs:\n- md5: {md5}\n  size: {model.stat().st_size}\n  hash: md5\n  path: m.onnx\n"
    )
    cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    cached.parent.mkdir(parents=True)
    shutil.copy(model, cached)
    (root / ".dvc" / ".gitignore").write_text("/cache\n")
    commit_all(root, "model through DVC")
    return root, sha256(model)


def test_dvc_tracked_file_comes_from_the_dvc_cache(tmp_path: Path, cache: ModelCache) -> None:
    root, digest = dvc_repo(tmp_path / "dvc")
    got = fetch(Request(refs.GitSource("main", "models/m.onnx"), root), cache)
    assert got.digest == digest and "DVC md5" in str(got.resolved)


def test_dvc_tracked_file_without_content_is_a_clear_error(
    tmp_path: Path, cache: ModelCache
) -> None:
    root, _ = dvc_repo(tmp_path / "dvc")
    cached = next((root / ".dvc" / "cache").rglob("*"))
    shutil.rmtree(root / ".dvc" / "cache")
    with pytest.raises(ModelError) as info:
        fetch(Request(refs.GitSource("main", "models/m.onnx"), root), cache)
    line = info.value.diagnostics()
    assert "is tracked by DVC" in line and "dvc fetch" in line
    # a damaged cache copy is refused too
    (root / ".dvc" / "cache" / "files" / "md5").mkdir(parents=True)
    md5 = (root / "models" / "m.onnx.dvc").read_text().split("md5: ")[1][:32]
    damaged = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    damaged.parent.mkdir(parents=True, exist_ok=True)
    damaged.write_bytes(b"not the model")
    assert cached
    with pytest.raises(ModelError, match="the DVC cache's copy has md5"):
        fetch(Request(refs.GitSource("main", "models/m.onnx"), root), cache)


def test_check_compares_with_the_base_branch(
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`baseline: {source: base-branch}` in a pull request: the candidate's path on the base."""
    root = project.root
    init_repo(root)
    shutil.copy(root / "models" / "baseline.onnx", root / "models" / "candidate.onnx.main")
    candidate = (root / "models" / "candidate.onnx").read_bytes()
    shutil.move(root / "models" / "candidate.onnx.main", root / "models" / "candidate.onnx")
    config = (root / "mlci.yaml").read_text()
    (root / "mlci.yaml").write_text(
        config.replace(
            "baseline:\n      path: models/baseline.onnx", "baseline:\n      source: base-branch"
        )
    )
    main_commit = commit_all(root, "production model")
    git(root, "checkout", "-q", "-b", "feature")
    (root / "models" / "candidate.onnx").write_bytes(candidate)
    commit_all(root, "candidate")
    monkeypatch.setenv("MLCI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_BASE_REF", raising=False)
    monkeypatch.delenv("MLCI_BASE_REF", raising=False)
    out = tmp_path / "out"
    code, _, err = run_cli(["check", "-c", str(root), "-o", str(out), "--only", "evaluate"], capsys)
    assert code == 2 and "no base branch" in err and "MLCI_BASE_REF=main" in err
    monkeypatch.setenv("GITHUB_BASE_REF", "main")
    code, _, err = run_cli(["check", "-c", str(root), "-o", str(out), "--only", "evaluate"], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    baseline, model = results["baseline"], results["model"]
    assert baseline["sha256"] == sha256(root / "models" / "baseline.onnx")
    assert model["sha256"] == sha256(root / "models" / "candidate.onnx")
    assert baseline["source"] == {
        "scheme": "git",
        "reference": "git:main:models/candidate.onnx",
        "resolved": f"{main_commit}:models/candidate.onnx",
        "digest": f"sha256:{baseline['sha256']}",
        "verified_by": None,
    }
    assert model["source"]["scheme"] == "path"
    assert results["evaluation"]["metrics"]["delta"]  # compared with the base branch's model


# --- HTTPS ---------------------------------------------------------------------------------------


def test_https_source(
    https_server: HttpsServer, cache: ModelCache, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    digest = onnx_model(https_server.root / "https-model.onnx", scale=6.0)
    url = f"{https_server.url}/https-model.onnx"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(https_server.ca))
    got = fetch(Request(refs.HttpsSource(url, digest), tmp_path), cache)
    assert got.digest == digest and sha256(got.path) == digest
    assert got.record().reference == f"{url}#sha256={digest}"
    served = len(https_server.requests)
    fetch(Request(refs.HttpsSource(url, digest), tmp_path), cache)
    assert len(https_server.requests) == served  # the cache answered


def test_https_wrong_sha256_is_refused_and_not_cached(
    https_server: HttpsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnx_model(https_server.root / "wrong.onnx", scale=8.0)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(https_server.ca))
    cache = ModelCache(tmp_path / "cache")
    ref = refs.HttpsSource(f"{https_server.url}/wrong.onnx", "0" * 64)
    with pytest.raises(DigestMismatch, match="not the pinned"):
        fetch(Request(ref, tmp_path), cache)
    assert not [p for p in cache.root.rglob("*") if p.is_file()]


def test_https_untrusted_certificate_and_downgrades(
    https_server: HttpsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = onnx_model(https_server.root / "t.onnx", scale=1.5)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(MlciError, match="certificate is not trusted") as info:
        fetch(
            Request(refs.HttpsSource(f"{https_server.url}/t.onnx", digest), tmp_path),
            ModelCache(tmp_path / "c"),
        )
    assert "REQUESTS_CA_BUNDLE" in info.value.diagnostics()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(https_server.ca))
    with pytest.raises(MlciError, match="not https"):
        fetch(
            Request(
                refs.HttpsSource(f"{https_server.url}/redirect-to-http/t.onnx", digest), tmp_path
            ),
            ModelCache(tmp_path / "c"),
        )


def test_https_signature_bundle_beside_the_file(
    https_server: HttpsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = onnx_model(https_server.root / "signed.onnx", scale=2.5)
    key = make_key(tmp_path / "keys")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(https_server.ca))
    request = Request(
        refs.HttpsSource(f"{https_server.url}/signed.onnx", digest),
        tmp_path,
        policy=policy(key.public),
    )
    with pytest.raises(VerificationError, match="no signature bundle"):
        fetch(request, ModelCache(tmp_path / "c1"))
    sign_file(https_server.root / "signed.onnx", key.private, monkeypatch)
    got = fetch(request, ModelCache(tmp_path / "c2"))
    assert got.verified_by == f"key:sha256:{key_id(key.public)}"


def key_id(public: Path) -> str:
    from mlci.supply.signing import key_id as kid
    from mlci.supply.signing import load_public_key

    return kid(load_public_key(public))


# --- OCI (ModelPack) -----------------------------------------------------------------------------


def push_model(model: Path, image: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code, out, err = run_cli(["push-model", str(model), image, "-q", *extra], capsys)
    assert code == 0, err
    return out.strip().splitlines()[-1]


def test_oci_modelpack_by_tag_and_digest(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = onnx_model(tmp_path / "credit.onnx", scale=1.25)
    pinned = push_model(tmp_path / "credit.onnx", registry.ref("models/credit", "v1"), capsys)
    assert pinned.startswith(f"oci://{registry.host}/models/credit@sha256:")
    cache = ModelCache(tmp_path / "cache")
    by_tag = fetch(
        Request(refs.parse_source(f"oci://{registry.ref('models/credit', 'v1')}"), tmp_path), cache
    )
    assert by_tag.digest == digest and by_tag.path.name == "credit.onnx"
    assert by_tag.resolved == pinned.removeprefix("oci://")
    by_digest = fetch(Request(refs.parse_source(pinned), tmp_path), cache)
    assert by_digest.path == by_tag.path
    # a cached file changed on disk is not trusted: it is fetched again
    by_tag.path.write_bytes(b"tampered")
    again = fetch(Request(refs.parse_source(pinned), tmp_path), cache)
    assert sha256(again.path) == digest


def test_oci_image_that_is_not_a_model(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from services_registry import make_layout

    layout = make_layout(tmp_path / "layout")
    code, _, err = run_cli(
        ["push", str(layout.path), registry.ref("images/app", "v1"), "-q"], capsys
    )
    assert code == 0, err
    with pytest.raises(ModelError, match="not a ModelPack model artifact"):
        fetch(
            Request(refs.parse_source(f"oci://{registry.ref('images/app', 'v1')}"), tmp_path),
            ModelCache(tmp_path / "cache"),
        )


def test_oci_signature_policy(
    registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    onnx_model(tmp_path / "signed.onnx", scale=1.75)
    onnx_model(tmp_path / "unsigned.onnx", scale=1.8)
    key, other = make_key(tmp_path / "k1"), make_key(tmp_path / "k2")
    monkeypatch.setenv("COSIGN_PASSWORD", key.password)
    signed = push_model(
        tmp_path / "signed.onnx",
        registry.ref("models/signed", "v1"),
        capsys,
        "--key",
        str(key.private),
    )
    unsigned = push_model(tmp_path / "unsigned.onnx", registry.ref("models/unsigned", "v1"), capsys)
    cache = ModelCache(tmp_path / "cache")
    got = fetch(Request(refs.parse_source(signed), tmp_path, policy=policy(key.public)), cache)
    assert got.verified_by == f"key:sha256:{key_id(key.public)}"
    with pytest.raises(VerificationError, match="no valid signature"):
        fetch(Request(refs.parse_source(signed), tmp_path, policy=policy(other.public)), cache)
    with pytest.raises(VerificationError, match="no valid signature"):
        fetch(Request(refs.parse_source(unsigned), tmp_path, policy=policy(key.public)), cache)


# --- MLflow --------------------------------------------------------------------------------------


def test_mlflow_alias_and_version(
    mlflow_server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    v1 = onnx_model(tmp_path / "v1" / "model.onnx", scale=1.0)
    v2 = onnx_model(tmp_path / "v2" / "model.onnx", scale=2.0)
    assert register_onnx("fetch-credit", tmp_path / "v1" / "model.onnx") == "1"
    assert register_onnx("fetch-credit", tmp_path / "v2" / "model.onnx") == "2"
    client = mlflow.tracking.MlflowClient()
    client.set_registered_model_alias("fetch-credit", "champion", "1")
    cache = ModelCache(tmp_path / "cache")
    got = fetch(Request(refs.parse_source("models:/fetch-credit@champion"), tmp_path), cache)
    assert got.digest == v1 and got.resolved == "models:/fetch-credit/1"
    assert fetch(Request(refs.parse_source("models:/fetch-credit/2"), tmp_path), cache).digest == v2
    with pytest.raises(ModelError, match="no alias 'nope'"):
        fetch(Request(refs.parse_source("models:/fetch-credit@nope"), tmp_path), cache)
    with pytest.raises(ModelError, match="no version 9"):
        fetch(Request(refs.parse_source("models:/fetch-credit/9"), tmp_path), cache)
    # the sha256 mlci records on a promoted version must still hold
    client.set_model_version_tag("fetch-credit", "2", "mlci.model_sha256", v1)
    with pytest.raises(ModelError, match="mlci recorded"):
        fetch(Request(refs.parse_source("models:/fetch-credit/2"), tmp_path), cache)


def test_mlflow_signature_bundle_beside_the_model(
    mlflow_server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    model = tmp_path / "model.onnx"
    onnx_model(model, scale=9.0)
    key = make_key(tmp_path / "keys")
    bundle = sign_file(model, key.private, monkeypatch)
    version = register_onnx("fetch-signed", model, bundle=bundle)
    ref = refs.parse_source(f"models:/fetch-signed/{version}")
    got = fetch(Request(ref, tmp_path, policy=policy(key.public)), ModelCache(tmp_path / "c"))
    assert got.verified_by == f"key:sha256:{key_id(key.public)}"
    other = make_key(tmp_path / "other")
    with pytest.raises(VerificationError):
        fetch(Request(ref, tmp_path, policy=policy(other.public)), ModelCache(tmp_path / "c"))
