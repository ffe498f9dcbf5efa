"""``mlci extras``: which optional parts of mlci a configuration needs (for installers)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlci.commands._base import command


def register(sub: Any) -> None:
    p = command(
        sub,
        "extras",
        "print the pip extras mlci.yaml needs (sklearn, supply, ...), for installers",
        "Print, separated by commas, the extras of mlci to install: those --extras names, plus "
        "(with 'auto', the default) those the configuration needs: sklearn for scikit-learn "
        "models or conversion, supply for an SBOM, signatures or verified sources, mlflow for "
        "models:/ sources, card for the CycloneDX card, image for a Dockerfile, pytest for "
        "pytest files. The actions' setup step uses it.",
    )
    p.add_argument("-c", "--config", type=Path, metavar="PATH", help="mlci.yaml, or its folder")
    p.add_argument(
        "--extras",
        default="auto",
        metavar="LIST",
        help="extras to install, separated by commas; 'auto' (default) adds what --config "
        "needs, 'none' installs nothing extra",
    )
    p.set_defaults(run=run_extras)


def run_extras(args: argparse.Namespace) -> int:
    from mlci.extras import EXTRAS, needed_extras, parse_extras

    wanted = args.extras.replace(",", " ").split()
    named = parse_extras(" ".join(w for w in wanted if w not in ("auto", "none")))
    if "auto" in wanted and args.config is not None:
        named += needed_extras(args.config)
    print(",".join(name for name in EXTRAS if name in named))
    return 0
