"""``python -m mlci.serve``: serve one ONNX model over the Open Inference Protocol."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load the model and serve it until SIGTERM; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m mlci.serve",
        description="Serve an ONNX model with the Open Inference Protocol (KServe v2) REST "
        "API and Prometheus metrics at /metrics. SIGTERM drains requests in flight, then exits.",
    )
    parser.add_argument("--model", type=Path, required=True, help="the .onnx file")
    parser.add_argument(
        "--name",
        default=os.environ.get("MLCI_MODEL_NAME"),
        help="model name in the URLs (default: $MLCI_MODEL_NAME, else the file name)",
    )
    parser.add_argument("--version", default="1", help="model version (default: 1)")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0: any)")
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds to let requests in flight finish after SIGTERM (default: 30)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    from mlci.serve.server import ModelLoadError, ModelRunner, serve

    try:
        runner = ModelRunner(args.model, args.name or args.model.stem, args.version)
    except ModelLoadError as exc:
        print(f"mlci.serve: error: {exc}", file=sys.stderr)
        return 2
    try:
        return serve(runner, args.host, args.port, grace=args.grace, access_log=args.access_log)
    except OSError as exc:
        print(
            f"mlci.serve: error: cannot listen on {args.host}:{args.port} ({exc})", file=sys.stderr
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
