"""``mlci comment`` and ``mlci publish``: the command-line side of the GitHub integration."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.commands._base import command, set_outputs
from mlci.errors import UsageError

if TYPE_CHECKING:
    from mlci.results import Results

SEVERITY = {"block": 3, None: 2, "hold": 1, "promote": 0}


def register(sub: Any) -> None:
    """Add the ``comment`` and ``publish`` subcommands."""
    comment = command(
        sub,
        "comment",
        "post or update the pull request comment of each model",
        "Create or update one comment per model and workflow on the pull request, found by a "
        "hidden marker and edited in place, never duplicated (concurrent runs converge to one "
        "comment with the newest results). Takes results.json files (rendered here) or "
        "Markdown reports (posted as they are; name the model with --model). The repository, "
        "pull request and run come from the GitHub Actions environment, including "
        "workflow_run events; the token from MLCI_GITHUB_TOKEN, GITHUB_TOKEN or GH_TOKEN.",
    )
    comment.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="RESULTS_OR_REPORT",
        help="results.json files (a folder stands for every results.json in it), or Markdown "
        "reports",
    )
    comment.add_argument("--model", metavar="NAME", help="the model a Markdown report is about")
    comment.add_argument(
        "--workflow",
        metavar="NAME",
        help="workflow name in the comment's marker (default: the triggering workflow)",
    )
    _target_args(comment)
    comment.add_argument(
        "--pr", type=int, metavar="NUMBER", help="pull request number (default: from the event)"
    )
    comment.add_argument(
        "--author",
        metavar="LOGIN",
        help="the login the token posts as; only its comments are ever updated (default: the "
        "token's user, or github-actions[bot] for an installation token)",
    )
    comment.add_argument(
        "--skip-without-pr",
        action="store_true",
        help="exit 0 with a note when the run has no pull request (for example on push)",
    )
    comment.set_defaults(run=run_comment)

    publish = command(
        sub,
        "publish",
        "publish the gate decision as a check run (or commit status), outputs and summary",
        "Report each model's gate decision on the commit: a check run whose conclusion follows "
        "the gate (promote: success, hold: neutral, block: failure, no gate: neutral), with "
        "annotations; where the token may not create check runs, a commit status (hold and no "
        "gate: success with the decision in the description). In GitHub Actions it also writes "
        "the step outputs decision, results-path, report-path and image-digest, and appends "
        "the report to the job summary. Exits 1 when a gate blocks, unless --exit-zero.",
    )
    publish.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="RESULTS",
        help="results.json files (a folder stands for every results.json in it)",
    )
    _target_args(publish)
    publish.add_argument(
        "--name",
        default="mlci",
        metavar="NAME",
        help="check name prefix; each model gets 'NAME / MODEL' (default: mlci)",
    )
    publish.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="report to name in the report-path output (default: report.md beside the results)",
    )
    publish.add_argument(
        "--image-digest",
        metavar="DIGEST",
        help="image digest for the image-digest output (default: from the results)",
    )
    publish.add_argument(
        "--status-only", action="store_true", help="set a commit status, not a check run"
    )
    publish.add_argument(
        "--no-check",
        action="store_true",
        help="publish nothing to the API: only outputs and the job summary",
    )
    publish.add_argument(
        "--no-summary", action="store_true", help="do not append to the job summary"
    )
    publish.add_argument("--exit-zero", action="store_true", help="exit 0 even when a gate blocks")
    publish.set_defaults(run=run_publish)


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", metavar="OWNER/NAME", help="repository (default: GITHUB_REPOSITORY)")
    p.add_argument("--sha", metavar="COMMIT", help="commit (default: the pull request's head)")
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be posted; send nothing"
    )


# -- inputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One file given on the command line: a results document or a Markdown report."""

    path: Path
    model: str
    content: str
    version: str
    document: Results | None


def read_source(path: Path, model: str | None) -> Source:
    """Load a results.json (rendered) or a Markdown report (as it is)."""
    if path.suffix.lower() == ".json":
        from mlci.report import render_comment
        from mlci.results import load

        document = load(path)
        return Source(
            path=path,
            model=document.model.name,
            content=render_comment(document),
            version=document.created,
            document=document,
        )
    if not model:
        raise UsageError(
            f"{path}: a Markdown report does not say which model it is about",
            tip="pass --model NAME, or give the results.json instead",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such report") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a readable report ({exc})") from None
    return Source(path=path, model=model, content=text, version=_now(), document=None)


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for every results.json below it."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(path.rglob("results.json"))
            if not inside:
                raise UsageError(
                    f"{path}: no results.json in this folder",
                    tip="run mlci check first, or name the results files",
                )
            found.extend(inside)
        else:
            found.append(path)
    return found


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _context(args: argparse.Namespace, env: Mapping[str, str]) -> Any:
    from mlci.github.context import from_environment

    return from_environment(env).with_overrides(
        repository=args.repo,
        sha=args.sha,
        workflow=getattr(args, "workflow", None),
        pull_number=getattr(args, "pr", None),
    )


def _client(env: Mapping[str, str]) -> Any:
    from mlci.github.client import GitHubClient

    return GitHubClient.from_environment(env)


def _footer(context: Any) -> str:
    parts = ["mlci"]
    if context.run_url:
        parts.append(f"[workflow run]({context.run_url})")
    if context.sha:
        parts.append(f"commit `{context.sha[:12]}`")
    return "\n\n<sub>" + " · ".join(parts) + "</sub>\n"


# -- mlci comment -------------------------------------------------------------------------


def run_comment(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    from mlci.github.comment import Posting, compose, marker, post_all

    env = os.environ if env is None else env
    sources = [read_source(path, args.model) for path in expand_paths(args.paths)]
    context = _context(args, env)
    workflow = context.workflow or "mlci"
    if args.dry_run:
        for source in sources:
            body = compose(
                marker(source.model, workflow), source.version, source.content + _footer(context)
            )
            print(
                f"{source.model}: would post to pull request {context.pull_number or '(unknown)'}:"
            )
            sys.stdout.write(body if body.endswith("\n") else body + "\n")
        return 0
    if context.pull_number is None and context.event_name == "workflow_run":
        from mlci.github.context import find_pull_request

        context = find_pull_request(context, _client(env))
    elif context.pull_number is None and context.event_name == "push":
        from mlci.github.context import find_merged_pull_request

        context = find_merged_pull_request(context, _client(env))
    if context.pull_number is None and args.skip_without_pr:
        print(
            f"no pull request for this run (event {context.event_name or 'unknown'}); comment skipped"
        )
        return 0
    number = context.require_pull_number()
    context.require_repository()
    _print_posted(
        post_all(
            _client(env),
            context.owner,
            context.repo,
            number,
            [Posting(s.model, s.version, s.content + _footer(context)) for s in sources],
            workflow=workflow,
            author=args.author,
            overflow_url=context.run_url,
            fork_repository=context.head_repository if context.from_fork else None,
        )
    )
    return 0


def _print_posted(posted: list[Any]) -> None:
    for item in posted:
        result = item.result
        extra = f", removed {len(result.deleted)} duplicate(s)" if result.deleted else ""
        print(f"{item.model}: comment {result.action}: {result.url or result.id}{extra}")
        if item.removed_at_end:
            ids = ", ".join(str(i) for i in item.removed_at_end)
            print(
                f"{item.model}: removed {len(item.removed_at_end)} extra copy(ies) of mlci's "
                f"comment that a lagging listing had hidden ({ids})"
            )


# -- mlci publish -------------------------------------------------------------------------


def gate_reasons(document: Results) -> list[str]:
    """The gate's reason, then one line per rule that did not pass."""
    gate = document.gate
    if gate is None:
        return []
    lines = [gate.reason]
    for rule in gate.rules:
        if rule.status != "pass":
            kind = "required" if rule.required else "advisory"
            lines.append(f"{rule.id} ({kind}): {rule.status}: {rule.explanation}")
    return lines


def annotations_for(document: Results, env: Mapping[str, str]) -> list[Any]:
    """Annotations on mlci.yaml: flagged slices (warning) and, when blocked, the gate's reasons."""
    from mlci.github.checks import Annotation

    config = Path(document.config.path)
    workspace = env.get("GITHUB_WORKSPACE")
    if not config.name:
        return []
    if config.is_absolute():
        if not workspace:
            return []
        try:
            config = config.relative_to(Path(workspace))
        except ValueError:
            return []
    path = config.as_posix()
    model = document.model.name
    flagged = document.evaluation.flagged if document.evaluation else []
    found: list[Annotation] = [
        Annotation(
            path,
            1,
            1,
            "warning",
            f"{model}: the candidate is worse on slice {piece.name}"
            + (f" ({piece.reason})" if piece.reason else ""),
            title="mlci: flagged slice",
        )
        for piece in flagged
    ]
    if document.gate is not None and document.gate.decision == "block":
        found.extend(
            Annotation(path, 1, 1, "failure", f"{model}: {line}", title="mlci gate: block")
            for line in gate_reasons(document) or ["the gate blocked promotion"]
        )
    return found


def _title(model: str, decision: str | None) -> str:
    if decision is None:
        return f"{model}: no gate decision in the results"
    return f"{model}: {decision}"


def run_publish(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    from mlci.github import workflow
    from mlci.github.checks import conclusion_for, publish
    from mlci.report import render_comment, render_summary
    from mlci.results import load

    env = os.environ if env is None else env
    documents = [(path, load(path)) for path in expand_paths(args.paths)]
    context = _context(args, env)
    client = None
    worst: str | None = "promote"
    blocked = False
    summaries: list[str] = []
    for _path, document in documents:
        model = document.model.name
        decision = document.gate.decision if document.gate else None
        fails = document.gate is not None and document.gate.fails()
        # a hold that fails the run (fail_on: hold) is reported as a block
        effective = "block" if decision == "hold" and fails else decision
        blocked = blocked or fails
        if SEVERITY[decision] > SEVERITY[worst]:
            worst = decision
        reasons = gate_reasons(document)
        title = _title(model, decision)
        summary = "\n".join(f"- {line}" for line in reasons) or (
            "No gate ran, so there is no decision to block on." if decision is None else title
        )
        name = f"{args.name} / {model}"
        annotations = annotations_for(document, env)
        conclusion, state = conclusion_for(effective, fork=context.from_fork)
        if args.dry_run or args.no_check:
            verb = "would publish" if args.dry_run else "not published (--no-check)"
            print(
                f"{name}: {verb}: check {conclusion} / status {state}; {len(annotations)} annotation(s)"
            )
        else:
            if client is None:
                client = _client(env)
            publication = publish(
                client,
                context.owner,
                context.repo,
                context.require_sha(),
                name=name,
                decision=effective,
                title=title,
                summary=summary,
                text=render_comment(document),
                annotations=annotations,
                details_url=context.run_url,
                external_id=f"mlci:{context.run_id or 'local'}:{context.run_attempt or '1'}:{model}",
                use_checks=not args.status_only,
                fork=context.from_fork,
            )
            note = (
                f" (check runs refused: {publication.fallback_reason})"
                if publication.fallback_reason
                else ""
            )
            print(f"{name}: {publication.kind} {publication.conclusion}{note}")
            for item in publication.unsent_annotations[:10]:
                if context.in_actions:
                    print(item.to_command())
        summaries.append(render_summary(document))
    report = args.report or (documents[0][0].parent / "report.md")
    digest = args.image_digest or next(
        (d.image.digest for _, d in documents if d.image and d.image.digest), ""
    )
    if not args.dry_run:
        set_outputs(
            {
                "decision": worst or "none",
                "results-path": "\n".join(str(p) for p, _ in documents),
                "report-path": str(report) if report.exists() or args.report else "",
                "image-digest": digest,
            },
            env,
        )
        if not args.no_summary:
            workflow.append_summary("\n\n".join(summaries), env)
    return 1 if blocked and not args.exit_zero else 0
