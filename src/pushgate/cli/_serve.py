"""``--serve`` and its options, shared by ``push`` and ``rollback``."""

from __future__ import annotations

import argparse
from typing import Any


def add_serve_options(parser: Any) -> None:
    g = parser.add_argument_group("confirm with the model server")
    g.add_argument(
        "--serve",
        metavar="URL",
        action="append",
        default=[],
        help="a server and model that must serve the new version: triton+http://HOST:PORT/MODEL "
        "(KServe v2 / Triton) or tfserving+http://HOST:PORT/MODEL (TF Serving REST), https "
        "likewise, ?mode=poll|explicit (default: ask it to load, wait if it polls); repeatable",
    )
    g.add_argument(
        "--serve-timeout",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="how long each server may take to make the version ready (default 60)",
    )
    g.add_argument(
        "--smoke-request",
        metavar="FILE",
        help="a JSON request the new version must answer with success (a KServe v2 inference "
        "request, or a TF Serving predict request)",
    )
    g.add_argument(
        "--on-unhealthy",
        choices=("withdraw", "keep"),
        default="withdraw",
        help="withdraw (default): take a version that does not serve out of sight so the "
        "previous one serves again, and record why; keep: leave it. Either way exit 1",
    )


def serve_request(args: argparse.Namespace) -> Any:
    """The :class:`pushgate.serving.ServeRequest` the options ask for, or None."""
    from pushgate.errors import UsageError

    if not args.serve:
        if args.smoke_request:
            raise UsageError("--smoke-request needs --serve URL (the server to send it to)")
        return None
    from pushgate.serving import ServeRequest

    return ServeRequest(
        servers=tuple(args.serve),
        timeout=args.serve_timeout,
        smoke_request=args.smoke_request,
        on_unhealthy=args.on_unhealthy,
    )


def print_reports(reports: list[Any]) -> None:
    for report in reports:
        for line in report.lines():
            print(line)
