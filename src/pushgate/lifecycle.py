"""Living with the versions: verify, rollback, prune, pin/unpin and history.

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

import hashlib
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pushgate import __version__
from pushgate.artifact import utc_now
from pushgate.destination import open_destination
from pushgate.destination.base import Destination, is_version_name
from pushgate.errors import (
    IntegrityError,
    PushgateError,
    UsageError,
    VersionConflictError,
)
from pushgate.journal import RECORD_SCHEMA, Journal, VersionInfo, dumps, who
from pushgate.manifest import CHUNK, Manifest, workers
from pushgate.progress import Progress
from pushgate.source import SourceFile

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


def _check_version_arg(version: str) -> str:
    version = str(version)
    if not is_version_name(version):
        raise UsageError(
            f"not a version number: {version!r} (a version is all digits, e.g. 1700000000)"
        )
    return version


def _removed_versions(events: list[dict[str, Any]]) -> set[str]:
    """Versions that a prune removed on purpose (their records are kept)."""
    out: set[str] = set()
    for e in events:
        if e.get("event") == "prune":
            out.update(str(v) for v in e.get("removed", []) or [])
    return out


def _open(base: str | Path, storage_options: Mapping[str, str] | None) -> Destination:
    return open_destination(str(base), storage_options)


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
        out += [f"missing file: {p}" for p in self.missing]
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
    dest = _open(base, storage_options)
    journal = Journal(dest)
    on_store = set(dest.numeric_children())
    records = journal.records()
    removed = _removed_versions(journal.events()) - on_store
    if version is not None:
        version = _check_version_arg(version)
        if version in removed:
            raise UsageError(
                f"version {version} at {dest.url} was removed by prune; nothing to verify"
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
            want = Manifest.from_json(rec["manifest"]).by_path()
        except (KeyError, TypeError, ValueError) as e:
            check.errors.append(f"its record has no readable manifest ({e!r})")
            continue
        check.missing = sorted(set(want) - set(stored))
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
    local = threading.local()

    def work(job: tuple[VersionCheck, str, int, str]) -> None:
        check, rel, _size, expected = job
        buf = getattr(local, "buf", None)
        if buf is None:  # one per thread: a fresh 4 MiB buffer costs more than a small file's hash
            buf = local.buf = memoryview(bytearray(CHUNK))
        try:
            with dest.open_version_file(check.version, rel) as stream:
                got = _sha256(cast(Any, stream), buf, progress.advance)
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
            with ThreadPoolExecutor(max_workers=min(workers(), len(jobs))) as pool:
                list(pool.map(work, jobs))
    finally:
        progress.finish()
    for check in report.versions:
        check.changed.sort()
        check.errors.sort()
    return report


def _sha256(stream: Any, buf: memoryview, on_bytes: Any) -> str:
    """sha256 hex of a stream read into ``buf`` (hashlib releases the GIL on large updates)."""
    h = hashlib.sha256()
    while True:
        n = stream.readinto(buf)
        if not n:
            return h.hexdigest()
        h.update(buf[:n])
        on_bytes(n)


# -- rollback -----------------------------------------------------------------------------------
@dataclass
class RollbackResult:
    """The outcome of :func:`rollback`. ``version`` is the new version (None on a dry run)."""

    base: str
    rolled_back_from: str
    rollback_to: str
    digest: str
    dry_run: bool = False
    version: str | None = None
    destination: str | None = None
    reason: str | None = None
    recovered: list[str] = field(default_factory=list)
    hook: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def pushed(self) -> bool:
        return self.version is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "pushed": self.pushed,
            "dry_run": self.dry_run,
            "version": self.version,
            "destination": self.destination,
            "rolled_back_from": self.rolled_back_from,
            "rollback_to": self.rollback_to,
            "digest": self.digest,
            "reason": self.reason,
            "recovered": self.recovered,
            "hook": self.hook,
            "warnings": self.warnings,
        }


def _published(infos: list[VersionInfo]) -> list[VersionInfo]:
    return sorted((i for i in infos if i.exists and i.recorded), key=lambda i: int(i.version))


def _default_target(current: VersionInfo, published: list[VersionInfo]) -> VersionInfo | None:
    """The version that was newest before ``current``, skipping any with ``current``'s bytes."""
    assert current.record is not None
    digest = current.record.get("digest")
    by_name = {i.version: i for i in published}
    prev = by_name.get(str(current.record.get("previous_newest")))
    older = [i for i in published if int(i.version) < int(current.version) and i.record]
    if prev is not None and prev in older and prev.record and prev.record.get("digest") != digest:
        return prev
    for info in reversed(older):
        if info.record and info.record.get("digest") != digest:
            return info
    return None


def rollback(
    base: str | Path,
    to: str | None = None,
    reason: str | None = None,
    dry_run: bool = False,
    on_publish: str | None = None,
    storage_options: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    versioning: str | None = None,
) -> RollbackResult:
    """Serve an earlier version again by publishing its exact bytes as a new highest version.

    ``to`` defaults to the version that was newest before the current one (skipping versions
    with the current bytes). The copy is made with the destination's ``stage_from_version``
    (server-side on object stores) and published through the same claim, lease, stage and
    atomic publish as a push; its digest must equal the target's record or nothing is published.
    The version rolled back from stays where it is.
    """
    from pushgate.pushing import PushRequest, publish_to

    if reason is not None and not reason.strip():
        raise UsageError("--reason needs a non-empty text; it is recorded")
    if to is not None:
        to = _check_version_arg(to)
    progress = progress or Progress()
    dest = _open(base, storage_options)
    journal = Journal(dest)
    # Choose first, from reads alone, so a refused rollback writes nothing. recover() cannot change
    # the choice: it only removes staging copies and records of versions that never appeared.
    published = _published(journal.versions())
    if not published:
        raise UsageError(f"nothing to roll back at {dest.url}: no version published by pushgate")
    current = published[-1]
    assert current.record is not None
    if to is not None:
        target = next((i for i in published if i.version == to), None)
        if target is None:
            raise UsageError(
                f"cannot roll back to version {to} at {dest.url}: it is not a published version "
                "there (see 'pushgate versions BASE')"
            )
        if target.version == current.version:
            raise UsageError(f"version {to} is already the newest version at {dest.url}")
    else:
        found = _default_target(current, published)
        if found is None:
            raise UsageError(
                f"nothing to roll back to at {dest.url}: no published version older than "
                f"{current.version} holds different bytes"
            )
        target = found
    assert target.record is not None
    target_record = target.record
    result = RollbackResult(
        base=dest.url,
        rolled_back_from=current.version,
        rollback_to=target.version,
        digest=str(target_record["digest"]),
        dry_run=dry_run,
        reason=reason,
    )
    highest = max((int(i) for i in dest.numeric_children()), default=0)
    if highest > int(current.version):
        result.warnings.append(
            f"version {highest} at {dest.url} has no pushgate record and is what servers load "
            f"now; the rollback is published above it"
        )
    if dry_run:
        return result
    dest.check_writable()
    result.recovered = dest.recover()

    policy = versioning or str(current.record.get("versioning") or "auto")
    request = PushRequest(destinations=(dest.url,), versioning=policy)
    target_manifest = Manifest.from_json(target_record["manifest"])
    files = [SourceFile(e.path, Path(e.path), e.size) for e in target_manifest.files]

    def make_record(version: str, manifest: Manifest) -> dict[str, Any]:
        if manifest.digest != target_record["digest"]:
            raise IntegrityError(
                f"version {target.version} at {dest.url} no longer matches its record "
                f"({manifest.digest} != {target_record['digest']}); nothing was published. "
                f"Run 'pushgate verify {dest.url} {target.version}' and roll back to another one"
            )
        newest = journal.newest_published()
        if newest is None or newest.version != current.version:
            raise VersionConflictError(
                f"{dest.url} changed while rolling back: the newest version is now "
                f"{newest.version if newest else 'none'}, not {current.version}; nothing was "
                "published. Look at 'pushgate versions' and run the rollback again"
            )
        return {
            "schema": RECORD_SCHEMA,
            "kind": "rollback",
            "version": version,
            "destination": dest.version_url(version),
            "digest": manifest.digest,
            "manifest": manifest.to_json(),
            "source": target_record.get("source"),
            "blessings": target_record.get("blessings"),
            "decision": target_record.get("decision"),
            "pushed_at": utc_now(),
            **who(),
            "pushgate_version": __version__,
            "previous_newest": current.version,
            "versioning": policy,
            "rollback_of": current.version,
            "rolled_back_from": current.version,
            "rollback_to": target.version,
            "rollback_reason": reason,
        }

    version, manifest = publish_to(
        dest, files, request, progress, make_record, from_version=target.version
    )
    result.version, result.destination = version, dest.version_url(version)
    journal.event(
        "rollback",
        version=version,
        digest=manifest.digest,
        rolled_back_from=current.version,
        rollback_to=target.version,
        reason=reason,
    )
    if on_publish:
        from pushgate.hook import run_hook

        result.hook = run_hook(on_publish, dest, result, manifest.digest, "rollback")
        if not result.hook["ok"]:
            result.warnings.append(
                f"--on-publish hook failed at {dest.url}: {result.hook['error']}"
            )
    return result


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
    dest = _open(base, storage_options)
    journal = Journal(dest)
    if not dry_run:
        dest.check_writable()
    infos = journal.versions()
    published = _published(infos)
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
    version = _check_version_arg(version)
    dest = _open(base, storage_options)
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
    version = _check_version_arg(version)
    dest = _open(base, storage_options)
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
    dest = _open(base, storage_options)
    # Event keys start with their UTC time to the microsecond, so key order is time order.
    events = list(reversed(Journal(dest).events()))
    return events[:limit] if limit is not None else events
