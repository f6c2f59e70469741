"""``pushgate status``."""

from __future__ import annotations

import argparse
from typing import Any

from pushgate.cli._options import add_destination_command
from pushgate.cli._output import emit_json, storage_options


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--serve",
        metavar="URL",
        action="append",
        default=[],
        help="a server and model to compare with: triton+http://HOST:PORT/MODEL or "
        "tfserving+http://HOST:PORT/MODEL (https likewise); repeatable",
    )


def register(sub: Any) -> None:
    add_destination_command(
        sub,
        "status",
        run,
        help="published and withdrawn versions next to what servers report loaded and ready",
        description="List the versions at BASE (published, withdrawn, unrecorded) and, for each "
        "--serve server, the state it reports for each; report drift: the newest published "
        "version not ready, or a server serving a version that is withdrawn or not published. "
        "Exit 1 on drift or when a server does not answer.",
        options=_options,
    )


def run(args: argparse.Namespace) -> int:
    from pushgate.serving.status import status

    report = status(args.base, tuple(args.serve), storage_options(args))
    if args.json:
        emit_json(report.to_json())
        return 0 if report.ok else 1
    servers = [s.server for s in report.servers]
    print(f"{report.base}")
    for doc in reversed(report.versions):
        if doc["published"]:
            what = "published" + (" (newest)" if doc["newest"] else "")
        elif doc["withdrawn"]:
            what = f"withdrawn: {doc['withdrawn_reason'] or '?'}"
        else:
            what = "; ".join(doc["notes"]) or "-"
        labelled = f" [{', '.join(doc['labels'])}]" if doc.get("labels") else ""
        print(f"  {doc['version']:<12} {what}{labelled}")
        for server in servers:
            seen = doc["servers"].get(server)
            state = "not loaded" if seen is None else seen["state"]
            text = " ".join(str(seen.get("reason") or "").split()) if seen else ""
            reason = f" ({text})" if text else ""
            print(f"  {'':<12}   {server}: {state}{reason}")
    for view in report.servers:
        if view.error:
            print(f"ERROR  {view.error}")
    for line in report.drift:
        print(f"DRIFT  {line}")
    return 0 if report.ok else 1
