"""The journal: pushgate's records inside the destination (``<BASE>/.pushgate/``).

One record per published version (``records/<v>.json``), one event per lifecycle action
(``events/<utc-time>-<id>.json``), one claim per number ever handed out (``claims/<v>.json``), and
one empty marker per pinned version (``pins/<v>``). All JSON is versioned (``schema``) and readable
by a human. Every later command (versions, verify, rollback, prune, history) reads only this, so
any machine that can read BASE can answer "what is deployed here, from what, approved by whom".
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pushgate.artifact import utc_now
from pushgate.destination.base import Destination
from pushgate.errors import DestinationError
from pushgate.secrets import scrub_json

RECORD_SCHEMA = "pushgate.record/v1"
EVENT_SCHEMA = "pushgate.event/v1"


def who() -> dict[str, str]:
    """The user and host doing something, for records."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname()}


def dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


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
            name = key.rsplit("/", 1)[-1].removesuffix(".json")
            if name.isdigit():
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

    def _read_all(self, keys: list[str]) -> list[tuple[str, bytes]]:
        """``(key, content)`` of many small documents, read in parallel: on a bucket each read is
        a round trip, so hundreds of records read one by one would take seconds."""
        if len(keys) < 4:
            found = [(k, self.dest.read_meta(k)) for k in keys]
        else:
            with ThreadPoolExecutor(max_workers=min(32, len(keys))) as pool:
                found = list(zip(keys, pool.map(self.dest.read_meta, keys), strict=True))
        return [(k, raw) for k, raw in found if raw is not None]

    def records(self) -> dict[str, dict[str, Any]]:
        keys = [
            k
            for k in self.dest.list_meta("records/")
            if k.rsplit("/", 1)[-1].removesuffix(".json").isdigit()
        ]
        return {
            key.rsplit("/", 1)[-1].removesuffix(".json"): _loads(raw, key)
            for key, raw in self._read_all(keys)
        }

    # -- events -------------------------------------------------------------------------------
    def event(self, kind: str, *, flush: bool = True, **fields: Any) -> dict[str, Any]:
        """Append an audit event. ``flush=False`` skips the disk flush, for events that record
        that nothing changed (a crash may then lose the event, never a version or a record)."""
        at = utc_now()
        # events carry free text (reasons, errors, hook output): no secret is written to them
        doc = scrub_json({"schema": EVENT_SCHEMA, "event": kind, "at": at, **who(), **fields})
        stamp = at.replace(":", "").replace("-", "").replace(".", "")
        key = f"events/{stamp}-{uuid.uuid4().hex[:12]}.json"
        self.dest.write_meta(key, dumps(doc), durable=flush)
        return doc

    def events(self) -> list[dict[str, Any]]:
        """Every event, oldest first (their keys sort by time)."""
        return [_loads(raw, key) for key, raw in self._read_all(self.dest.list_meta("events/"))]

    # -- pins ---------------------------------------------------------------------------------
    def pins(self) -> set[str]:
        return {k.rsplit("/", 1)[-1] for k in self.dest.list_meta("pins/")}

    # -- views --------------------------------------------------------------------------------
    def versions(self) -> list[VersionInfo]:
        """Every numeric version that exists or is recorded as existing, oldest first."""
        on_store = set(self.dest.numeric_children())
        records = self.records()
        removed: set[Any] = set()
        withdrawn: set[str] = set()
        if set(records) - on_store:  # only then do the events matter: why is one gone?
            prunes = [e for e in self.events() if e.get("event") == "prune"]
            removed = {e.get("version") for e in prunes} | {
                v for e in prunes for v in e.get("removed", [])
            }
            withdrawn = {
                k.rsplit("/", 1)[-1].removesuffix(".json")
                for k in self.dest.list_meta("withdrawals/")
            }
        pins = self.pins()
        infos: list[VersionInfo] = []
        for name in sorted(on_store | set(records), key=int):
            info = VersionInfo(name, name in on_store, records.get(name), pinned=name in pins)
            if info.exists and not info.recorded:
                info.notes.append("no pushgate record: not published by pushgate, or unfinished")
            if not info.exists and info.recorded:
                info.notes.append(
                    "withdrawn: it did not serve (pushgate history BASE says why)"
                    if name in withdrawn
                    else "pruned"
                    if name in removed
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
