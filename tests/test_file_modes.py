"""Files mlci writes follow the user's umask, like any file the user creates.

``tempfile.mkstemp`` and ``mkdtemp`` make 0600 files and 0700 folders whatever the umask, and
whatever is renamed into place from them keeps that mode; these tests write every kind of
output mlci produces outside ``mlci check`` (which test_bad_inputs covers) under several umasks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from services_registry import make_layout

from mlci.files import temp_dir, temp_file, write_atomic

UMASKS = [0o022, 0o077, 0o027, 0o002]


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def modes(root: Path) -> dict[str, int]:
    found = {str(root): root.stat().st_mode & 0o777} if root.is_dir() else {}
    paths = root.rglob("*") if root.is_dir() else [root]
    found.update({str(p): p.stat().st_mode & 0o777 for p in paths})
    return found


def expect(path: Path, mask: int) -> int:
    return (0o777 if path.is_dir() else 0o666) & ~mask


@pytest.mark.parametrize("mask", UMASKS)
def test_atomic_writes_and_temporary_files(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        write_atomic(tmp_path / "a" / "results.json", "{}\n")
        write_atomic(tmp_path / "a" / "results.json", "{}\n")  # replacing keeps the rule
        fd, name = temp_file(tmp_path)
        os.close(fd)
        folder = temp_dir(tmp_path)
    for path in (tmp_path / "a" / "results.json", Path(name), Path(folder)):
        assert path.stat().st_mode & 0o777 == expect(path, mask), path


@pytest.mark.parametrize("mask", UMASKS)
def test_image_layouts_and_archives(tmp_path: Path, mask: int) -> None:
    from mlci.supply import layout as layouts
    from mlci.supply import oci

    with umask(mask):
        layout = make_layout(tmp_path / "layout")
        _, _, config, layers = layouts.read_layout(layout.path)
        blob = oci.json_blob(config, oci.MEDIA_CONFIG)
        archive = layouts.write_docker_archive(tmp_path / "image.tar", blob, layers)
    found = modes(layout.path)
    assert len(found) >= 6
    for path, mode in found.items():
        assert mode == expect(Path(path), mask), path
    assert archive.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_converted_models(tmp_path: Path, mask: int) -> None:
    from sklearn.linear_model import LogisticRegression

    from mlci.models.convert import convert_to_onnx
    from mlci.models.sklearn import SklearnModel

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    model = SklearnModel(LogisticRegression().fit(x, x[:, 0] > 0), name="m")
    with umask(mask):
        result = convert_to_onnx(model, {"a": x[:, 0], "b": x[:, 1]}, tmp_path / "m.onnx")
    assert result.status == "converted", result.message
    assert (tmp_path / "m.onnx").stat().st_mode & 0o777 == 0o666 & ~mask
