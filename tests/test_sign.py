"""Signing: cosign key files, PEM keys, keyless up to where it needs the network."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from services_registry import make_layout, run_cli

from mlci.supply import attest
from mlci.supply.signing import (
    KeyFileError,
    KeylessSigner,
    KeySigner,
    SigningError,
    decrypt_cosign_key,
    encrypt_cosign_key,
    generate_key_pair,
    load_private_key,
)
from mlci.supply.verify import Policy, VerificationError, verify_bundle, verify_file


@pytest.fixture(scope="module")
def cosign_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_key_pair(tmp_path_factory.mktemp("keys") / "cosign", "correct horse")


def test_cosign_key_file_format(cosign_keys: tuple[Path, Path]) -> None:
    key, pub = cosign_keys
    lines = key.read_text().splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert lines[-1] == "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"
    envelope = json.loads(base64.b64decode("".join(lines[1:-1])))
    assert envelope["kdf"]["name"] == "scrypt"
    assert envelope["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert envelope["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(envelope["cipher"]["nonce"])) == 24
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert key.stat().st_mode & 0o077 == 0


def test_encrypt_decrypt_roundtrip() -> None:
    sealed = encrypt_cosign_key(b"secret der", b"pw")
    assert decrypt_cosign_key(sealed, b"pw") == b"secret der"
    with pytest.raises(KeyFileError, match="wrong password"):
        decrypt_cosign_key(sealed, b"other")


def test_sign_and_verify_a_file_with_a_cosign_key(
    cosign_keys, tmp_path: Path, capsys, monkeypatch
) -> None:
    key, pub = cosign_keys
    target = tmp_path / "model.onnx"
    target.write_bytes(b"weights")
    monkeypatch.setenv("MLCI_KEY_PASSWORD", "correct horse")
    code, out, err = run_cli(
        ["sign", str(target), "--key", str(key), "--password-env", "MLCI_KEY_PASSWORD"], capsys
    )
    assert code == 0, err
    bundle_path = tmp_path / "model.onnx.sigstore.json"
    bundle = json.loads(bundle_path.read_text())
    assert bundle["mediaType"] == attest.BUNDLE_MEDIA_TYPE
    assert "messageSignature" in bundle
    code, out, err = run_cli(["verify", str(target), "--key", str(pub)], capsys)
    assert code == 0 and out.startswith("OK:"), err
    target.write_bytes(b"weightz")
    code, _, err = run_cli(["verify", str(target), "--key", str(pub)], capsys)
    assert code == 1 and "sha256 differs" in err


def test_plain_pem_keys(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    for name, fmt in (
        ("pkcs8", serialization.PrivateFormat.PKCS8),
        ("sec1", serialization.PrivateFormat.TraditionalOpenSSL),
    ):
        (tmp_path / f"{name}.pem").write_bytes(
            private.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        )
        signer = KeySigner.from_file(tmp_path / f"{name}.pem", env={})
        statement = attest.statement("x", "sha256:" + "ab" * 32, attest.SIGN_PREDICATE, {})
        bundle = signer.sign_statement(statement)
        (tmp_path / "pub.pem").write_bytes(
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        verified = verify_bundle(bundle, Policy(public_key=tmp_path / "pub.pem"))
        assert verified.statement == statement
    (tmp_path / "enc.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    assert KeySigner.from_file(tmp_path / "enc.pem", env={"COSIGN_PASSWORD": "pw"})
    with pytest.raises(KeyFileError, match="enc.pem"):
        KeySigner.from_file(tmp_path / "enc.pem", env={"COSIGN_PASSWORD": "nope"})
    rsa_free = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "p384.pem").write_bytes(
        rsa_free.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match="only ECDSA P-256"):
        load_private_key(tmp_path / "p384.pem", None)


def test_dsse_signature_covers_the_payload(cosign_keys) -> None:
    key, pub = cosign_keys
    signer = KeySigner.from_file(key, env={"COSIGN_PASSWORD": "correct horse"})
    bundle = signer.sign_statement(
        attest.statement("x", "sha256:" + "cd" * 32, attest.SIGN_PREDICATE, {})
    )
    envelope = bundle["dsseEnvelope"]
    forged = json.loads(base64.b64decode(envelope["payload"]))
    forged["subject"][0]["digest"]["sha256"] = "ef" * 32
    envelope["payload"] = base64.b64encode(json.dumps(forged).encode()).decode()
    with pytest.raises(VerificationError, match="does not verify"):
        verify_bundle(bundle, Policy(public_key=pub))


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        (None, {"COSIGN_PASSWORD": "wrong"}, "wrong password"),
        (None, {}, "no password was given"),
        (
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nbm90IGpzb24=\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            {"COSIGN_PASSWORD": "x"},
            "malformed",
        ),
        ("hello\n", {}, "not a PEM file"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", {}, "malformed key"),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            {},
            "this is a public key",
        ),
    ],
)
def test_bad_keys_give_one_clear_line(
    cosign_keys, tmp_path: Path, capsys, monkeypatch, content, env, message
) -> None:
    key = cosign_keys[0]
    if content is not None:
        key = tmp_path / "bad.key"
        key.write_text(content)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    target = tmp_path / "file.bin"
    target.write_bytes(b"x")
    code, _, err = run_cli(["sign", str(target), "--key", str(key)], capsys)
    assert code == 2, err
    assert message in err and err.count("\n") == 1 and err.startswith("mlci: error: ")
    assert not (tmp_path / "file.bin.sigstore.json").exists()


def test_wrong_password_pushes_nothing(
    registry, cosign_keys, tmp_path: Path, capsys, monkeypatch
) -> None:
    from mlci.supply.referrers import list_referrers
    from mlci.supply.registry import Reference
    from mlci.supply.store import RegistryStore

    layout = make_layout(tmp_path / "layout", model=b"wrong password")
    ref = registry.ref("team/wrongpw", "v1")
    assert run_cli(["push", str(layout.path), ref, "-q"], capsys)[0] == 0
    monkeypatch.setenv("COSIGN_PASSWORD", "wrong")
    code, _, err = run_cli(["sign", ref, "--key", str(cosign_keys[0])], capsys)
    assert code == 2 and "wrong password" in err
    assert list_referrers(RegistryStore.open(Reference.parse(ref)), layout.digest) == []


def test_keyless_without_an_identity_token_explains_what_to_do(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    for name in (
        "SIGSTORE_ID_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "GITHUB_ACTIONS",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SigningError, match="needs an OIDC identity token"):
        KeylessSigner.from_environment(env={})
    target = tmp_path / "file.bin"
    target.write_bytes(b"x")
    code, _, err = run_cli(["sign", str(target), "--keyless"], capsys)
    assert code == 1
    assert "id-token: write" in err and err.count("\n") == 1


def test_keyless_with_a_malformed_token(monkeypatch) -> None:
    with pytest.raises(SigningError, match="identity token is not usable"):
        KeylessSigner.from_environment(env={"SIGSTORE_ID_TOKEN": "not-a-jwt"})


def test_keyless_stops_at_the_unreachable_sigstore_instance(tmp_path: Path) -> None:
    """A well-formed token gets as far as Fulcio: offline, that fails with a clear error."""
    import time

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": "https://token.actions.githubusercontent.com",
        "aud": "sigstore",
        "sub": "repo:org/model:ref:refs/heads/main",
        "job_workflow_ref": "org/model/.github/workflows/mlci.yml@refs/heads/main",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    token = f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"
    signer = KeylessSigner(token)
    assert signer.identity.issuer == "https://token.actions.githubusercontent.com"
    statement = attest.statement("x", "sha256:" + "ab" * 32, attest.SIGN_PREDICATE, {})
    with pytest.raises(SigningError, match="Sigstore|keyless signing failed"):
        signer.sign_statement(statement)


def test_key_and_keyless_are_exclusive(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["sign", "127.0.0.1:1/x:v1", "--key", "k", "--keyless"], capsys)
    assert code == 2 and "not allowed with" in err
    code, _, err = run_cli(["sign", "127.0.0.1:1/x:v1"], capsys)
    assert code == 2 and "--key FILE or --keyless" in err


def test_verify_file_rejects_a_key_bundle_under_a_keyless_policy(
    cosign_keys, tmp_path: Path
) -> None:
    key, _ = cosign_keys
    target = tmp_path / "f"
    target.write_bytes(b"data")
    bundle = KeySigner.from_file(key, env={"COSIGN_PASSWORD": "correct horse"}).sign_file(target)
    (tmp_path / "f.sigstore.json").write_text(json.dumps(bundle))
    with pytest.raises(VerificationError, match="signed with a key"):
        verify_file(target, tmp_path / "f.sigstore.json", Policy(identity="a", issuer="b"))
