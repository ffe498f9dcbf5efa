"""What every command shares: the parser type, common arguments, progress, outputs, exits.

Only the command layer prints and decides exit codes; everything it calls raises.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import UsageError

if TYPE_CHECKING:
    from mlci.config import LoadedConfig
    from mlci.results import Results

EXIT_CODES = """exit codes:
  0  everything ran (with a gate: the decision is promote, or hold without --fail-on hold)
  1  a check failed, the gate blocked (or held, with --fail-on hold), or mlci itself failed
  2  bad usage, configuration or input (the message names the file, field or value)"""

Progress = Callable[[str], None]
Subparsers = "argparse._SubParsersAction[Parser]"


class Parser(argparse.ArgumentParser):
    """argparse that raises a UsageError (exit 2, one line) instead of printing usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", tip=f"see '{self.prog} --help'")


def command(sub: Any, name: str, help_text: str, description: str) -> Parser:
    """A subcommand with the shared epilog."""
    parser: Parser = sub.add_parser(
        name,
        help=help_text,
        description=description,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def config_arg(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path(".") if required else None,
        metavar="PATH",
        help="mlci.yaml, or a folder holding one (default: the current folder)"
        if required
        else "mlci.yaml, or a folder holding one (default: ./mlci.yaml when there is one)",
    )


def fail_on_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fail-on",
        choices=["block", "hold", "never"],
        default=None,
        help="gate decisions that exit 1: 'block' (default, or gate.fail_on in mlci.yaml), "
        "'hold' to fail on inconclusive or missing evidence too, 'never' to only report",
    )


def templates_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--templates",
        type=Path,
        metavar="DIR",
        help="folder of Jinja2 templates searched before the packaged ones "
        "(default: report.templates in mlci.yaml)",
    )


def quiet_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress lines, only results and errors"
    )


def out_file_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o", "--out", type=Path, metavar="FILE", help="write here instead of standard output"
    )


def results_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--results", type=Path, metavar="FILE", help=what)


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
        start = time.perf_counter()
        yield lambda message: print(
            f"mlci [{time.perf_counter() - start:6.1f}s] {message}", file=sys.stderr, flush=True
        )


def write_or_print(text: str, out: Path | None) -> None:
    if out:
        from mlci.files import write_atomic

        write_atomic(out, text)
    else:
        sys.stdout.write(text)


def set_outputs(values: Mapping[str, object], env: Mapping[str, str] | None = None) -> None:
    """Step outputs for GitHub Actions (GITHUB_OUTPUT); nothing outside Actions."""
    from mlci.github.workflow import set_outputs as write

    write(values, os.environ if env is None else env)


def load_config(path: Path) -> LoadedConfig:
    from mlci.config import load_config as load

    return load(path)


def optional_config(path: Path | None) -> LoadedConfig | None:
    """mlci.yaml when given, or the one in the current folder; None when there is none."""
    from mlci.config import CONFIG_NAMES

    if path is not None:
        return load_config(path)
    for name in CONFIG_NAMES:
        if Path(name).is_file():
            return load_config(Path(name))
    return None


def gate_fails(document: Results, fail_on: str | None) -> bool:
    """Whether the document's gate decision makes the command exit 1 (False without a gate)."""
    if document.gate is None:
        return False
    return document.gate.fails(fail_on)  # type: ignore[arg-type]


def update_results(path: Path | None, update: Callable[[Results], Results]) -> None:
    """Apply ``update`` to the results file at ``path`` (when given) and write it atomically."""
    if path is None:
        return
    from mlci.files import write_atomic
    from mlci.results import dumps, load

    write_atomic(path, dumps(update(load(path))))
