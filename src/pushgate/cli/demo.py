"""``pushgate demo``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pushgate.cli._output import add_json, emit_json


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run a whole validate-then-push story on a bundled tiny SavedModel",
        description="Make TFX-shaped artifacts (Model, ModelBlessing, InfraBlessing) from a "
        "bundled SavedModel, push them into DIR/serving/demo_model, push the same model "
        "again (nothing is copied), try a rejected model (not pushed), then list the versions.",
    )
    p.add_argument(
        "dir",
        nargs="?",
        default="pushgate-demo",
        metavar="DIR",
        help="working directory for the demo (default: ./pushgate-demo)",
    )
    add_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pushgate.demo import run_demo

    demo = run_demo(Path(args.dir))
    if args.json:
        emit_json(
            {
                "base": str(demo.base),
                "steps": [{"step": name, **r.to_json()} for name, r in demo.steps],
                "versions": [v.to_json() for v in demo.versions],
            }
        )
        return 0
    print(f"pushgate demo in {demo.workdir}\n")
    for name, r in demo.steps:
        status = "already there" if r.already_present else ("PUSHED" if r.pushed else "NOT PUSHED")
        print(f"- {name}: {status}" + (f" -> {r.destination}" if r.pushed else ""))
        print(f"    {r.reason}")
        if r.pushed_model:
            print(f"    PushedModel artifact written to {r.pushed_model}")
    print(f"\n$ pushgate versions {demo.base}")
    from pushgate.cli.versions import run as versions

    versions(argparse.Namespace(base=str(demo.base), json=False, storage_option=[]))
    return 0
