"""``mlci init``: a first mlci.yaml and pull-request workflow for a model and its data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlci.commands._base import command
from mlci.init import ACTION_PLACEHOLDER, COMMIT_PLACEHOLDER


def register(sub: Any) -> None:
    p = command(
        sub,
        "init",
        "write a first mlci.yaml and pull-request workflow for a model and its data",
        "Inspect a model (inputs, task, classes) and its evaluation data (column kinds and "
        "values), choose the target and id columns, and write mlci.yaml with slices on the "
        "categorical and numeric columns, model tests and a gate (plus a short latency "
        "benchmark for ONNX models), and .github/workflows/mlci.yml from the pull-request "
        "template. Paths must be inside --dir (the repository). Nothing is overwritten "
        "without --force.",
    )
    p.add_argument("--model", type=Path, required=True, metavar="PATH", help="the candidate model")
    p.add_argument("--data", type=Path, required=True, metavar="PATH", help="evaluation data")
    p.add_argument("--baseline", type=Path, metavar="PATH", help="the model in production")
    p.add_argument(
        "--reference", type=Path, metavar="PATH", help="training data sample, for drift checks"
    )
    p.add_argument("--target", metavar="COLUMN", help="the target column (default: inferred)")
    p.add_argument("--name", metavar="NAME", help="the model's name (default: its file name)")
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="the repository to write into (default: the current folder)",
    )
    p.add_argument(
        "--action",
        metavar="OWNER/REPO@SHA",
        help="where the workflow takes mlci's actions from, pinned to a commit (default: a "
        f"placeholder, {ACTION_PLACEHOLDER}@{COMMIT_PLACEHOLDER[:7]}..., to replace)",
    )
    p.add_argument("--no-workflow", action="store_true", help="write mlci.yaml only")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(run=run_init)


def run_init(args: argparse.Namespace) -> int:
    from mlci.init import init

    result = init(
        model=args.model,
        data=args.data,
        baseline=args.baseline,
        reference=args.reference,
        target=args.target,
        name=args.name,
        directory=args.dir,
        action=args.action,
        workflow=not args.no_workflow,
        force=args.force,
    )
    found = result.plan
    print(f"target '{found.target}' ({found.task}), id {found.id or 'none'}, {found.rows} rows")
    slices = len(found.categorical) + len(found.numeric) + (1 if found.cross else 0)
    print(f"slices on {slices} feature(s); discovery with SliceLine")
    for note in found.notes:
        print(f"note: {note}")
    for path in result.written:
        print(f"wrote {path}")
    if result.placeholder:
        print(
            f"next: replace {ACTION_PLACEHOLDER}@{COMMIT_PLACEHOLDER} in the workflow with "
            "mlci's repository and commit (or run again with --action OWNER/REPO@SHA --force)"
        )
    print("then: mlci check")
    return 0
