"""The journal: pushgate's records inside the destination (``<BASE>/.pushgate/``).

One record per published version (``records/<v>.json``: provenance and manifest, written once,
compact JSON), one event per lifecycle action (``log/<day>/<time>-<id>.json``, both inverted so
that a store's ascending listing yields the newest first; journals of pushgate 0.x hold theirs
under ``events/<utc-time>-<id>.json``, still read), one claim per number ever handed out
(``claims/<v>.json``), one marker per pinned version (``pins/<v>``), one intent per removal under
way (``removing/<v>.json``) and one tombstone per pruned version (``gone/<v>.json``). All JSON is
versioned (``schema``). Every later command (versions, verify, rollback, prune, history) reads
only this, so any machine that can read BASE can answer "what is deployed here, from what,
approved by whom".

What is published now is summarised in one compacted document, ``index.json`` (see
:mod:`pushgate.journal_index`), so ``versions``, ``rollback``, ``prune`` and ``push`` read a
few small documents whatever the length of the history; ``history --limit K`` reads K events.

Removing a version (:meth:`Journal.remove`), and why pin and prune cannot both win
---------------------------------------------------------------------------------
1. write the intent ``removing/<v>.json`` create-only, phase ``deciding`` (a second remover of
   the same version stops here);
2. re-read ``pins/<v>``: pinned, so the intent is deleted and the version kept;
3. rewrite the intent, phase ``removing``, durably: from here on the removal is decided
   (under the local ``flock`` no pin can land between the first read of the pin and the intent,
   so there the intent is written ``removing`` at once, and steps 2 and 3 are skipped);
4. remove the version (:meth:`Destination.remove_version`), write the ``prune`` event under the
   key chosen in the intent, delete the intent.

:func:`pushgate.lifecycle.pin` writes the pin first and then looks for an intent; finding one, it
takes its pin back and fails. Of two processes that each write, then read the other's key, at
least one sees the other's write, so a pin reported as made is never followed by a removal. On
local disk both also hold :meth:`Destination.lifecycle_lock` (an ``flock``) around their decision
and the removal, so there they never even meet.

A removal killed at any step leaves its intent. :meth:`Journal.recover` (run by every push,
rollback, prune and pin) finishes it: an intent still ``deciding`` removed nothing and is dropped;
one ``removing`` is carried out again (each step is idempotent) and its event written once, so
``versions``, ``verify`` and ``history`` agree afterwards. Before that they show the version as
being removed. On object stores, where no lock exists, a ``deciding`` intent is dropped only once
its process is gone (same host) or it is older than ``INTENT_TTL``; a ``removing`` one at once.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import random
import re
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pushgate import journal_index
from pushgate.artifact import utc_now
from pushgate.destination.base import Destination, is_version_name, manifest_key, owner_gone
from pushgate.errors import DestinationError, IntegrityError, PushgateError
from pushgate.journal_index import Index
from pushgate.manifest import Manifest, ManifestFile, checked_rels
from pushgate.secrets import scrub_json

RECORD_SCHEMA = "pushgate.record/v1"
EVENT_SCHEMA = "pushgate.event/v1"
REMOVAL_SCHEMA = "pushgate.removal/v1"
TOMBSTONE_SCHEMA = "pushgate.gone/v1"
#: an event's key: today's (``log/<inverted day>/<inverted time>-<id>.json``) or 0.x's (``events/``)
EVENT_KEY = re.compile(r"(?:events/[0-9TZ]+|log/[0-9]{8}/[0-9]{20})-[0-9a-f]{12}\.json")
#: events written by pushgate 0.x (time-ascending names, one flat prefix)
LEGACY_EVENTS = "events/"
#: events written now: day shards, names inverted so that ascending order is newest first
EVENTS = "log/"
#: one tombstone per version a prune removed (what lets a stale index entry be told from damage)
GONE = "gone/"
WITHDRAWN = "withdrawals/"
#: seconds after which a ``deciding`` removal intent of a process on another host counts as dead
INTENT_TTL = float(os.environ.get("PUSHGATE_INTENT_TTL", "120"))
#: conditional index writes before giving up (each lost race means another writer progressed)
INDEX_WRITE_TRIES = 64


def who() -> dict[str, str]:
    """The user and host doing something, for records."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname()}


def utc_iso(seconds: float) -> str:
    """``seconds`` since the epoch in :func:`utc_now`'s format (so the two compare as text)."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def dumps_compact(doc: dict[str, Any]) -> bytes:
    """JSON without indentation: for records (their manifest lists every file) and the index."""
    return (json.dumps(doc, separators=(",", ":"), sort_keys=True) + "\n").encode()


def event_key(at: str, suffix: str) -> str:
    """The key of an event written at ``at`` (an ISO UTC time): day shard and time inverted, so
    that a listing in ascending order (what every store gives) starts at the newest event."""
    digits = re.sub(r"[^0-9]", "", at)[:20].ljust(20, "0")
    day = f"{99999999 - int(digits[:8]):08d}"
    stamp = f"{10**20 - 1 - int(digits):020d}"
    return f"{EVENTS}{day}/{stamp}-{suffix}.json"


def manifest_json(manifest: Manifest | ManifestFile, version: str) -> dict[str, Any]:
    """A record's ``manifest``: the files inline, or (:attr:`Manifest.apart`) their figures and
    the key of their lines (:func:`~pushgate.destination.base.manifest_key`)."""
    if not manifest.apart:
        return (manifest.load() if isinstance(manifest, ManifestFile) else manifest).to_json()
    return {
        "digest": manifest.digest,
        "total_bytes": manifest.total_bytes,
        "file_count": manifest.count,
        "dirs": list(manifest.dirs),
        "lines": manifest_key(version),
    }


def _name(key: str, suffix: str = ".json") -> str:
    """The version a journal key like ``records/12.json`` is about ('' when it is not one)."""
    name = key.rsplit("/", 1)[-1].removesuffix(suffix)
    return name if is_version_name(name) else ""


def _loads(raw: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise DestinationError(f"journal file {where} is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise DestinationError(f"journal file {where} is not a JSON object")
    return doc


@dataclass
class VersionInfo:
    """One numeric version as seen through the journal."""

    version: str
    exists: bool
    record: dict[str, Any] | None
    serving: bool = False
    pinned: bool = False
    #: a removal of it was decided and has not finished (a prune was killed, or is running)
    removing: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def recorded(self) -> bool:
        return self.record is not None

    def to_json(self) -> dict[str, Any]:
        rec = self.record or {}
        return {
            "version": self.version,
            "exists": self.exists,
            "recorded": self.recorded,
            "serving": self.serving,
            "pinned": self.pinned,
            "removing": self.removing,
            "digest": rec.get("digest"),
            "kind": rec.get("kind"),
            "pushed_at": rec.get("pushed_at"),
            "user": rec.get("user"),
            "forced": bool(rec.get("decision", {}).get("forced")),
            "source": rec.get("source", {}).get("path"),
            "notes": self.notes,
        }


class Journal:
    """Reads and writes pushgate's records in one destination."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest

    # -- claims -------------------------------------------------------------------------------
    def claimed(self) -> list[int]:
        out = []
        for key in self.dest.list_meta("claims/"):
            if name := _name(key):
                out.append(int(name))
        return out

    def claim(self, version: int, token: str) -> bool:
        doc = {
            "schema": "pushgate.claim/v1",
            "version": str(version),
            "token": token,
            "at": utc_now(),
            **who(),
            "pid": os.getpid(),
        }
        return self.dest.write_meta(f"claims/{version}.json", dumps(doc), create_only=True)

    # -- records ------------------------------------------------------------------------------
    def record(self, version: str) -> dict[str, Any] | None:
        raw = self.dest.read_meta(f"records/{version}.json")
        return None if raw is None else _loads(raw, f"records/{version}.json")

    @contextlib.contextmanager
    def manifest(self, version: str, record: dict[str, Any]) -> Iterator[Manifest | ManifestFile]:
        """The manifest of a version's ``record``, inline or stored apart (then read line by
        line from the store's file, or a downloaded copy, for the block). IntegrityError when
        it is missing or unreadable; a manifest stored apart is checked against the record's
        digest as it is read (:meth:`ManifestFile.entries`)."""
        data = record.get("manifest")
        where = f"the record of version {version} at {self.dest.url}"
        try:
            if not isinstance(data, dict):
                raise ValueError("no manifest")
            if "lines" not in data:
                inline = Manifest.from_json(data)
            elif data["lines"] != manifest_key(version):  # never a key a record chose
                raise ValueError(f"its manifest is at {data['lines']!r}")
            else:
                dirs = tuple(str(d) for d in data.get("dirs") or ())
                checked_rels(list(dirs))
                digest, total = str(data["digest"]), int(data["total_bytes"])
                count = int(data["file_count"])
        except (KeyError, TypeError, ValueError) as e:
            raise IntegrityError(f"{where} has no readable manifest ({e})") from None
        if "lines" not in data:
            yield inline
            return
        with self.dest.meta_file(manifest_key(version)) as path:
            if path is None:
                raise IntegrityError(
                    f"{where} names its manifest {self.where(manifest_key(version))}, which is "
                    "missing: the journal was damaged"
                )
            yield ManifestFile(path, digest, total, count, dirs)

    def _read_all(self, keys: list[str]) -> list[tuple[str, bytes]]:
        """``(key, content)`` of many small documents, read in parallel: on a bucket each read is
        a round trip, so hundreds of records read one by one would take seconds."""
        if len(keys) < 4 or self.dest.local:  # local reads: threads only add overhead
            found = [(k, self.dest.read_meta(k)) for k in keys]
        else:
            with ThreadPoolExecutor(max_workers=min(32, len(keys))) as pool:
                found = list(zip(keys, pool.map(self.dest.read_meta, keys)))
        return [(k, raw) for k, raw in found if raw is not None]

    def records_of(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """The whole records of some versions (those that have one), read in parallel."""
        keys = [f"records/{n}.json" for n in names]
        return {_name(key): _loads(raw, key) for key, raw in self._read_all(keys)}

    def records(self, skip: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
        keys = [k for k in self.dest.list_meta("records/") if _name(k) and _name(k) not in skip]
        return {_name(key): _loads(raw, key) for key, raw in self._read_all(keys)}

    # -- events -------------------------------------------------------------------------------
    @staticmethod
    def new_event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        """``(key, document)`` of an event, not written yet."""
        at = utc_now()
        # events carry free text (reasons, errors, hook output): no secret is written to them
        doc = scrub_json({"schema": EVENT_SCHEMA, "event": kind, "at": at, **who(), **fields})
        return event_key(at, uuid.uuid4().hex[:12]), doc

    def event(self, kind: str, *, flush: bool = True, **fields: Any) -> dict[str, Any]:
        """Append an audit event. ``flush=False`` skips the disk flush, for events that record
        that nothing changed (a crash may then lose the event, never a version or a record)."""
        key, doc = self.new_event(kind, **fields)
        self.dest.write_meta(key, dumps(doc), durable=flush)
        return doc

    def _parse_events(self, found: list[tuple[str, bytes]], damaged: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key, raw in found:
            try:
                out.append(_loads(raw, key))
            except DestinationError as e:
                if damaged:
                    out.append({"event": "damaged", "file": self.where(key), "error": str(e)})
        return out

    def recent_events(
        self, limit: int | None = None, *, damaged: bool = False
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` events (all without it), newest first. Today's events are listed
        lazily, newest first, so this reads about ``limit`` keys whatever the history's length;
        0.x's (``events/``, all older) are read only when the newer ones are fewer than
        ``limit``. An event file that is not a JSON object is skipped, or with ``damaged`` given
        in its place as ``{"event": "damaged", "file": <its path>, "error": <why>}``: one bad
        file must not hide the rest of the trail."""
        out: list[dict[str, Any]] = []
        batch: list[str] = []
        size = 64 if limit is None else min(max(limit, 1), 256)
        for key in self.dest.iter_meta(EVENTS):
            if not EVENT_KEY.fullmatch(key):
                continue
            batch.append(key)
            if len(batch) >= size:
                out += self._parse_events(self._read_all(batch), damaged)
                batch = []
                if limit is not None and len(out) >= limit:
                    return out[:limit]
        out += self._parse_events(self._read_all(batch), damaged)
        if limit is None or len(out) < limit:
            legacy = list(reversed(self.dest.list_meta(LEGACY_EVENTS)))
            out += self._parse_events(self._read_all(legacy), damaged)
        return out if limit is None else out[:limit]

    def events(self, *, damaged: bool = False) -> list[dict[str, Any]]:
        """Every event, oldest first (reads them all: for audits and rebuilding the index)."""
        return list(reversed(self.recent_events(damaged=damaged)))

    def where(self, key: str) -> str:
        """The full location of a journal key, for messages."""
        return f"{self.dest.url.rstrip('/')}/.pushgate/{key}"

    # -- pins ---------------------------------------------------------------------------------
    def pins(self) -> set[str]:
        return {name for k in self.dest.list_meta("pins/") if (name := _name(k, ""))}

    def pinned(self, version: str) -> bool:
        """One read, not a listing: what each removal decision needs."""
        return self.dest.read_meta(f"pins/{version}") is not None

    def kept(self, version: str) -> bool:
        """Pinned, or named by a label (:mod:`pushgate.labels`, which orders its writes against
        removals like ``pin``): no removal may take it."""
        from pushgate.labels import labelled_versions  # labels builds on the journal

        return self.pinned(version) or version in labelled_versions(self.dest)

    # -- removals -----------------------------------------------------------------------------
    @staticmethod
    def _intent(raw: bytes, key: str) -> dict[str, Any]:
        # An unreadable intent never makes anything be removed (it could be planted): it reads
        # as phase "damaged", which recovery drops, keeping the version.
        try:
            doc = _loads(raw, key)
        except DestinationError:
            doc = {}
        if doc.get("phase") not in ("deciding", "removing"):
            return {"version": _name(key), "phase": "damaged"}
        return doc

    def removals(self) -> dict[str, dict[str, Any]]:
        """The removal intents left, by version."""
        keys = [k for k in self.dest.list_meta("removing/") if _name(k)]
        return {_name(key): self._intent(raw, key) for key, raw in self._read_all(keys)}

    def removal(self, version: str) -> dict[str, Any] | None:
        key = f"removing/{version}.json"
        raw = self.dest.read_meta(key)
        return None if raw is None else self._intent(raw, key)

    def remove(self, version: str, **event_fields: Any) -> str:
        """Remove a published version by the protocol in this module's docstring. Returns
        ``removed``, ``pinned`` (kept), ``gone`` (someone else removed it first) or ``busy``
        (another process is deciding about it)."""
        key = f"removing/{version}.json"
        with self.dest.lifecycle_lock() as exclusive:
            if exclusive and self.kept(version):  # without the lock, step 2 reads it
                return "pinned"
            event_key, event = self.new_event(
                "prune", version=version, removed=[version], **event_fields
            )
            intent = {
                "schema": REMOVAL_SCHEMA,
                "version": version,
                # under a lock no pin can land between the read above and this write: decided
                "phase": "removing" if exclusive else "deciding",
                "at": event["at"],
                "expires": time.time() + INTENT_TTL,
                **who(),
                "pid": os.getpid(),
                "event_key": event_key,
                "event": event,
            }
            # durable only once decided: an undecided intent lost to a power cut removed nothing
            if not self.dest.write_meta(key, dumps(intent), create_only=True, durable=exclusive):
                return "busy"
            if not exclusive:
                if self.kept(version):  # a pin (or label) written before our intent: it wins
                    self.dest.delete_meta(key)
                    return "pinned"
                intent["phase"] = "removing"
                self.dest.write_meta(key, dumps(intent))
            return "removed" if self._finish(version, intent) else "gone"

    def _finish(self, version: str, intent: dict[str, Any], recovered: bool = False) -> bool:
        """Carry out a decided removal; each step is idempotent, so running it again after a
        kill completes it. True when the version was still there."""
        existed = self.dest.remove_version(version)
        event_key, event = str(intent.get("event_key")), intent.get("event")
        if not (EVENT_KEY.fullmatch(event_key) and isinstance(event, dict)):
            event_key, event = self.new_event("prune", version=version, removed=[version])
        # Not there any more: another prune removed it first and wrote the event (a normal run),
        # or this removal was killed after removing it (recovery: the event may be missing).
        if existed or (recovered and self.dest.read_meta(event_key) is None):
            if recovered:
                event = {**event, "finished_by_recovery": True}
            self.dest.write_meta(event_key, dumps(event))
        # the tombstone tells an index entry of a pruned version from damage (journal_index)
        tomb = {"schema": TOMBSTONE_SCHEMA, "version": version, "why": "prune"}
        tomb |= {"event": event_key, "at": event.get("at") or utc_now()}
        self.dest.write_meta(f"{GONE}{version}.json", dumps(tomb))
        if recovered:  # a pin killed while it failed on this intent may have left its pin
            self.dest.delete_meta(f"pins/{version}")
        self.dest.delete_meta(f"removing/{version}.json")
        return existed

    def finish_removals(self) -> list[str]:
        """Finish (or drop, if undecided) the removals killed processes left."""
        done: list[str] = []
        if not self.dest.list_meta("removing/"):
            return done
        with self.dest.lifecycle_lock() as exclusive:
            for version, intent in sorted(self.removals().items(), key=lambda kv: int(kv[0])):
                if intent.get("phase") == "removing":
                    try:
                        self._finish(version, intent, recovered=True)
                    except PushgateError as e:  # never block a push: the next run tries again
                        done.append(f"could not finish the removal of version {version}: {e}")
                        continue
                    done.append(
                        f"finished the removal of version {version} that an interrupted prune "
                        "had started"
                    )
                elif intent.get("phase") == "damaged" or exclusive or owner_gone(intent):
                    self.dest.delete_meta(f"removing/{version}.json")
                    done.append(
                        f"dropped the undecided removal of version {version} (its prune was "
                        "interrupted before removing anything, or the intent was unreadable; "
                        "the version stays)"
                    )
        return done

    def recover(self) -> list[str]:
        """Clean what killed processes left: removals first, then staging (``dest.recover``)."""
        return self.finish_removals() + self.dest.recover()

    # -- the index ----------------------------------------------------------------------------
    def dest_legacy_events(self) -> list[dict[str, Any]]:
        """The events pushgate 0.x wrote (``events/``), oldest first."""
        return self._parse_events(self._read_all(self.dest.list_meta(LEGACY_EVENTS)), False)

    def index(
        self, on_store: set[str] | None = None, known: dict[str, dict[str, Any]] | None = None
    ) -> Index:
        """What is published now (see :mod:`pushgate.journal_index`), checked against the store's
        listing. Reads the index and the listing; rebuilds from every record only when the index
        is missing or damaged. ``known``: records in hand (just published), not read again.
        Writes nothing."""
        return self._index_of(self.dest.read_meta(journal_index.INDEX_KEY), on_store, known)

    def _index_of(
        self,
        raw: bytes | None,
        on_store: set[str] | None = None,
        known: dict[str, dict[str, Any]] | None = None,
    ) -> Index:
        if on_store is None:
            on_store = set(self.dest.numeric_children())
        index, why = journal_index.parse(raw)
        if index is None:
            index = journal_index.rebuild(self, on_store, str(why), frozenset(known or ()))
        for name, record in (known or {}).items():
            entry = journal_index.summary(record)
            if index.versions.get(name) != entry or index.high_water < int(name):
                index.versions[name] = entry
                index.high_water = max(index.high_water, int(name))
                index.dirty = True
        journal_index.reconcile(self, index, on_store)
        return index

    def save_index(self, published: dict[str, dict[str, Any]] | None = None) -> Index:
        """Store the reconciled index, with the records of versions just ``published`` added.
        On local disk under the lifecycle lock (never call this while holding it)."""
        with self.dest.lifecycle_lock() as locked:
            return self._store_index(locked, published)

    def _store_index(
        self, locked: bool, published: dict[str, dict[str, Any]] | None = None, high_water: int = 0
    ) -> Index:
        """Read, reconcile and store the index. Under the lifecycle lock (local disk) a plain
        write; elsewhere (buckets) a conditional one, If-Match on the ETag read (GCS:
        ifGenerationMatch), read again and re-applied when another writer got there first, so
        two writers at once never lose an update."""
        key = journal_index.INDEX_KEY
        for attempt in range(INDEX_WRITE_TRIES):
            if locked:
                raw, tag = self.dest.read_meta(key), None
            else:
                raw, tag = self.dest.read_meta_tagged(key)
            index = self._index_of(raw, None, published)
            if high_water > index.high_water:
                index.high_water, index.dirty = high_water, True
            if not index.dirty:
                return index
            if locked:
                self.dest.write_meta(key, index.to_bytes())
            elif not self.dest.write_meta_if(key, index.to_bytes(), tag):
                # lost the race: the other writer's update is in what we read next
                time.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))
                continue
            index.dirty = False
            return index
        raise DestinationError(
            f"{self.where(key)} changed {INDEX_WRITE_TRIES} times while this process updated it "
            "(as many writers at once): not written; the next command that writes it retries"
        )

    def high_water(self) -> int:
        """The highest number pushgate handed out that the index or the high-water mark knows
        (claims may be higher: a claim is create-only, so those are refused, never reused)."""
        index, _ = journal_index.parse(self.dest.read_meta(journal_index.INDEX_KEY))
        return max(index.high_water if index else 0, journal_index.stored_high_water(self))

    # -- retention ----------------------------------------------------------------------------
    def expire(self, days: float) -> dict[str, int]:
        """Delete the history of versions that are gone (pruned; withdrawn ones are kept) for
        longer than ``days``: their records, tombstones and claims, and every event older than
        ``days`` that is not about a version still listed. The high-water mark of numbers is
        stored first, so no number is ever handed out again. Returns counts of what was deleted.
        Reads the whole history (it is what it trims): run it now and then, not on every push."""
        cutoff = utc_iso(time.time() - days * 86400)
        done = {"records": 0, "events": 0, "claims": 0}
        with self.dest.lifecycle_lock() as locked:
            on_store = set(self.dest.numeric_children())
            index = self.index(on_store)
            keep = on_store | set(index.versions) | set(self.removals())
            claims = [str(c) for c in self.claimed()]
            recorded = [_name(k) for k in self.dest.list_meta("records/") if _name(k)]
            high = max(
                [index.high_water, journal_index.stored_high_water(self)]
                + [int(v) for v in [*claims, *recorded, *on_store]],
                default=0,
            )
            mark = {"schema": "pushgate.high_water/v1", "high_water": high, "at": utc_now()}
            self.dest.write_meta(journal_index.HIGH_WATER_KEY, dumps(mark))
            self._store_index(locked, high_water=high)

            # when each gone version went: its tombstone, else 0.x's prune event
            gone_at: dict[str, str] = {}
            legacy = self._read_all(self.dest.list_meta(LEGACY_EVENTS))
            for e in self._parse_events(legacy, False):
                if e.get("event") == "prune":
                    for v in e.get("removed", []) or []:
                        gone_at[str(v)] = str(e.get("at", ""))
            for key, raw in self._read_all(self.dest.list_meta(GONE)):
                with contextlib.suppress(DestinationError):
                    gone_at[_name(key)] = str(_loads(raw, key).get("at", ""))

            def about_kept(e: dict[str, Any]) -> bool:
                named = {str(e.get("version") or "")} | {str(v) for v in e.get("removed") or []}
                return bool(named & keep)

            # events: 0.x's by their time, today's by whole day shards older than the cutoff
            cutoff_day = f"{99999999 - int(cutoff[:10].replace('-', '')):08d}"
            doomed: list[str] = []
            for key, raw in legacy:
                with contextlib.suppress(DestinationError):
                    e = _loads(raw, key)
                    if str(e.get("at", "")) < cutoff and not about_kept(e):
                        doomed.append(key)
            for key in self.dest.iter_meta(EVENTS):
                day = key.split("/")[1] if key.count("/") == 2 else ""
                if not day or day < cutoff_day:
                    continue  # inverted names: a smaller one is a newer day than the cutoff's
                body = self.dest.read_meta(key)
                try:
                    e = _loads(body, key) if body is not None else {}
                except DestinationError:
                    e = {}
                if day == cutoff_day and str(e.get("at", "")) >= cutoff:
                    continue
                if not about_kept(e):
                    doomed.append(key)
            for key in doomed:
                self.dest.delete_meta(key)
            done["events"] = len(doomed)

            for v in sorted(set(recorded) - keep, key=int):
                if v in gone_at and gone_at[v] and gone_at[v] < cutoff:
                    self.dest.delete_meta(f"records/{v}.json")
                    self.dest.delete_meta(manifest_key(v))
                    self.dest.delete_meta(f"claims/{v}.json")
                    self.dest.delete_meta(f"{GONE}{v}.json")
                    done["records"] += 1
                    done["claims"] += 1
            for v in sorted(set(claims) - keep - set(recorded), key=int):
                claim = self.dest.read_meta(f"claims/{v}.json")  # a number a dead push burned
                try:
                    at = str(_loads(claim, v).get("at", "")) if claim is not None else ""
                except DestinationError:
                    at = ""
                if at and at < cutoff:
                    self.dest.delete_meta(f"claims/{v}.json")
                    done["claims"] += 1
        return done

    # -- views --------------------------------------------------------------------------------
    def versions(self) -> list[VersionInfo]:
        """The versions that exist, are withdrawn, or are recorded and missing (damage), oldest
        first: from the index and the store's listing, not the history. A version's ``record``
        here is its summary (:func:`pushgate.journal_index.summary`); :meth:`record` reads the
        whole record."""
        on_store = set(self.dest.numeric_children())
        index = self.index(on_store)
        removing = {v for v, i in self.removals().items() if i.get("phase") == "removing"}
        pins = self.pins()
        infos: list[VersionInfo] = []
        for name in sorted(on_store | set(index.versions), key=int):
            entry = index.versions.get(name)
            info = VersionInfo(name, name in on_store, entry, pinned=name in pins)
            info.removing = name in removing
            if info.removing:
                info.notes.append(
                    "being removed: a prune decided to remove it and has not finished (if it "
                    "was interrupted, the next push or prune finishes it)"
                )
            elif info.exists and not info.recorded:
                info.notes.append("no pushgate record: not published by pushgate, or unfinished")
            elif not info.exists and info.recorded:
                info.notes.append(
                    "withdrawn: it did not serve (pushgate history BASE says why)"
                    if entry and entry.get("withdrawn")
                    else "recorded but missing from the store"
                )
            if name.startswith("0") and name != "0":
                info.notes.append("zero-padded name: Triton ignores it")
            infos.append(info)
        present = [i for i in infos if i.exists]
        if present:
            max(present, key=lambda i: int(i.version)).serving = True
        return infos

    def newest_published(self) -> VersionInfo | None:
        """The highest version that exists and has a record (reads one record, usually)."""
        for name in sorted(self.dest.numeric_children(), key=int, reverse=True):
            record = self.record(name)
            if record is not None:
                return VersionInfo(name, True, record)
        return None
