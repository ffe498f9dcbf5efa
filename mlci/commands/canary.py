"""``mlci canary``: the canary analysis alone, bound to an existing results.json."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.commands._base import (
    command,
    config_arg,
    progress_reporter,
    quiet_arg,
    set_outputs,
)
from mlci.errors import UsageError

if TYPE_CHECKING:
    from mlci.results.canary import Canary

DESCRIPTION = """\
Compare the canary with the primary under real traffic and decide: promote to the next
traffic weight, hold, or roll back. mlci.yaml's canary section says what to compare: a
shadow replay (the same requests mirrored to both, from the evaluation data or a JSON Lines
file: latency, errors and prediction agreement overall and per declared slice) and live
metrics (Prometheus queries for both, once per interval). Every metric is judged with a
Mann-Whitney U test and a Hodges-Lehmann effect against its tolerance.

With --results, the analysis is bound to that results.json: a canary image other than the
one it describes is refused, the canary section is written into it, and the gate (when
mlci.yaml has one) judges it again. Step outputs: decision, next-weight, score.

Exits 0 on promote, 1 on roll back (and on hold with --fail-on hold)."""


def register(sub: Any) -> None:
    canary = command(
        sub,
        "canary",
        "judge a canary: shadow replay and live metrics; promote, hold or roll back",
        DESCRIPTION,
    )
    config_arg(canary)
    canary.add_argument(
        "--results",
        type=Path,
        metavar="FILE",
        help="results.json to bind to (its image digest) and write the canary section into",
    )
    canary.add_argument(
        "--model-name", metavar="NAME", help="which model of mlci.yaml (when it has several)"
    )
    canary.add_argument(
        "--weight",
        type=float,
        metavar="PERCENT",
        help="the canary's share of traffic now (default: canary.weight)",
    )
    where = canary.add_argument_group("deployments (override mlci.yaml's canary section)")
    for role in ("primary", "canary"):
        where.add_argument(f"--{role}-url", metavar="URL", help=f"the {role}'s server")
        where.add_argument(
            f"--{role}-image", metavar="IMAGE", help=f"an image to start as the {role}"
        )
        where.add_argument(
            f"--{role}-digest", metavar="sha256:HEX", help=f"the image digest the {role} runs"
        )
    canary.add_argument(
        "--fail-on",
        choices=["rollback", "hold", "never"],
        default="rollback",
        help="decisions that exit 1: 'rollback' (default), 'hold' (also hold), 'never'",
    )
    canary.add_argument(
        "-o", "--out", type=Path, metavar="FILE", help="also write the canary section as JSON"
    )
    quiet_arg(canary)
    canary.set_defaults(run=run_canary)


def _model_name(args: argparse.Namespace, names: list[str], document_name: str | None) -> str:
    if document_name is not None:
        if args.model_name and args.model_name != document_name:
            raise UsageError(
                f"--model-name {args.model_name}: the results describe '{document_name}'"
            )
        return document_name
    if args.model_name:
        if args.model_name not in names:
            raise UsageError(
                f"--model-name {args.model_name}: not in mlci.yaml ({', '.join(names)})"
            )
        return str(args.model_name)
    if len(names) > 1:
        raise UsageError(
            f"mlci.yaml has several models ({', '.join(names)}); pick one with --model-name"
        )
    return names[0]


def _overrides(args: argparse.Namespace) -> Any:
    from mlci.canary.stage import Overrides

    endpoints = {
        role: {
            key: value
            for key in ("url", "image", "digest")
            if (value := getattr(args, f"{role}_{key}")) is not None
        }
        for role in ("primary", "canary")
    }
    return Overrides(weight=args.weight, endpoints=endpoints)


def print_canary(section: Canary) -> None:
    """The decision, then one line per judgement and per shadow check."""
    from mlci.report import STATUS_MARK

    for j in section.metrics:
        mark = (
            "❌ harmful"
            if j.harmful
            else "➖ no data"
            if j.classification == "nodata"
            else "✅ pass"
        )
        tags = ", ".join(filter(None, [j.source, "critical" if j.critical else ""]))
        print(f"{mark:<12} {j.name} ({tags}): {j.explanation}")
    if section.shadow is not None:
        shadow = section.shadow
        print(f"{STATUS_MARK[shadow.errors_status]:<16} shadow {shadow.errors_explanation}")
        for a in shadow.agreement:
            print(f"{STATUS_MARK[a.status]:<16} shadow {a.explanation}")
    weight = "" if section.next_weight is None else f" (next weight {section.next_weight:g}%)"
    print(f"{section.decision.upper()}{weight}: {section.reason}")
    bound = section.canary.digest or "unknown"
    print(f"  canary image {bound}, primary image {section.primary.digest or 'unknown'}")


def run_canary(args: argparse.Namespace) -> int:
    import json

    from mlci.canary.stage import Binding, analyse
    from mlci.config import load_config
    from mlci.files import check_out_file, write_atomic
    from mlci.results import StageOutcome, dumps, load

    if args.out is not None:
        check_out_file(args.out)
    loaded = load_config(args.config)
    config = loaded.config.canary
    if config is None:
        raise loaded.error(
            (), "no canary section", tip="add a canary: section (see the README's Canary)"
        )
    document = load(args.results) if args.results is not None else None
    model = _model_name(
        args,
        [m.name for m in loaded.config.models],
        document.model.name if document is not None else None,
    )
    config = _overrides(args).apply(config)
    data = None
    if config.shadow is not None and config.shadow.file is None:
        from mlci.data import load_dataset

        data = load_dataset(loaded)
    binding = Binding.of(document) if document is not None else Binding()
    with progress_reporter(args.quiet) as progress:
        section = analyse(
            loaded, config, model=model, data=data, binding=binding, progress=progress
        )
    print_canary(section)
    if document is not None:
        document = document.with_section("canary", section).with_stage(
            "canary", StageOutcome(status="ran", duration_s=section.duration_s)
        )
        if loaded.config.gate is not None:
            from mlci.gate.stage import judge

            gate = judge(loaded, document)
            document = document.with_section("gate", gate).with_stage(
                "gate", StageOutcome(status="ran")
            )
            print(f"gate: {gate.decision.upper()}: {gate.reason}")
        write_atomic(args.results, dumps(document))
    if args.out is not None:
        write_atomic(args.out, json.dumps(section.model_dump(mode="json"), indent=2) + "\n")
    set_outputs(
        {
            "decision": section.decision,
            "next-weight": "" if section.next_weight is None else f"{section.next_weight:g}",
            "score": "" if section.score is None else f"{section.score:.1f}",
        }
    )
    if args.fail_on == "never":
        return 0
    fails = section.decision == "rollback" or (
        section.decision == "hold" and args.fail_on == "hold"
    )
    return 1 if fails else 0
