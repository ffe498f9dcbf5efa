"""The command line: parse arguments, call a stage, print. Nothing else lives here."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mlci import __version__
from mlci.errors import MlciError, UsageError

EXIT_CODES = """exit codes:
  0  everything ran (for gates: promote)
  1  a check failed or mlci itself failed
  2  bad usage, configuration or input (the message names the file, field or value)"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", tip=f"see '{self.prog} --help'")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mlci",
        description="Continuous integration for machine-learning models: evaluate a candidate "
        "against the production baseline, overall and on slices, with confidence intervals.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mlci {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the traceback of any error"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=description,
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-c",
            "--config",
            type=Path,
            default=Path("."),
            metavar="PATH",
            help="mlci.yaml, or a folder holding one (default: the current folder)",
        )

    def run_args(p: argparse.ArgumentParser) -> None:
        config_arg(p)
        p.add_argument(
            "-o",
            "--out",
            type=Path,
            default=Path("mlci-out"),
            metavar="DIR",
            help="output folder (default: mlci-out); several models get a subfolder each",
        )
        p.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            help="no progress lines, only the summary and errors",
        )

    check = command(
        "check",
        "run the configured stages and write results.json and report.md",
        "Run the stages configured in mlci.yaml (evaluation: metrics with intervals, declared "
        "and discovered slices, comparison with the baseline; model tests; latency benchmarks) "
        "for every model, then write results.json and report.md into --out. Nothing is written "
        "unless every model succeeds.",
    )
    run_args(check)
    check.set_defaults(run=_check, stages=None)

    test = command(
        "test",
        "run the model tests and data checks; exit 1 if any fails",
        "Run the declarative tests and data checks in mlci.yaml's tests section for every model "
        "and write results.json (tests section), junit.xml and report.md into --out. Exits 1 when "
        "a test fails or errors.",
    )
    run_args(test)
    test.set_defaults(run=_check, stages=["tests"])

    bench = command(
        "bench",
        "benchmark latency and throughput; exit 1 on a significant regression",
        "Run the latency and throughput scenarios in mlci.yaml's benchmark section for every "
        "model (and its baseline, interleaved) and write results.json (benchmark section) and "
        "report.md into --out. Exits 1 when the candidate is significantly slower than allowed.",
    )
    run_args(bench)
    bench.set_defaults(run=_check, stages=["benchmark"])

    schema = command(
        "schema",
        "print the JSON Schema of mlci.yaml (or of results.json)",
        "Print a JSON Schema, for editor completion and validation of your files.",
    )
    schema.add_argument(
        "--results", action="store_true", help="print the schema of results.json instead"
    )
    schema.set_defaults(run=_schema)

    convert = command(
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
    convert.set_defaults(run=_convert)

    report = command(
        "report",
        "re-render report.md from a results.json",
        "Render the Markdown report again from a results document, without re-running anything.",
    )
    report.add_argument("results", type=Path, help="a results.json written by mlci check")
    report.add_argument(
        "-o", "--out", type=Path, metavar="FILE", help="write here instead of standard output"
    )
    report.set_defaults(run=_report)
    return parser


Progress = Callable[[str], None]


@contextmanager
def progress_reporter(quiet: bool = False) -> Iterator[Progress]:
    """A rich spinner on a terminal, plain timestamped lines elsewhere (CI logs)."""
    if quiet:
        yield lambda message: None
    elif sys.stderr.isatty():
        from rich.console import Console

        console = Console(stderr=True)
        with console.status("starting") as status:
            yield lambda message: status.update(message)
    else:
        import time

        start = time.perf_counter()
        yield lambda message: print(
            f"mlci [{time.perf_counter() - start:6.1f}s] {message}", file=sys.stderr, flush=True
        )


def _check(args: argparse.Namespace) -> int:
    from mlci.check import check
    from mlci.config import load_config
    from mlci.report import failures, headlines

    loaded = load_config(args.config)
    with progress_reporter(args.quiet) as progress:
        runs = check(loaded, args.out, progress, args.stages)
    failed = 0
    for run in runs:
        for line in headlines(run.document):
            print(f"{run.name}: {line}")
        print(f"  wrote {run.directory / 'results.json'} and {run.directory / 'report.md'}")
        failed += failures(run.document, args.stages or [])
    return 1 if failed else 0


def _schema(args: argparse.Namespace) -> int:
    if args.results:
        from mlci.results import schema

        print(json.dumps(schema(), indent=2))
    else:
        from mlci.config import json_schema

        print(json.dumps(json_schema(), indent=2))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from mlci.config import load_config
    from mlci.conversion import convert_models

    loaded = load_config(args.config)
    results = convert_models(loaded, args.out, args.model)
    failed = 0
    for name, result in results:
        print(f"{name}: {result.status}: {result.message}")
        failed += result.status != "converted"
    return 1 if failed else 0


def _report(args: argparse.Namespace) -> int:
    from mlci.report import render_markdown
    from mlci.results import load, write_atomic

    text = render_markdown(load(args.results))
    if args.out:
        write_atomic(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run mlci; return the exit code."""
    parser = build_parser()
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return 2
        return int(args.run(args))
    except MlciError as exc:
        if verbose:
            raise
        print(f"mlci: error: {exc.diagnostics()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mlci: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in mlci: one line, the traceback on request
        if verbose:
            raise
        print(
            f"mlci: internal error: {exc.__class__.__name__}: {exc} (rerun with --verbose and "
            "report it)",
            file=sys.stderr,
        )
        return 1
