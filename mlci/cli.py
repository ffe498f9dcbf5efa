"""The command line: parse arguments, call a stage, print. Nothing else lives here."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mlci import __version__
from mlci.errors import InputError, MlciError, UsageError

EXIT_CODES = """exit codes:
  0  everything ran (with a gate: the decision is promote, or hold without --fail-on hold)
  1  a check failed, the gate blocked (or held, with --fail-on hold), or mlci itself failed
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

    def fail_on_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--fail-on",
            choices=["block", "hold", "never"],
            default=None,
            help="gate decisions that exit 1: 'block' (default, or gate.fail_on in mlci.yaml), "
            "'hold' to fail on inconclusive or missing evidence too, or 'never'",
        )

    def templates_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--templates",
            type=Path,
            metavar="DIR",
            help="folder of Jinja2 templates searched before the packaged ones "
            "(default: report.templates in mlci.yaml)",
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
    fail_on_arg(check)
    templates_arg(check)
    _stage_selection_args(check)
    check.set_defaults(run=_check, stages=None)

    evaluate = command(
        "evaluate",
        "evaluate against the baseline, overall and on slices",
        "Run only the evaluation in mlci.yaml for every model: metrics with intervals, declared "
        "and discovered slices, comparison with the baseline; write results.json (evaluation "
        "section) and report.md into --out.",
    )
    run_args(evaluate)
    evaluate.set_defaults(run=_check, stages=["evaluate"])

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
        "re-render reports from results.json; merge results of several jobs",
        "Render a report again from a results document, without re-running anything. With "
        "--merge, combine results files written by different jobs for the same model and data "
        "(files describing different models, baselines or data are refused); the merged "
        "document is judged again by the gate when --config has one.",
    )
    report.add_argument("results", type=Path, nargs="+", help="results.json file(s)")
    report.add_argument(
        "--merge", action="store_true", help="merge several results files into one document"
    )
    report.add_argument(
        "-f",
        "--format",
        choices=["markdown", "comment", "summary", "html", "json"],
        default="markdown",
        help="full Markdown report (default), pull-request comment, job summary, self-contained "
        "HTML, or the (merged) results document itself",
    )
    report.add_argument(
        "-o", "--out", type=Path, metavar="FILE", help="write here instead of standard output"
    )
    report.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="PATH",
        help="mlci.yaml: its gate judges a merged document, its report.templates apply",
    )
    templates_arg(report)
    report.set_defaults(run=_report)

    gate = command(
        "gate",
        "judge a results.json with mlci.yaml's gate; exit 1 when it blocks",
        "Evaluate the promotion rules in mlci.yaml's gate section against an existing results "
        "document, print every rule's outcome and the decision (promote, hold or block), and "
        "rewrite the document's gate section. Exits 0 on promote, 1 on block (and on hold with "
        "--fail-on hold).",
    )
    gate.add_argument("results", type=Path, help="a results.json written by mlci check")
    config_arg(gate)
    fail_on_arg(gate)
    gate.add_argument(
        "--dry-run", action="store_true", help="print the decision without rewriting the file"
    )
    gate.set_defaults(run=_gate)

    card = command(
        "card",
        "write the model card (Markdown, or CycloneDX 1.6 JSON)",
        "Write the model card of a results document: Markdown with the sections of a Hugging "
        "Face model card, or a CycloneDX 1.6 BOM whose machine-learning-model component carries "
        "the modelCard (validated against the CycloneDX schema). Free-text fields come from "
        "mlci.yaml's card section.",
    )
    card.add_argument("results", type=Path, help="a results.json written by mlci check")
    card.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="PATH",
        help="mlci.yaml with the card section (default: ./mlci.yaml when there is one)",
    )
    card.add_argument(
        "-f",
        "--format",
        choices=["markdown", "cyclonedx"],
        default="markdown",
        help="Markdown (default) or CycloneDX 1.6 JSON",
    )
    card.add_argument(
        "-o", "--out", type=Path, metavar="FILE", help="write here instead of standard output"
    )
    templates_arg(card)
    card.set_defaults(run=_card)

    from mlci.init import add_parser as init_parser

    init_parser(command)

    from mlci.github.commands import add_parsers as github_parsers

    github_parsers(sub, command)

    from mlci.supply.commands import add_parsers as build_parsers
    from mlci.supply.supply_commands import add_parsers as supply_parsers

    build_parsers(sub, command)
    supply_parsers(sub, command)
    return parser


def _stage_selection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--only",
        metavar="STAGE[,STAGE...]",
        help="run only these stages (evaluate, tests, benchmark, card, image, sbom, sign, gate)",
    )
    p.add_argument(
        "--skip", metavar="STAGE[,STAGE...]", help="run the configured stages except these"
    )


def _selected_stages(args: argparse.Namespace, configured: Sequence[str]) -> list[str] | None:
    """The stages a command runs: its own (test, bench, evaluate), or --only/--skip's choice."""
    if args.stages is not None:
        return list(args.stages)
    only, skip = getattr(args, "only", None), getattr(args, "skip", None)
    if only is None and skip is None:
        return None
    from mlci.stage_selection import parse_stage_list, select_stages
    from mlci.stages import STAGES

    return select_stages(
        configured,
        parse_stage_list(only, "--only"),
        parse_stage_list(skip, "--skip"),
        {*STAGES, "gate"},
    )


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
    from mlci.gate.rules import fails
    from mlci.report import failures, headlines

    loaded = load_config(args.config)
    if getattr(args, "templates", None) is not None:
        report = loaded.config.report.model_copy(update={"templates": args.templates})
        loaded = type(loaded)(
            config=loaded.config.model_copy(update={"report": report}),
            path=loaded.path,
            source=loaded.source,
        )
    stages = _selected_stages(args, loaded.config.stages)
    with progress_reporter(args.quiet) as progress:
        runs = check(loaded, args.out, progress, stages)
    failed = 0
    for run in runs:
        for line in headlines(run.document):
            print(f"{run.name}: {line}")
        print(f"  wrote {', '.join(str(run.directory / n) for n in run.reports)} and results.json")
        failed += failures(run.document, args.stages or [])
        gate = run.document.get("gate")
        if gate is not None:
            fail_on = getattr(args, "fail_on", None) or gate.get("fail_on") or "block"
            failed += fail_on != "never" and fails(gate["decision"], fail_on)
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


def _write_or_print(text: str, out: Path | None) -> None:
    from mlci.results import write_atomic

    if out:
        write_atomic(out, text)
    else:
        sys.stdout.write(text)


def _optional_config(path: Path | None) -> object | None:
    """mlci.yaml when given, or the one in the current folder; None when there is none."""
    from mlci.config import CONFIG_NAMES, load_config

    if path is not None:
        return load_config(path)
    for name in CONFIG_NAMES:
        if Path(name).is_file():
            return load_config(Path(name))
    return None


def _report(args: argparse.Namespace) -> int:
    from mlci.report import (
        MergeError,
        merge,
        render_comment,
        render_html,
        render_markdown,
        render_summary,
    )
    from mlci.results import dumps, load

    if len(args.results) > 1 and not args.merge:
        raise UsageError(
            "mlci report: several results files need --merge", tip="add --merge to combine them"
        )
    documents = [load(path) for path in args.results]
    loaded = None
    if args.config is not None:
        from mlci.config import load_config

        loaded = load_config(args.config)
    if args.merge:
        try:
            document = merge(documents)
        except MergeError as exc:
            raise InputError(f"{args.results[exc.index]}: {exc.message}", tip=exc.tip) from None
        if loaded is not None and loaded.config.gate is not None:
            from mlci.check import run_gate

            run_gate(loaded, document)
    else:
        document = documents[0]
    templates = args.templates
    if templates is None and loaded is not None:
        templates = loaded.config.report.templates
    renderers = {
        "markdown": render_markdown,
        "comment": render_comment,
        "summary": render_summary,
        "html": render_html,
    }
    text = dumps(document) if args.format == "json" else renderers[args.format](document, templates)
    _write_or_print(text, args.out)
    return 0


def _gate(args: argparse.Namespace) -> int:
    from mlci.check import run_gate
    from mlci.config import load_config
    from mlci.gate.rules import fails
    from mlci.report import STATUS_MARK
    from mlci.results import dumps, load, write_atomic

    loaded = load_config(args.config)
    if loaded.config.gate is None:
        raise loaded.error((), "no gate section", tip="add a gate: section with rules to mlci.yaml")
    document = load(args.results)
    run_gate(loaded, document)
    gate = document["gate"]
    for rule in gate["rules"]:
        kind = "required" if rule["required"] else "advisory"
        print(f"{STATUS_MARK[rule['status']]:<16} {rule['id']} ({kind}): {rule['explanation']}")
    print(f"{gate['decision'].upper()}: {gate['reason']}")
    print(f"  model sha256 {gate['model_sha256']}, decision digest {gate['digest']}")
    if not args.dry_run:
        write_atomic(args.results, dumps(document))
    fail_on = args.fail_on or gate["fail_on"]
    return 1 if fail_on != "never" and fails(gate["decision"], fail_on) else 0


def _card(args: argparse.Namespace) -> int:
    from mlci.card.cyclonedx import dumps_bom
    from mlci.card.model import build_card, card_fields
    from mlci.card.render import render_card
    from mlci.results import load

    document = load(args.results)
    loaded = _optional_config(args.config)
    config = getattr(loaded, "config", None)
    card = build_card(document, card_fields(getattr(config, "card", None)))
    if args.format == "cyclonedx":
        text = dumps_bom(card)
    else:
        templates = args.templates or getattr(getattr(config, "report", None), "templates", None)
        text = render_card(card, document, templates)
    _write_or_print(text, args.out)
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
