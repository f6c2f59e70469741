"""TFX's PushedModel output artifact: a copy of the pushed model plus ``pushed`` properties.

Properties (in ``.pushgate-artifact.json``, see :mod:`pushgate.artifact`): ``pushed`` (1/0),
``pushed_destination`` (full version path), ``pushed_version`` (the version string), and
pushgate's extras ``pushed_digest`` and ``pushed_destinations`` (every destination of the push).
When not pushed the directory holds no model files and ``pushed`` is 0.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pushgate.artifact import PROPERTIES_FILE, properties_bytes, write_properties
from pushgate.errors import InputError
from pushgate.source import SourceFile


def write_pushed_model(
    path: Path | str,
    files: list[SourceFile] | None,
    properties: dict[str, Any],
    storage_options: Mapping[str, Any] | None = None,
    *,
    dirs: Sequence[str] = (),
) -> str:
    """Write the PushedModel artifact at a path or URL (replacing an earlier one there); returns
    where it is, as shown to users. The model's empty ``dirs`` are made on a filesystem (a
    bucket has no empty directories)."""
    from pushgate.remote import is_url, write_tree_url

    if is_url(path):
        extra = {PROPERTIES_FILE: properties_bytes("PushedModel", properties)}
        return write_tree_url(str(path), files or [], extra, storage_options)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"--pushed-model path is a file, not a directory: {path}")
    if path.exists():
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            elif child.name != PROPERTIES_FILE:
                child.unlink()
    path.mkdir(parents=True, exist_ok=True)
    for f in files or []:
        dst = path / f.rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f.abspath, dst)
    for d in dirs if files else ():
        (path / d).mkdir(parents=True, exist_ok=True)
    write_properties(path, "PushedModel", properties)
    return str(path)
