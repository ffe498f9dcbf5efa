"""Open any supported model file behind the one Model interface.

Runtimes are imported only when a model of their format is loaded, so importing this module
costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlci.errors import ModelError
from mlci.models.formats import CONFIG_FORMATS, format_of, suffixes_text
from mlci.models.interface import Model


def load_model(
    path: Path | None,
    *,
    name: str,
    format: str = "auto",
    trust_pickle: bool = False,
    trusted_types: Sequence[str] = (),
    entrypoint: str | None = None,
    base_dir: Path | None = None,
) -> Model:
    """Load the model at ``path`` (or built by ``entrypoint``) as a :class:`Model`.

    ``format`` "auto" picks by suffix. skops files load only when every type skops does not
    trust by default is listed in ``trusted_types``; pickle/joblib files only with
    ``trust_pickle``. ``base_dir`` resolves a relative ``.py`` entry point; ``path`` is used
    as given.
    """
    fmt = format.strip().lower()
    if fmt not in CONFIG_FORMATS:
        raise ModelError(
            f"{name}: unknown model format {format!r}",
            tip=f"use one of {', '.join(CONFIG_FORMATS)}",
        )
    if entrypoint is not None or fmt == "entrypoint":
        if not entrypoint:
            raise ModelError(
                f"{name}: format 'entrypoint' needs an entrypoint such as my_package.model:build"
            )
        from mlci.models.entrypoint import load_entrypoint

        return load_entrypoint(entrypoint, name=name, base_dir=base_dir)

    if path is None:
        raise ModelError(f"{name}: no model path given", tip="set the model's path or entrypoint")
    path = Path(path)
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, not a model file")
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")

    chosen = format_of(fmt, path.suffix)
    if chosen is None:
        suffix = path.suffix.lower()
        raise ModelError(
            f"{path}: cannot tell the model format from the suffix {suffix or '(none)'!r}; "
            f"supported: {suffixes_text()}",
            tip="rename the file or set the model's format explicitly",
        )
    fmt = chosen

    if fmt == "onnx":
        from mlci.models.onnx import OnnxModel

        return OnnxModel(path, name=name)
    if fmt == "skops":
        from mlci.models.sklearn import load_skops

        return load_skops(path, name=name, trusted_types=trusted_types)
    from mlci.models.sklearn import load_pickle

    return load_pickle(path, name=name, trust_pickle=trust_pickle)
