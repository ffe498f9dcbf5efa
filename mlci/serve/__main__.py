"""``python -m mlci.serve``: serve one ONNX model over the Open Inference Protocol."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load the model and serve it until SIGTERM; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m mlci.serve",
        description="Serve an ONNX model with the Open Inference Protocol (KServe v2) REST "
        "API, its binary tensor data and classification extensions, and Prometheus metrics "
        "at /metrics. SIGTERM drains requests in flight, then exits.",
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
    parser.add_argument(
        "--threads",
        type=_positive(int),
        default=None,
        help="worker threads running requests (default: the CPUs available)",
    )
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=1,
        help="ONNX Runtime threads inside one request (default: 1; 0: one per core)",
    )
    parser.add_argument(
        "--request-timeout",
        type=_positive(float),
        default=30.0,
        help="seconds a client has to send a whole request, headers and body (default: 30)",
    )
    parser.add_argument(
        "--max-body-mb",
        type=_positive(float),
        default=64.0,
        help="largest request body in MiB; larger ones get 413 (default: 64)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    from mlci.serve.model import ModelLoadError, ModelRunner
    from mlci.serve.server import ServeOptions, serve

    try:
        runner = ModelRunner(
            args.model,
            args.name or args.model.stem,
            args.version,
            intra_op_threads=max(0, args.intra_op_threads),
        )
    except ModelLoadError as exc:
        print(f"mlci.serve: error: {exc}", file=sys.stderr)
        return 2
    options = ServeOptions(
        host=args.host,
        port=args.port,
        grace=args.grace,
        threads=args.threads,
        request_timeout=args.request_timeout,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        access_log=args.access_log,
    )
    try:
        return serve(runner, options)
    except OSError as exc:
        print(
            f"mlci.serve: error: cannot listen on {args.host}:{args.port} ({exc})", file=sys.stderr
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
