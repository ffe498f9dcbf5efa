"""The one table of model formats: what the configuration accepts, how each is loaded, which
install extra it needs, and which files count as models in an image's SBOM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ModelFormat = Literal["onnx", "skops", "pickle", "entrypoint"]


@dataclass(frozen=True)
class Format:
    name: ModelFormat
    suffixes: tuple[str, ...]  # what "auto" recognises; entry points have no file
    extra: str | None  # the mlci install extra its runtime needs
    servable: bool  # can go into a serving image as it is
    description: str


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("onnx", (".onnx",), None, True, "ONNX, run with ONNX Runtime"),
        Format("skops", (".skops",), "sklearn", False, "scikit-learn saved with skops"),
        Format(
            "pickle",
            (".pkl", ".pickle", ".joblib"),
            "sklearn",
            False,
            "pickle or joblib (only with trust_pickle)",
        ),
        Format("entrypoint", (), None, False, "a Python function returning a model"),
    )
}

# Accepted in mlci.yaml: "auto" picks by suffix; "joblib" is an alias of "pickle".
CONFIG_FORMATS = ("auto", *FORMATS, "joblib")
ConfigFormat = Literal["auto", "onnx", "skops", "pickle", "entrypoint", "joblib"]
ALIASES = {"joblib": "pickle"}

SUFFIX_FORMATS: dict[str, ModelFormat] = {s: f.name for f in FORMATS.values() for s in f.suffixes}
# Model files mlci cannot load but an SBOM should still list as models.
FOREIGN_MODEL_SUFFIXES = (".safetensors", ".pt", ".pth", ".gguf")
MODEL_SUFFIXES = (*SUFFIX_FORMATS, *FOREIGN_MODEL_SUFFIXES)


def suffixes_text() -> str:
    """``.onnx (onnx), .skops (skops), ...`` for error messages."""
    return ", ".join(f"{'/'.join(f.suffixes)} ({f.name})" for f in FORMATS.values() if f.suffixes)


def format_of(fmt: str, suffix: str) -> ModelFormat | None:
    """The format a configured ``fmt`` ("auto" or a name) and a file suffix mean."""
    fmt = ALIASES.get(fmt, fmt)
    if fmt == "auto":
        return SUFFIX_FORMATS.get(suffix.lower())
    return FORMATS[fmt].name if fmt in FORMATS else None
