"""Which optional parts of mlci (pip extras) a configuration needs.

The setup action installs the core first, then asks ``mlci extras`` what else ``mlci.yaml``
needs, so a ``.skops`` model or an image to sign works without the user listing extras. It
reads the YAML only (PyYAML is part of the core) and imports nothing heavy; it does not
validate the file, which ``mlci check`` does with proper messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlci.errors import ConfigError, UsageError
from mlci.models.formats import FORMATS, format_of

# Every extra of the package, in the order pip is given them (a test checks pyproject.toml).
EXTRAS = ("sklearn", "card", "supply", "image", "mlflow", "pytest", "dask")


def _sources(model: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    yield model
    baseline = model.get("baseline")
    if isinstance(baseline, Mapping):
        yield baseline


def _source_extras(source: Mapping[str, Any]) -> set[str]:
    """What loading one model or baseline needs: its runtime, its source, its checks."""
    needed: set[str] = set()
    path = source.get("path") or source.get("source")
    suffix = Path(str(path)).suffix if path else ""
    fmt = format_of(str(source.get("format") or "auto").lower(), suffix)
    if fmt is not None and FORMATS[fmt].extra:
        needed.add(str(FORMATS[fmt].extra))
    if str(source.get("source") or "").startswith("models:/"):
        needed.add("mlflow")
    if source.get("verify"):
        needed.add("supply")  # signature verification before loading
    return needed


def extras_for(config: Mapping[str, Any]) -> list[str]:
    """The extras a parsed mlci.yaml needs, in :data:`EXTRAS` order."""
    needed: set[str] = set()
    models = config.get("models")
    for model in models if isinstance(models, list) else []:
        if not isinstance(model, Mapping):
            continue
        if model.get("convert") is True:
            needed.add("sklearn")
        for source in _sources(model):
            needed |= _source_extras(source)
    tests = config.get("tests")
    if isinstance(tests, Mapping) and tests.get("pytest"):
        needed.add("pytest")  # the user's pytest files run in mlci's environment
    stages = config.get("stages")
    stages = [str(s) for s in stages] if isinstance(stages, list) else []
    if "card" in config or "card" in stages:
        needed.add("card")  # the CycloneDX model card
    image = config.get("image")
    if isinstance(image, Mapping):
        sign = image.get("sign")
        method = sign.get("method") if isinstance(sign, Mapping) else sign
        if image.get("sbom", True) is not False or method not in (None, "none", False):
            needed.add("supply")
    if {"sbom", "sign"} & set(stages):
        needed.add("supply")
    engine = config.get("engine")
    if isinstance(engine, Mapping) and engine.get("kind") == "dask":
        needed.add("dask")
    return [name for name in EXTRAS if name in needed]


def needed_extras(config_path: Path) -> list[str]:
    """The extras ``config_path`` (a file, or a folder holding mlci.yaml) needs."""
    import yaml

    from mlci.config import find_config

    path = find_config(config_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return extras_for(data)


def parse_extras(text: str) -> list[str]:
    """Extras named by a user (commas or spaces), checked against :data:`EXTRAS`."""
    from mlci.suggest import did_you_mean

    names = [n for n in text.replace(",", " ").split() if n]
    for name in names:
        if name not in EXTRAS:
            raise UsageError(
                f"unknown extra '{name}'{did_you_mean(name, EXTRAS)}",
                tip=f"choose among {', '.join(EXTRAS)}, or 'auto'",
            )
    return [name for name in EXTRAS if name in names]
