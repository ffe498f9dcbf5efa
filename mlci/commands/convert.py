"""``mlci convert``: scikit-learn models to ONNX with a parity check."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlci.commands._base import command, config_arg


def register(sub: Any) -> None:
    convert = command(
        sub,
        "convert",
        "convert scikit-learn models to ONNX and check parity",
        "Convert each configured scikit-learn model to ONNX with skl2onnx and compare its "
        "predictions with the native model on the evaluation data (max absolute difference, "
        "label agreement). Exits 1 when a conversion fails or loses parity.",
    )
    config_arg(convert)
    convert.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("mlci-out"),
        metavar="DIR",
        help="folder for the .onnx files (default: mlci-out)",
    )
    convert.add_argument("--model", metavar="NAME", help="convert only this model")
    convert.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from mlci.config import load_config
    from mlci.conversion import convert_models
    from mlci.files import check_out_dir

    check_out_dir(args.out)
    loaded = load_config(args.config)
    results = convert_models(loaded, args.out, args.model)
    failed = 0
    for name, result in results:
        print(f"{name}: {result.status}: {result.message}")
        failed += result.status != "converted"
    return 1 if failed else 0
