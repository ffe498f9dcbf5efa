"""``mlci check`` and the one-stage runs ``mlci evaluate``, ``mlci test`` and ``mlci bench``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlci.commands._base import (
    command,
    config_arg,
    fail_on_arg,
    progress_reporter,
    quiet_arg,
    set_outputs,
    templates_arg,
)

STAGE_LIST = "evaluate, tests, benchmark, image, sbom, sign, canary, gate, card, attest"


def _run_args(p: argparse.ArgumentParser) -> None:
    config_arg(p)
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("mlci-out"),
        metavar="DIR",
        help="output folder (default: mlci-out); several models get a subfolder each",
    )
    quiet_arg(p)


def register(sub: Any) -> None:
    check = command(
        sub,
        "check",
        "run the configured stages and write results.json, reports and the card",
        "Run the stages configured in mlci.yaml for every model, in order: evaluation "
        "(metrics with intervals, declared and discovered slices, comparison with the "
        "baseline), model tests, latency benchmarks, the serving image with its SBOM and "
        "signatures (with an image section), the gate, the model card, and the signed "
        "evaluation attestation. Writes results.json, report.md, comment.md, summary.md, "
        "report.html, the card and what the stages produced into --out. Nothing is written "
        "unless every model's run finished.",
    )
    _run_args(check)
    check.add_argument(
        "--only",
        metavar="STAGES",
        help=f"run only these stages, comma-separated ({STAGE_LIST})",
    )
    check.add_argument("--skip", metavar="STAGES", help="skip these stages, comma-separated")
    fail_on_arg(check)
    templates_arg(check)
    image = check.add_argument_group("image (override mlci.yaml's image section)")
    image.add_argument(
        "--image-base",
        metavar="IMAGE",
        help="base image: OCI layout folder, oci:DIR[:TAG], docker-archive:FILE or "
        "docker://HOST/REPO[:TAG]",
    )
    image.add_argument(
        "--push",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="push the image to image.registry (default: image.push)",
    )
    image.add_argument(
        "--sign",
        choices=["none", "key", "keyless"],
        default=None,
        help="how to sign the image and the decision (default: image.sign.method)",
    )
    image.add_argument(
        "--sign-key", type=Path, metavar="FILE", help="the private key for --sign key"
    )
    check.set_defaults(run=run_check, stages=None)

    for name, stage, help_text, description in (
        (
            "evaluate",
            "evaluate",
            "evaluate metrics, slices and the baseline comparison",
            "Run the evaluation stage alone for every model: metrics with confidence "
            "intervals, declared and discovered slices, and the paired comparison with the "
            "baseline. Writes results.json (evaluation section) and the reports into --out.",
        ),
        (
            "test",
            "tests",
            "run the model tests and data checks; exit 1 if any fails",
            "Run the declarative tests and data checks in mlci.yaml's tests section for every "
            "model and write results.json (tests section), junit.xml and report.md into --out. "
            "Exits 1 when a test fails or errors.",
        ),
        (
            "bench",
            "benchmark",
            "benchmark latency and throughput; exit 1 on a significant regression",
            "Run the latency and throughput scenarios in mlci.yaml's benchmark section for "
            "every model (and its baseline, interleaved) and write results.json (benchmark "
            "section) and report.md into --out. Exits 1 when the candidate is significantly "
            "slower than allowed.",
        ),
    ):
        p = command(sub, name, help_text, description)
        _run_args(p)
        p.set_defaults(run=run_check, stages=[stage])
        if name == "evaluate":
            p.add_argument(
                "--shard",
                metavar="I/N",
                help="predict only shard I of N (0 <= I < N) of the rows and write "
                "shard-I-of-N.npz into --out; mlci report --merge puts the shards together "
                "into the single-run document",
            )


def run_check(args: argparse.Namespace) -> int:
    from mlci.config import load_config
    from mlci.files import check_out_dir
    from mlci.pipeline import check, choose_stages, parse_stage_list
    from mlci.report import failures, headlines
    from mlci.stages import RunOptions

    check_out_dir(args.out)  # before any work: a bad --out must not waste a whole run
    loaded = load_config(args.config)
    if getattr(args, "shard", None) is not None:
        return _run_shard(args, loaded)
    only = args.stages or parse_stage_list(getattr(args, "only", None), "--only")
    skip = parse_stage_list(getattr(args, "skip", None), "--skip")
    stages = choose_stages(loaded.config.stages, only, skip)
    if getattr(args, "templates", None) is not None:
        report = loaded.config.report.model_copy(update={"templates": args.templates})
        loaded = type(loaded)(
            config=loaded.config.model_copy(update={"report": report}),
            path=loaded.path,
            source=loaded.source,
        )
    options = RunOptions(
        image_base=getattr(args, "image_base", None),
        push=getattr(args, "push", None),
        sign=getattr(args, "sign", None),
        sign_key=getattr(args, "sign_key", None),
    )
    with progress_reporter(args.quiet) as progress:
        runs = check(loaded, args.out, progress, stages, options)
    failed = 0
    worst = None
    for run in runs:
        for line in headlines(run.document):
            print(f"{run.name}: {line}")
        print(f"  wrote {', '.join(str(run.directory / n) for n in run.reports)} and results.json")
        failed += failures(run.document, args.stages or [])
        failed += len(run.failed_stages)
        gate = run.document.gate
        if gate is not None:
            failed += gate.fails(getattr(args, "fail_on", None) or gate.fail_on)
            worst = _worse(worst, gate.decision)
    image = next((r.document.image.digest for r in runs if r.document.image), None)
    set_outputs(
        {
            "decision": worst or "none",
            "results-path": "\n".join(str(r.directory / "results.json") for r in runs),
            "report-path": str(runs[0].directory / "report.md") if runs else "",
            "image-digest": image or "",
        }
    )
    return 1 if failed else 0


def _run_shard(args: argparse.Namespace, loaded: Any) -> int:
    from mlci.pipeline import predict_shard
    from mlci.scale.shards import parse_shard

    shard = parse_shard(args.shard)
    with progress_reporter(args.quiet) as progress:
        written = predict_shard(loaded, args.out, shard, progress)
    for path in written:
        print(f"wrote {path}")
    return 0


_SEVERITY = {"promote": 0, "hold": 1, "block": 2}


def _worse(current: str | None, decision: str) -> str:
    if current is None or _SEVERITY[decision] > _SEVERITY[current]:
        return decision
    return current
