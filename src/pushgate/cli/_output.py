"""Small printing helpers shared by the CLI commands."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Protocol

from pushgate.progress import Progress, TerminalProgress


def emit_json(doc: Any) -> None:
    """Exactly one JSON document on stdout."""
    json.dump(doc, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


class ValidatorResult(Protocol):
    """A validator's result (evaluate, infra-validate)."""

    notes: list[str]

    def to_json(self) -> dict[str, Any]: ...

    def to_text(self) -> str: ...


def emit_verdict(result: ValidatorResult, as_json: bool) -> None:
    """A validator's notes on stderr, then its result on stdout: one JSON line, or text."""
    for note in result.notes:
        print(f"pushgate: {note}", file=sys.stderr)
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        sys.stdout.write(result.to_text())


def warn(message: str) -> None:
    print(f"pushgate: warning: {message}", file=sys.stderr)


def progress_for(enabled: bool = True) -> Progress:
    """A terminal bar when stderr is a terminal, else nothing. The bar appears for phases longer
    than ``PUSHGATE_PROGRESS_DELAY`` seconds (default 0.5; 0: every phase)."""
    if not (enabled and sys.stderr.isatty()):
        return Progress()
    try:
        delay = float(os.environ.get("PUSHGATE_PROGRESS_DELAY", "0.5"))
    except ValueError:
        delay = 0.5
    return TerminalProgress(delay=delay)


def add_json(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def add_storage_options(parser: Any) -> None:
    parser.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an object-store option (e.g. endpoint=http://127.0.0.1:9000, region=us-east-1); "
        "repeatable; credentials are better left to the environment",
    )


def storage_options(args: Any) -> dict[str, str]:
    from pushgate.errors import UsageError

    out: dict[str, str] = {}
    for item in getattr(args, "storage_option", []) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option needs KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out
