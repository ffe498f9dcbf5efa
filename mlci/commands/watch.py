"""``mlci watch``: drift and performance of production traffic, and where to report them."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlci.commands._base import command, config_arg, progress_reporter, quiet_arg, set_outputs


def register(sub: Any) -> None:
    """Add the ``watch`` subcommand."""
    p = command(
        sub,
        "watch",
        "drift and performance of production traffic, by time window",
        "Compare a traffic sample (what python -m mlci.serve --sample-dir writes) with the "
        "reference data, window by window (daily or by rows): drift per feature (PSI, "
        "Kolmogorov-Smirnov, chi-square, Benjamini-Hochberg across features), drift of the "
        "model's score, measured metrics with intervals where labels arrived (joined by "
        "request id), and performance estimated from the model's confidence (CBPE) before "
        "they do, for every declared slice too. Writes results.json with a watch section, "
        "watch.md and watch.html into --out. With --github, carries out the actions of "
        "watch.actions in mlci.yaml: the model's issue, a status on the production ref, and "
        "when a rule fires, a workflow dispatch or a pull request. Exits 1 when a rule fired "
        "in the latest window (0 with --exit-zero).",
    )
    config_arg(p)
    p.add_argument("-o", "--out", type=Path, default=Path("mlci-watch"), metavar="DIR",
                   help="output folder (default: mlci-watch)")  # fmt: skip
    p.add_argument(
        "--sample", metavar="PATH", help="sample file, folder or glob (default: watch.sample)"
    )
    p.add_argument(
        "--labels", type=Path, metavar="FILE", help="labels file (default: watch.labels.path)"
    )
    p.add_argument("--window", metavar="SPEC", help="'daily' or 'N rows' (default: watch.window)")
    p.add_argument(
        "--model", metavar="NAME", help="model to watch (default: watch.model, else the first)"
    )
    p.add_argument(
        "--previous",
        type=Path,
        metavar="FILE",
        help="an earlier results.json whose windows this sample no longer holds are kept",
    )
    p.add_argument("--github", action="store_true", help="carry out watch.actions on GitHub")
    p.add_argument("--repo", metavar="OWNER/NAME", help="repository (default: GITHUB_REPOSITORY)")
    p.add_argument("--dry-run", action="store_true", help="with --github: say what would be done")
    p.add_argument("--exit-zero", action="store_true", help="exit 0 even when a rule fired")
    quiet_arg(p)
    p.set_defaults(run=run_watch)


def run_watch(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    from mlci.commands._base import load_config
    from mlci.files import check_out_dir, write_atomic
    from mlci.results import dumps, load
    from mlci.watch.analysis import WatchOptions
    from mlci.watch.analysis import run_watch as analyse
    from mlci.watch.report import render_html, render_markdown

    env = os.environ if env is None else env
    check_out_dir(args.out)
    loaded = load_config(args.config)
    previous = load(args.previous) if args.previous else None
    options = WatchOptions(
        sample=args.sample, labels=args.labels, window=args.window, model=args.model
    )
    with progress_reporter(args.quiet) as progress:
        document = analyse(loaded, options, progress, previous)
    watch = document.watch
    assert watch is not None
    report = render_markdown(document)
    write_atomic(args.out / "results.json", dumps(document))
    write_atomic(args.out / "watch.md", report)
    write_atomic(args.out / "watch.html", render_html(document))
    latest = watch.latest
    print(
        f"{document.model.name}: {watch.status}; {len(watch.windows)} window(s), "
        f"latest {latest.key if latest else 'none'}"
    )
    for alarm in watch.alarms:
        print(f"  alarm {alarm.rule}: {alarm.message}")
    set_outputs(
        {"status": watch.status, "results-path": str(args.out / "results.json"),
         "report-path": str(args.out / "watch.md")},
        env,
    )  # fmt: skip
    if args.github:
        _github(args, env, loaded, document, report)
    return 1 if watch.status == "alarm" and not args.exit_zero else 0


def _github(args: argparse.Namespace, env: Mapping[str, str], loaded: Any, document: Any,
            report: str) -> None:  # fmt: skip
    from mlci.github.client import GitHubClient
    from mlci.github.context import from_environment
    from mlci.watch.publish import publish

    watch_cfg = loaded.config.watch
    actions = watch_cfg.actions
    wanted = [
        name
        for name, value in (("issue", actions.issue), ("status", actions.status),
                            ("dispatch", actions.dispatch), ("pull request", actions.pull_request))
        if value is not None
    ]  # fmt: skip
    if not wanted:
        print("no actions in watch.actions; nothing to do on GitHub", file=sys.stderr)
        return
    context = from_environment(env).with_overrides(repository=args.repo)
    if args.dry_run:
        print(f"would carry out on {context.repository or '(no repository)'}: {', '.join(wanted)}")
        return
    context.require_repository()
    client = GitHubClient.from_environment(env)
    done = publish(
        client, context.owner, context.repo, document, actions, report=report,
        run_url=context.run_url,
    )  # fmt: skip
    for line in done.lines:
        print(line)
