"""Real components for the model-source and promotion tests: an MLflow tracking server with a
SQLite backend, an HTTPS server with a certificate authority of our own, git repositories,
signing keys and small ONNX models. A missing component is a failure, never a skip: run
``scripts/setup-sources`` and install the test extra.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
MLFLOW_START_S = 240  # a cold start migrates the SQLite schema; busy machines are slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- models ---------------------------------------------------------------------------------------


def onnx_model(path: Path, *, scale: float) -> str:
    """A tiny ONNX regressor y = scale * x (one float input ``x``); returns its sha256."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [scale])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["y"])], "scale", [x], [y], initializer=[weight]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- git ------------------------------------------------------------------------------------------


def git(repo: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def init_repo(path: Path) -> Path:
    if shutil.which("git") is None or shutil.which("git-lfs") is None:
        pytest.fail("git and git-lfs are needed: run scripts/setup-sources", pytrace=False)
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "commit.gpgsign", "false")
    git(path, "config", "tag.gpgsign", "false")
    return path


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


# --- signing keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    password: str


def make_key(folder: Path, name: str = "cosign") -> KeyPair:
    from mlci.supply.signing import generate_key_pair

    folder.mkdir(parents=True, exist_ok=True)
    private, public = generate_key_pair(folder / name, "test-password")
    return KeyPair(private, public, "test-password")


# --- results with a gate --------------------------------------------------------------------------


def gated_results(path: Path, model_sha256: str, decision: str = "promote") -> Path:
    """A valid results document whose gate decided ``decision`` on ``model_sha256``."""
    from mlci.results import dumps, parse
    from mlci.results.gate import binding_digest

    gate: dict[str, Any] = {
        "decision": decision,
        "reason": f"every required rule says {decision}",
        "fail_on": "block",
        "model_sha256": model_sha256,
        "baseline_sha256": None,
        "image_digest": None,
        "data_sha256": "1" * 64,
        "config_sha256": None,
        "counts": {"pass": 1, "fail": 0, "inconclusive": 0, "missing": 0},
        "rules": [
            {
                "id": "roc_auc",
                "kind": "metric",
                "required": True,
                "status": "pass",
                "observed": 0.9,
                "threshold": {"min": 0.5},
                "explanation": "0.9 >= 0.5",
            }
        ],
    }
    document = {
        "schema_version": "1.1",
        "mlci_version": "0.1.0",
        "created": "2026-01-01T00:00:00Z",
        "config": {"path": "mlci.yaml", "sha256": "0" * 64},
        "model": {
            "name": "credit",
            "path": "model.onnx",
            "format": "onnx",
            "sha256": model_sha256,
            "size_bytes": 100,
            "task": "regression",
        },
        "baseline": None,
        "data": {
            "path": "eval.csv",
            "sha256": "1" * 64,
            "rows": 100,
            "format": "csv",
            "target": "y",
            "features": ["x"],
        },
        "stages": {"evaluate": {"status": "ran"}, "gate": {"status": "ran"}},
    }
    typed = parse({**document, "gate": {**gate, "digest": "0" * 64}}, "gate")
    assert typed.gate is not None
    gate["digest"] = binding_digest(typed.gate.model_dump(mode="json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(parse({**document, "gate": gate}, str(path))))
    return path


# --- an HTTPS server with our own certificate authority -------------------------------------------


@dataclass
class HttpsServer:
    url: str  # https://127.0.0.1:PORT
    root: Path  # the folder it serves
    ca: Path  # the PEM the client must trust
    requests: list[str]


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlci test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture(scope="session")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    """An HTTPS file server on loopback, with a certificate from a CA the test must trust."""
    folder = tmp_path_factory.mktemp("https")
    root = folder / "www"
    root.mkdir()
    ca, cert, key = _certificates(folder)
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            if self.path.startswith("/redirect-to-http/"):
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:9/" + self.path.split("/", 2)[2])
                self.end_headers()
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield HttpsServer(f"https://127.0.0.1:{server.server_address[1]}", root, ca, seen)
    server.shutdown()
    server.server_close()


# --- an MLflow tracking server --------------------------------------------------------------------


@dataclass
class MlflowServer:
    uri: str
    folder: Path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server`` with a SQLite backend on a free loopback port."""
    # The server is a service the tests talk to, like the registry: it runs from a virtual
    # environment of its own (scripts/setup-sources), so its pins (pyarrow<26) stay out of
    # the environment mlci is tested in, which has the client users install (mlci[mlflow]).
    binary = Path(os.environ.get("MLCI_MLFLOW_SERVER", ROOT / ".venv-mlflow" / "bin" / "mlflow"))
    if not binary.exists():
        pytest.fail(f"no MLflow server at {binary}: run scripts/setup-sources")
    folder = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = folder / "server.log"
    process = subprocess.Popen(
        [
            str(binary),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--default-artifact-root",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + MLFLOW_START_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited: {log.read_text()[-800:]}", pytrace=False)
        try:
            if requests.get(f"{uri}/health", timeout=2).status_code == 200:
                break
        except requests.exceptions.RequestException:
            pass
        if time.monotonic() > deadline:
            process.terminate()
            pytest.fail(f"mlflow server did not start in {MLFLOW_START_S} s", pytrace=False)
        time.sleep(0.25)
    yield MlflowServer(uri, folder)
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def register_onnx(name: str, model: Path, *, bundle: Path | None = None) -> str:
    """Log ``model`` with MLflow's ONNX flavour and register it as a new version of ``name``;
    returns the version. A signature bundle is logged beside the model file."""
    import mlflow
    import onnx

    mlflow.set_experiment("mlci-tests")
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onnx.load(str(model)), name="model", pip_requirements=["onnx"])
    if bundle is not None:
        staged = bundle.parent / "bundle-staging"
        staged.mkdir(exist_ok=True)
        shutil.copy(bundle, staged / "model.onnx.sigstore.json")
        mlflow.tracking.MlflowClient().log_model_artifact(
            info.model_id, str(staged / "model.onnx.sigstore.json")
        )
    version = mlflow.register_model(info.model_uri, name)
    return str(version.version)


def json_file(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path
