"""``python -m mlci.serve``: serve one ONNX model over the Open Inference Protocol."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlci.serve.sampling import SampleOptions


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


def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "traffic sample",
        "Write a sample of requests and answers (one JSON record per row) for `mlci watch`. "
        "Written after each answer has gone out, from a background thread; when its queue is "
        "full a request is dropped and counted, never waited for. No input is written unless "
        "--sample-columns names it.",
    )
    group.add_argument(
        "--sample-dir", type=Path, metavar="DIR", help="turn sampling on: write here"
    )
    group.add_argument(
        "--sample-fraction",
        type=_positive(float),
        default=1.0,
        metavar="F",
        help="share of requests to keep, in (0, 1] (default: 1)",
    )
    group.add_argument(
        "--sample-rate",
        type=_positive(float),
        default=None,
        metavar="R",
        help="keep at most R requests per second (default: no limit)",
    )
    group.add_argument(
        "--sample-columns",
        default=None,
        metavar="NAMES",
        help="inputs to write, separated by commas, or 'all' (default: none: only ids, times "
        "and outputs; name the inputs that are not personal data)",
    )
    group.add_argument(
        "--sample-exclude",
        default="",
        metavar="NAMES",
        help="inputs never to write, separated by commas (with --sample-columns all: every "
        "input but these)",
    )
    group.add_argument(
        "--sample-format",
        choices=["jsonl", "parquet"],
        default="jsonl",
        help="JSON Lines (default; needs nothing) or Parquet (needs pyarrow)",
    )
    group.add_argument(
        "--sample-file-mb",
        type=_positive(float),
        default=64.0,
        metavar="MB",
        help="finish a file at this size (default: 64)",
    )
    group.add_argument(
        "--sample-max-mb",
        type=_positive(float),
        default=1024.0,
        metavar="MB",
        help="keep at most this much in finished files; the oldest are removed (default: 1024)",
    )
    group.add_argument(
        "--sample-rotate-seconds",
        type=_positive(float),
        default=3600.0,
        metavar="S",
        help="finish a file at this age, so mlci watch sees it (default: 3600)",
    )
    group.add_argument(
        "--sample-queue",
        type=_positive(int),
        default=10_000,
        metavar="N",
        help="requests waiting to be written; more are dropped and counted (default: 10000)",
    )


def _sample_options(args: argparse.Namespace) -> SampleOptions | None:
    from mlci.serve.sampling import SampleOptions, parse_columns

    if args.sample_dir is None:
        return None
    return SampleOptions(
        directory=args.sample_dir,
        fraction=args.sample_fraction,
        rate=args.sample_rate,
        columns=parse_columns(args.sample_columns),
        exclude=parse_columns(args.sample_exclude) or (),
        format=args.sample_format,
        file_bytes=int(args.sample_file_mb * 1024 * 1024),
        max_bytes=int(args.sample_max_mb * 1024 * 1024),
        rotate_seconds=args.sample_rotate_seconds,
        queue_size=int(args.sample_queue),
    )


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
    _sample_arguments(parser)
    args = parser.parse_args(argv)

    from mlci.serve.model import ModelLoadError, ModelRunner
    from mlci.serve.sampling import SampleError
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
        sampling=_sample_options(args),
    )
    try:
        return serve(runner, options)
    except SampleError as exc:
        print(f"mlci.serve: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"mlci.serve: error: cannot listen on {args.host}:{args.port} ({exc})", file=sys.stderr
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
