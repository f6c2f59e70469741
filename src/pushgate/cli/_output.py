"""Small printing helpers shared by the CLI commands."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Protocol

from pushgate.progress import Progress, TerminalProgress
from pushgate.secrets import remember, remember_options, scrub, scrub_json


def emit_json(doc: Any) -> None:
    """Exactly one JSON document on stdout, scrubbed of secrets."""
    doc = scrub_json(json.loads(json.dumps(doc, default=str)))
    json.dump(doc, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


class ValidatorResult(Protocol):
    """A validator's result (evaluate, infra-validate)."""

    notes: list[str]

    def to_json(self) -> dict[str, Any]: ...

    def to_text(self) -> str: ...


def emit_verdict(result: ValidatorResult, as_json: bool) -> None:
    """A validator's notes on stderr, then its result on stdout: one JSON line, or text."""
    for note in result.notes:
        print(f"pushgate: {scrub(note)}", file=sys.stderr)
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        sys.stdout.write(result.to_text())


def warn(message: str) -> None:
    print(f"pushgate: warning: {scrub(message)}", file=sys.stderr)


#: how many lines of a failed hook's output are shown on the terminal
HOOK_LINES_SHOWN = 40


def show_hook_output(hook: dict[str, Any] | None, where: str) -> None:
    """The tail of a failed ``--on-publish`` hook's output, on stderr (already scrubbed)."""
    if not hook or hook.get("ok") or not hook.get("output", "").strip():
        return
    lines = hook["output"].rstrip("\n").splitlines()
    shown = lines[-HOOK_LINES_SHOWN:]
    more = (
        f", last {len(shown)} of {len(lines)} lines kept; all in --json"
        if len(shown) < len(lines)
        else ""
    )
    print(f"pushgate: output of the --on-publish hook at {where}{more}:", file=sys.stderr)
    for line in shown:
        print(f"  | {line}", file=sys.stderr)


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
        "repeatable; credentials are better left to the environment (values are shown as *** "
        "in every message)",
    )


def storage_options(args: Any) -> dict[str, str]:
    from pushgate.errors import UsageError

    out: dict[str, str] = {}
    items = getattr(args, "storage_option", []) or []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            remember([item, *item.split(":", 1)[1:]])  # a mistyped secret is still a secret
            name = item.split(":", 1)[0] if ":" in item else ""
            hint = f" (did you mean {name}=...?)" if name.isidentifier() else ""
            raise UsageError(
                f"--storage-option needs KEY=VALUE; one of them has no '='{hint}. Its value is "
                "not shown, as it may be a secret"
            )
        out[key.strip()] = value
    remember_options(out)
    return out
