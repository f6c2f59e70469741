"""Labels: names (``stable``, ``canary`` ...) that point at published versions.

Each label is one journal document ``.pushgate/labels/<name>.json``; every move is a ``label``
event (``unlabel`` for a removal), so ``history`` shows them all. A label only ever points at a
version that is published at BASE: never a withdrawn, pruned or unrecorded one (exit 2, naming
the version), and ``prune`` never removes a labelled version (:func:`protected_versions`).

What makes labels real is the server configuration (:mod:`pushgate.serving.server_config`),
remembered at BASE once given. A move follows TF Serving's rule that a label may only name a
loaded version, for every server alike:

1. every config file is written with the labelled versions plus the new one (labels unchanged);
2. with ``--serve``, the new version must become ready (the same check as ``push --serve``);
   when it does not, step 1 is undone and nothing moves (exit 1);
3. the label document and its event are written;
4. every config file is written again from the labels as they now are (re-read, so a concurrent
   move of another label is kept): only labelled versions load, TF Serving's labels move.

Against prune, the same guarantee as pins (:mod:`pushgate.journal`'s removal intents): the
label is written first, then the version is looked for (a removal intent
``.pushgate/removing/<v>.json``, or the version gone); if a removal got there first the label is
put back and the move fails (exit 1). A removal reads the labels after writing its intent
(:meth:`Journal.kept`), so of the two one always sees the other's write; on local disk both also
hold :meth:`Destination.lifecycle_lock`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushgate.artifact import utc_now
from pushgate.destination.base import Destination
from pushgate.errors import DestinationError, UsageError
from pushgate.journal import Journal, dumps, who
from pushgate.lifecycle_common import check_version_arg, open_base
from pushgate.serving.server_config import (
    ServerConfig,
    State,
    check_triton_config,
    parse_server_config,
    write_server_configs,
)

LABEL_SCHEMA = "pushgate.label/v1"
CONFIGS_KEY = "server-configs.json"
LABEL_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")

__all__ = [
    "LabelResult",
    "label",
    "labelled_versions",
    "labels",
    "promote",
    "unlabel",
]


def check_label_name(name: str) -> str:
    if not LABEL_NAME.fullmatch(name):
        raise UsageError(
            f"not a label name: {name!r} (lower-case letters, digits, '-' and '_', starting "
            "with a letter, e.g. stable or canary)"
        )
    return name


def _key(name: str) -> str:
    return f"labels/{name}.json"


def read_labels(dest: Destination) -> dict[str, str]:
    """``{label: version}`` of every label at ``dest``."""
    out: dict[str, str] = {}
    for key in dest.list_meta("labels/"):
        name = key.rsplit("/", 1)[-1].removesuffix(".json")
        raw = dest.read_meta(key) if LABEL_NAME.fullmatch(name) else None
        if raw is None:
            continue
        try:
            doc = json.loads(raw)
            version = str(doc["version"])
        except (ValueError, KeyError, TypeError):
            raise DestinationError(
                f"label file {dest.url}/.pushgate/{key} is damaged; remove it with "
                f"'pushgate label BASE {name} --remove'"
            ) from None
        out[name] = version
    return out


def labelled_versions(dest: Destination) -> set[str]:
    """The versions some label names: prune keeps them (:meth:`Journal.kept`)."""
    return set(read_labels(dest).values())


def remembered_configs(dest: Destination) -> list[ServerConfig]:
    raw = dest.read_meta(CONFIGS_KEY)
    if raw is None:
        return []
    try:
        specs = json.loads(raw)["configs"]
        return [parse_server_config(str(s)) for s in specs]
    except (ValueError, KeyError, TypeError, UsageError):
        raise DestinationError(
            f"{dest.url}/.pushgate/{CONFIGS_KEY} is damaged; give --server-config again "
            "(or --server-config none)"
        ) from None


def _configs(dest: Destination, given: tuple[str, ...] | None) -> list[ServerConfig]:
    """The server configs in force: ``given`` (then remembered) or the remembered ones."""
    if not given:
        return remembered_configs(dest)
    if given == ("none",):
        dest.write_meta(CONFIGS_KEY, dumps({"schema": "pushgate.server-configs/v1", "configs": []}))
        return []
    configs = [parse_server_config(s) for s in given]
    for c in configs:
        if c.kind == "triton":
            check_triton_config(dest)
    doc = {"schema": "pushgate.server-configs/v1", "configs": [c.spec for c in configs]}
    dest.write_meta(CONFIGS_KEY, dumps(doc))
    return configs


def _state(dest: Destination, also: str | None = None) -> State:
    """What the server configs must say, read fresh at each write attempt: the labelled
    versions (plus ``also``, a version about to be labelled) and the labels."""

    def read() -> tuple[list[str], dict[str, str]]:
        now = read_labels(dest)
        versions = set(now.values()) | ({also} if also else set())
        return sorted(versions, key=int), now

    return read


def _eligible(dest: Destination, journal: Journal, version: str) -> None:
    """Exit 2 unless ``version`` is published at BASE (on the store, recorded, not withdrawn)."""
    if dest.read_meta(f"withdrawals/{version}.json") is not None:
        raise UsageError(
            f"version {version} at {dest.url} was withdrawn (it did not serve); a label never "
            "points at a withdrawn version: push it again or choose another"
        )
    on_store = version in set(dest.numeric_children())
    recorded = journal.record(version) is not None
    if not on_store and recorded:
        raise UsageError(
            f"version {version} at {dest.url} was pruned; a label never points at a removed "
            "version: choose one that 'pushgate versions' lists"
        )
    if not on_store:
        raise UsageError(f"no version {version} at {dest.url}; 'pushgate versions' lists them")
    if not recorded:
        raise UsageError(
            f"version {version} at {dest.url} was not published by pushgate (no record); "
            "labels point only at versions pushgate published"
        )
    if dest.read_meta(f"removing/{version}.json") is not None:
        raise UsageError(f"version {version} at {dest.url} is being removed by a prune")


@dataclass
class LabelResult:
    """What a label move, removal or promote did."""

    base: str
    label: str
    version: str | None
    previous: str | None
    action: str = "label"
    changed: bool = True
    configs: list[str] = field(default_factory=list)
    serve: Any = None  # a ServeReport when --serve was given
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.serve is None or self.serve.healthy

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "action": self.action,
            "label": self.label,
            "version": self.version,
            "previous": self.previous,
            "changed": self.changed,
            "ok": self.ok,
            "labels": self.labels,
            "server_configs": self.configs,
            **({"serve": [self.serve.to_json()]} if self.serve is not None else {}),
        }


def _write_label(dest: Destination, name: str, version: str, previous: str | None) -> None:
    doc = {
        "schema": LABEL_SCHEMA,
        "label": name,
        "version": version,
        "previous": previous,
        "at": utc_now(),
        **who(),
    }
    dest.write_meta(_key(name), dumps(doc))


def move_label(
    dest: Destination,
    name: str,
    version: str,
    *,
    server_configs: tuple[str, ...] | None = None,
    serve: Any = None,
    action: str = "label",
    withdraw: bool = False,
    storage_options: Mapping[str, str] | None = None,
    smoke: Any = None,
) -> LabelResult:
    """Point label ``name`` at ``version`` at ``dest`` (the steps in the module docstring).
    ``withdraw``: a version that does not serve is withdrawn (``push --label``)."""
    check_label_name(name)
    version = check_version_arg(version)
    journal = Journal(dest)
    dest.check_writable()
    if dest.list_meta("removing/"):
        journal.finish_removals()  # a killed prune's intent must not block labels for ever
    _eligible(dest, journal, version)
    configs = _configs(dest, server_configs)
    current = read_labels(dest)
    previous = current.get(name)
    result = LabelResult(dest.url, name, version, previous, action)
    if previous == version and serve is None:
        result.changed = False
        result.labels = current
        result.configs = write_server_configs(dest, configs, _state(dest), storage_options)
        return result
    # 1. load the new version next to the labelled ones
    result.configs = write_server_configs(
        dest, configs, _state(dest, also=version), storage_options
    )
    # 2. it must serve before any label names it
    if serve is not None and serve.servers:
        from pushgate.serving import confirm

        result.serve = confirm(
            dest,
            version,
            serve,
            previous=previous,
            action=action,
            withdrawable=withdraw,
            smoke=smoke if smoke is not None else serve.smoke_doc(),
        )
        if not result.serve.healthy:
            write_server_configs(dest, configs, _state(dest), storage_options)
            result.labels = read_labels(dest)
            return result
    # 3. the label, then look for a removal that got there first (see the docstring); on
    # local disk under the same flock as pin and prune, so there they never even meet
    with dest.lifecycle_lock():
        _write_label(dest, name, version, previous)
        lost = journal.removal(version) is not None or version not in dest.numeric_children()
        if lost:
            if previous is None:
                dest.delete_meta(_key(name))
            else:
                _write_label(dest, name, previous, None)
    if lost:
        write_server_configs(dest, configs, _state(dest), storage_options)
        raise DestinationError(
            f"version {version} at {dest.url} was removed by a prune while label {name} was "
            f"being moved to it; label {name} was not moved"
            + (f" (still {previous})" if previous else "")
        )
    journal.event("label", label=name, version=version, previous=previous, via=action)
    # 4. only labelled versions load; labels name them
    result.configs = write_server_configs(dest, configs, _state(dest), storage_options)
    result.labels = read_labels(dest)
    if serve is not None and configs:
        _reload(serve)
    return result


def _reload(serve: Any) -> None:
    """Explicit-mode servers read a changed configuration only when asked to load the model."""
    from pushgate.serving.clients import client_for

    for target in serve.targets:
        if target.mode != "poll":
            client = client_for(target, serve.timeout)
            if client.can_load:
                client.load()


def label(
    base: str | Path,
    name: str,
    version: str,
    *,
    server_configs: tuple[str, ...] | None = None,
    serve: Any = None,
    storage_options: Mapping[str, str] | None = None,
) -> LabelResult:
    """Point label ``name`` at ``version``; see the module docstring for the steps."""
    dest = open_base(base, storage_options)
    return move_label(
        dest,
        name,
        version,
        server_configs=server_configs,
        serve=serve,
        storage_options=storage_options,
    )


def unlabel(
    base: str | Path,
    name: str,
    *,
    server_configs: tuple[str, ...] | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> LabelResult:
    """Remove label ``name``; its version no longer loads where only labelled versions do."""
    check_label_name(name)
    dest = open_base(base, storage_options)
    dest.check_writable()
    configs = _configs(dest, server_configs)
    current = read_labels(dest)
    previous = current.get(name)
    result = LabelResult(dest.url, name, None, previous, "unlabel", changed=previous is not None)
    if previous is not None:
        dest.delete_meta(_key(name))
        Journal(dest).event("unlabel", label=name, previous=previous)
    result.configs = write_server_configs(dest, configs, _state(dest), storage_options)
    result.labels = read_labels(dest)
    return result


def promote(
    base: str | Path,
    source: str,
    target: str,
    *,
    serve: Any = None,
    server_configs: tuple[str, ...] | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> LabelResult:
    """Move label ``target`` (``stable``) to the version ``source`` (``canary``) names, after
    the same readiness check as ``--serve``."""
    check_label_name(source)
    check_label_name(target)
    if source == target:
        raise UsageError(f"promote needs two different labels (got {source} twice)")
    dest = open_base(base, storage_options)
    version = read_labels(dest).get(source)
    if version is None:
        raise UsageError(f"no label {source} at {dest.url}; 'pushgate labels BASE' lists them")
    result = move_label(
        dest,
        target,
        version,
        server_configs=server_configs,
        serve=serve,
        action="promote",
        storage_options=storage_options,
    )
    return result


def labels(base: str | Path, storage_options: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The labels at ``base`` and the server configs in force, as a JSON-ready document."""
    dest = open_base(base, storage_options)
    current = read_labels(dest)
    records = {}
    for key in dest.list_meta("labels/"):
        raw = dest.read_meta(key)
        if raw is not None:
            doc = json.loads(raw)
            records[str(doc.get("label"))] = doc
    on_store = set(dest.numeric_children())
    return {
        "base": dest.url,
        "labels": [
            {
                "label": name,
                "version": version,
                "exists": version in on_store,
                "at": records.get(name, {}).get("at"),
                "user": records.get(name, {}).get("user"),
            }
            for name, version in sorted(current.items())
        ],
        "server_configs": [c.spec for c in remembered_configs(dest)],
    }


def check_configs(
    base: str | Path,
    server_configs: tuple[str, ...] | None,
    storage_options: Mapping[str, str] | None = None,
) -> None:
    """Before a push or rollback publishes: the server configs a ``--label`` would write
    (given, or remembered at BASE) are usable, so a bad one refuses before anything is
    published (exit 2)."""
    from pushgate.destination import open_destination

    dest = open_destination(str(base), storage_options)  # a push may create BASE: no check
    if server_configs and server_configs != ("none",):
        configs = [parse_server_config(s) for s in server_configs]
    else:
        configs = [] if server_configs else remembered_configs(dest)
    if any(c.kind == "triton" for c in configs):
        check_triton_config(dest)


def labels_in_force(base: str | Path, storage_options: Mapping[str, str] | None = None) -> bool:
    """True when BASE has labels and a server configuration pushgate drives by them: there a
    version no label names is not loaded (see the README's Serving section)."""
    from pushgate.destination import open_destination

    dest = open_destination(str(base), storage_options)  # a push may create BASE: no check
    return bool(remembered_configs(dest)) and bool(read_labels(dest))


def label_published(
    result: Any,
    name: str,
    *,
    serve: Any = None,
    server_configs: tuple[str, ...] | None = None,
    storage_options: Mapping[str, str] | None = None,
    smoke: Any = None,
    action: str = "push",
) -> list[LabelResult]:
    """``push --label`` / ``rollback --label``: point ``name`` at each version ``result`` (a
    PushResult's destinations, or a RollbackResult) published; a new version that does not
    serve is withdrawn, as with ``--serve`` alone. Each serve report joins ``result.serve``."""
    from pushgate.destination import open_destination

    targets = [
        (d.url, d.version, not d.already_present)
        for d in getattr(result, "destinations", [])
        if d.version is not None and not d.error
    ]
    if not hasattr(result, "destinations") and result.version is not None:
        targets = [(result.base, result.version, True)]
    out = []
    for url, version, new in targets:
        dest = open_destination(url, storage_options)
        moved = move_label(
            dest,
            name,
            version,
            server_configs=server_configs,
            serve=serve,
            action=action,
            withdraw=new,
            storage_options=storage_options,
            smoke=smoke,
        )
        if moved.serve is not None and hasattr(result, "serve"):
            result.serve.append(moved.serve)
        out.append(moved)
    return out
