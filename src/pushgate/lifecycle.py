"""Living with the versions: verify, rollback, prune, pin/unpin and history.

Rollback lives in :mod:`pushgate.lifecycle_rollback` and is re-exported here, so every lifecycle
function is importable from this module.

Every function here works from what BASE holds alone (the journal under ``<BASE>/.pushgate/``)
and only through the :class:`~pushgate.destination.base.Destination` protocol, so each one works
the same on local disk and on object stores.

Concurrency, and why there is no lock
-------------------------------------
Nothing here takes a lock over BASE. A lock that a killed process can leave behind needs leases
and stale-lock recovery, and the writes these commands make do not need one:

- A rollback publishes through :func:`pushgate.pushing.publish_to`: a create-only claim of a new
  number, a leased staging copy, one atomic publish. Two rollbacks (or a rollback and a push) at
  once get two different numbers; neither can overwrite or half-write the other. Just before it
  publishes, a rollback re-reads the newest published version and gives up (exit 1, staging
  removed, nothing published) when it is no longer the one it rolled back from, so two default
  rollbacks started together publish once, not twice. The window left (between that re-read and
  the publish) can at worst publish the same target's bytes twice: a harmless duplicate.
- A rollback also checks that the staged copy's digest equals the target's record, so a target
  that a concurrent prune removes, or that was damaged on disk, is never republished: the copy
  fails or mismatches, and nothing is published.
- A prune removes with :meth:`Destination.remove_version` (invisible first, then deleted), one
  version at a time, and re-reads the pins and the newest version just before each removal. Two
  prunes at once can only both try to remove the same version; the second finds it gone and
  skips it. A push or rollback that lands during a prune is newer than every version the prune
  chose, so it is kept; the prune may then leave more than ``keep`` versions, never fewer.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pushgate.artifact import utc_now
from pushgate.errors import PushgateError, UsageError
from pushgate.journal import Journal, dumps, who
from pushgate.lifecycle_common import check_version_arg, open_base, published_versions
from pushgate.lifecycle_rollback import RollbackResult, rollback
from pushgate.manifest import Manifest, hash_stream, hash_threads, workers
from pushgate.progress import Progress

__all__ = [
    "PruneResult",
    "RollbackResult",
    "VerifyReport",
    "VersionCheck",
    "history",
    "pin",
    "prune",
    "rollback",
    "unpin",
    "verify",
]


def _removed_versions(events: list[dict[str, Any]]) -> set[str]:
    """Versions that a prune removed, or ``--serve`` withdrew, on purpose (records are kept)."""
    out: set[str] = set()
    for e in events:
        if e.get("event") == "prune":
            out.update(str(v) for v in e.get("removed", []) or [])
        elif e.get("event") == "withdraw" and e.get("version"):
            out.add(str(e["version"]))
    return out


# -- verify -------------------------------------------------------------------------------------
@dataclass
class VersionCheck:
    """What verify found for one version."""

    version: str
    digest: str | None
    recorded: bool = True
    exists: bool = True
    files: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.recorded
            and self.exists
            and not (self.missing or self.extra or self.changed or self.errors)
        )

    def problems(self) -> list[str]:
        out: list[str] = []
        if not self.recorded:
            out.append("numeric directory with no pushgate record")
        if not self.exists:
            out.append("recorded but missing from the store")
        out += [f"missing {'dir' if p.endswith('/') else 'file'}: {p}" for p in self.missing]
        out += [f"extra file: {p}" for p in self.extra]
        out += [f"changed file: {p}" for p in self.changed]
        out += self.errors
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "ok": self.ok,
            "digest": self.digest,
            "recorded": self.recorded,
            "exists": self.exists,
            "files": self.files,
            "bytes": self.bytes,
            "missing": self.missing,
            "extra": self.extra,
            "changed": self.changed,
            "errors": self.errors,
        }


@dataclass
class VerifyReport:
    """The result of :func:`verify`; ``ok`` is False on any mismatch."""

    base: str
    versions: list[VersionCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.versions)

    @property
    def unrecorded(self) -> list[str]:
        return [v.version for v in self.versions if not v.recorded]

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "ok": self.ok,
            "checked": len(self.versions),
            "files": sum(v.files for v in self.versions),
            "bytes": sum(v.bytes for v in self.versions),
            "unrecorded": self.unrecorded,
            "versions": [v.to_json() for v in self.versions],
        }


def verify(
    base: str | Path,
    version: str | None = None,
    storage_options: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Recompute every file's sha256 and compare it with the journal's manifest.

    Checks ``version`` alone, or every numeric version on the store plus every recorded version
    that should be there. Mismatches are reported in the result (``.ok``), never raised; a
    version that is neither on the store nor recorded raises :class:`UsageError`.
    """
    progress = progress or Progress()
    dest = open_base(base, storage_options)
    journal = Journal(dest)
    on_store = set(dest.numeric_children())
    records = journal.records()
    removed = _removed_versions(journal.events()) - on_store
    if version is not None:
        version = check_version_arg(version)
        if version in removed:
            raise UsageError(
                f"version {version} at {dest.url} was removed by prune or withdrawn; "
                "nothing to verify"
            )
        if version not in on_store and version not in records:
            raise UsageError(
                f"no version {version} at {dest.url}: neither on the store nor recorded"
            )
        names = [version]
    else:
        names = sorted(on_store | (set(records) - removed), key=int)
        if not names:
            raise UsageError(
                f"nothing to verify at {dest.url}: no versions and no pushgate records there; "
                "check the path or URL"
            )

    report = VerifyReport(dest.url)
    jobs: list[tuple[VersionCheck, str, int, str]] = []  # (check, rel, size, expected sha256)
    for name in names:
        rec = records.get(name)
        check = VersionCheck(
            name, rec.get("digest") if rec else None, rec is not None, name in on_store
        )
        report.versions.append(check)
        if not check.exists:
            continue
        try:
            stored = dest.list_version_files(name)
        except (OSError, PushgateError) as e:
            check.errors.append(f"cannot list the version's files: {e}")
            continue
        if rec is None:
            check.files, check.bytes = len(stored), sum(stored.values())
            continue
        try:
            manifest = Manifest.from_json(rec["manifest"])
        except (KeyError, TypeError, ValueError, PushgateError) as e:
            check.errors.append(f"its record has no readable manifest ({e!r})")
            continue
        want = manifest.by_path()
        check.missing = sorted(set(want) - set(stored))
        check.missing += [f"{d}/" for d in dest.missing_dirs(name, manifest.dirs)]
        check.extra = sorted(set(stored) - set(want))
        for rel in sorted(set(want) & set(stored)):
            entry = want[rel]
            check.files += 1
            check.bytes += entry.size
            if stored[rel] != entry.size:
                check.changed.append(rel)  # a size change needs no hashing to be caught
            else:
                jobs.append((check, rel, entry.size, entry.sha256))

    lock = threading.Lock()

    def work(job: tuple[VersionCheck, str, int, str]) -> None:
        check, rel, size, expected = job
        try:
            with dest.open_version_file(check.version, rel) as stream:
                got = hash_stream(cast(Any, stream), progress.advance, size)
        except (OSError, PushgateError) as e:
            with lock:
                check.errors.append(f"cannot read {rel}: {e}")
            return
        if got != expected:
            with lock:
                check.changed.append(rel)

    jobs.sort(key=lambda j: -j[2])  # largest first so the pool finishes together
    progress.start("verifying", sum(j[2] for j in jobs))
    try:
        if jobs:
            # local files: one thread per core (CPU-bound); a bucket's: more (network-bound)
            threads = hash_threads() if dest.local else workers()
            with ThreadPoolExecutor(max_workers=min(threads, len(jobs))) as pool:
                list(pool.map(work, jobs))
    finally:
        progress.finish()
    for check in report.versions:
        check.changed.sort()
        check.errors.sort()
    return report


# -- prune --------------------------------------------------------------------------------------
@dataclass
class PruneResult:
    """The outcome of :func:`prune`."""

    base: str
    keep: int
    dry_run: bool = False
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "keep": self.keep,
            "dry_run": self.dry_run,
            "removed": self.removed,
            "kept": self.kept,
            "pinned": self.pinned,
            "skipped": self.skipped,
            "errors": self.errors,
        }


def prune(
    base: str | Path,
    keep: int,
    dry_run: bool = False,
    storage_options: Mapping[str, str] | None = None,
) -> PruneResult:
    """Remove all but the newest ``keep`` published versions, oldest first.

    Never removes the newest version, a pinned one, or a numeric directory pushgate did not
    publish (those are listed in ``skipped``). Each removal makes the version invisible to
    servers first, then deletes it. The records of removed versions are kept; a ``prune`` event
    is written right after each removal (``removed``: the list of what it removed).
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise UsageError(
            f"--keep must be a whole number of at least 1 (got {keep!r}); "
            "the newest version is never removed"
        )
    dest = open_base(base, storage_options)
    journal = Journal(dest)
    if not dry_run:
        dest.check_writable()
    infos = journal.versions()
    published = published_versions(infos)
    result = PruneResult(dest.url, keep, dry_run)
    result.skipped = [i.version for i in infos if i.exists and not i.recorded]
    pins = journal.pins()
    newest_numeric = max((int(i.version) for i in infos if i.exists), default=None)
    keep_set = {i.version for i in published[-keep:]}
    candidates: list[str] = []
    for info in published:
        if info.version in keep_set:
            result.kept.append(info.version)
        elif info.version in pins:
            result.pinned.append(info.version)
        elif newest_numeric is not None and int(info.version) == newest_numeric:
            result.kept.append(info.version)
        else:
            candidates.append(info.version)
    if dry_run:
        result.removed = candidates
        return result
    for version in candidates:
        # Re-read what may have changed since the plan: a pin, or the version already gone.
        if version in journal.pins():
            result.pinned.append(version)
            continue
        if version not in set(dest.numeric_children()):
            continue
        try:
            dest.remove_version(version)
        except PushgateError as e:
            result.errors.append(f"could not remove version {version}: {e}")
            journal.event("prune", keep=keep, removed=[], failed=version, error=str(e))
            break
        result.removed.append(version)
        # One event per removal, right after it: a crash part way through a long prune then
        # leaves every removed version recorded as pruned, not as "missing from the store".
        journal.event("prune", version=version, keep=keep, removed=[version])
    return result


# -- pins ---------------------------------------------------------------------------------------
def _pin_key(version: str) -> str:
    return f"pins/{version}"


def pin(
    base: str | Path,
    version: str,
    reason: str | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> bool:
    """Protect ``version`` from prune. Returns False when it was already pinned."""
    version = check_version_arg(version)
    dest = open_base(base, storage_options)
    journal = Journal(dest)
    if version not in set(dest.numeric_children()):
        raise UsageError(f"cannot pin version {version}: it does not exist at {dest.url}")
    if version in journal.pins():
        return False
    doc = {
        "schema": "pushgate.pin/v1",
        "version": version,
        "at": utc_now(),
        "reason": reason,
        **who(),
    }
    dest.write_meta(_pin_key(version), dumps(doc))
    journal.event("pin", version=version, reason=reason)
    return True


def unpin(
    base: str | Path,
    version: str,
    storage_options: Mapping[str, str] | None = None,
) -> bool:
    """Let prune remove ``version`` again. Returns False when it was not pinned."""
    version = check_version_arg(version)
    dest = open_base(base, storage_options)
    journal = Journal(dest)
    if version not in journal.pins():
        return False
    dest.delete_meta(_pin_key(version))
    journal.event("unpin", version=version)
    return True


# -- history ------------------------------------------------------------------------------------
def history(
    base: str | Path,
    storage_options: Mapping[str, str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The audit trail at ``base``: every journal event, newest first."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1 (got {limit})")
    dest = open_base(base, storage_options)
    # Event keys start with their UTC time to the microsecond, so key order is time order.
    events = list(reversed(Journal(dest).events()))
    return events[:limit] if limit is not None else events
