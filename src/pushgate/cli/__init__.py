"""pushgate's command line: parse, call the API, print, choose the exit code.

Exit codes (one table, here): 0 done (including a deliberate "not pushed: not blessed");
2 bad input or usage (``UsageError``, ``InputError``, ``MissingDependencyError``); 3 a verify
mismatch (``IntegrityError``); 1 anything else. Tracebacks only with ``--traceback``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pushgate import __version__
from pushgate.errors import PushgateError

#: subcommand modules under pushgate.cli; each has register(subparsers)
COMMAND_MODULES = (
    "push",
    "versions",
    "demo",
    "lifecycle",
    "evaluate",
    "infra_validate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pushgate",
        description="Push validated ML models into TF Serving / Triton version folders, safely.",
        epilog="Exit codes: 0 done (also 'not pushed: not blessed'), 1 failure, 2 bad input or "
        "usage, 3 verify found a mismatch. Run 'pushgate COMMAND --help' for a command.",
    )
    parser.add_argument("--version", action="version", version=f"pushgate {__version__}")
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="show the Python traceback of an error (accepted anywhere on the line)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"pushgate.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # --traceback is global but accepted anywhere on the line
    traceback = "--traceback" in argv
    argv = [a for a in argv if a != "--traceback"]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except PushgateError as e:
        if traceback:
            raise
        print(f"pushgate: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("pushgate: interrupted", file=sys.stderr)
        return 130
