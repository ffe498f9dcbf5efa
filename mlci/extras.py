"""Which optional parts of mlci (pip extras) a configuration needs.

The setup action installs the core first, then asks this module what else ``mlci.yaml`` needs,
so a ``.skops`` model or an image to sign works without the user listing extras. It reads the
YAML only (PyYAML is part of the core) and imports nothing heavy; it does not validate the file,
which ``mlci check`` does with proper messages.

    python -m mlci.extras --config mlci.yaml      # prints e.g. "sklearn,supply"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlci.errors import ConfigError, MlciError, UsageError

# Every extra of the package, in the order pip is given them (pyproject.toml has the same).
EXTRAS = ("sklearn", "card", "supply", "image", "pytest")
SKLEARN_SUFFIXES = (".skops", ".pkl", ".pickle", ".joblib")
SKLEARN_FORMATS = ("skops", "pickle")
CONFIG_NAMES = ("mlci.yaml", "mlci.yml")


def _sources(model: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    yield model
    baseline = model.get("baseline")
    if isinstance(baseline, Mapping):
        yield baseline


def _sklearn_model(source: Mapping[str, Any]) -> bool:
    if str(source.get("format") or "").lower() in SKLEARN_FORMATS:
        return True
    path = source.get("path")
    return isinstance(path, str) and path.lower().endswith(SKLEARN_SUFFIXES)


def extras_for(config: Mapping[str, Any]) -> list[str]:
    """The extras a parsed mlci.yaml needs, in :data:`EXTRAS` order."""
    needed: set[str] = set()
    models = config.get("models")
    for model in models if isinstance(models, list) else []:
        if not isinstance(model, Mapping):
            continue
        if model.get("convert") is True or any(_sklearn_model(s) for s in _sources(model)):
            needed.add("sklearn")
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
        if image.get("dockerfile"):
            needed.add("image")  # the Docker SDK builder
    if {"sbom", "sign"} & set(stages):
        needed.add("supply")
    return [name for name in EXTRAS if name in needed]


def needed_extras(config_path: Path) -> list[str]:
    """The extras ``config_path`` (a file, or a folder holding mlci.yaml) needs."""
    import yaml

    path = config_path
    if path.is_dir():
        path = next(
            (path / n for n in CONFIG_NAMES if (path / n).is_file()), path / CONFIG_NAMES[0]
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such configuration file", tip="pass the file with --config PATH"
        ) from None
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


def main(argv: Sequence[str] | None = None) -> int:
    """Print the extras to install: those named, plus those the configuration needs."""
    parser = argparse.ArgumentParser(prog="python -m mlci.extras", description=__doc__)
    parser.add_argument("--config", type=Path, help="mlci.yaml, or a folder holding one")
    parser.add_argument(
        "--extras",
        default="auto",
        help="extras to install, separated by commas; 'auto' (default) adds what --config "
        "needs, 'none' installs nothing extra",
    )
    args = parser.parse_args(argv)
    try:
        wanted = args.extras.replace(",", " ").split()
        auto = "auto" in wanted
        named = parse_extras(" ".join(w for w in wanted if w not in ("auto", "none")))
        if auto and args.config is not None:
            named += needed_extras(args.config)
    except MlciError as exc:
        print(f"mlci: error: {exc.diagnostics()}", file=sys.stderr)
        return exc.exit_code
    print(",".join(name for name in EXTRAS if name in named))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
