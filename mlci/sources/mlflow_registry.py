"""The MLflow model registry through MLflow's own client (``pip install 'mlci[mlflow]'``).

The tracking server comes from MLflow's settings (``MLFLOW_TRACKING_URI``, and its
credentials variables). A version's artifacts are downloaded as MLflow stores them; the model
file is the one its ``MLmodel`` names (the ``onnx`` flavour's ``data``, the ``sklearn``
flavour's ``pickled_model``), or the single model file of a folder without ``MLmodel``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from mlci.errors import MlciError, ModelError
from mlci.models.formats import MODEL_SUFFIXES

# The sha256 of the model file, set on a version when mlci promotes it; a later fetch of the
# version must find the same bytes.
TAG_SHA256 = "mlci.model_sha256"
T = TypeVar("T")


class MlflowError(MlciError):
    """The tracking server refused or failed a request."""

    exit_code = 1


def client() -> Any:
    """An MlflowClient for the configured tracking server."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ModelError(
            "models:/ sources need MLflow's client", tip="pip install 'mlci[mlflow]'"
        ) from None
    return MlflowClient()


# A server on SQLite answers a write that meets another one with "database is locked": the
# transaction did not happen, so the call is tried again (a few times, backing off).
LOCKED_RETRIES = 6


def call(what: str, action: Callable[[], T], *, missing: str | None = None) -> T:
    """Run a client call; MLflow's exceptions become one-line mlci errors."""
    import time

    for attempt in range(LOCKED_RETRIES + 1):
        outcome = _attempt(action)
        if not isinstance(outcome, Exception):
            return outcome
        if "database is locked" in str(outcome) and attempt < LOCKED_RETRIES:
            time.sleep(0.1 * 2**attempt)
            continue
        code = str(getattr(outcome, "error_code", ""))
        text = str(getattr(outcome, "message", outcome)).strip().splitlines()[0][:300]
        if missing and code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise ModelError(f"{what}: {missing} ({text})") from None
        raise MlflowError(f"{what}: the MLflow server refused: {text}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _attempt(action: Callable[[], T]) -> T | Exception:
    from mlflow.exceptions import MlflowException

    try:
        return action()
    except MlflowException as exc:
        return exc


def version_for(mlflow: Any, name: str, version: str | None, alias: str | None) -> Any:
    """The ModelVersion a version number or alias names."""
    if alias is not None:
        return call(
            f"models:/{name}@{alias}",
            lambda: mlflow.get_model_version_by_alias(name, alias),
            missing=f"no alias '{alias}' on registered model '{name}'",
        )
    assert version is not None
    return call(
        f"models:/{name}/{version}",
        lambda: mlflow.get_model_version(name, version),
        missing=f"no version {version} of registered model '{name}'",
    )


def find_model_file(folder: Path, where: str) -> Path:
    """The model file among a version's downloaded artifacts."""
    mlmodel = folder / "MLmodel"
    if mlmodel.is_file():
        import yaml

        try:
            flavors = (yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}).get("flavors")
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            flavors = None
        for flavor, key in (("onnx", "data"), ("sklearn", "pickled_model")):
            entry = (flavors or {}).get(flavor) if isinstance(flavors, dict) else None
            if isinstance(entry, dict) and isinstance(entry.get(key), str):
                found = (folder / str(entry[key])).resolve()
                if folder.resolve() in found.parents and found.is_file():
                    return found
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES
    )
    if len(files) != 1:
        listed = ", ".join(p.relative_to(folder).as_posix() for p in files[:5]) or "none"
        raise ModelError(
            f"{where}: cannot tell which file is the model (candidates: {listed})",
            tip="log the model with an MLflow flavour (mlflow.onnx, mlflow.sklearn) whose "
            "MLmodel names its file",
        )
    return files[0]


@contextmanager
def downloaded(name: str, version: str) -> Iterator[Path]:
    """A version's artifacts in a temporary folder."""
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory(prefix="mlci-mlflow-") as tmp:
        path = call(
            f"models:/{name}/{version}",
            lambda: download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp),
            missing="its artifacts are missing",
        )
        yield Path(path)
