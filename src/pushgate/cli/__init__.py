"""pushgate's command line: parse, call the API, print, choose the exit code.

Exit codes (one table, here): 0 done (including a deliberate "not pushed: not blessed");
2 bad input or usage (``UsageError``, ``InputError``, ``MissingDependencyError``); 3 a verify
mismatch (``IntegrityError``); 1 anything else; 141 stdout was closed before everything was
printed (``pushgate versions | head``). Tracebacks only with ``--traceback``. Every error goes
out through :func:`fail`, scrubbed of secrets.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from pushgate import __version__
from pushgate.errors import PushgateError

#: ``key=value``, ``key:value`` or ``--option=value`` (not ``s3://...``): the value is hidden
_KEY_VALUE = re.compile(r"^(-*[A-Za-z_][\w.-]*(?:=|:(?!//))).+$", re.S)
#: the exit code of a command whose reader went away (128 + SIGPIPE, as the shell reports it)
EXIT_BROKEN_PIPE = 141

#: subcommand modules under pushgate.cli, each with register(subparsers), and the commands each
#: registers, in the order ``pushgate --help`` lists them. A module imports what its commands
#: run inside their handlers, so registering costs argparse alone; ``main`` registers only the
#: module of the command named on the line, all of them for ``--help``, ``--version`` or a typo.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "push": ("push",),
    "versions": ("versions",),
    "demo": ("demo",),
    "lifecycle": ("verify", "rollback", "prune", "pin", "unpin", "history"),
    "evaluate": ("evaluate",),
    "infra_validate": ("infra-validate",),
    "status": ("status",),
    "adopt": ("adopt",),
    "labels": ("label", "labels", "promote"),
}
_MODULE_OF = {command: module for module, cs in COMMAND_MODULES.items() for command in cs}


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors go through the scrubber like every other error
    (subcommand parsers are made of the same class)."""

    def error(self, message: str) -> NoReturn:
        from pushgate.secrets import scrub

        super().error(scrub(message))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``command`` (a command's name), only that command's module is
    registered: what it parses and prints for that command is the same."""
    parser = _Parser(
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
    module = _MODULE_OF.get(command or "")
    for name in COMMAND_MODULES if module is None else (module,):
        importlib.import_module(f"pushgate.cli.{name}").register(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse; an argument no parser knows is reported with the usage of its subcommand."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        owner = sub.choices.get(getattr(args, "command", None) or "", parser)
        # a mistyped option's value may be a secret (--storage-opton secret_access_key=...)
        shown = [_KEY_VALUE.sub(r"\1***", a) for a in extra]
        owner.error(f"unrecognized arguments: {' '.join(shown)}")
    return args


def fail(message: str) -> None:
    """The one place errors are printed: on stderr, scrubbed of secrets."""
    from pushgate.secrets import scrub

    print(f"pushgate: error: {scrub(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # --traceback is global but accepted anywhere on the line
    traceback = "--traceback" in argv
    argv = [a for a in argv if a != "--traceback"]
    # the command is the first word (the only global options are --help and --version, which
    # need every command, and --traceback, already taken out)
    parser = build_parser(argv[0] if argv else None)
    args = _parse(parser, argv)
    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        # the reader went away (| head): stop quietly, and keep Python's exit flush quiet too
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except PushgateError as e:
        if traceback:
            raise
        fail(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        print("pushgate: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still no traceback unless asked, and never a secret
        if traceback:
            raise
        fail(
            f"internal error: {type(e).__name__}: {e} (this is a bug in pushgate; run again "
            "with --traceback and report it)"
        )
        return 1
