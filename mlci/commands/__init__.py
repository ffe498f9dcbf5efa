"""The command line: every command's arguments, what it prints, and its exit code.

Each module registers its commands; the library they call raises and never prints.
Heavy libraries are imported inside the commands, so ``mlci --help`` starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mlci import __version__
from mlci.commands import (
    canary,
    check,
    convert,
    documents,
    extras,
    github,
    image,
    init,
    promote,
    supply,
    watch,
)
from mlci.commands._base import EXIT_CODES, Parser
from mlci.errors import MlciError

# In the order `mlci --help` lists them.
MODULES = (init, check, documents, convert, github, image, supply, promote, extras, watch, canary)


def build_parser() -> Parser:
    parser = Parser(
        prog="mlci",
        description="Continuous integration for machine-learning models: evaluate a candidate "
        "against the production baseline, overall and on slices, with confidence intervals; "
        "test, benchmark, build, sign and gate it.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mlci {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the traceback of any error"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run mlci; return the exit code."""
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in given or "--verbose" in given
    try:
        args = parser.parse_args(given)
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
