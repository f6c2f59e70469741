"""``pushgate push``."""

from __future__ import annotations

import argparse
from typing import Any

from pushgate.cli._options import add_hook_timeout, add_no_progress
from pushgate.cli._output import (
    add_json,
    add_storage_options,
    emit_json,
    progress_for,
    show_hook_output,
    storage_options,
    warn,
)
from pushgate.cli._serve import add_serve_options, print_reports, serve_request
from pushgate.cli.labels import add_label_options, push_with_label
from pushgate.secrets import scrub


def register(sub: Any) -> None:
    p = sub.add_parser(
        "push",
        help="push a model when its blessings allow it",
        description="Check the blessings (TFX's truth table), then publish the model as a new "
        "numbered version under each --to BASE: staged under BASE/.pushgate, made durable, "
        "published in one atomic step, recorded in BASE's journal.",
    )
    p.add_argument(
        "--model",
        metavar="PATH|URL",
        help="TFX Model artifact (Format-Serving/, serving_model_dir/, Estimator "
        "export/) or a bare model directory, local or s3:// gs:// az:// (downloaded only "
        "when the push goes ahead); default: <infra-blessing>/stamped_model",
    )
    p.add_argument(
        "--any-model",
        action="store_true",
        help="push a model directory that matches no known layout (SavedModel, ONNX, Triton "
        "version folder, TorchScript...; see the README); recorded. A blessing is still refused",
    )
    p.add_argument(
        "--model-blessing",
        metavar="PATH|URL",
        help="the Evaluator's ModelBlessing directory or URL (BLESSED / NOT_BLESSED)",
    )
    p.add_argument(
        "--infra-blessing",
        metavar="PATH|URL",
        help="the InfraValidator's InfraBlessing directory or URL (INFRA_BLESSED / ...)",
    )
    p.add_argument(
        "--to",
        metavar="BASE",
        action="append",
        required=True,
        help="the base directory or URL servers watch (repeat for several)",
    )
    p.add_argument(
        "--pushed-model",
        metavar="PATH|URL",
        help="write TFX's PushedModel artifact here, a directory or URL (model copy + properties)",
    )
    p.add_argument(
        "--versioning",
        choices=("auto", "sequential"),
        default="auto",
        help="auto: Unix seconds, always above the highest (default); sequential: highest + 1",
    )
    p.add_argument(
        "--force-reason",
        metavar="TEXT",
        help="push even though a blessing says no or has no verdict; recorded",
    )
    p.add_argument(
        "--allow-duplicate",
        action="store_true",
        help="publish a new version even when the newest one has identical bytes",
    )
    p.add_argument(
        "--on-publish",
        metavar="COMMAND",
        help="shell command run after each publish (env PUSHGATE_*, JSON on stdin); its "
        "failure is reported and recorded, never unpublishes",
    )
    add_hook_timeout(p)
    add_serve_options(p)
    add_label_options(p)
    add_no_progress(p)
    add_storage_options(p)
    add_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pushgate.api import push
    from pushgate.pushing import PushRequest

    request = PushRequest(
        destinations=tuple(args.to),
        model=args.model,
        model_blessing=args.model_blessing,
        infra_blessing=args.infra_blessing,
        pushed_model=args.pushed_model,
        versioning=args.versioning,
        force_reason=args.force_reason,
        allow_duplicate=args.allow_duplicate,
        on_publish=args.on_publish,
        storage_options=storage_options(args),
        hook_timeout=args.hook_timeout,
        any_model=args.any_model,
    )
    progress = progress_for(not args.no_progress and not args.json)
    labelled = push_with_label(args, request, progress)
    result = labelled[0] if labelled else push(request, progress, serve_request(args))
    for w in result.warnings:
        warn(w)
    if args.json:
        emit_json({**result.to_json(), **({"labels": labelled[1]} if labelled else {})})
    else:
        verdicts = ", ".join(f"{k}={b.verdict.value}" for k, b in result.blessings.items())
        if not result.pushed:
            print("NOT PUSHED")
        for d in result.destinations:
            if d.error:
                print(f"FAILED    {d.url}: {scrub(d.error)}")
            elif d.already_present:
                print(f"UNCHANGED {d.destination} (version {d.version} already holds these bytes)")
            elif d.pushed:
                print(f"PUSHED    {d.destination} (version {d.version})")
            for line in d.recovered:
                print(f"          recovered: {line}")
            show_hook_output(d.hook, d.url)
        print(f"reason:   {result.reason}")
        print(
            f"model:    {result.model}"
            + (f" [{result.model_layout}]" if result.model_layout else "")
            + (f" ({result.model_kind})" if result.model_kind else "")
            + (" --any-model" if result.any_model else "")
        )
        print(f"blessings: {verdicts}")
        if result.digest:
            print(f"digest:   {result.digest}")
        if result.pushed_model:
            print(f"pushed model artifact: {result.pushed_model}")
        print_reports(result.serve)
        for line in labelled[2] if labelled else []:
            print(line)
    return 1 if result.failed else 0
