"""The registry client against a real registry: push, auth (anonymous, basic, bearer), errors."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import requests
from services_registry import (
    PASSWORD,
    USER,
    make_layout,
    run_cli,
)

from mlci.errors import InputError, UsageError
from mlci.github.workflow import parse_file_commands
from mlci.supply.auth import Credentials, find_credentials, parse_challenge
from mlci.supply.layout import read_image_layout
from mlci.supply.registry import (
    AuthError,
    Reference,
    RegistryClient,
    RegistryError,
    push_layout,
)


def _skopeo(reference: str, *extra: str) -> dict:
    done = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", *extra, f"docker://{reference}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _tag_exists(host: str, repository: str, tag: str) -> bool:
    answer = requests.head(
        f"http://{host}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=5,
    )
    return answer.status_code == 200


# --- pure parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "repository", "tag", "digest"),
    [
        ("ghcr.io/org/model:1.2", "ghcr.io", "org/model", "1.2", None),
        ("127.0.0.1:5000/team/iris", "127.0.0.1:5000", "team/iris", None, None),
        ("localhost/iris:v1", "localhost", "iris", "v1", None),
        ("python:3.11", "docker.io", "library/python", "3.11", None),
        ("org/model@sha256:" + "a" * 64, "docker.io", "org/model", None, "sha256:" + "a" * 64),
    ],
)
def test_reference_parsing(text: str, host: str, repository: str, tag: str, digest: str) -> None:
    ref = Reference.parse(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repository, tag, digest)


@pytest.mark.parametrize("text", ["Bad/Upper", "host:5000/repo@sha256:abc", "repo:bad tag"])
def test_bad_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        Reference.parse(text)


def test_bearer_challenge_parsing() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:org/m:pull"'
    )
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://ghcr.io/token"
    assert challenge.params["service"] == "ghcr.io"
    assert challenge.params["scope"] == "repository:org/m:pull"
    assert parse_challenge('Basic realm="Registry Realm"').scheme == "basic"


def test_credentials_from_environment_and_docker_config(tmp_path: Path) -> None:
    env = {"MLCI_REGISTRY_USERNAME": "u", "MLCI_REGISTRY_PASSWORD": "p"}
    assert find_credentials("ghcr.io", env) == Credentials("u", "p", "environment")
    with pytest.raises(InputError, match="set both"):
        find_credentials("ghcr.io", {"MLCI_REGISTRY_USERNAME": "u"})
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {"ghcr.io": {"auth": base64.b64encode(b"octo:tok").decode()}}})
    )
    found = find_credentials("ghcr.io", {"DOCKER_CONFIG": str(tmp_path)})
    assert (found.username, found.password) == ("octo", "tok")
    assert find_credentials("quay.io", {"DOCKER_CONFIG": str(tmp_path)}) is None
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="not a readable registry config"):
        find_credentials("ghcr.io", {"DOCKER_CONFIG": str(tmp_path)})


# --- a real registry --------------------------------------------------------------------------


def test_push_is_inspected_by_skopeo_and_skips_existing_blobs(registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout")
    ref = Reference.parse(registry.ref("team/iris", "v1"))
    result = push_layout(read_image_layout(layout.path), ref)
    assert result.digest == layout.digest
    assert (result.blobs_sent, result.blobs_skipped) == (3, 0)
    seen = _skopeo(str(ref))
    assert seen["Digest"] == layout.digest
    assert seen["Labels"]["org.opencontainers.image.title"] == "iris-classifier"
    assert seen["Layers"] == [d.digest for d in result.layers]
    again = push_layout(read_image_layout(layout.path), ref)
    assert (again.blobs_sent, again.blobs_skipped) == (0, 3)
    raw = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{ref.name}@{layout.digest}",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert raw == (layout.path / "blobs" / "sha256" / layout.digest[7:]).read_bytes()


def test_push_command_prints_digest_and_writes_outputs(
    registry, tmp_path: Path, capsys, monkeypatch
) -> None:
    layout = make_layout(tmp_path / "layout", model=b"another model")
    outputs = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    code, out, err = run_cli(
        [
            "push",
            str(layout.path),
            registry.ref("team/cli", "pr-7"),
            "--digest-file",
            str(tmp_path / "d"),
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    assert out.strip() == f"{registry.host}/team/cli@{layout.digest}"
    assert (tmp_path / "d").read_text().strip() == layout.digest
    written = parse_file_commands(outputs.read_text())
    assert written["digest"] == layout.digest
    assert written["image"] == f"{registry.host}/team/cli@{layout.digest}"


def test_push_by_digest_only(registry, tmp_path: Path, capsys) -> None:
    layout = make_layout(tmp_path / "layout", model=b"by digest")
    code, out, err = run_cli(
        ["push", str(layout.path), f"{registry.host}/team/pinned@{layout.digest}", "-q"], capsys
    )
    assert code == 0, err
    assert not _tag_exists(registry.host, "team/pinned", "latest")
    assert (
        _skopeo(f"{registry.host}/team/pinned@{layout.digest}", "--no-tags")["Digest"]
        == layout.digest
    )
    code, _, err = run_cli(
        ["push", str(layout.path), f"{registry.host}/team/pinned@sha256:{'0' * 64}"], capsys
    )
    assert code == 2 and "not sha256:0000" in err


def test_basic_auth_accepts_the_user_and_refuses_others(basic_registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout")
    ref = Reference.parse(basic_registry.ref("team/basic", "v1"))
    good = RegistryClient(ref, credentials=Credentials(USER, PASSWORD))
    assert push_layout(read_image_layout(layout.path), ref, client=good).digest == layout.digest
    assert _skopeo(str(ref), "--creds", f"{USER}:{PASSWORD}")["Digest"] == layout.digest
    with pytest.raises(AuthError, match="refused user 'mlci'"):
        push_layout(
            read_image_layout(layout.path),
            ref,
            client=RegistryClient(ref, credentials=Credentials(USER, "wrong")),
        )
    with pytest.raises(AuthError, match="requires a login"):
        push_layout(read_image_layout(layout.path), ref, client=RegistryClient(ref, env={}))


def test_bearer_token_auth(token_registry, tmp_path: Path) -> None:
    running, tokens = token_registry
    layout = make_layout(tmp_path / "layout")
    ref = Reference.parse(running.ref("team/token", "v1"))
    client = RegistryClient(ref, credentials=Credentials(USER, PASSWORD))
    assert push_layout(read_image_layout(layout.path), ref, client=client).digest == layout.digest
    asked = [r for r in tokens.requests if r["user"] == USER]
    # The registry's challenge names the actions in either order; what matters is the set.
    scopes = [
        (scope.rsplit(":", 1)[0], frozenset(scope.rsplit(":", 1)[1].split(",")), r["service"])
        for r in asked
        for scope in r["scope"]
    ]
    assert ("repository:team/token", {"pull", "push"}, ["mlci-test-registry"]) in scopes
    # anonymous pull gets a pull-only token; anonymous push is refused
    anonymous = RegistryClient(ref, env={})
    assert anonymous.resolve().digest == layout.digest
    with pytest.raises(AuthError):
        push_layout(
            read_image_layout(make_layout(tmp_path / "other", model=b"x").path),
            Reference.parse(running.ref("team/token", "v2")),
            client=RegistryClient(Reference.parse(running.ref("team/token", "v2")), env={}),
        )
    assert not _tag_exists_token(anonymous, "v2")
    with pytest.raises(AuthError, match="token service .* refused user 'mlci'"):
        RegistryClient(ref, credentials=Credentials(USER, "nope")).resolve()


def _tag_exists_token(client: RegistryClient, tag: str) -> bool:
    return client.head_manifest(tag) is not None


def test_auth_refused_on_the_command_line_is_one_line(
    basic_registry, tmp_path: Path, capsys, monkeypatch
) -> None:
    layout = make_layout(tmp_path / "layout")
    monkeypatch.setenv("MLCI_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("MLCI_REGISTRY_PASSWORD", "wrong")
    code, out, err = run_cli(
        ["push", str(layout.path), basic_registry.ref("team/refused", "v1"), "-q"], capsys
    )
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("mlci: error: registry 127.0.0.1:")
    assert "refused user 'mlci'" in err and "tip:" in err
    assert not _tag_exists_auth(basic_registry.host, "team/refused", "v1")


def _tag_exists_auth(host: str, repository: str, tag: str) -> bool:
    answer = requests.head(
        f"http://{host}/v2/{repository}/manifests/{tag}", auth=(USER, PASSWORD), timeout=5
    )
    return answer.status_code == 200


def test_unreachable_registry(tmp_path: Path, capsys, monkeypatch) -> None:
    import socket

    monkeypatch.setenv("MLCI_REGISTRY_RETRIES", "1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    layout = make_layout(tmp_path / "layout")
    ref = Reference.parse(f"127.0.0.1:{port}/team/iris:v1")
    with pytest.raises(RegistryError, match="unreachable"):
        push_layout(
            read_image_layout(layout.path), ref, client=RegistryClient(ref, retries=1, backoff=0.01)
        )
    code, _, err = run_cli(["push", str(layout.path), str(ref), "-q"], capsys)
    assert code == 1 and "is unreachable" in err and err.count("\n") == 1


def test_nothing_is_tagged_when_a_blob_is_missing(registry, tmp_path: Path, capsys) -> None:
    layout = make_layout(tmp_path / "layout", model=b"half pushed")
    manifest = json.loads((layout.path / "blobs" / "sha256" / layout.digest[7:]).read_bytes())
    (layout.path / "blobs" / "sha256" / manifest["layers"][1]["digest"][7:]).unlink()
    code, _, err = run_cli(
        ["push", str(layout.path), registry.ref("team/half", "v1"), "-q"], capsys
    )
    assert code == 2 and "missing" in err
    assert not _tag_exists(registry.host, "team/half", "v1")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such OCI"),
        (lambda p: p.mkdir(), "not an OCI image layout"),
    ],
)
def test_bad_layouts(tmp_path: Path, capsys, setup, message: str) -> None:
    target = tmp_path / "layout"
    setup(target)
    code, _, err = run_cli(["push", str(target), "127.0.0.1:1/team/x:v1"], capsys)
    assert code == 2 and message in err
