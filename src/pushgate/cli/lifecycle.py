"""``pushgate verify``, ``rollback``, ``prune``, ``pin``, ``unpin`` and ``history``."""

from __future__ import annotations

import argparse
from typing import Any

from pushgate.cli._options import add_destination_command, add_hook_timeout, add_no_progress
from pushgate.cli._output import emit_json, progress_for, show_hook_output, storage_options, warn
from pushgate.cli._serve import add_serve_options, print_reports, serve_request
from pushgate.cli.labels import add_label_options, check_label_args, label_rollback


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more days, got {text}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(sub: Any) -> None:
    add_destination_command(
        sub,
        "verify",
        run_verify,
        help="check every stored file against the journal's checksums",
        description="Recompute the sha256 of every file of every version (or one VERSION) under "
        "BASE, in parallel, and compare with the manifest recorded when it was pushed. Reports "
        "missing, extra and changed files, anything in a version that is not a regular file "
        "(FIFO, socket, symlink), recorded versions missing from the store, numeric directories "
        "with no record and (without VERSION) journal entries that cannot be read. Versions an "
        "interrupted prune was removing are listed, not checked. Exit code 3 on any mismatch "
        "or damage, 2 when BASE does not exist.",
        options=_verify_options,
    )
    add_destination_command(
        sub,
        "rollback",
        run_rollback,
        help="serve an earlier version again, as a new highest version",
        description="Publish the exact bytes of an earlier version (copied server-side where the "
        "store can) as a new highest version, with the same crash safety as a push, and record "
        "which version was rolled back to which, by whom and why. The version rolled back from "
        "stays on the store.",
        options=_rollback_options,
    )
    add_destination_command(
        sub,
        "prune",
        run_prune,
        help="remove all but the newest N published versions",
        description="Remove old published versions, oldest first, keeping the newest N. Never "
        "removes the newest version, a pinned one, or a numeric directory pushgate did not "
        "publish. Each removal is recorded as an intent before it starts, then the version is "
        "made invisible to servers (renamed away) and deleted, and the removal recorded; a "
        "killed prune is finished by the next push, rollback, prune or pin. A pin made while a "
        "prune runs either wins (the version is kept) or fails; it never reports success for a "
        "version that is then removed. The records stay.",
        options=_prune_options,
    )
    add_destination_command(
        sub,
        "pin",
        run_pin,
        help="protect a version from prune",
        description="Mark VERSION as pinned: prune never removes it. Recorded. Fails (exit 1) "
        "when a prune is removing VERSION at that moment.",
        options=_pin_options,
    )
    add_destination_command(
        sub,
        "unpin",
        run_unpin,
        help="let prune remove a version again",
        description="Remove the pin of VERSION. Recorded.",
        options=_unpin_options,
    )
    add_destination_command(
        sub,
        "history",
        run_history,
        help="the audit trail of a destination, newest first",
        description="Every event recorded at BASE, newest first: pushes (forced ones with their "
        "reasons, unchanged re-pushes), rollbacks, prunes, pins, unpins and hook runs; who, "
        "when, which versions. A journal entry that cannot be read is shown as DAMAGED, naming "
        "its file, and the rest is still shown (exit 0, with a warning).",
        options=_history_options,
    )


# -- each command's own arguments, between BASE and --storage-option/--json ---------------------
def _verify_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("version", metavar="VERSION", nargs="?", help="check only this version")
    add_no_progress(p)


def _rollback_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--to",
        metavar="VERSION",
        dest="to_version",
        help="the version to serve again (default: the one that was newest before the current "
        "one, skipping versions with the current bytes)",
    )
    p.add_argument("--reason", metavar="TEXT", help="why; recorded in the journal")
    p.add_argument(
        "--versioning",
        choices=("auto", "sequential"),
        help="how to number the new version (default: as the current newest version was)",
    )
    p.add_argument(
        "--on-publish",
        metavar="COMMAND",
        help="shell command run after the new version is published (env PUSHGATE_*, JSON on "
        "stdin); its failure is reported and recorded, never unpublishes",
    )
    add_hook_timeout(p)
    p.add_argument("--dry-run", action="store_true", help="say what would be done; change nothing")
    add_serve_options(p)
    add_label_options(p)
    add_no_progress(p)


def _prune_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--keep",
        metavar="N",
        type=_positive,
        required=True,
        help="how many of the newest published versions to keep (at least 1)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="say what would be removed; remove nothing"
    )
    p.add_argument(
        "--expire-history",
        metavar="DAYS",
        type=_days,
        help="also delete the records, claims and events of versions pruned more than DAYS ago "
        "(kept by default), so BASE/.pushgate stays proportional to what is published; "
        "version numbers are never reused",
    )


def _pin_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("version", metavar="VERSION", help="the version to pin")
    p.add_argument("--reason", metavar="TEXT", help="why; recorded with the pin")


def _unpin_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("version", metavar="VERSION", help="the version to unpin")


def _history_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", metavar="N", type=_positive, help="show only the newest N events")


# -- handlers -----------------------------------------------------------------------------------
def run_verify(args: argparse.Namespace) -> int:
    from pushgate.errors import IntegrityError
    from pushgate.lifecycle import verify

    report = verify(
        args.base,
        args.version,
        storage_options(args),
        progress_for(not args.no_progress and not args.json),
    )
    if args.json:
        emit_json(report.to_json())
    else:
        for line in report.journal_errors:
            print(f"DAMAGED  {line}")
        for v in report.removing:
            print(
                f"REMOVING {v:<12} a prune decided to remove it and has not finished (not "
                "checked; the next push or prune finishes it)"
            )
        if not report.versions and not report.journal_errors:
            print(f"no versions under {report.base}")
        for check in report.versions:
            status = "OK      " if check.ok else "MISMATCH"
            size = f"{check.files} files, {check.bytes / 2**20:.1f} MiB"
            print(f"{status} {check.version:<12} {size}")
            for problem in check.problems():
                print(f"         {problem}")
        if report.versions or report.journal_errors:
            print("all versions match their records" if report.ok else "verify found mismatches")
    return 0 if report.ok else IntegrityError.exit_code


def run_rollback(args: argparse.Namespace) -> int:
    from pushgate.lifecycle import rollback

    serve, smoke = serve_request(args), None
    check_label_args(args, [args.base], storage_options(args))
    if serve is not None and not args.dry_run:
        from pushgate.serving import probe

        smoke = serve.smoke_doc()
        probe(serve)  # before anything is published
    result = rollback(
        args.base,
        to=args.to_version,
        reason=args.reason,
        dry_run=args.dry_run,
        on_publish=args.on_publish,
        storage_options=storage_options(args),
        progress=progress_for(not args.no_progress and not args.json),
        versioning=args.versioning,
        hook_timeout=args.hook_timeout,
    )
    for w in result.warnings:
        warn(w)
    report = None
    if args.label and result.version is not None:
        report = label_rollback(args, result, serve, smoke)
    elif serve is not None and result.version is not None:
        from pushgate.serving import confirm_published

        report = confirm_published(
            result.base,
            result.version,
            serve,
            previous=result.rolled_back_from,
            action="rollback",
            storage_options=storage_options(args),
            smoke=smoke,
        )
    status = 1 if report is not None and not report.healthy else 0
    if args.json:
        emit_json({**result.to_json(), **({"serve": [report.to_json()]} if report else {})})
        return status
    for line in result.recovered:
        print(f"recovered: {line}")
    if result.dry_run:
        print(
            f"WOULD ROLL BACK {result.base}: from version {result.rolled_back_from} to "
            f"{result.rollback_to} ({result.digest}), as a new highest version"
        )
    else:
        print(
            f"ROLLED BACK {result.destination} (version {result.version}) = bytes of version "
            f"{result.rollback_to}, was {result.rolled_back_from}"
        )
        print(f"digest: {result.digest}")
        show_hook_output(result.hook, result.base)
    if result.reason:
        print(f"reason: {result.reason}")
    print_reports([report] if report else [])
    return status


def run_prune(args: argparse.Namespace) -> int:
    from pushgate.lifecycle import prune

    result = prune(
        args.base,
        args.keep,
        dry_run=args.dry_run,
        storage_options=storage_options(args),
        expire_history=args.expire_history,
    )
    if args.json:
        emit_json(result.to_json())
    else:
        for line in result.recovered:
            print(f"recovered: {line}")
        verb = "WOULD REMOVE" if result.dry_run else "REMOVED"
        for v in result.removed:
            print(f"{verb:<12} {v}")
        for v in result.pinned:
            print(f"{'PINNED':<12} {v} (kept)")
        for v in result.skipped:
            print(f"{'SKIPPED':<12} {v} (no pushgate record; not touched)")
        for v in result.busy:
            print(f"{'BUSY':<12} {v} (another prune is removing it)")
        for e in result.errors:
            print(f"{'FAILED':<12} {e}")
        if not result.removed:
            print(f"nothing to remove under {result.base} (keeping the newest {result.keep})")
        print(f"kept: {', '.join(result.kept) or '-'}")
        if result.expired is not None:
            gone = result.expired
            print(
                f"expired history: {gone['records']} records, {gone['claims']} claims, "
                f"{gone['events']} events (numbers stay used)"
            )
    return 0 if result.ok else 1


def run_pin(args: argparse.Namespace) -> int:
    from pushgate.lifecycle import pin

    changed = pin(
        args.base, args.version, reason=args.reason, storage_options=storage_options(args)
    )
    if args.json:
        emit_json({"base": args.base, "version": args.version, "pinned": True, "changed": changed})
    else:
        print(f"{'PINNED' if changed else 'ALREADY PINNED'} {args.version}")
    return 0


def run_unpin(args: argparse.Namespace) -> int:
    from pushgate.lifecycle import unpin

    changed = unpin(args.base, args.version, storage_options=storage_options(args))
    if args.json:
        emit_json({"base": args.base, "version": args.version, "pinned": False, "changed": changed})
    else:
        print(f"{'UNPINNED' if changed else 'NOT PINNED'} {args.version}")
    return 0


def _describe(e: dict[str, Any]) -> str:
    kind = e.get("event")
    v = e.get("version")
    if kind == "push":
        if e.get("already_present"):
            return f"re-push of unchanged model: version {v} already holds it (nothing copied)"
        text = f"pushed version {v}"
        if e.get("forced"):
            text += f" FORCED: {e.get('force_reason')}"
        return text
    if kind == "rollback":
        text = f"rolled back {e.get('rolled_back_from')} -> {e.get('rollback_to')} as version {v}"
        return text + (f": {e['reason']}" if e.get("reason") else "")
    if kind == "prune":
        text = f"pruned {', '.join(e.get('removed') or []) or 'nothing'} (keep {e.get('keep')})"
        return text + (f"; FAILED on {e.get('failed')}: {e['error']}" if e.get("error") else "")
    if kind in ("pin", "unpin"):
        return f"{kind}ned version {v}" + (f": {e['reason']}" if e.get("reason") else "")
    if kind == "damaged":
        return f"DAMAGED journal entry {e.get('file')}: {e.get('error')}"
    if kind == "hook":
        state = "ok" if e.get("ok") else f"FAILED ({e.get('error')})"
        return f"on-publish hook for version {v}: {state}"
    if kind == "withdraw":
        return f"withdrew version {v} (after {e.get('after')}): {e.get('reason')}"
    return f"{kind} {v or ''}".strip()


def run_history(args: argparse.Namespace) -> int:
    from pushgate.lifecycle import history

    events = history(args.base, storage_options(args), limit=args.limit)
    for e in events:
        if e.get("event") == "damaged":
            warn(f"damaged journal entry {e.get('file')} ({e.get('error')}); the rest is shown")
    if args.json:
        emit_json({"base": args.base, "events": events})
        return 0
    if not events:
        print(f"no history under {args.base}")
        return 0
    print(f"{'WHEN (UTC)':<20} {'WHO':<24} {'EVENT':<9} WHAT")
    for e in events:
        when = str(e.get("at", "-"))[:19].replace("T", " ")
        by = f"{e.get('user', '-')}@{e.get('host', '-')}"[:24]
        print(f"{when:<20} {by:<24} {e.get('event', '-')!s:<9} {_describe(e)}")
    return 0
