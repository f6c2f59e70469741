"""TFX-shaped artifacts on disk: a directory plus its properties.

TFX keeps an artifact's properties (``blessed``, ``pushed``, ...) in ML Metadata. pushgate keeps
them beside the files, in ``<artifact>/.pushgate-artifact.json``, so any later tool (or a human) can
read them without a metadata store::

    {"schema": "pushgate.artifact/v1", "type": "PushedModel",
     "properties": {"pushed": 1, "pushed_destination": "/srv/m/1700000000",
                    "pushed_version": "1700000000"},
     "written_by": "pushgate 0.1.0", "written_at": "2026-11-25T22:00:00Z"}

Integer 0/1 flags follow TFX here, at the TFX boundary, and nowhere else in pushgate.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pushgate.errors import InputError

PROPERTIES_FILE = ".pushgate-artifact.json"
ARTIFACT_SCHEMA = "pushgate.artifact/v1"


def utc_now() -> str:
    """The current time as an ISO-8601 UTC string with a trailing ``Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def artifact_uri(artifact: Any) -> str:
    """The location of a path, URL or TFX-style artifact (anything with ``.uri``), as text:
    URLs such as ``s3://bucket/x`` stay intact (a Path would fold their ``//``)."""
    uri = getattr(artifact, "uri", artifact)
    if isinstance(uri, (list, tuple)):  # TFX channels resolve to lists of artifacts
        if len(uri) != 1:
            raise InputError(f"expected exactly one artifact, got {len(uri)}")
        return artifact_uri(uri[0])
    if not isinstance(uri, (str, os.PathLike)):
        raise InputError(f"not a path, URL or an artifact with a uri: {artifact!r}")
    return os.fspath(uri)


def artifact_path(artifact: Any) -> Path:
    """A local path from a path-like or a TFX-style artifact object (anything with ``.uri``)."""
    return Path(artifact_uri(artifact)).expanduser()


def read_properties(directory: Path) -> dict[str, Any]:
    """The properties stored with an artifact, or ``{}`` when it has none (a TFX-made one)."""
    path = directory / PROPERTIES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read artifact properties {path}: {e}") from e
    props = data.get("properties", {}) if isinstance(data, dict) else {}
    return props if isinstance(props, dict) else {}


def properties_bytes(
    artifact_type: str, properties: dict[str, Any], files: list[str] | None = None
) -> bytes:
    """The content of an artifact's properties file; ``files``: the artifact's own files, so a
    later write knows what it may replace (and nothing else)."""
    from pushgate import __version__

    doc: dict[str, Any] = {
        "schema": ARTIFACT_SCHEMA,
        "type": artifact_type,
        "properties": properties,
        "written_by": f"pushgate {__version__}",
        "written_at": utc_now(),
    }
    if files is not None:
        doc["files"] = files
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data`` in one step (a temporary file beside it, then
    a rename). The file's mode follows the umask, like any file a tool writes (``mkstemp``
    would make it 0600 and hide it from the group that serves or reviews it)."""
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:12]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_properties(
    directory: Path,
    artifact_type: str,
    properties: dict[str, Any],
    files: list[str] | None = None,
) -> Path:
    """Write (atomically) the properties file of an artifact directory; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PROPERTIES_FILE
    atomic_write(path, properties_bytes(artifact_type, properties, files))
    return path


# -- TFX artifact objects ------------------------------------------------------------------------
# Anything with ``.uri`` and TFX's property getters (``get_custom_property`` or
# ``get_int_custom_property``) is treated as an artifact whose properties, as in ML Metadata,
# carry the verdicts; a user's own class with these methods plugs in the same way as TFX's.


def single(value: Any, what: str) -> Any:
    """One input as TFX hands it: a list of artifacts, where ``[]`` is an input that resolved to
    nothing (absent, ``None``); a bare path or artifact is returned as it is."""
    if isinstance(value, (list, tuple)):
        if not value:
            return None
        if len(value) != 1:
            raise InputError(f"{what}: expected one artifact, got {len(value)}")
        return value[0]
    return value


def has_properties(obj: Any) -> bool:
    """True for a TFX-style artifact object (it answers custom-property reads)."""
    return any(
        callable(getattr(obj, name, None))
        for name in ("get_custom_property", "get_int_custom_property")
    )


def int_property(obj: Any, key: str) -> int | None:
    """An artifact object's integer custom property, ``None`` when it is not set."""
    has = getattr(obj, "has_custom_property", None)
    if callable(has) and not has(key):
        return None
    getter = getattr(obj, "get_custom_property", None)
    value = getter(key) if callable(getter) else obj.get_int_custom_property(key)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(
            f"artifact {getattr(obj, 'uri', obj)!r}: property {key!r} is {value!r}, not an integer"
        ) from None


def set_properties(obj: Any, properties: dict[str, Any]) -> None:
    """Set custom properties on an artifact object the way TFX's components do (ints as int
    properties, text as string properties, anything else as JSON text); ``None`` values are
    skipped. Objects without TFX's setters are left alone."""
    set_int = getattr(obj, "set_int_custom_property", None)
    set_str = getattr(obj, "set_string_custom_property", None)
    if not callable(set_int) or not callable(set_str):
        return
    for key, value in properties.items():
        if value is None:
            continue
        if isinstance(value, int):  # bool too
            set_int(key, int(value))
        elif isinstance(value, str):
            set_str(key, value)
        else:
            set_str(key, json.dumps(value, sort_keys=True))
