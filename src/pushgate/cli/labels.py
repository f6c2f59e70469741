"""``pushgate label``, ``labels`` and ``promote``; ``--label`` and ``--server-config`` for
``push`` and ``rollback``."""

from __future__ import annotations

import argparse
from typing import Any

from pushgate.cli._options import add_destination_command
from pushgate.cli._output import emit_json, storage_options
from pushgate.cli._serve import add_serve_options, print_reports, serve_request

SERVER_CONFIG_HELP = (
    "the server configuration that makes labels real, remembered at BASE for later moves "
    "(repeatable): 'triton' (the version_policy of BASE/config.pbtxt: exactly the labelled "
    "versions load), 'tfserving:PATH_OR_URL[?model=NAME&base_path=PATH]' (TF Serving's "
    "--model_config_file with version_labels), 'none' (forget them)"
)


def add_label_options(parser: Any) -> None:
    """``--label`` and ``--server-config`` for push and rollback."""
    parser.add_argument(
        "--label",
        metavar="NAME",
        help="point this label (canary, stable ...) at the new version once it serves "
        "(with --serve: once it is ready); see 'pushgate label'",
    )
    parser.add_argument(
        "--server-config", metavar="SPEC", action="append", default=[], help=SERVER_CONFIG_HELP
    )


def register(sub: Any) -> None:
    add_destination_command(
        sub,
        "label",
        run_label,
        help="point a label (stable, canary ...) at a version, or remove it",
        description="Point label NAME at VERSION (a version published at BASE: never a "
        "withdrawn, pruned or unrecorded one), recorded in the journal; prune keeps labelled "
        "versions. With --server-config (remembered), the servers' configuration is rewritten so "
        "that exactly the labelled versions load: the new version is added first, must be "
        "ready (with --serve), and only then does the label move. --remove takes the label away.",
        options=_label_options,
    )
    add_destination_command(
        sub,
        "labels",
        run_labels,
        help="the labels of a destination and the server configs they drive",
        description="List every label at BASE with its version, and the remembered server "
        "configurations.",
    )
    add_destination_command(
        sub,
        "promote",
        run_promote,
        help="move one label to another's version (promote canary stable)",
        description="Move label TO (e.g. stable) to the version label FROM (e.g. canary) points "
        "at, after the same readiness check as --serve when --serve is given.",
        options=_promote_options,
    )


def _label_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the label, e.g. stable or canary")
    p.add_argument("version", metavar="VERSION", nargs="?", help="the version it points at")
    p.add_argument("--remove", action="store_true", help="remove the label instead")
    p.add_argument(
        "--server-config", metavar="SPEC", action="append", default=[], help=SERVER_CONFIG_HELP
    )
    add_serve_options(p)


def _promote_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="FROM", help="the label whose version is promoted (canary)")
    p.add_argument("target", metavar="TO", help="the label moved to it (stable)")
    p.add_argument(
        "--server-config", metavar="SPEC", action="append", default=[], help=SERVER_CONFIG_HELP
    )
    add_serve_options(p)


def _show(result: Any) -> None:
    if result.serve is not None:
        print_reports([result.serve])
    if result.action == "unlabel":
        print(
            f"REMOVED   label {result.label} (was {result.previous})"
            if result.changed
            else f"UNCHANGED label {result.label} did not exist"
        )
    elif not result.ok:
        print(
            f"NOT MOVED label {result.label}: version {result.version} did not serve"
            + (f" (still {result.previous})" if result.previous else "")
        )
    elif not result.changed:
        print(f"UNCHANGED label {result.label} -> {result.version}")
    else:
        was = f" (was {result.previous})" if result.previous else ""
        print(f"LABELLED  {result.label} -> {result.version}{was}")
    for where in result.configs:
        print(f"          server config: {where}")


def _finish(args: argparse.Namespace, result: Any) -> int:
    if args.json:
        emit_json(result.to_json())
    else:
        _show(result)
    return 0 if result.ok else 1


def run_label(args: argparse.Namespace) -> int:
    from pushgate.errors import UsageError
    from pushgate.labels import label, unlabel

    configs = tuple(args.server_config) or None
    if args.remove:
        if args.version is not None:
            raise UsageError("label --remove takes no VERSION: pushgate label BASE NAME --remove")
        result = unlabel(
            args.base, args.name, server_configs=configs, storage_options=storage_options(args)
        )
    else:
        if args.version is None:
            raise UsageError(
                "label needs a VERSION (pushgate label BASE NAME VERSION), or --remove"
            )
        result = label(
            args.base,
            args.name,
            args.version,
            server_configs=configs,
            serve=serve_request(args),
            storage_options=storage_options(args),
        )
    return _finish(args, result)


def run_promote(args: argparse.Namespace) -> int:
    from pushgate.labels import promote

    result = promote(
        args.base,
        args.source,
        args.target,
        serve=serve_request(args),
        server_configs=tuple(args.server_config) or None,
        storage_options=storage_options(args),
    )
    return _finish(args, result)


def run_labels(args: argparse.Namespace) -> int:
    from pushgate.labels import labels

    doc = labels(args.base, storage_options(args))
    if args.json:
        emit_json(doc)
        return 0
    if not doc["labels"]:
        print(f"no labels at {doc['base']}")
    for entry in doc["labels"]:
        gone = "" if entry["exists"] else "  (MISSING from the store)"
        print(f"{entry['label']:<16} {entry['version']:<14} {entry['at'] or ''}{gone}")
    for spec in doc["server_configs"]:
        print(f"server config: {spec}")
    return 0


def check_label_args(args: argparse.Namespace, bases: list[str], options: Any) -> None:
    """``--server-config`` needs ``--label``; without ``--label``, ``--serve`` is refused where
    labels decide what the servers load (the new version would never load: exit 2)."""
    from pushgate.errors import UsageError

    if args.label:
        from pushgate.labels import check_configs, check_label_name

        check_label_name(args.label)
        for base in bases:
            check_configs(base, tuple(args.server_config) or None, options)
        return
    if args.server_config:
        raise UsageError("--server-config here needs --label NAME (the label to move)")
    if args.serve:
        from pushgate.labels import labels_in_force

        for base in bases:
            if labels_in_force(base, options):
                raise UsageError(
                    f"labels decide which versions the servers load at {base}: a version no "
                    "label names is published but not loaded, so --serve would fail; add "
                    "--label NAME (e.g. --label canary)"
                )


def label_rollback(args: argparse.Namespace, result: Any, serve: Any, smoke: Any) -> Any:
    """``rollback --label``: the label moves to the new version once it serves; its report."""
    from pushgate.labels import label_published

    (moved,) = label_published(
        result,
        args.label,
        serve=serve,
        server_configs=tuple(args.server_config) or None,
        storage_options=storage_options(args),
        smoke=smoke,
        action="rollback",
    )
    return moved.serve


def push_with_label(args: argparse.Namespace, request: Any, progress: Any) -> Any:
    """``push --label``: publish, then move the label (with ``--serve``: once the version is
    ready; a version that does not serve is withdrawn). Returns ``(result, labels JSON, text
    lines)``, or None without ``--label``."""
    from pushgate.errors import UsageError

    check_label_args(args, list(request.destinations), request.storage_options)
    if not args.label:
        return None
    from pushgate.api import push
    from pushgate.labels import label_published

    serve = serve_request(args)
    smoke = None
    if serve is not None:
        from pushgate.serving import probe

        if len(request.destinations) != 1:
            raise UsageError("--serve checks one --to BASE: push to one destination per command")
        smoke = serve.smoke_doc()
        probe(serve)  # before anything is published
    result = push(request, progress, None)
    moved = label_published(
        result,
        args.label,
        serve=serve,
        server_configs=tuple(args.server_config) or None,
        storage_options=request.storage_options,
        smoke=smoke,
    )
    lines = []
    for m in moved:
        if m.ok:
            lines.append(f"LABELLED  {m.label} -> {m.version} at {m.base}")
        else:
            lines.append(f"NOT MOVED label {m.label}: version {m.version} did not serve")
    return result, [m.to_json() for m in moved], lines
