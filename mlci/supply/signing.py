"""Signers: keyless with Sigstore, or a long-lived ECDSA P-256 key (cosign key files or PEM).

Every signer turns an in-toto statement into a Sigstore bundle (v0.3) holding a DSSE
envelope, and a file into a bundle holding a message signature. Keyless signing asks Fulcio
for a short-lived certificate bound to an OIDC identity (GitHub Actions' ambient credential
when the job has ``permissions: id-token: write``) and logs the signature in Rekor. Key
signing reads cosign's ``ENCRYPTED SIGSTORE PRIVATE KEY`` files (scrypt + NaCl secretbox around
a PKCS#8 key, the password from an environment variable) or plain PEM private keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import InputError, MlciError, UsageError
from mlci.supply import attest

if TYPE_CHECKING:
    from mlci.supply.verify import Policy

COSIGN_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
DEFAULT_PASSWORD_ENV = "COSIGN_PASSWORD"
ENV_IDENTITY_TOKEN = "SIGSTORE_ID_TOKEN"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

# go-securesystemslib's "encrypted" defaults, which cosign uses
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1


class SigningError(MlciError):
    """Signing could not be done (key, password, identity or Sigstore service)."""

    exit_code = 1


class KeyFileError(InputError):
    """A key file that cannot be read, decrypted or used."""


@dataclass(frozen=True)
class SignerIdentity:
    """Who signed: a certificate identity and issuer (keyless) or a key fingerprint."""

    identity: str
    issuer: str | None = None
    key_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"identity": self.identity, "issuer": self.issuer, "key_id": self.key_id}


class Signer(ABC):
    """Sign in-toto statements and files into Sigstore bundles."""

    @abstractmethod
    def sign_statement(self, statement: dict[str, Any]) -> dict[str, Any]:
        """A bundle with a DSSE envelope around ``statement``."""

    @abstractmethod
    def sign_file(self, path: Path) -> dict[str, Any]:
        """A bundle with a message signature over the file's sha256."""

    @property
    @abstractmethod
    def identity(self) -> SignerIdentity:
        """Who this signer signs as."""

    @abstractmethod
    def policy(self, public_key_file: Path) -> Policy:
        """The verification policy this signer's bundles satisfy (a key signer writes its
        public key to ``public_key_file`` for it)."""


# --- keys ---------------------------------------------------------------------------------------


def key_id(public_key: Any) -> str:
    """sha256 of the DER SubjectPublicKeyInfo, in hex: how mlci names a key."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _pem_blocks(text: str) -> tuple[str, bytes]:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines or not lines[0].startswith("-----BEGIN ") or not lines[0].endswith("-----"):
        raise KeyFileError("not a PEM file")
    kind = lines[0][len("-----BEGIN ") : -len("-----")]
    end = f"-----END {kind}-----"
    if end not in lines:
        raise KeyFileError(f"the PEM block '{kind}' has no end line")
    body = "".join(lines[1 : lines.index(end)])
    try:
        return kind, base64.b64decode(body, validate=True)
    except ValueError:
        raise KeyFileError(f"the PEM block '{kind}' is not base64") from None


def decrypt_cosign_key(data: bytes, password: bytes) -> bytes:
    """The PKCS#8 DER inside a cosign encrypted key (scrypt KDF + NaCl secretbox)."""
    import nacl.exceptions
    import nacl.secret

    try:
        envelope = json.loads(data)
        kdf, cipher = envelope["kdf"], envelope["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
            raise KeyFileError(f"unsupported key encryption {kdf['name']}/{cipher['name']}")
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(cipher["nonce"])
        ciphertext = base64.b64decode(envelope["ciphertext"])
    except KeyFileError:
        raise
    except (ValueError, KeyError, TypeError):
        raise KeyFileError("the encrypted key's JSON envelope is malformed") from None
    if n > 1 << 20 or r * p > 64:
        raise KeyFileError(f"the key's scrypt parameters (N={n}, r={r}, p={p}) are out of range")
    secret = hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, maxmem=256 * r * n + (1 << 20), dklen=32
    )
    try:
        return bytes(nacl.secret.SecretBox(secret).decrypt(ciphertext, nonce))
    except (nacl.exceptions.CryptoError, ValueError):
        raise KeyFileError(
            "wrong password for the key", tip="check the password environment variable"
        ) from None


def encrypt_cosign_key(der: bytes, password: bytes) -> bytes:
    """Encrypt PKCS#8 DER the way cosign does; returns the JSON envelope."""
    import nacl.secret

    salt = secrets.token_bytes(32)
    nonce = secrets.token_bytes(24)
    secret = hashlib.scrypt(
        password, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 << 20, dklen=32
    )
    ciphertext = nacl.secret.SecretBox(secret).encrypt(der, nonce).ciphertext
    envelope = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }
    return json.dumps(envelope).encode()


def _pem(kind: str, der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"


def generate_key_pair(prefix: Path, password: str) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (cosign's encrypted format) and ``PREFIX.pub`` (PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    key_path.write_text(
        _pem(COSIGN_PEM_TYPES[0], encrypt_cosign_key(der, password.encode())), encoding="utf-8"
    )
    os.chmod(key_path, 0o600)
    pub_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_path, pub_path


def load_private_key(path: Path, password: str | None) -> Any:
    """An ECDSA P-256 private key from a cosign key file or a PEM (PKCS#8 or SEC1) file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: not a readable key file ({exc.__class__.__name__})") from None
    try:
        kind, body = _pem_blocks(text)
        if kind in COSIGN_PEM_TYPES:
            if password is None:
                raise KeyFileError(
                    "the key is encrypted and no password was given",
                    tip=f"set {DEFAULT_PASSWORD_ENV} (or name another variable with --password-env)",
                )
            der = decrypt_cosign_key(body, password.encode())
            key = serialization.load_der_private_key(der, None)
        elif kind in ("PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"):
            secret = password.encode() if password and kind == "ENCRYPTED PRIVATE KEY" else None
            key = serialization.load_pem_private_key(text.encode(), secret)
        elif kind == "PUBLIC KEY":
            raise KeyFileError("this is a public key; signing needs the private key")
        else:
            raise KeyFileError(f"unsupported key type '{kind}'")
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc.message}", tip=exc.tip) from None
    except (ValueError, TypeError) as exc:
        reason = (
            "wrong password"
            if "password" in str(exc).lower() or "decrypt" in str(exc).lower()
            else "malformed key"
        )
        raise KeyFileError(f"{path}: {reason} ({str(exc).splitlines()[0][:80]})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise KeyFileError(f"{path}: only ECDSA P-256 keys are supported (as cosign generates)")
    return key


def load_public_key(path: Path) -> Any:
    """A PEM public key (``cosign.pub``), or the public key of a PEM certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such public key file") from None
    key: Any
    try:
        if b"CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError:
        raise KeyFileError(f"{path}: not a PEM public key or certificate") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise KeyFileError(f"{path}: only ECDSA public keys are supported")
    return key


class KeySigner(Signer):
    """Sign with a long-lived ECDSA P-256 key."""

    def __init__(self, private_key: Any) -> None:
        self._key = private_key
        self._id = key_id(private_key.public_key())

    @classmethod
    def from_file(
        cls,
        path: Path,
        *,
        password_env: str = DEFAULT_PASSWORD_ENV,
        env: dict[str, str] | None = None,
    ) -> KeySigner:
        environ = os.environ if env is None else env
        return cls(load_private_key(path, environ.get(password_env)))

    @property
    def identity(self) -> SignerIdentity:
        return SignerIdentity(identity=f"key:sha256:{self._id}", issuer=None, key_id=self._id)

    def policy(self, public_key_file: Path) -> Policy:
        from cryptography.hazmat.primitives import serialization

        from mlci.files import write_atomic
        from mlci.supply.verify import Policy

        pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        write_atomic(public_key_file, pem)
        return Policy(public_key=public_key_file)

    def _sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return bytes(self._key.sign(data, ec.ECDSA(hashes.SHA256())))

    def sign_statement(self, statement: dict[str, Any]) -> dict[str, Any]:
        payload = attest.statement_bytes(statement)
        signature = self._sign(attest.pae(attest.IN_TOTO_PAYLOAD_TYPE, payload))
        return attest.key_bundle(payload=payload, signature=signature, key_hint=self._id)

    def sign_file(self, path: Path) -> dict[str, Any]:
        from mlci.hashing import sha256_file

        try:
            data = path.read_bytes()
        except OSError:
            raise InputError(f"{path}: cannot read the file to sign") from None
        return attest.key_message_bundle(
            digest_hex=sha256_file(path), signature=self._sign(data), key_hint=self._id
        )


class KeylessSigner(Signer):
    """Sign with Sigstore's public-good instance (Fulcio certificate + Rekor entry)."""

    def __init__(self, token: str, *, staging: bool = False) -> None:
        from sigstore.oidc import IdentityToken

        try:
            self._token = IdentityToken(token)
        except Exception as exc:  # sigstore raises IdentityError and friends
            raise SigningError(f"the OIDC identity token is not usable ({exc})") from None
        self._staging = staging
        self._context: Any = None

    @classmethod
    def from_environment(
        cls, *, token: str | None = None, staging: bool = False, env: dict[str, str] | None = None
    ) -> KeylessSigner:
        """Use an explicit token, ``SIGSTORE_ID_TOKEN``, or the ambient CI credential."""
        environ = os.environ if env is None else env
        token = token or environ.get(ENV_IDENTITY_TOKEN)
        if not token:
            from sigstore.oidc import detect_credential

            try:
                token = detect_credential()
            except Exception as exc:
                raise SigningError(f"could not get the ambient OIDC credential ({exc})") from None
        if not token:
            raise SigningError(
                "keyless signing needs an OIDC identity token and none was found",
                tip="in GitHub Actions grant the job 'permissions: id-token: write'; elsewhere "
                f"set {ENV_IDENTITY_TOKEN} or sign with --key",
            )
        return cls(token, staging=staging)

    @property
    def identity(self) -> SignerIdentity:
        """The identity Fulcio will certify: for GitHub Actions, the workflow's URL."""
        issuer = str(self._token.federated_issuer)
        identity = str(self._token.identity)
        try:
            claims = json.loads(base64.urlsafe_b64decode(str(self._token).split(".")[1] + "=="))
        except (ValueError, IndexError):
            claims = {}
        if issuer == GITHUB_ISSUER and claims.get("job_workflow_ref"):
            identity = f"https://github.com/{claims['job_workflow_ref']}"
        return SignerIdentity(identity=identity, issuer=issuer)

    def policy(self, public_key_file: Path) -> Policy:
        from mlci.supply.verify import Policy

        identity = self.identity
        return Policy(identity=identity.identity, issuer=identity.issuer)

    def _signing_context(self) -> Any:
        if self._context is None:
            from sigstore.models import ClientTrustConfig
            from sigstore.sign import SigningContext

            try:
                config = (
                    ClientTrustConfig.staging() if self._staging else ClientTrustConfig.production()
                )
                self._context = SigningContext.from_trust_config(config)
            except Exception as exc:
                raise SigningError(
                    f"cannot reach the Sigstore instance to sign ({exc.__class__.__name__})",
                    tip="keyless signing needs network access to Fulcio and Rekor; sign with "
                    "--key otherwise",
                ) from None
        return self._context

    def _with_signer(self, action: Any) -> dict[str, Any]:
        try:
            with self._signing_context().signer(self._token) as signer:
                bundle = action(signer)
        except SigningError:
            raise
        except Exception as exc:
            raise SigningError(
                f"keyless signing failed ({exc.__class__.__name__}: {exc})"
            ) from None
        return dict(json.loads(bundle.to_json()))

    def sign_statement(self, statement: dict[str, Any]) -> dict[str, Any]:
        from sigstore import dsse

        contents = dsse.Statement(attest.statement_bytes(statement))
        return self._with_signer(lambda signer: signer.sign_dsse(contents))

    def sign_file(self, path: Path) -> dict[str, Any]:
        data = path.read_bytes()
        return self._with_signer(lambda signer: signer.sign_artifact(data))


def make_signer(
    *,
    key: Path | None,
    keyless: bool,
    password_env: str = DEFAULT_PASSWORD_ENV,
    identity_token: str | None = None,
    staging: bool = False,
) -> Signer:
    """The signer the command line asked for."""
    if key and keyless:
        raise UsageError("choose either --key or --keyless, not both")
    if key:
        return KeySigner.from_file(key, password_env=password_env)
    return KeylessSigner.from_environment(token=identity_token, staging=staging)
