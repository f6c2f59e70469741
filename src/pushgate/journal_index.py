"""The journal's index: what is published now, in one compacted document (``.pushgate/index.json``).

The records (``records/<v>.json``) are the truth and are append-only; the index is derived from
them and may always be rebuilt (:func:`rebuild`). It holds, per version that is published (or
withdrawn, or recorded and missing: damage to report), the summary every listing needs (digest,
time, kind, user, source, ...), and ``high_water``, the highest version number ever handed out
(so numbers stay burned when ``prune --expire-history`` deletes old claims).

Why a stale index is harmless: every reader checks it against the store's own listing of numeric
versions (:func:`reconcile`), which each command makes anyway and which is as long as what is
published, not as the history:

- a version on the store but not in the index (a push killed between its record and the index
  update, a lost update on a bucket, an ``adopt``, a pushgate 0.x push): its record is read, one
  small read, and its summary added;
- an entry whose version is gone from the store: a tombstone ``gone/<v>.json`` (written by every
  removal before its intent is dropped) drops it; a withdrawal marker flags it withdrawn; neither
  leaves it listed as "recorded but missing from the store".

Writers persist what they reconciled (``Journal.save_index``). On local disk they do so under the
lifecycle ``flock``, tmp + fsync + rename (``write_meta``). On object stores, where nothing holds
writers off, the write is conditional (``Destination.write_meta_if``: If-Match on the ETag read on
S3 and Azure, ``ifGenerationMatch`` on GCS; create-only when there was none): a writer that lost
the race reads the index again, reconciles and re-applies its update, so two writers at once never
lose one's update. Even so the index is only derived data: the next reader would repair it from
the store's listing, the records and the tombstones, as above.

A BASE written by pushgate 0.x (no index, records with their manifest indented, events under
``events/``) is read as it is: readers rebuild the index in memory (reading every record, as 0.x
did), and the first command that writes (push, rollback, prune, pin) stores it. No flag day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pushgate.artifact import utc_now
from pushgate.destination.base import is_version_name

if TYPE_CHECKING:
    from pushgate.journal import Journal

INDEX_KEY = "index.json"
INDEX_SCHEMA = "pushgate.index/v1"
#: the high-water mark of claimed numbers, written before ``--expire-history`` deletes a claim
HIGH_WATER_KEY = "high_water.json"
#: the record fields every listing needs; the manifest, blessings and the rest stay in the record
SUMMARY_FIELDS = (
    "digest",
    "kind",
    "pushed_at",
    "user",
    "host",
    "previous_newest",
    "versioning",
    "rollback_to",
    "labels",
    "provenance",
)


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The part of a record that listings need (shaped like the record, so readers of either
    use the same keys: ``decision.forced``, ``source.path``)."""
    out = {k: record[k] for k in SUMMARY_FIELDS if k in record}
    decision = record.get("decision")
    out["decision"] = {"forced": bool(isinstance(decision, dict) and decision.get("forced"))}
    source = record.get("source")
    out["source"] = {"path": source.get("path") if isinstance(source, dict) else None}
    return out


@dataclass
class Index:
    """The decoded index. ``versions``: ``{version: summary}``; a summary may carry
    ``"withdrawn": True``."""

    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    high_water: int = 0
    #: True when this copy differs from what is stored (rebuilt, or reconciled)
    dirty: bool = False
    #: why it was rebuilt, when it was (missing, damaged)
    rebuilt: str | None = None

    def to_bytes(self) -> bytes:
        from pushgate.journal import dumps_compact

        doc = {
            "schema": INDEX_SCHEMA,
            "high_water": self.high_water,
            "updated_at": utc_now(),
            "versions": self.versions,
        }
        return dumps_compact(doc)


def parse(raw: bytes | None) -> tuple[Index | None, str | None]:
    """``(index, None)``, or ``(None, why)`` when it is missing or cannot be used."""
    if raw is None:
        return None, "missing"
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("schema") != INDEX_SCHEMA:
            raise ValueError("not a pushgate index")
        versions = doc["versions"]
        if not isinstance(versions, dict) or not all(
            is_version_name(str(k)) and isinstance(v, dict) for k, v in versions.items()
        ):
            raise ValueError("bad versions")
        return Index({str(k): v for k, v in versions.items()}, int(doc["high_water"])), None
    except (ValueError, KeyError, TypeError) as e:
        return None, f"damaged ({e})"


def stored_high_water(journal: Journal) -> int:
    raw = journal.dest.read_meta(HIGH_WATER_KEY)
    try:
        return int(json.loads(raw)["high_water"]) if raw is not None else 0
    except (ValueError, KeyError, TypeError):
        return 0


def rebuild(
    journal: Journal, on_store: set[str], why: str, known: frozenset[str] = frozenset()
) -> Index:
    """The index derived from the journal alone: every record, less the versions a prune removed
    (tombstones, and 0.x's ``prune`` events); withdrawn ones flagged. Reads the whole history:
    used only when the index is missing (a 0.x BASE) or damaged. ``known``: versions whose
    records the caller holds and adds itself (a first push's own record, with a manifest that
    may list a million files, is not read back)."""
    records = journal.records(skip=known)
    removed = {n.rsplit("/", 1)[-1].removesuffix(".json") for n in journal.dest.list_meta("gone/")}
    for e in journal.dest_legacy_events():
        if e.get("event") == "prune":
            removed.update(str(v) for v in e.get("removed", []) or [])
    withdrawn = {
        n.rsplit("/", 1)[-1].removesuffix(".json") for n in journal.dest.list_meta("withdrawals/")
    }
    index = Index(dirty=True, rebuilt=why)
    for name, record in records.items():
        if name in on_store or name not in removed:
            index.versions[name] = summary(record)
            if name not in on_store and name in withdrawn:
                index.versions[name]["withdrawn"] = True
    numbers = [int(n) for n in on_store | set(records) | known] + journal.claimed()
    index.high_water = max([stored_high_water(journal), *numbers], default=0)
    return index


def reconcile(journal: Journal, index: Index, on_store: set[str]) -> None:
    """Bring ``index`` in line with the store's listing (see the module's docstring); reads one
    record per version missing from it and one or two markers per entry gone from the store."""
    new = sorted(on_store - set(index.versions), key=int)
    for key, raw in journal._read_all([f"records/{v}.json" for v in new]):
        name = key[len("records/") : -len(".json")]
        try:
            record = json.loads(raw)
        except ValueError:
            continue  # an unreadable record: listed as unrecorded, verify names it
        if isinstance(record, dict):
            index.versions[name] = summary(record)
            index.high_water = max(index.high_water, int(name))
            index.dirty = True
    for name in sorted(set(index.versions) - on_store, key=int):
        entry = index.versions[name]
        if journal.dest.read_meta(f"gone/{name}.json") is not None:
            del index.versions[name]
            index.dirty = True
        elif not entry.get("withdrawn") and journal.dest.read_meta(f"withdrawals/{name}.json"):
            entry["withdrawn"] = True
            index.dirty = True
    for name in set(index.versions) & on_store:
        if index.versions[name].pop("withdrawn", None):  # published again (never by pushgate)
            index.dirty = True
