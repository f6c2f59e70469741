"""Inputs and outputs given as object-store URLs (``--model``, blessings, ``--pushed-model``).

``materialize`` downloads a URL prefix into a temporary directory (streamed, in parallel) for
code that reads local files; a local path comes back as itself. ``upload_tree`` copies a local
directory to a URL prefix. The object-store client is imported only when a URL is given.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pushgate.destination import scheme_of
from pushgate.errors import InputError, MissingDependencyError

CHUNK = 8 * 1024 * 1024


def is_url(value: str | Path) -> bool:
    """True for ``scheme://`` values other than ``file://``."""
    return isinstance(value, str) and scheme_of(value) != "file"


def _objectstore(what: str) -> Any:
    try:
        from pushgate.destination import objectstore
    except ImportError as e:
        raise MissingDependencyError(what, "cloud") from e
    return objectstore


@contextmanager
def materialize(
    url: str | Path, storage_options: Mapping[str, Any] | None = None
) -> Iterator[Path]:
    """A local directory holding what is under ``url``; removed when the block ends.

    A URL with nothing under it yields an empty directory (a bucket has no empty folders, so a
    blessing without a marker file looks like that).
    """
    if not is_url(url):
        text = str(url)
        yield Path(text[len("file://") :] if text.startswith("file://") else text)
        return
    url = str(url)
    os_ = _objectstore(f"{scheme_of(url)}:// inputs")
    store, prefix, scrub = os_.open_store(url, storage_options)
    root = f"{prefix}/" if prefix else ""
    tmp = Path(tempfile.mkdtemp(prefix="pushgate-input-"))
    try:
        try:
            metas = [m for batch in store.list_prefix(root or None) for m in batch]
        except Exception as e:
            raise InputError(
                f"cannot list {os_.clean_url(url)}: {scrub(os_._first_line(e))}"
            ) from e

        def fetch(meta: Any) -> None:
            rel = meta["path"][len(root) :]
            out = tmp / rel
            if not rel or ".." in Path(rel).parts:
                return
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(out, "wb") as f:
                    for chunk in store.get_stream(meta["path"], CHUNK):
                        f.write(chunk)
            except Exception as e:
                raise InputError(
                    f"cannot download {os_.clean_url(url)}/{rel}: {scrub(os_._first_line(e))}"
                ) from e

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(fetch, metas))
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def upload_tree(
    local_dir: Path, url: str, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Copy every file under ``local_dir`` to ``<url>/<relative path>`` (streamed, parallel)."""
    from pushgate.source import list_files

    os_ = _objectstore(f"{scheme_of(url)}:// outputs")
    dest = os_.ObjectStoreDestination(url, dict(storage_options or {}))
    dest.put_files(list_files(Path(local_dir)), "")
