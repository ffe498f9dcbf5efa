from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from project import Project, build_project  # noqa: E402

# Real services the tests start for themselves: an OCI registry (and its auth variants), an
# MLflow tracking server and an HTTPS server.
pytest_plugins = ["services_registry", "services_sources"]


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """One generated project per test session (training takes a moment)."""
    return build_project(tmp_path_factory.mktemp("project"))


@pytest.fixture
def project(built_project: Project, tmp_path: Path) -> Project:
    """A private copy that a test may break as it likes."""
    return built_project.copy(tmp_path / "project")


@pytest.fixture(scope="session")
def credit_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled credit example with its data and models generated (once per session)."""
    import shutil
    import subprocess

    source = Path(__file__).resolve().parent.parent / "examples" / "credit"
    root = tmp_path_factory.mktemp("credit-example") / "credit"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("data", "models", "mlci-out"))
    subprocess.run([sys.executable, str(root / "train.py")], check=True, capture_output=True)
    return root
