"""TFX's PushedModel output artifact: a copy of the pushed model plus ``pushed`` properties.

Properties (in ``.pushgate-artifact.json``, see :mod:`pushgate.artifact`): ``pushed`` (1/0),
``pushed_destination`` (full version path), ``pushed_version`` (the version string), and
pushgate's extras ``pushed_digest`` and ``pushed_destinations`` (every destination of the push).
When not pushed the directory holds no model files and ``pushed`` is 0. The properties file also
lists the artifact's files (``files``), so a later push knows exactly what it may replace.

pushgate writes only where nothing is, or over a PushedModel it wrote itself
(:func:`check_pushed_model`): never over a non-empty directory or prefix of anything else. A
local artifact is written beside the old one and swapped in (old renamed aside, new renamed in,
old removed), so a failure leaves the old one whole. On a bucket the new files are uploaded over
the old ones, the properties file last, and then only the old artifact's own listed files that the
new one lacks are deleted: never anything else under the prefix.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pushgate.artifact import PROPERTIES_FILE, properties_bytes, write_properties
from pushgate.errors import DestinationError, InputError
from pushgate.source import SourceFile

ARTIFACT_TYPE = "PushedModel"


def _own_files(raw: bytes | None) -> tuple[bool, list[str] | None]:
    """``(is a PushedModel, the files it lists)``; the list is None for one written before
    pushgate listed them."""
    if raw is None:
        return False, None
    try:
        doc = json.loads(raw)
    except ValueError:
        return False, None
    if not isinstance(doc, dict) or doc.get("type") != ARTIFACT_TYPE:
        return False, None
    files = doc.get("files")
    if not isinstance(files, list):
        return True, None
    return True, [f for f in files if isinstance(f, str)]


def _refuse(where: str, found: str) -> InputError:
    return InputError(
        f"--pushed-model {where} {found}, not a PushedModel pushgate wrote (no "
        f"{ARTIFACT_TYPE} {PROPERTIES_FILE}); pushgate replaces that directory on every push, so "
        "it only writes where nothing is: give a new or empty directory"
    )


def check_pushed_model(
    path: Path | str, storage_options: Mapping[str, Any] | None = None
) -> list[str] | None:
    """Refuse (:class:`InputError`, exit 2) a ``--pushed-model`` location that holds something
    pushgate did not write there. Returns the files of the earlier PushedModel there (None when
    there is none)."""
    from pushgate.remote import is_url

    if is_url(path):
        return _check_url(str(path), storage_options)
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise InputError(
            f"--pushed-model path is a file or a link, not a directory: {path}; give a directory"
        )
    if not path.exists() or not any(path.iterdir()):
        return None
    props = path / PROPERTIES_FILE
    try:
        raw = None if props.is_symlink() else props.read_bytes()
    except OSError:
        raw = None
    ours, files = _own_files(raw)
    if not ours:
        raise _refuse(str(path), "is a directory that holds other files")
    if files is not None:  # the whole directory is swapped out: it must hold nothing else
        own = {*files, PROPERTIES_FILE}
        foreign = sorted(
            p.relative_to(path).as_posix()
            for p in path.rglob("*")
            if (p.is_symlink() or not p.is_dir()) and p.relative_to(path).as_posix() not in own
        )
        if foreign:
            raise InputError(
                f"--pushed-model {path} holds files the PushedModel pushgate wrote there does not "
                f"list ({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); "
                "pushgate replaces that directory whole: move them away first"
            )
    return files or []


def _check_url(url: str, storage_options: Mapping[str, Any] | None) -> list[str] | None:
    from pushgate.remote import _objectstore
    from pushgate.secrets import clean_url

    os_ = _objectstore(url, "outputs")
    store, prefix, scrub = os_.open_store(url, storage_options)
    shown = clean_url(url)
    root = f"{prefix}/" if prefix else ""
    try:
        try:
            raw: bytes | None = store.get_bytes(f"{root}{PROPERTIES_FILE}")
        except os_._NOT_FOUND as e:
            if os_._missing_bucket(e):
                raise
            raw = None
        ours, files = _own_files(raw)
        if ours:
            return files or []  # one without a list: nothing of it is deleted, only overwritten
        listing = store.list_with_delimiter(root or None)
    except Exception as e:
        raise os_.store_error(e, "reading --pushed-model", shown, scrub) from e
    if listing["common_prefixes"] or listing["objects"]:
        raise _refuse(shown, "already holds objects")
    return None


def write_pushed_model(
    path: Path | str,
    files: list[SourceFile] | None,
    properties: dict[str, Any],
    storage_options: Mapping[str, Any] | None = None,
    *,
    dirs: Sequence[str] = (),
) -> str:
    """Write the PushedModel artifact at a path or URL (replacing an earlier PushedModel there,
    never anything else: see :func:`check_pushed_model`); returns where it is, as shown. The
    model's empty ``dirs`` are made on a filesystem (a bucket has no empty directories)."""
    from pushgate.remote import is_url, write_tree_url

    old = check_pushed_model(path, storage_options)
    names = sorted(f.rel for f in files or [])
    if is_url(path):
        extra = {PROPERTIES_FILE: properties_bytes(ARTIFACT_TYPE, properties, files=names)}
        return write_tree_url(str(path), files or [], extra, storage_options, old_files=old)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _swap_in(path, files or [], dirs if files else (), properties, names)
    except OSError as e:
        raise DestinationError(
            f"writing the PushedModel artifact at {path} failed: {e.strerror or e}; "
            "the earlier one there (if any) is unchanged"
        ) from e
    return str(path)


def _swap_in(
    path: Path,
    files: list[SourceFile],
    dirs: Sequence[str],
    properties: dict[str, Any],
    names: list[str],
) -> None:
    """Write the artifact beside ``path``, then swap it in; the old one is whole until then."""
    tag = uuid.uuid4().hex[:12]
    new = path.with_name(f".{path.name}.pushgate-new-{tag}")
    aside = path.with_name(f".{path.name}.pushgate-old-{tag}")
    try:
        new.mkdir()
        for f in files:
            dst = new / f.rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f.abspath, dst)
        for d in dirs:
            (new / d).mkdir(parents=True, exist_ok=True)
        write_properties(new, ARTIFACT_TYPE, properties, files=names)
        if os.path.lexists(path):
            os.rename(path, aside)
            try:
                os.rename(new, path)
            except BaseException:
                os.rename(aside, path)
                raise
        else:
            os.rename(new, path)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
