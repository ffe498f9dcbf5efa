"""A tamper corpus for Sigstore bundles: every field of a real bundle, changed, must be refused.

Three untouched bundles verify: a key-signed DSSE attestation and a key-signed file signature
made by ``mlci sign``, and the keyless bundle GitHub Actions made for a real wheel (verified
offline against Sigstore's public-good trust root). Then every field of each is removed, given
the wrong JSON type, given a wrong value, and every object gets an unknown field (proto3 JSON
parsers refuse those); each changed bundle must fail verification, as a verification failure
(exit 1) when it goes through the command line.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from services_registry import run_cli

from mlci.supply import attest
from mlci.supply.signing import KeySigner, generate_key_pair, key_id
from mlci.supply.verify import Policy, VerificationError, verify_bundle

ASSETS = Path(__file__).resolve().parent / "assets" / "sigstore-github"
WHEEL = ASSETS / "rfc8785-0.1.2-py3-none-any.whl"
GITHUB_BUNDLE = json.loads((ASSETS / f"{WHEEL.name}.sigstore.json").read_text())
GITHUB_POLICY = Policy(
    identity="https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml"
    "@refs/tags/v0.1.2",
    issuer="https://token.actions.githubusercontent.com",
)
ARTIFACT = b"the signed model file\n"
PASSWORD = "tamper"

Path_ = tuple[str | int, ...]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_key_pair(tmp_path_factory.mktemp("keys") / "cosign", PASSWORD)


@pytest.fixture(scope="module")
def signer(keys: tuple[Path, Path]) -> KeySigner:
    return KeySigner.from_file(keys[0], env={"COSIGN_PASSWORD": PASSWORD})


@pytest.fixture(scope="module")
def dsse_bundle(signer: KeySigner) -> dict[str, Any]:
    digest = "sha256:" + __import__("hashlib").sha256(ARTIFACT).hexdigest()
    statement = attest.statement("model.onnx", digest, attest.EVALUATION_PREDICATE, {"ok": 1})
    return signer.sign_statement(statement)


@pytest.fixture(scope="module")
def message_bundle(signer: KeySigner, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("file") / "model.onnx"
    path.write_bytes(ARTIFACT)
    return signer.sign_file(path)


# --------------------------------------------------------------------------- mutations


def _paths(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*path, i))


def _get(document: Any, path: Path_) -> Any:
    for part in path:
        document = document[part]
    return document


def _set(document: Any, path: Path_, value: Any) -> None:
    _get(document, path[:-1])[path[-1]] = value


def _wrong_value(value: Any) -> Any:
    """A value of the same JSON type that means something else."""
    if isinstance(value, str):
        if value.isdigit():
            return str(int(value) + 1)
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raw = b""
        if raw and len(value) >= 8:
            flipped = bytes([raw[0] ^ 0x01]) + raw[1:]
            return base64.b64encode(flipped).decode()
        if value.startswith("application/vnd.dev.sigstore.bundle"):
            return "application/vnd.dev.sigstore.bundle+json;version=0.1"
        if value == "SHA2_256":
            return "SHA2_512"
        return value + "x"
    if isinstance(value, list):
        return [*value, value[0]] if value else [{}]
    if isinstance(value, dict):
        return {}
    return not value


def _wrong_type(value: Any) -> Any:
    if isinstance(value, str):
        return 1 if not value.isdigit() else int(value)
    if isinstance(value, list):
        return {"items": value}
    if isinstance(value, dict):
        return [value]
    return "x"


def mutations(bundle: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field removed, retyped and changed, and an unknown field in every object."""
    for path, value in _paths(bundle):
        where = ".".join(str(p) for p in path) or "(bundle)"
        if path:
            removed = copy.deepcopy(bundle)
            parent = _get(removed, path[:-1])
            del parent[path[-1]]
            yield f"remove {where}", removed
            for label, change in (("type", _wrong_type), ("value", _wrong_value)):
                changed = copy.deepcopy(bundle)
                _set(changed, path, change(value))
                yield f"{label} {where}", changed
        if isinstance(value, dict):
            extra = copy.deepcopy(bundle)
            _get(extra, path)["unknownField"] = "x"
            yield f"unknown field in {where}", extra


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [name for name, _ in mutations(bundle)]


# --------------------------------------------------------------------------- key-signed


def test_untouched_key_bundles_verify(dsse_bundle, message_bundle, keys) -> None:
    policy = Policy(public_key=keys[1])
    verified = verify_bundle(dsse_bundle, policy, artifact=ARTIFACT)
    assert verified.statement is not None and verified.key_id
    assert verify_bundle(message_bundle, policy, artifact=ARTIFACT).key_id == verified.key_id


@pytest.mark.parametrize("kind", ["dsse", "message"])
def test_every_change_to_a_key_bundle_is_refused(kind, dsse_bundle, message_bundle, keys) -> None:
    bundle = dsse_bundle if kind == "dsse" else message_bundle
    policy = Policy(public_key=keys[1])
    cases = list(mutations(bundle))
    assert len(cases) >= 25  # every field, three ways, plus unknown fields
    accepted = []
    for name, changed in cases:
        try:
            verify_bundle(changed, policy, artifact=ARTIFACT)
        except VerificationError:
            continue
        accepted.append(name)
    assert accepted == []


def test_the_examples_that_were_once_accepted(message_bundle, keys) -> None:
    policy = Policy(public_key=keys[1])
    changed = copy.deepcopy(message_bundle)
    changed["messageSignature"]["messageDigest"]["algorithm"] = "SHA2_512"
    with pytest.raises(VerificationError, match="messageDigest.algorithm: 'SHA2_512'"):
        verify_bundle(changed, policy, artifact=ARTIFACT)
    dropped = copy.deepcopy(message_bundle)
    del dropped["verificationMaterial"]
    with pytest.raises(VerificationError, match="verificationMaterial: required field"):
        verify_bundle(dropped, policy, artifact=ARTIFACT)


def test_a_bundle_naming_another_key_is_refused(message_bundle, keys, tmp_path: Path) -> None:
    from mlci.supply.signing import load_public_key

    _, other = generate_key_pair(tmp_path / "other", "x")
    changed = copy.deepcopy(message_bundle)
    changed["verificationMaterial"]["publicKey"]["hint"] = key_id(load_public_key(other))
    with pytest.raises(VerificationError, match="names key"):
        verify_bundle(changed, Policy(public_key=keys[1]), artifact=ARTIFACT)


# --------------------------------------------------------------------------- keyless (GitHub)


def test_untouched_github_bundle_verifies() -> None:
    verified = verify_bundle(GITHUB_BUNDLE, GITHUB_POLICY, artifact=WHEEL.read_bytes())
    assert verified.identity == GITHUB_POLICY.identity


@pytest.mark.parametrize("case", _ids(GITHUB_BUNDLE))
def test_every_change_to_the_github_bundle_is_refused(case: str) -> None:
    changed = dict(mutations(GITHUB_BUNDLE))[case]
    with pytest.raises(VerificationError):
        verify_bundle(changed, GITHUB_POLICY, artifact=WHEEL.read_bytes())


def test_github_corpus_covers_every_field() -> None:
    names = _ids(GITHUB_BUNDLE)
    leaves = [p for p, v in _paths(GITHUB_BUNDLE) if p and not isinstance(v, (dict, list))]
    assert len(leaves) >= 30
    for path in leaves:
        where = ".".join(str(p) for p in path)
        assert {f"remove {where}", f"type {where}", f"value {where}"} <= set(names)


def test_malformed_bundle_on_the_command_line_is_a_verification_failure(
    tmp_path: Path, capsys
) -> None:
    artifact = tmp_path / WHEEL.name
    artifact.write_bytes(WHEEL.read_bytes())
    policy = [
        "--certificate-identity",
        str(GITHUB_POLICY.identity),
        "--certificate-oidc-issuer",
        str(GITHUB_POLICY.issuer),
    ]
    changed = copy.deepcopy(GITHUB_BUNDLE)
    changed["messageSignature"]["messageDigest"]["algorithm"] = "SHA2_512"
    for name, content in {
        "algorithm": json.dumps(changed),
        "not json": "{not json",
        "not a bundle": json.dumps({"mediaType": "text/plain"}),
        "nested too deeply": "[" * 100_000 + "]" * 100_000,
    }.items():
        bundle = tmp_path / f"{name}.sigstore.json"
        bundle.write_text(content)
        code, _, err = run_cli(["verify", str(artifact), "--bundle", str(bundle), *policy], capsys)
        assert code == 1, (name, err)
        assert err.count("\n") == 1 and err.startswith("mlci: error: "), err


def test_a_bundle_relabelled_with_the_right_key_still_fails(keys, tmp_path: Path) -> None:
    """Naming the expected key does not help a signature made with another one."""
    from mlci.supply.signing import load_public_key

    other_key, _ = generate_key_pair(tmp_path / "other", "x")
    forged = KeySigner.from_file(other_key, env={"COSIGN_PASSWORD": "x"})
    path = tmp_path / "model.onnx"
    path.write_bytes(ARTIFACT)
    bundle = forged.sign_file(path)
    bundle["verificationMaterial"]["publicKey"]["hint"] = key_id(load_public_key(keys[1]))
    with pytest.raises(VerificationError, match="does not verify with key"):
        verify_bundle(bundle, Policy(public_key=keys[1]), artifact=ARTIFACT)
