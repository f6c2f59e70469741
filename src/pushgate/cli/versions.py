"""``pushgate versions``."""

from __future__ import annotations

import argparse
from typing import Any

from pushgate.cli._options import add_destination_command
from pushgate.cli._output import emit_json, storage_options


def register(sub: Any) -> None:
    add_destination_command(
        sub,
        "versions",
        run,
        help="list the versions at a destination, from its journal",
        description="List the versions published under BASE, from the journal's index (a few "
        "small reads, however long the history): which one TF Serving serves by default (the "
        "highest), which numeric directories have no pushgate record, which were withdrawn, and "
        "recorded versions missing from the store. Pruned versions are not listed: 'pushgate "
        "history' tells about them.",
    )


def run(args: argparse.Namespace) -> int:
    from pushgate.api import versions

    infos = versions(args.base, storage_options(args))
    if args.json:
        emit_json({"base": args.base, "versions": [i.to_json() for i in infos]})
        return 0
    if not infos:
        print(f"no versions under {args.base}")
        return 0
    print(f"{'':2}{'VERSION':<12} {'PUSHED AT (UTC)':<20} {'BY':<16} {'DIGEST':<20} NOTES")
    for i in reversed(infos):
        d = i.to_json()
        mark = "*" if i.serving else " "
        notes = list(i.notes)
        if i.pinned:
            notes.insert(0, "pinned")
        if d["forced"]:
            notes.insert(0, "forced")
        if d["kind"] and d["kind"] != "push":
            notes.insert(0, d["kind"])
        when = (d["pushed_at"] or "-")[:19].replace("T", " ")
        digest = (d["digest"] or "-")[:19]
        print(
            f"{mark:2}{i.version:<12} {when:<20} {(d['user'] or '-'):<16} {digest:<20} "
            f"{'; '.join(notes)}"
        )
    print("* = the version TF Serving serves by default (the highest)")
    return 0
