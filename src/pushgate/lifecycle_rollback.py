"""``rollback``: serve an earlier version again, as a new highest version.

Re-exported by :mod:`pushgate.lifecycle`; why it needs no lock over BASE is told there. (Not
named ``pushgate/rollback.py``: importing a submodule ``pushgate.rollback`` would replace the
package attribute ``pushgate.rollback``, the function, with the module.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushgate import __version__
from pushgate.artifact import utc_now
from pushgate.errors import IntegrityError, UsageError, VersionConflictError
from pushgate.hook import HOOK_TIMEOUT_S
from pushgate.journal import RECORD_SCHEMA, Journal, VersionInfo, manifest_json, who
from pushgate.lifecycle_common import check_version_arg, open_base, published_versions
from pushgate.manifest import Manifest, ManifestFile
from pushgate.progress import Progress
from pushgate.source import SourceFile

__all__ = ["RollbackResult", "rollback"]


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
    hook_timeout: float = HOOK_TIMEOUT_S,
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
        to = check_version_arg(to)
    progress = progress or Progress()
    dest = open_base(base, storage_options)
    journal = Journal(dest)
    # Choose first, from reads alone, so a refused rollback writes nothing. recover() cannot change
    # the choice: it removes staging copies, records of versions that never appeared, and
    # versions an interrupted prune was removing (which published_versions() already leaves out).
    published = published_versions(journal.versions())
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
    # the listing holds summaries: the target's whole record (its manifest) is read once
    full = journal.record(target.version)
    if full is None:
        raise UsageError(
            f"cannot roll back to version {target.version} at {dest.url}: its record "
            f"{journal.where(f'records/{target.version}.json')} is missing"
        )
    target_record = full
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
    result.recovered = journal.recover()

    policy = versioning or str(current.record.get("versioning") or "auto")
    request = PushRequest(destinations=(dest.url,), versioning=policy)
    with journal.manifest(target.version, target_record) as stored:
        target_manifest = stored.load() if isinstance(stored, ManifestFile) else stored
    files = [SourceFile(e.path, Path(e.path), e.size) for e in target_manifest.files]

    def make_record(version: str, manifest: Manifest | ManifestFile) -> dict[str, Any]:
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
            "manifest": manifest_json(manifest, version),
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

    def make_event(version: str, manifest: Manifest | ManifestFile) -> dict[str, Any]:
        return {
            "event": "rollback",
            "version": version,
            "digest": manifest.digest,
            "rolled_back_from": current.version,
            "rollback_to": target.version,
            "reason": reason,
        }

    # the event goes through push's pending path: stored before the publish, written after; a
    # failure to write it once the version is published is a warning, and a later command
    # writes it (it no longer fails a rollback that has published)
    version, manifest = publish_to(
        dest,
        files,
        request,
        progress,
        make_record,
        from_version=target.version,
        dirs=target_manifest.dirs,
        make_event=make_event,
        warnings=result.warnings,
    )
    result.version, result.destination = version, dest.version_url(version)
    if on_publish:
        from pushgate.hook import run_hook

        result.hook = run_hook(on_publish, dest, result, manifest.digest, "rollback", hook_timeout)
        if not result.hook["ok"]:
            result.warnings.append(
                f"--on-publish hook failed at {dest.url}: {result.hook['error']}"
            )
    return result
