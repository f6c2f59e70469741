"""Withdraw a published version that does not serve: out of the servers' sight, recorded.

Locally the version directory is renamed, in one atomic step, to
``<BASE>/.pushgate/withdrawn/<v>-<id>/`` (never numeric, never under a name a server reads): the
bytes stay for a post-mortem, and the servers see the version vanish whole, as for a prune. On an
object store there is no rename: ``remove_version`` deletes its objects in the order the
destination uses for removals (see :mod:`pushgate.destination.objectstore`); the record keeps the
manifest. Then ``.pushgate/withdrawals/<v>.json`` and a ``withdraw`` event are written: the move
comes first, so a crash between the two leaves a version that is out of sight and "recorded but
missing", never one that is served while the journal says it is withdrawn.

A withdrawn version no longer exists at BASE, so it is never a rollback target (default or
``--to``), never the newest version a server loads, and never comes back unless re-pushed (as a
new number: its claim keeps the old one burned).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from pushgate.artifact import utc_now
from pushgate.destination.base import Destination
from pushgate.errors import DestinationError
from pushgate.journal import EVENT_SCHEMA, Journal, dumps, who

WITHDRAWN = "withdrawals/"


def withdraw_version(
    dest: Destination, version: str, reason: str, *, servers: list[str], action: str
) -> dict[str, Any]:
    """Take ``version`` out of sight and record why; returns the withdrawal document."""
    local = getattr(dest, "local_version_dir", None)
    hidden: str | None = None
    if local is not None:
        from pushgate.destination.local import fsync_dir

        src = local(version)
        meta = dest.meta  # type: ignore[attr-defined]
        target = meta / "withdrawn" / f"{version}-{uuid.uuid4().hex[:8]}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(src, target)  # one atomic step: servers see the version vanish whole
            fsync_dir(src.parent)
            fsync_dir(target.parent)
        except OSError as e:
            raise DestinationError(
                f"could not withdraw version {version} ({src} -> {target}): {e.strerror or e}; "
                "it may still be served: remove it by hand or with 'pushgate prune'"
            ) from e
        hidden = str(target)
    else:
        dest.remove_version(version)
    doc = {
        "schema": EVENT_SCHEMA.replace("event", "withdrawn"),
        "version": version,
        "reason": reason,
        "servers": servers,
        "after": action,
        "moved_to": hidden,
        "at": utc_now(),
        **who(),
    }
    dest.write_meta(f"{WITHDRAWN}{version}.json", dumps(doc))
    Journal(dest).event(
        "withdraw", version=version, reason=reason, servers=servers, after=action, moved_to=hidden
    )
    return doc


def withdrawn_versions(dest: Destination) -> dict[str, dict[str, Any]]:
    """``{version: withdrawal document}`` of every withdrawn version at ``dest``."""
    import json

    out: dict[str, dict[str, Any]] = {}
    for key in dest.list_meta(WITHDRAWN):
        name = key.rsplit("/", 1)[-1].removesuffix(".json")
        raw = dest.read_meta(f"{WITHDRAWN}{name}.json") if name.isdigit() else None
        if raw is None:
            continue
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = {"reason": "(unreadable withdrawal record)"}
        out[name] = doc if isinstance(doc, dict) else {}
    return out
