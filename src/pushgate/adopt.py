"""``pushgate adopt``: take versions pushgate did not push (TFX's Pusher, a copy by hand) into the
journal, so ``verify``, ``rollback --to`` and ``prune`` treat them like any version.

Adopting a version hashes its files as they are now and writes the record a push would have
written (``kind: "adopt"``, ``provenance: "adopted"``, who and when), after claiming its number
create-only: a version whose number a pushgate push claimed (one being published, or one a dead
push left for ``recover``) is never adopted. Nothing in the version is moved or changed. A
directory that is not a servable model is refused unless ``any_model`` is set.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pushgate import __version__
from pushgate.artifact import utc_now
from pushgate.destination.base import Destination
from pushgate.errors import DestinationError, PushgateError, UsageError
from pushgate.journal import RECORD_SCHEMA, Journal, dumps, manifest_json, who
from pushgate.lifecycle_common import check_version_arg, open_base
from pushgate.manifest import FileEntry, Manifest, hash_stream, hash_threads, workers
from pushgate.model_layout import BLESSING_MARKERS, LAYOUTS, match_top
from pushgate.progress import Progress


def _top(files: Mapping[str, int]) -> dict[str, bool]:
    """``{name: is a directory}`` of a version's top level, from its file listing."""
    top: dict[str, bool] = {}
    for rel in files:
        name, sep, _ = rel.partition("/")
        top[name] = top.get(name, False) or bool(sep)
    return top


def blessing_problem(files: Mapping[str, int]) -> str | None:
    """Why a version is a blessing's directory, never a model (whatever ``--any-model``)."""
    markers = sorted(set(_top(files)) & set(BLESSING_MARKERS))
    return f"it holds a blessing's marker ({', '.join(markers)}), not a model" if markers else None


def servable_problem(files: Mapping[str, int]) -> str | None:
    """Why a version's files (``{relative path: size}``) are not a servable model, or None: the
    layouts :mod:`pushgate.model_layout` knows, read from the listing (a version may be in a
    bucket)."""
    if not files:
        return "it is empty"
    top = _top(files)
    if match_top(top) is not None:
        return None
    shown = ", ".join(sorted(top)[:5]) + (" ..." if len(top) > 5 else "")
    expected = "; ".join(layout.describe() for layout in LAYOUTS)
    return f"no known model layout at its top (found: {shown}; expected one of: {expected})"


@dataclass(frozen=True)
class AdoptRequest:
    """Adopt ``versions`` at ``base`` (all unrecorded ones when empty)."""

    base: str
    versions: tuple[str, ...] = ()
    dry_run: bool = False
    any_model: bool = False
    storage_options: Mapping[str, str] = field(default_factory=dict)


@dataclass
class AdoptedVersion:
    """One version adopt looked at."""

    version: str
    adopted: bool = False
    files: int = 0
    bytes: int = 0
    digest: str | None = None
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "adopted": self.adopted,
            "files": self.files,
            "bytes": self.bytes,
            "digest": self.digest,
            "skipped": self.skipped,
        }


@dataclass
class AdoptResult:
    """What adopt did (or, with ``dry_run``, would do)."""

    base: str
    dry_run: bool
    versions: list[AdoptedVersion] = field(default_factory=list)

    @property
    def adopted(self) -> list[str]:
        return [v.version for v in self.versions if v.adopted]

    @property
    def refused(self) -> list[AdoptedVersion]:
        return [v for v in self.versions if v.skipped and not v.adopted]

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "dry_run": self.dry_run,
            "adopted": self.adopted,
            "versions": [v.to_json() for v in self.versions],
        }


def _empty_dirs(dest: Destination, version: str) -> list[str]:
    """The empty directories of a version on a store that holds them (a filesystem), as a push
    records them (``assets/`` of a TFX model); buckets have none."""
    local = getattr(dest, "local_version_dir", None)
    if not dest.holds_empty_dirs or local is None:
        return []
    root = Path(local(version))
    return sorted(
        Path(path).relative_to(root).as_posix()
        for path, dirnames, filenames in os.walk(root)
        if not dirnames and not filenames and Path(path) != root
    )


def _hash_version(dest: Destination, version: str, files: Mapping[str, int]) -> Manifest:
    lock = threading.Lock()
    digests: dict[str, str] = {}
    progress = Progress()

    def work(rel: str) -> None:
        with dest.open_version_file(version, rel) as stream:
            got = hash_stream(cast(Any, stream), progress.advance, files[rel])
        with lock:
            digests[rel] = got

    threads = hash_threads() if dest.local else workers()
    ordered = sorted(files, key=lambda rel: -files[rel])
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(ordered)))) as pool:
        list(pool.map(work, ordered))
    return Manifest.of(
        (FileEntry(rel, files[rel], digests[rel]) for rel in sorted(files)),
        _empty_dirs(dest, version),
    )


def _record(dest: Destination, version: str, manifest: Manifest) -> dict[str, Any]:
    """The record of an adopted version: a push record's fields, so every command reads it."""
    return {
        "schema": RECORD_SCHEMA,
        "kind": "adopt",
        "provenance": "adopted",
        "version": version,
        "destination": dest.version_url(version),
        "digest": manifest.digest,
        "manifest": manifest_json(manifest, version),
        "source": {"path": dest.version_url(version), "layout": "adopted", "artifact": None},
        "blessings": {},
        "decision": {"reason": "adopted: already present, not pushed by pushgate"},
        "pushed_at": utc_now(),
        "adopted_at": utc_now(),
        **who(),
        "pushgate_version": __version__,
        "previous_newest": None,
        "versioning": "auto",
    }


def adopt(request: AdoptRequest) -> AdoptResult:
    """Record existing unrecorded numeric versions at ``request.base``; see the module doc."""
    dest = open_base(request.base, request.storage_options)
    journal = Journal(dest)
    on_store = set(dest.numeric_children())
    records = set(journal.records())
    if request.versions:
        wanted = [check_version_arg(v) for v in request.versions]
        missing = [v for v in wanted if v not in on_store]
        if missing:
            raise UsageError(
                f"no version {', '.join(missing)} at {dest.url}; adopt takes versions that exist "
                "there (see 'pushgate versions')"
            )
    else:
        wanted = sorted(on_store - records, key=int)
    claimed = {str(v) for v in journal.claimed()}
    result = AdoptResult(dest.url, request.dry_run)
    for name in dict.fromkeys(wanted):
        item = AdoptedVersion(name)
        result.versions.append(item)
        if name in records:
            item.skipped = "already recorded"
            continue
        if name in claimed:
            item.skipped = (
                "its number was claimed by a pushgate push (one in progress, or one a crash "
                "left for recovery): not adopted"
            )
            continue
        files = dest.list_version_files(name)
        item.files, item.bytes = len(files), sum(files.values())
        refusal = blessing_problem(files)
        if refusal is not None:
            item.skipped = f"not a model: {refusal}"
            continue
        problem = servable_problem(files)
        if problem is not None and not request.any_model:
            item.skipped = f"not a servable model: {problem} (--any-model adopts it anyway)"
            continue
        if request.dry_run:
            continue
        if not journal.claim(int(name), f"{name}-adopt"):
            item.skipped = "its number was claimed meanwhile by a pushgate push: not adopted"
            continue
        try:
            manifest = _hash_version(dest, name, files)
        except (OSError, PushgateError) as e:
            dest.delete_meta(f"claims/{name}.json")
            raise DestinationError(f"cannot read version {name} at {dest.url}: {e}") from e
        if dest.list_version_files(name) != dict(files):
            dest.delete_meta(f"claims/{name}.json")
            raise DestinationError(
                f"version {name} at {dest.url} changed while it was being hashed; adopt it "
                "again when nothing writes to it"
            )
        if manifest.apart:  # before the record that names it (the claim is ours alone)
            dest.store_manifest(name, manifest)
        if not dest.write_meta(
            f"records/{name}.json", dumps(_record(dest, name, manifest)), create_only=True
        ):
            item.skipped = "recorded meanwhile by another process"
            continue
        item.adopted, item.digest = True, manifest.digest
        journal.event(
            "adopt", version=name, digest=manifest.digest, files=item.files, bytes=item.bytes
        )
    return result
