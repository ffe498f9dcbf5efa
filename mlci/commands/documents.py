"""Commands over results documents: ``schema``, ``report``, ``gate`` and ``card``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mlci.commands._base import (
    command,
    config_arg,
    fail_on_arg,
    optional_config,
    out_file_arg,
    quiet_arg,
    set_outputs,
    templates_arg,
    write_or_print,
)
from mlci.errors import InputError, UsageError


def register(sub: Any) -> None:
    schema = command(
        sub,
        "schema",
        "print the JSON Schema of mlci.yaml (or of results.json)",
        "Print a JSON Schema, for editor completion and validation of your files.",
    )
    schema.add_argument(
        "--results", action="store_true", help="print the schema of results.json instead"
    )
    schema.set_defaults(run=run_schema)

    report = command(
        sub,
        "report",
        "re-render reports from results.json; merge results of several jobs",
        "Render a report again from a results document, without re-running anything. With "
        "--merge, combine results files written by different jobs for the same model and data "
        "(files describing different models, baselines or data are refused), and the "
        "shard-I-of-N.npz files of mlci evaluate --shard, which are evaluated together into "
        "the single-run evaluation (they need --config); the merged document is judged again "
        "by the gate when --config has one.",
    )
    report.add_argument(
        "results", type=Path, nargs="+", help="results.json file(s) and, with --merge, shard files"
    )
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
    out_file_arg(report)
    report.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="PATH",
        help="mlci.yaml: its gate judges a merged document, its report.templates apply",
    )
    templates_arg(report)
    quiet_arg(report)
    report.set_defaults(run=run_report)

    gate = command(
        sub,
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
    gate.set_defaults(run=run_gate)

    card = command(
        sub,
        "card",
        "write the model card (Markdown, or CycloneDX 1.6 JSON)",
        "Write the model card of a results document: Markdown with the sections of a Hugging "
        "Face model card, or a CycloneDX 1.6 BOM whose machine-learning-model component carries "
        "the modelCard (validated against the CycloneDX schema). Free-text fields come from "
        "mlci.yaml's card section. `mlci check` writes both beside the results.",
    )
    card.add_argument("results", type=Path, help="a results.json written by mlci check")
    config_arg(card, required=False)
    card.add_argument(
        "-f",
        "--format",
        choices=["markdown", "cyclonedx"],
        default="markdown",
        help="Markdown (default) or CycloneDX 1.6 JSON",
    )
    out_file_arg(card)
    templates_arg(card)
    card.set_defaults(run=run_card)


def run_schema(args: argparse.Namespace) -> int:
    if args.results:
        from mlci.results import schema

        print(json.dumps(schema(), indent=2))
    else:
        from mlci.config import json_schema

        print(json.dumps(json_schema(), indent=2))
    return 0


def run_report(args: argparse.Namespace) -> int:
    from mlci.files import check_out_file
    from mlci.report import RENDERERS
    from mlci.results import MergeError, dumps, load, merge

    if args.out is not None:
        check_out_file(args.out)
    if len(args.results) > 1 and not args.merge:
        raise UsageError(
            "mlci report: several results files need --merge", tip="add --merge to combine them"
        )
    shards = [path for path in args.results if path.suffix == ".npz"]
    if shards and not args.merge:
        raise UsageError(
            f"mlci report: {shards[0]} is a shard file", tip="add --merge to evaluate the shards"
        )
    if shards and args.config is None:
        raise UsageError(
            "mlci report --merge: shard files need --config",
            tip="pass the mlci.yaml the shard jobs used, with -c",
        )
    sources = [str(path) for path in args.results if path.suffix != ".npz"]
    documents = [load(Path(path)) for path in sources]
    loaded = None
    if args.config is not None:
        from mlci.config import load_config

        loaded = load_config(args.config)
    if args.merge:
        if shards:
            assert loaded is not None
            for document in _evaluate_shards(loaded, shards, args.quiet):
                documents.append(document)
                sources.append(f"the shards of model '{document.model.name}'")
        try:
            document = merge(documents)
        except MergeError as exc:
            raise InputError(f"{sources[exc.index]}: {exc.message}", tip=exc.tip) from None
        if loaded is not None and loaded.config.gate is not None:
            from mlci.gate.stage import judge
            from mlci.results import StageOutcome

            document = document.with_section("gate", judge(loaded, document))
            document = document.with_stage("gate", StageOutcome(status="ran"))
    else:
        document = documents[0]
    templates = args.templates
    if templates is None and loaded is not None:
        templates = loaded.config.report.templates
    if args.format == "json":
        text = dumps(document)
    else:
        text = RENDERERS[args.format](document, templates)
    write_or_print(text, args.out)
    return 0


def _evaluate_shards(loaded: Any, paths: list[Path], quiet: bool) -> list[Any]:
    from mlci.commands._base import progress_reporter
    from mlci.pipeline import evaluate_shards
    from mlci.scale.shards import read_shard

    files = [read_shard(path) for path in paths]
    with progress_reporter(quiet) as progress:
        return evaluate_shards(loaded, files, progress)


def run_gate(args: argparse.Namespace) -> int:
    from mlci.config import load_config
    from mlci.files import write_atomic
    from mlci.gate.stage import judge
    from mlci.report import STATUS_MARK
    from mlci.results import StageOutcome, dumps, load

    loaded = load_config(args.config)
    if loaded.config.gate is None:
        raise loaded.error((), "no gate section", tip="add a gate: section with rules to mlci.yaml")
    document = load(args.results)
    gate = judge(loaded, document)
    document = document.with_section("gate", gate).with_stage("gate", StageOutcome(status="ran"))
    for rule in gate.rules:
        kind = "required" if rule.required else "advisory"
        print(f"{STATUS_MARK[rule.status]:<16} {rule.id} ({kind}): {rule.explanation}")
    print(f"{gate.decision.upper()}: {gate.reason}")
    print(f"  model sha256 {gate.model_sha256}, decision digest {gate.digest}")
    if not args.dry_run:
        write_atomic(args.results, dumps(document))
    set_outputs({"decision": gate.decision})
    return 1 if gate.fails(args.fail_on) else 0


def run_card(args: argparse.Namespace) -> int:
    from mlci.card.stage import render_card
    from mlci.files import check_out_file
    from mlci.results import load

    if args.out is not None:
        check_out_file(args.out)
    document = load(args.results)
    loaded = optional_config(args.config)
    card_config = loaded.config.card if loaded is not None else None
    templates = args.templates
    if templates is None and loaded is not None:
        templates = loaded.config.report.templates
    text = render_card(document, card_config, args.format, templates)
    write_or_print(text, args.out)
    return 0
