"""Arguments that several subcommands share, each defined once.

Every helper adds its arguments where it is called, so a command's ``--help`` lists them in the
order its ``register`` calls them. Where commands word an option's help differently, the helper
takes the text.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pushgate.cli._output import add_json, add_storage_options

Handler = Callable[[argparse.Namespace], int]


def csv_list(value: str) -> tuple[str, ...]:
    """An argparse type: comma-separated names, blanks dropped."""
    return tuple(v.strip() for v in value.split(",") if v.strip())


# -- destination commands -----------------------------------------------------------------------
def add_base_argument(parser: Any) -> None:
    parser.add_argument("base", metavar="BASE", help="the destination's base directory or URL")


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def add_hook_timeout(parser: Any) -> None:
    from pushgate.hook import HOOK_TIMEOUT_S, OUTPUT_TAIL

    parser.add_argument(
        "--hook-timeout",
        metavar="SECONDS",
        type=positive_seconds,
        default=HOOK_TIMEOUT_S,
        help=f"how long the --on-publish hook may run before it is killed and counted as failed "
        f"(default: {HOOK_TIMEOUT_S:g}); pushgate waits for the hook's own process, not for "
        f"what it starts in the background; the last {OUTPUT_TAIL // 1024} KiB of its output "
        "are kept",
    )


def add_no_progress(parser: Any) -> None:
    parser.add_argument("--no-progress", action="store_true", help="never draw a progress bar")


def add_destination_command(
    sub: Any,
    name: str,
    handler: Handler,
    *,
    help: str,
    description: str,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    """A subcommand on one destination: BASE, then ``options``' own arguments, then
    ``--storage-option`` and ``--json``; ``args.handler`` is ``handler``."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description)
    add_base_argument(p)
    if options is not None:
        options(p)
    add_storage_options(p)
    add_json(p)
    p.set_defaults(handler=handler)
    return p


# -- model-running commands (evaluate, infra-validate) ------------------------------------------
def add_model_option(parser: Any, *, help: str, required: bool = False, urls: bool = False) -> None:
    """``--model``; ``urls``: a URL is kept as given, for the command to accept or refuse."""
    parser.add_argument(
        "--model",
        metavar="PATH",
        type=path_or_url_arg if urls else Path,
        required=required,
        help=help,
    )


def add_output_option(parser: Any, *, help: str) -> None:
    parser.add_argument("--output", "-o", type=Path, required=True, metavar="DIR", help=help)


def add_examples_option(parser: Any, *, help: str, urls: bool = False) -> None:
    """``--examples``; ``urls``: an object-store URL is accepted (kept as given)."""
    parser.add_argument(
        "--examples",
        metavar="PATH|URL" if urls else "PATH",
        type=path_or_url_arg if urls else Path,
        help=help,
    )


def path_or_url_arg(value: str) -> Path | str:
    from pushgate.remote import path_or_url

    return path_or_url(value)


def add_example_columns(parser: Any, *, label_help: str, features_help: str) -> None:
    """``--label``, ``--split`` and ``--features``: which parts of the examples to use."""
    parser.add_argument("--label", default="label", metavar="NAME", help=label_help)
    parser.add_argument(
        "--split",
        default="eval",
        metavar="NAME",
        help="split of a TFX Examples artifact (default: eval)",
    )
    parser.add_argument("--features", metavar="A,B,...", type=csv_list, help=features_help)


def add_tag_set_option(parser: Any) -> None:
    parser.add_argument(
        "--tag-set",
        metavar="TAGS",
        type=csv_list,
        default=("serve",),
        help="SavedModel tag set, comma-separated (default: serve)",
    )


def add_deadline_option(parser: Any, *, default: float, help: str) -> None:
    parser.add_argument("--deadline", metavar="SECONDS", type=float, default=default, help=help)


def add_python_option(parser: Any) -> None:
    parser.add_argument(
        "--python", help="Python interpreter with the model's runtime installed (default: this one)"
    )


def add_result_json(parser: Any) -> None:
    """``--json`` as the validators word it."""
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
