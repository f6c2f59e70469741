"""``pushgate adopt``."""

from __future__ import annotations

import argparse
from typing import Any

from pushgate.cli._options import add_destination_command
from pushgate.cli._output import emit_json, storage_options


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "versions",
        nargs="*",
        metavar="VERSION",
        help="versions to adopt (default: every one "
        "that exists under BASE without a pushgate record)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list what would be adopted; hash and write nothing"
    )
    p.add_argument(
        "--any-model",
        action="store_true",
        help="adopt directories that hold no servable model (no saved_model.pb, .onnx, ...)",
    )


def register(sub: Any) -> None:
    add_destination_command(
        sub,
        "adopt",
        run,
        help="record versions pushgate did not push (e.g. TFX's Pusher's)",
        description="Hash existing numeric versions under BASE that have no pushgate record and "
        "record them (provenance 'adopted', who, when), so verify, rollback --to and prune treat "
        "them like pushed versions. Nothing in the versions is changed. Exit 0 when every "
        "version asked for was adopted (or already recorded), 1 when one was refused.",
        options=_options,
    )


def run(args: argparse.Namespace) -> int:
    from pushgate.adopt import AdoptRequest, adopt

    result = adopt(
        AdoptRequest(
            args.base,
            tuple(args.versions),
            dry_run=args.dry_run,
            any_model=args.any_model,
            storage_options=storage_options(args),
        )
    )
    refused = [v for v in result.refused if v.skipped != "already recorded"]
    if args.json:
        emit_json(result.to_json())
        return 1 if refused else 0
    if not result.versions:
        print(f"nothing to adopt under {result.base}: every version there has a record")
        return 0
    for v in result.versions:
        if v.adopted:
            print(f"adopted {v.version}: {v.files} files, {v.bytes} bytes, {v.digest}")
        elif v.skipped:
            print(f"skipped {v.version}: {v.skipped}")
        else:
            print(f"would adopt {v.version}: {v.files} files, {v.bytes} bytes")
    return 1 if refused else 0
