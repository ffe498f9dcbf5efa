"""A real OCI registry (CNCF distribution, Debian's ``docker-registry``) for the tests.

Three variants, each on a free loopback port with its own storage folder:
``registry`` (anonymous), ``basic_registry`` (htpasswd basic authentication) and
``token_registry`` (the registry's token authentication, with a small token service of our
own that implements the ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` flow and
signs ES256 JWTs with a certificate the registry trusts). A missing binary is a failure, never
a skip: run ``scripts/setup-registry`` first.

Also builds small OCI image layouts with ``mlci.supply.oci``: a Debian-like root with a dpkg
status file, Python packages' dist-info, the mlci serving runtime and a model file.

Test modules load it with ``pytest_plugins = ["services_registry"]`` after importing its helpers,
so it opts out of assertion rewriting (it has no asserts): PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

USER, PASSWORD = "mlci", "s3cret-pass"
SERVICE, ISSUER = "mlci-test-registry", "mlci-test-token-issuer"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run scripts/setup-registry", pytrace=False)
    return found


@dataclass
class Registry:
    """A running registry: its host:port and the folder it stores into."""

    host: str
    storage: Path
    process: subprocess.Popen[bytes]
    log: Path

    def ref(self, repository: str, tag: str | None = None) -> str:
        return f"{self.host}/{repository}" + (f":{tag}" if tag else "")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_registry(folder: Path, auth: dict[str, Any] | None = None) -> Registry:
    binary = _binary("docker-registry")
    port = _free_port()
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if auth:
        config["auth"] = auth
    config_path = folder / "config.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    log = folder / "registry.log"
    process = subprocess.Popen(
        [binary, "serve", str(config_path)], stdout=open(log, "wb"), stderr=subprocess.STDOUT
    )
    registry = Registry(f"127.0.0.1:{port}", storage, process, log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited: {log.read_text()[-500:]}", pytrace=False)
        try:
            answer = requests.get(f"http://{registry.host}/v2/", timeout=1)
            if answer.status_code in (200, 401):
                return registry
        except requests.exceptions.ConnectionError:
            pass
        time.sleep(0.05)
    registry.stop()
    pytest.fail("docker-registry did not start within 20 s", pytrace=False)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An anonymous registry shared by the session (tests use their own repositories)."""
    running = start_registry(tmp_path_factory.mktemp("registry"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry behind htpasswd basic authentication (user ``mlci``)."""
    folder = tmp_path_factory.mktemp("basic-registry")
    htpasswd = folder / "htpasswd"
    done = subprocess.run(
        [_binary("htpasswd"), "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
    )
    htpasswd.write_text(done.stdout)
    running = start_registry(folder, {"htpasswd": {"realm": "mlci-test", "path": str(htpasswd)}})
    yield running
    running.stop()


# --- a token service for the registry's bearer authentication ----------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """Issues registry JWTs (ES256, x5c header) to ``mlci``/``PASSWORD`` and to anonymous
    callers for pull only; refuses wrong passwords with 401."""

    def __init__(self, folder: Path, host: str = "127.0.0.1") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlci test token signer")])
        now = datetime.now(timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = folder / "token-signer.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[dict[str, Any]] = []
        self.received: list[str] = []  # every Authorization header, exactly as sent
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                service.handle(self)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlparse(handler.path).query)
        header = handler.headers.get("Authorization", "")
        self.received.append(header)
        user = None
        if header.startswith("Basic "):
            name, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            if (name, secret) != (USER, PASSWORD):
                handler.send_response(401)
                handler.send_header("Content-Type", "application/json")
                handler.end_headers()
                handler.wfile.write(b'{"details":"invalid credentials"}')
                return
            user = name
        scopes = query.get("scope", [])
        self.requests.append({"user": user, "scope": scopes, "service": query.get("service")})
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            repo, _, actions = rest.rpartition(":")
            allowed = [a for a in actions.split(",") if a == "pull" or (a == "push" and user)]
            access.append({"type": kind, "name": repo, "actions": allowed})
        body = json.dumps({"token": self.token(user or "", access), "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def token(self, subject: str, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 60,
            "iat": now,
            "jti": _b64url(now.to_bytes(8, "big") + subject.encode()),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        r, s = decode_dss_signature(
            self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Registry, TokenService]]:
    """A registry behind bearer-token authentication, and the token service it trusts."""
    yield from _behind_tokens(tmp_path_factory.mktemp("token-registry"), "127.0.0.1")


@pytest.fixture(scope="session")
def foreign_realm_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Registry, TokenService]]:
    """A registry whose 401 names a token service on another loopback host (127.0.0.2): what a
    hostile or compromised registry does to collect the credentials clients send there."""
    yield from _behind_tokens(tmp_path_factory.mktemp("foreign-realm-registry"), "127.0.0.2")


def _behind_tokens(folder: Path, token_host: str) -> Iterator[tuple[Registry, TokenService]]:
    tokens = TokenService(folder, host=token_host)
    running = start_registry(
        folder,
        {
            "token": {
                "realm": tokens.url,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(tokens.cert_path),
            }
        },
    )
    yield running, tokens
    running.stop()
    tokens.stop()


# --- image layouts ------------------------------------------------------------------------------

DPKG_STATUS = """\
Package: base-files
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files

Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12987
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: python3-minimal
Status: install ok installed
Priority: optional
Section: python
Installed-Size: 146
Maintainer: Matthias Klose <doko@debian.org>
Architecture: amd64
Source: python3-defaults (3.11.2-1)
Version: 3.11.2-1+b1
Description: minimal subset of the Python language (default python3 version)

Package: removed-thing
Status: deinstall ok config-files
Version: 1.0
Architecture: amd64
Description: no longer installed
"""

SITE = "usr/local/lib/python3.11/site-packages"


def dist_info(name: str, version: str, license_text: str = "MIT") -> dict[str, bytes]:
    folder = f"{SITE}/{name.replace('-', '_')}-{version}.dist-info"
    metadata = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: {license_text}\n"
        f"Summary: the {name} package\n\n"
    )
    return {f"{folder}/METADATA": metadata.encode(), f"{folder}/RECORD": b""}


@dataclass
class ImageLayout:
    path: Path
    digest: str
    model_sha256: str


def make_layout(
    path: Path, *, model: bytes = b"model-bytes-v1", extra: dict[str, bytes] | None = None
) -> ImageLayout:
    """A two-layer OCI layout: a base (dpkg status) and an app layer (Python, mlci, model)."""
    import hashlib

    from mlci.supply import layout, oci

    work = path.parent / f".{path.name}-blobs"
    base = oci.LayerBuilder(mtime=0)
    base.add_bytes("var/lib/dpkg/status", DPKG_STATUS.encode())
    base.add_bytes(
        "etc/os-release",
        b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    )
    app = oci.LayerBuilder(mtime=0)
    files = {
        **dist_info("numpy", "2.4.6", "BSD-3-Clause"),
        **dist_info("onnxruntime", "1.31.1"),
        **dist_info("mlci", "0.1.0", "Apache-2.0"),
        "srv/model/model.onnx": model,
        **(extra or {}),
    }
    for name, data in files.items():
        app.add_bytes(name, data)
    layers = [base.build(work, created_by="base"), app.build(work, created_by="mlci: app")]
    config_data = oci.image_config(
        {},
        layers,
        created=0,
        entrypoint=["python3", "-m", "mlci.serve"],
        labels={"org.opencontainers.image.title": "iris-classifier"},
    )
    config = oci.json_blob(config_data, oci.MEDIA_CONFIG)
    manifest = oci.json_blob(oci.manifest_for(config, layers), oci.MEDIA_MANIFEST)
    layout.write_layout(path, manifest, config, layers, ref_name="latest")
    shutil.rmtree(work, ignore_errors=True)
    return ImageLayout(path, manifest.descriptor.digest, hashlib.sha256(model).hexdigest())


# --- the command line and results documents -----------------------------------------------------


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``mlci`` in-process; return (code, stdout, stderr)."""
    from mlci.commands import main

    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def results_document(model_sha256: str, *, gate: dict[str, Any] | None = None) -> dict[str, Any]:
    """A minimal valid results document for a model with the given sha256."""
    document: dict[str, Any] = {
        "schema_version": "1.0",
        "mlci_version": "0.1.0",
        "created": "2026-01-01T00:00:00Z",
        "config": {"path": "mlci.yaml", "sha256": "0" * 64},
        "model": {
            "name": "iris",
            "path": "model.onnx",
            "format": "onnx",
            "sha256": model_sha256,
            "size_bytes": 14,
            "task": "binary",
        },
        "baseline": None,
        "data": {
            "path": "eval.csv",
            "sha256": "1" * 64,
            "rows": 100,
            "format": "csv",
            "target": "y",
            "features": ["a", "b"],
        },
        "stages": {"evaluate": {"status": "ran"}},
    }
    if gate:
        document["gate"] = gate
    return document


def write_results(path: Path, document: dict[str, Any]) -> Path:
    from documents import dump

    path.write_text(dump(document))
    return path
