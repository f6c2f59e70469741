"""Inputs and outputs given as object-store URLs (``--model``, blessings, ``--pushed-model``).

``materialize`` downloads a URL prefix into a temporary directory (streamed, in parallel, with
progress) for code that reads local files; a local path comes back as itself. ``upload_tree``
copies a local directory to a URL prefix; ``write_tree_url`` writes an artifact under a prefix
(TFX's PushedModel, straight from the model's files), deleting only the earlier artifact's own
listed files. The object-store client is
imported only when a URL is given.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from pushgate.destination import REGISTRY, scheme_of
from pushgate.errors import InputError, MissingDependencyError
from pushgate.progress import Progress
from pushgate.secrets import clean_url

CHUNK = 8 * 1024 * 1024


def is_url(value: Any) -> bool:
    """True for ``scheme://`` strings other than ``file://``."""
    return isinstance(value, str) and scheme_of(value) != "file"


def _objectstore(url: str, what: str) -> Any:
    """The object-store module, or the install hint of ``url``'s scheme (as for ``--to``)."""
    scheme = scheme_of(url)
    try:
        from pushgate.destination import objectstore
    except ImportError as e:
        extra = REGISTRY[scheme][2] if scheme in REGISTRY else "cloud"
        raise MissingDependencyError(f"{scheme}:// {what}", extra or "cloud") from e
    return objectstore


@contextmanager
def materialize(
    url: str | Path,
    storage_options: Mapping[str, Any] | None = None,
    *,
    only: Collection[str] | None = None,
    prefer: Collection[str] = (),
    required: str | None = None,
    progress: Progress | None = None,
) -> Iterator[Path]:
    """A local directory holding what is under ``url``; removed when the block ends.

    ``only``: fetch just these top-level file names; every other top-level folder still appears,
    empty (enough to read a blessing's markers without downloading its stamped model).
    ``prefer``: top-level folders, in order; when one holds anything, only it is fetched (a TFX
    Model artifact's ``Format-Serving/``, not its ``Format-TFMA/`` evaluation copy).
    ``required``: what the URL is (``"--model"``...); nothing under it is then an error, since a
    bucket has no empty folders and a missing prefix and an empty one look alike.
    """
    if not is_url(url):
        text = str(url)
        yield Path(text[len("file://") :] if text.startswith("file://") else text)
        return
    url = str(url)
    os_ = _objectstore(url, "inputs")
    store, prefix, scrub = os_.open_store(url, storage_options)
    shown = clean_url(url)
    root = f"{prefix}/" if prefix else ""
    tmp = Path(tempfile.mkdtemp(prefix="pushgate-input-"))
    try:
        try:
            metas = [m for batch in store.list_prefix(root or None) for m in batch]
        except Exception as e:
            raise os_.store_error(e, "listing", shown, scrub) from e
        if required and not metas:
            raise InputError(
                f"{required} {shown}: nothing is stored under this URL; check the bucket and "
                "path (object stores have no empty folders, so missing and empty look alike)"
            )
        for folder in prefer:
            inside = [m for m in metas if m["path"][len(root) :].startswith(f"{folder}/")]
            if inside:
                metas = inside
                break
        wanted: list[tuple[str, str, int]] = []
        for meta in metas:
            rel = meta["path"][len(root) :]
            parts = PurePosixPath(rel).parts
            if not rel or ".." in parts or rel.startswith("/"):
                continue
            if only is not None and rel not in only:
                if len(parts) > 1:
                    (tmp / parts[0]).mkdir(exist_ok=True)
                continue
            wanted.append((meta["path"], rel, int(meta.get("size", 0))))
        if progress:
            progress.start("downloading", sum(size for _, _, size in wanted))

        def fetch(item: tuple[str, str, int]) -> None:
            key, rel, _ = item
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(out, "wb") as f:
                    for chunk in store.get_stream(key, CHUNK):
                        f.write(chunk)
                        if progress:
                            progress.advance(len(chunk))
            except Exception as e:
                raise os_.store_error(e, "downloading", f"{shown}/{rel}", scrub) from e

        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(fetch, wanted))
        finally:
            if progress:
                progress.finish()
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def upload_tree(
    local_dir: Path, url: str, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Copy every file under ``local_dir`` to ``<url>/<relative path>`` (streamed, parallel)."""
    from pushgate.source import list_files

    os_ = _objectstore(url, "outputs")
    dest = os_.ObjectStoreDestination(url, dict(storage_options or {}))
    dest.put_files(list_files(Path(local_dir)), "")


def _is_plain(rel: str) -> bool:
    """True for a safe relative path (see :func:`pushgate.manifest.checked_rel`)."""
    from pushgate.errors import IntegrityError
    from pushgate.manifest import checked_rel

    try:
        checked_rel(rel)
    except IntegrityError:
        return False
    return True


def write_tree_url(
    url: str,
    files: list[Any],
    extra: Mapping[str, bytes],
    storage_options: Mapping[str, Any] | None = None,
    *,
    old_files: Collection[str] | None = None,
) -> str:
    """Write ``files`` (uploaded straight from their paths) under ``url``, then the ``extra``
    small files, in that order; then delete the ``old_files`` (an earlier artifact's own list)
    that are no longer written. Nothing else under ``url`` is ever deleted. Returns the URL as
    shown to users."""
    os_ = _objectstore(url, "outputs")
    dest = os_.ObjectStoreDestination(url, dict(storage_options or {}))
    if files:
        dest.put_files(files, "")
    for rel, data in extra.items():
        dest.put_bytes(rel, data)
    written = {f.rel for f in files} | set(extra)
    stale = [rel for rel in old_files or () if rel not in written and _is_plain(rel)]
    if stale:
        dest.delete_files(stale)
    return str(dest.url)


def path_or_url(value: str) -> Path | str:
    """An argparse type: a URL stays as given (a ``Path`` would fold its ``//``), else a path."""
    return value if is_url(value) else Path(value)


def list_url(
    url: str, storage_options: Mapping[str, Any] | None = None, *, what: str
) -> tuple[bool, list[tuple[str, int]]]:
    """What is stored at ``url``: ``(True, [("", size)])`` for one object, else ``(False,
    [(relative key, size), ...])`` for the objects under it, sorted. Nothing there is an
    InputError naming ``what`` and the URL."""
    os_ = _objectstore(url, what)
    store, prefix, scrub = os_.open_store(url, storage_options)
    shown = clean_url(url)
    try:
        under = sorted(
            (m["path"][len(prefix) + 1 :], int(m.get("size", 0)))
            for batch in store.list_prefix(f"{prefix}/" if prefix else None)
            for m in batch
        )
        if under:
            return False, under
        if prefix:
            parent = prefix.rpartition("/")[0]
            listed = store.list_with_delimiter(parent or None)
            for m in listed.get("objects", ()):
                if m["path"] == prefix:
                    return True, [("", int(m.get("size", 0)))]
    except Exception as e:
        raise os_.store_error(e, "listing", shown, scrub) from e
    raise InputError(
        f"{what} {shown}: nothing is stored under this URL; check the bucket and path (object "
        "stores have no empty folders, so missing and empty look alike)"
    )


def open_url(url: str, storage_options: Mapping[str, Any] | None = None) -> Any:
    """The object at ``url`` as a buffered binary file, streamed (bounded memory). A failure to
    read it is an InputError naming the URL."""
    import io

    os_ = _objectstore(url, "inputs")
    store, key, scrub = os_.open_store(url, storage_options)
    shown = clean_url(url)

    def chunks() -> Iterator[Any]:
        try:
            yield from store.get_stream(key, CHUNK)
        except Exception as e:
            err = os_.store_error(e, "reading", shown, scrub)
            raise InputError(str(err)) from e

    from pushgate.destination.stores.base import StreamReader

    return io.BufferedReader(StreamReader(chunks()), buffer_size=CHUNK)
