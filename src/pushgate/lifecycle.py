"""Living with the versions: verify, rollback, prune, pin/unpin and history.

Rollback lives in :mod:`pushgate.lifecycle_rollback` and is re-exported here, so every lifecycle
function is importable from this module.

Every function here works from what BASE holds alone (the journal under ``<BASE>/.pushgate/``)
and only through the :class:`~pushgate.destination.base.Destination` protocol, so each one works
the same on local disk and on object stores.

Concurrency
-----------
Nothing here locks BASE as a whole (a lock that a killed process can leave behind needs leases
and stale-lock recovery), and the writes these commands make do not need one:

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
- A prune removes one version at a time through :meth:`pushgate.journal.Journal.remove`: a
  create-only removal intent written durably before anything is removed, the pin read again
  after it, then :meth:`Destination.remove_version` (invisible first, then deleted) and the
  ``prune`` event. ``pin`` writes its pin and then looks for an intent, so a version ``pin``
  reported as pinned is never removed; on local disk both also take a short ``flock``
  (:meth:`Destination.lifecycle_lock`). A prune killed part way leaves its intent, which the
  next push, rollback, prune or pin finishes (:meth:`Journal.recover`). Two prunes at once can
  only both try to remove the same version; the intent lets one through. A push or rollback that
  lands during a prune is newer than every version the prune chose, so it is kept; the prune may
  then leave more than ``keep`` versions, never fewer.

Every command here refuses a BASE that does not exist (exit 2), and creates nothing there.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushgate.artifact import utc_now
from pushgate.destination.base import Destination, Found
from pushgate.errors import DestinationError, IntegrityError, PushgateError, UsageError
from pushgate.journal import Journal, dumps, who
from pushgate.lifecycle_common import check_version_arg, open_base, published_versions
from pushgate.lifecycle_rollback import RollbackResult, rollback
from pushgate.manifest import Manifest, ManifestFile
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


# -- verify -------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class VersionCheck(Found):
    """What verify found for one version: its files against its manifest (:class:`Found`), and
    whether it is recorded and on the store."""

    version: str
    digest: str | None
    recorded: bool = True
    exists: bool = True

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
    """The result of :func:`verify`; ``ok`` is False on any mismatch or damaged journal entry.

    ``removing``: versions a prune decided to remove and has not finished (not checked; not a
    mismatch: the next push or prune finishes the removal). ``journal_errors``: journal entries
    that cannot be read, each naming its file."""

    base: str
    versions: list[VersionCheck] = field(default_factory=list)
    removing: list[str] = field(default_factory=list)
    journal_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.versions) and not self.journal_errors

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
            "removing": self.removing,
            "journal_errors": self.journal_errors,
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
    that should be there, and (without ``version``) that every journal event can be read.
    Mismatches are reported in the result (``.ok``), never raised; a version that is neither on
    the store nor recorded raises :class:`UsageError`.
    """
    progress = progress or Progress()
    dest = open_base(base, storage_options)
    journal = Journal(dest)
    on_store = set(dest.numeric_children())
    index = journal.index(on_store)
    report = VerifyReport(dest.url)
    if version is not None:
        # one version: its record, the index and the store's listing; never the history
        version = check_version_arg(version)
        intent = journal.removal(version)
        removing = {version} if intent and intent.get("phase") == "removing" else set()
        record = journal.record(version)
        withdrawn = (index.versions.get(version) or {}).get("withdrawn")
        if version not in on_store and (version not in index.versions or withdrawn):
            if record is not None:
                raise UsageError(
                    f"version {version} at {dest.url} was removed by prune or withdrawn; "
                    "nothing to verify"
                )
            raise UsageError(
                f"no version {version} at {dest.url}: neither on the store nor recorded"
            )
        records = {version: record} if record is not None else {}
        names = [version]
    else:
        removing = {v for v, i in journal.removals().items() if i.get("phase") == "removing"}
        report.journal_errors = [
            f"damaged journal entry {e['file']}: {e['error']}"
            for e in journal.recent_events(damaged=True)
            if e.get("event") == "damaged"
        ]
        kept = {v for v, e in index.versions.items() if not e.get("withdrawn")}
        names = sorted(on_store | kept, key=int)
        records = journal.records_of(names)
        if not names and not report.journal_errors:
            raise UsageError(
                f"nothing to verify at {dest.url}: no versions and no pushgate records there; "
                "check the path or URL"
            )
    report.removing = [n for n in names if n in removing]
    names = [n for n in names if n not in removing]

    progress.start("verifying", sum(_recorded_bytes(records.get(n)) for n in names))
    try:
        _check_versions(dest, journal, report, names, records, on_store, progress)
    finally:
        progress.finish()
    for check in report.versions:
        check.changed.sort()
        check.errors.sort()
    return report


def _recorded_bytes(record: dict[str, Any] | None) -> int:
    manifest = (record or {}).get("manifest")
    try:
        return int(manifest.get("total_bytes") or 0) if isinstance(manifest, dict) else 0
    except (TypeError, ValueError):
        return 0


def _check_versions(
    dest: Destination,
    journal: Journal,
    report: VerifyReport,
    names: list[str],
    records: dict[str, dict[str, Any]],
    on_store: set[str],
    progress: Progress,
) -> None:
    for name in names:
        rec = records.get(name)
        check = VersionCheck(
            version=name,
            digest=rec.get("digest") if rec else None,
            recorded=rec is not None,
            exists=name in on_store,
        )
        report.versions.append(check)
        if not check.exists:
            continue
        if rec is None:
            try:
                stored = dest.list_version_files(name)
            except IntegrityError as e:  # it holds something that is not a file (a FIFO ...)
                check.errors.append(str(e))
                continue
            except (OSError, PushgateError) as e:
                check.errors.append(f"cannot list the version's files: {e}")
                continue
            check.files, check.bytes = len(stored), sum(stored.values())
            continue
        try:
            with journal.manifest(name, rec) as manifest:
                rec.pop("manifest", None)  # an inline one's per-file dicts: freed before hashing
                _check_files(dest, check, manifest, progress)
        except IntegrityError as e:  # a damaged manifest, something that is not a file ...
            check.errors.append(str(e))
        except (OSError, PushgateError) as e:
            check.errors.append(f"cannot list the version's files: {e}")


def _check_files(
    dest: Destination, check: VersionCheck, manifest: Manifest | ManifestFile, progress: Progress
) -> None:
    """Compare a version's files with its manifest: both read in path order side by side (the
    store's listing and the manifest's lines), so a million files are never held; the files
    whose names and sizes match stream on to be hashed, their recorded digests waiting in a
    queue as long as the work in flight."""
    check.missing += [f"{d}/" for d in dest.missing_dirs(check.version, manifest.dirs)]
    if isinstance(manifest, ManifestFile) and dest.compare_lines(
        check.version, manifest, check, progress.advance
    ):
        return
    expected: deque[tuple[str, str]] = deque()

    def to_hash() -> Iterator[tuple[str, int]]:
        stored = dest.iter_version_names(check.version)
        here = next(stored, None)
        for rel, size, sha256 in manifest.entries():
            while here is not None and here[0] < rel:
                check.extra.append(here[0])
                here = next(stored, None)
            if here is None or here[0] != rel:
                check.missing.append(rel)
                continue
            found, here = here[1], next(stored, None)
            check.files += 1
            check.bytes += size
            if found not in (-1, size):
                check.changed.append(rel)  # a size change needs no hashing to be caught
                continue
            expected.append((rel, sha256))
            yield rel, size
        while here is not None:
            check.extra.append(here[0])
            here = next(stored, None)

    for got in dest.hash_version_files(check.version, to_hash(), progress.advance):
        rel, sha256 = expected.popleft()
        if got.error is not None:
            check.errors.append(f"cannot read {rel}: {got.error}")
        elif got.sha256 != sha256:
            check.changed.append(rel)


# -- prune --------------------------------------------------------------------------------------
@dataclass
class PruneResult:
    """The outcome of :func:`prune`. ``busy``: versions another prune was removing at the same
    moment (left to it); ``recovered``: what was finished for processes killed earlier."""

    base: str
    keep: int
    dry_run: bool = False
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: with ``expire_history``: how many records, claims and events were deleted
    expired: dict[str, int] | None = None

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
            "busy": self.busy,
            "recovered": self.recovered,
            "errors": self.errors,
            "expired": self.expired,
        }


def prune(
    base: str | Path,
    keep: int,
    dry_run: bool = False,
    storage_options: Mapping[str, str] | None = None,
    expire_history: float | None = None,
) -> PruneResult:
    """Remove all but the newest ``keep`` published versions, oldest first.

    Never removes the newest version, a pinned one, or a numeric directory pushgate did not
    publish (those are listed in ``skipped``). First finishes what killed processes left
    (:meth:`Journal.recover`). Each removal records its intent before it starts, makes the version
    invisible to servers, deletes it, and writes a ``prune`` event (``removed``: ``[version]``);
    a prune killed part way is finished by the next push, rollback, prune or pin. The records of
    removed versions are kept, unless ``expire_history`` (days) is given: then the records,
    claims and events of versions gone for longer than that are deleted
    (:meth:`Journal.expire`; numbers stay burned by the high-water mark). Each removal costs a
    few small reads and writes, independent of how many versions BASE holds, and the index is
    written once for the whole prune.
    """
    if expire_history is not None and not expire_history >= 0:
        raise UsageError(f"--expire-history must be a number of days >= 0 (got {expire_history})")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise UsageError(
            f"--keep must be a whole number of at least 1 (got {keep!r}); "
            "the newest version is never removed"
        )
    dest = open_base(base, storage_options)
    journal = Journal(dest)
    result = PruneResult(dest.url, keep, dry_run)
    # Finish removals a killed prune left before planning, so the plan sees them done.
    pending = not dry_run and bool(dest.list_meta("removing/"))
    if pending:
        dest.check_writable()
        result.recovered = journal.recover()
    infos = journal.versions()
    published = published_versions(infos)
    result.skipped = [i.version for i in infos if i.exists and not i.recorded]
    # imported here: labels brings the serving clients, which verify and history never need
    from pushgate.labels import labelled_versions

    labelled = labelled_versions(dest)  # kept like pinned ones (Journal.kept decides again)
    newest_numeric = max((int(i.version) for i in infos if i.exists), default=None)
    keep_set = {i.version for i in published[-keep:]}
    candidates: list[str] = []
    for info in published:
        if info.version in keep_set:
            result.kept.append(info.version)
        elif info.pinned or info.version in labelled:
            result.pinned.append(info.version)
        elif newest_numeric is not None and int(info.version) == newest_numeric:
            result.kept.append(info.version)
        else:
            candidates.append(info.version)
    if dry_run:
        result.removed = candidates
        return result
    if not candidates and expire_history is None:
        return result  # nothing to write: a BASE that is not pushgate's gets no .pushgate/
    if not pending:
        dest.check_writable()
        result.recovered = journal.recover()
    for version in candidates:
        try:
            outcome = journal.remove(version, keep=keep)
        except PushgateError as e:
            result.errors.append(f"could not remove version {version}: {e}")
            # best effort: the intent left behind already tells the next run to finish it
            with contextlib.suppress(PushgateError):
                journal.event("prune", keep=keep, removed=[], failed=version, error=str(e))
            break
        if outcome == "removed":
            result.removed.append(version)
        elif outcome == "pinned":  # pinned since the plan was made
            result.pinned.append(version)
        elif outcome == "busy":
            result.busy.append(version)
    # one index write for the whole prune: until it lands, each removed version's tombstone
    # tells readers it is gone (pushgate.journal_index)
    with contextlib.suppress(PushgateError):
        journal.save_index()
    if expire_history is not None and not result.errors:
        result.expired = journal.expire(expire_history)
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
    """Protect ``version`` from prune. Returns False when it was already pinned.

    Ordered against prune (see :meth:`Journal.remove`): the pin is written first, then the
    version is checked for a removal under way; if one is, the pin is taken back and
    :class:`DestinationError` raised, so True or False here means the version is pinned and no
    prune will remove it.
    """
    version = check_version_arg(version)
    dest = open_base(base, storage_options)
    journal = Journal(dest)
    if version not in set(dest.numeric_children()):
        raise UsageError(f"cannot pin version {version}: it does not exist at {dest.url}")
    if dest.list_meta("removing/"):
        journal.finish_removals()  # a killed prune's intent must not block pins for ever
    with dest.lifecycle_lock():
        already = journal.pinned(version)
        if not already:
            doc = {
                "schema": "pushgate.pin/v1",
                "version": version,
                "at": utc_now(),
                "reason": reason,
                **who(),
            }
            dest.write_meta(_pin_key(version), dumps(doc))
        # Read after the pin is written: a prune that wrote its intent before our pin is seen
        # here; one that writes it after sees our pin. A removal finished meanwhile shows as the
        # version being gone.
        intent = journal.removal(version)
        gone = intent is None and version not in set(dest.numeric_children())
        if intent is not None or gone:
            if not already:
                dest.delete_meta(_pin_key(version))
            if gone:
                raise UsageError(f"cannot pin version {version}: it does not exist at {dest.url}")
            assert intent is not None
            raise DestinationError(
                f"cannot pin version {version} at {dest.url}: a prune is removing it (started "
                f"{intent.get('at', '?')} by {intent.get('user', '?')}@{intent.get('host', '?')});"
                " it was not pinned. Run 'pushgate versions' to see whether it is still there"
            )
        if already:
            return False
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
    if not journal.pinned(version):
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
    """The audit trail at ``base``: every journal event, newest first. An event file that cannot
    be read is listed in its place as ``{"event": "damaged", "file": ..., "error": ...}``."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1 (got {limit})")
    dest = open_base(base, storage_options)
    return Journal(dest).recent_events(limit, damaged=True)
