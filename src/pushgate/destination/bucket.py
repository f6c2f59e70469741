"""The bucket protocol: object-store destinations (``s3://``, ``gs://``, ``az://``, ``abfs://``,
``memory://``) over any :class:`~pushgate.destination.stores.base.Store` adapter.

Buckets have no directory and no rename, so the crash-safe order is built from the writes a bucket
does have (keys relative to BASE):

1. claim ``.pushgate/claims/<v>.json`` with a create-only put (S3 ``If-None-Match: *``, GCS
   ``ifGenerationMatch=0``, Azure ``If-None-Match: *``): two pushers never own one number;
2. write the lease ``.pushgate/staging/<token>.lease`` (host, pid, expiry), renewed by a
   heartbeat thread for as long as the push runs;
3. upload every file over ``HOLD_MAX`` (256 KiB) to ``.pushgate/staging/<token>/<path>``
   (never served: not numeric), streaming, hashing on the way, several files and multipart parts
   at once. Smaller files, up to ``HOLD_BUDGET`` (64 MiB) of them per push, are *held back*:
   read and hashed on the local disk, not uploaded yet;
4. fill ``<v>/<path>``: a server-side copy of each staged file, an upload of each held-back file
   (read again whole and checked against the manifest, so the bytes sent are the bytes
   recorded). Triton's model file (``model.py``, ``model.onnx``, ..., see
   :mod:`pushgate.layout`) first, then every other file, then TF Serving's
   ``saved_model.pb``/``saved_model.pbtxt`` last. Each staged copy is deleted once its file is
   in place, 1000 keys per DeleteObjects on a helper thread, overlapping the copies;
   With ``PUSHGATE_S3_DIRECT=1``, on S3 steps 3 and 4 are one for every file but the entry
   files: each is uploaded straight into ``<v>/<path>`` (Triton's model file first), the entry
   files are staged and copied in last (a push cut off from the store mid-upload leaves a
   partial unrecorded ``<v>/`` until recovery; see ``stage``);
5. write the record ``.pushgate/records/<v>.json`` LAST: a version without a record is unfinished;
6. check the staging prefix is empty (one listing), then delete the lease.

Why this design (10,000 files of 1 KiB against moto's S3 server, ``bench/bench_s3.py``, where
every request costs the server about the same CPU, 2.7 ms for a PUT and 3.4 ms for a copy): an
upload plus a copy per file took 1.48x and 1.97x the faster of ``aws s3 cp --recursive`` and
``s5cmd`` in two runs, 1.44x with the deletes batched as above; holding small files back, one
request per file, took 0.84x and 0.95x (direct upload 0.87x and 0.88x). Nothing numeric exists
before step 4 either way: a push killed, or cut off from its store, while it stages leaves only
staging debris. Direct upload (``PUSHGATE_S3_DIRECT``) makes ``<v>/`` visible for the whole
upload instead, so it stays opt-in.

A pusher killed anywhere leaves its lease behind. ``recover`` treats a lease as stale when it
expired, or when it names this host and a pid that is gone; for a stale lease it deletes the
unrecorded ``<v>/`` objects of its version (the number stays burned by its claim), the staging
prefix, and the lease, in that order, so a recover that is itself killed is finished by the next.

The window in which a watching model server can see a version appear is the length of step 4
(server-side copies, and uploads of at most 64 MiB of small files; the entry files land last);
with ``PUSHGATE_S3_DIRECT=1`` that of the whole upload. A push killed or cut off during step 4
leaves an unrecorded ``<v>/`` without its entry files (nothing a loader starts on) until
recovery.
``remove_version`` deletes the entry files first, so a loader no longer starts on the version,
then the rest, Triton's model file last:
there is no atomic removal. Triton may see a version with its model file and only part of the
rest for the copy's length: it then fails to load it (the old version keeps serving) and loads it
again at its next poll, once the rest has landed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any, BinaryIO, cast

from pushgate.destination.base import (
    META,
    Destination,
    ProgressFn,
    Staged,
    is_numeric_name,
    is_version_name,
    manifest_key,
    owner_gone,
    token_version,
)
from pushgate.destination.stores.base import PART, StreamReader
from pushgate.destination.stores.errors import EXISTS, NOT_FOUND, missing_bucket, store_error
from pushgate.destination.stores.options import open_store, split_url
from pushgate.errors import (
    DestinationError,
    DestinationInputError,
    PushgateError,
)
from pushgate.layout import is_server_written, is_triton_entry
from pushgate.manifest import FileEntry, Manifest, bounded_map, checked_rel, hash_stream, workers
from pushgate.secrets import clean_url
from pushgate.source import SourceFile

#: files a model server needs to start loading a version; copied last, deleted first
ENTRY_FILES = ("saved_model.pb", "saved_model.pbtxt")
#: files up to this size are read whole and sent in one PUT; bigger ones stream as multipart
SMALL = 8 * 1024 * 1024
_BIG_FILES = 2
LEASE_TTL = float(os.environ.get("PUSHGATE_LEASE_TTL", "120"))
#: the largest object S3's CopyObject copies; bigger files are uploaded straight into ``<v>/``
S3_COPY_LIMIT = 5 * 1024**3
#: files up to this size are held back on the local disk by ``stage`` (hashed, not uploaded) and
#: uploaded by ``publish`` straight into ``<v>/``: one request instead of an upload plus a copy,
#: and a request this small costs about what a copy does (latency, not bytes)
HOLD_MAX = int(os.environ.get("PUSHGATE_BUCKET_HOLD_MAX", str(256 * 1024)))
#: at most this many bytes of files are held back per push: what ``publish`` sends on top of its
#: copies, so the visibility window stays about as short as a copy phase
HOLD_BUDGET = int(os.environ.get("PUSHGATE_BUCKET_HOLD_BUDGET", str(64 * 1024 * 1024)))


def _is_entry(path: str) -> bool:
    return PurePosixPath(path).name in ENTRY_FILES


def _entry_last(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(others, entries)``; entries sorted deepest first so the top-level one lands last.
    Triton's model files (``model.savedmodel/saved_model.pb`` too) are among the others: see
    :func:`_triton_first`."""
    others: list[str] = []
    entries: list[str] = []
    for p in paths:
        tf_entry = PurePosixPath(p).name in ENTRY_FILES and not is_triton_entry(p)
        (entries if tf_entry else others).append(p)
    entries.sort(key=lambda p: (-p.count("/"), p))
    return others, entries


def _triton_first(paths: list[str]) -> tuple[list[str], list[str]]:
    """``(Triton model files, the rest)``. A Triton version prefix without its model file hangs
    Triton for good (LOADING for ever, poll loop stopped); one with its model file but not yet
    its other files only fails to load, and Triton loads it again when its next poll sees the
    rest land (measured with tritonserver 2.51 on S3). So model files are copied first and
    deleted last: the opposite of TF Serving's ``saved_model.pb``."""
    first = [p for p in paths if is_triton_entry(p)]
    return first, [p for p in paths if not is_triton_entry(p)]


class ObjectStoreDestination(Destination):
    """A BASE prefix in a bucket (S3, GCS, Azure Blob) or in process memory."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = clean_url(url)
        self.store, prefix, self.scrub = open_store(url, storage_options)
        self.prefix = f"{prefix}/" if prefix else ""
        #: files above this size skip staging (the store cannot copy them server-side)
        self.copy_limit: int | None = None
        #: a push uploads every file but the entry files straight into ``<v>/`` (no staging
        #: copy): faster on S3, but opt-in (see stage())
        self.push_direct = False
        if split_url(url)[0] == "s3":
            self.copy_limit = int(os.environ.get("PUSHGATE_S3_COPY_LIMIT", S3_COPY_LIMIT))
            self.push_direct = os.environ.get("PUSHGATE_S3_DIRECT", "") == "1"

    def _direct(self, size: int) -> bool:
        """True for a file uploaded straight into ``<v>/``, since it is too big to copy."""
        return self.copy_limit is not None and size > self.copy_limit

    # -- keys and errors ----------------------------------------------------------------------
    def _key(self, rel: str) -> str:
        return f"{self.prefix}{rel}"

    def _meta(self, key: str) -> str:
        return self._key(f"{META}/{key}")

    def _where(self, key: str) -> str:
        return f"{self.url}/{key[len(self.prefix) :]}" if key.startswith(self.prefix) else key

    def _error(self, e: BaseException, what: str, key: str) -> PushgateError:
        return store_error(e, what, self._where(key), self.scrub)

    def _list(self, rel_prefix: str) -> list[dict[str, Any]]:
        key = self._key(rel_prefix)
        try:
            out: list[dict[str, Any]] = []
            for batch in self.store.list_prefix(key):
                out.extend(batch)
            return out
        except NOT_FOUND:
            return []
        except Exception as e:
            raise self._error(e, "listing", key) from e

    def _list_dir(self, rel_prefix: str) -> tuple[list[str], list[dict[str, Any]]]:
        """Direct children of a prefix: ``(sub-prefix names, objects)``."""
        key = self._key(rel_prefix)
        try:
            res = self.store.list_with_delimiter(key or None)
        except NOT_FOUND:
            return [], []
        except Exception as e:
            raise self._error(e, "listing", key) from e
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in res["common_prefixes"]]
        return names, list(res["objects"])

    def _delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = keys[i : i + 1000]
            try:
                self.store.delete(batch)
            except NOT_FOUND:
                pass
            except Exception as e:
                raise self._error(e, "deleting", batch[0]) from e

    def _copy(self, src: str, dst: str) -> None:
        try:
            self.store.copy(src, dst)
        except Exception as e:
            raise self._error(e, "copying to", dst) from e

    @staticmethod
    def _pool(n: int) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=ObjectStoreDestination._threads(n))

    @staticmethod
    def _threads(n: int) -> int:
        """Threads for ``n`` requests: network-bound, so more than the cores."""
        return max(1, min(2 * workers(), n))

    # -- versions -----------------------------------------------------------------------------
    def exists(self) -> bool:
        key = self._key("")
        try:
            return any(batch for batch in itertools.islice(self.store.list_prefix(key), 1))
        except NOT_FOUND as e:
            if missing_bucket(e):
                raise self._error(e, "listing", key or self.url) from e
            return False
        except Exception as e:
            raise self._error(e, "listing", key or self.url) from e

    def numeric_children(self) -> list[str]:
        names, _ = self._list_dir("")
        return [n for n in names if is_version_name(n)]

    def oversized_children(self) -> list[str]:
        names, _ = self._list_dir("")
        return [n for n in names if is_numeric_name(n) and not is_version_name(n)]

    def version_url(self, version: str) -> str:
        return f"{self.url}/{version}"

    def list_version_files(self, version: str) -> dict[str, int]:
        root = self._key(f"{version}/")
        found = {m["path"][len(root) :]: int(m["size"]) for m in self._list(f"{version}/")}
        return {rel: n for rel, n in found.items() if not is_server_written(rel)}

    def open_version_file(self, version: str, rel: str) -> BinaryIO:
        rel = checked_rel(rel)
        return self._open(self._key(f"{version}/{rel}"))

    def _open(self, key: str) -> BinaryIO:
        try:
            chunks = self.store.get_stream(key, PART)
        except Exception as e:
            raise self._error(e, "reading", key) from e
        raw = StreamReader(chunks)
        return io.BufferedReader(raw, PART)

    # -- meta ---------------------------------------------------------------------------------
    def read_meta(self, key: str) -> bytes | None:
        k = self._meta(key)
        try:
            return self.store.get_bytes(k)
        except NOT_FOUND as e:
            if missing_bucket(e):
                raise self._error(e, "reading", k) from e
            return None
        except Exception as e:
            raise self._error(e, "reading", k) from e

    def write_meta(
        self, key: str, data: bytes, *, create_only: bool = False, durable: bool = True
    ) -> bool:
        # a completed PUT is durable in every object store: ``durable`` changes nothing here
        k = self._meta(key)
        try:
            self.store.put(k, data, create_only=create_only)
            return True
        except EXISTS:
            if create_only:
                return False
            raise
        except Exception as e:
            raise self._error(e, "writing", k) from e

    def read_meta_tagged(self, key: str) -> tuple[bytes | None, str | None]:
        return self.read_file(f"{META}/{key}")

    def write_meta_if(self, key: str, data: bytes, tag: str | None) -> bool:
        return self.write_file_conditional(f"{META}/{key}", data, tag)

    def list_meta(self, prefix: str) -> list[str]:
        base = self._meta("")
        _, objects = self._list_dir(f"{META}/{prefix.rstrip('/')}/")
        return sorted(
            m["path"][len(base) :]
            for m in objects
            if not m["path"].rsplit("/", 1)[-1].startswith(".tmp-")
        )

    def iter_meta(self, prefix: str) -> Iterator[str]:
        base = self._meta("")
        key = self._meta(prefix)
        try:
            for batch in self.store.list_prefix(key):
                names = sorted(m["path"][len(base) :] for m in batch)
                yield from (n for n in names if not n.rsplit("/", 1)[-1].startswith(".tmp-"))
        except NOT_FOUND:
            return
        except Exception as e:
            raise self._error(e, "listing", key) from e

    def delete_meta(self, key: str) -> None:
        self._delete([self._meta(key)])

    # -- push protocol ------------------------------------------------------------------------
    def check_writable(self) -> None:
        probe = self._meta(f".tmp-probe-{uuid.uuid4().hex}")
        try:
            self.store.put(probe, b"")
            self.store.delete(probe)
        except Exception as e:
            err = self._error(e, "writing", probe)
            if isinstance(err, DestinationInputError):
                raise err from e
            raise DestinationInputError(f"cannot use destination {self.url}: {err}") from e

    @contextlib.contextmanager
    def lease(self, token: str) -> Iterator[None]:
        key = self._meta(f"staging/{token}.lease")
        stop = threading.Event()

        def write() -> None:
            doc = {
                "schema": "pushgate.lease/v1",
                "token": token,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "expires": time.time() + LEASE_TTL,
                "ttl": LEASE_TTL,
            }
            self.store.put(key, json.dumps(doc).encode())

        try:
            write()
        except Exception as e:
            raise self._error(e, "writing the lease", key) from e

        def beat() -> None:
            while not stop.wait(LEASE_TTL / 4):
                with contextlib.suppress(Exception):  # retried at the next beat
                    write()

        heart = threading.Thread(target=beat, name=f"pushgate-lease-{token}", daemon=True)
        heart.start()
        try:
            yield
        finally:
            stop.set()
            heart.join()
            with contextlib.suppress(Exception):
                self.store.delete(key)

    def _upload_one(self, src: SourceFile, key: str, progress: ProgressFn | None) -> FileEntry:
        h = hashlib.sha256()
        size = sent = 0
        with open(src.abspath, "rb", buffering=0) as f:
            if src.size <= SMALL:
                data = f.read(SMALL + 1)
                h.update(data)
                size = len(data)
                self.store.put(key, data)
                if progress:
                    progress(size)
            else:

                def chunks() -> Iterator[bytes]:
                    """The file from its start, hashed on the way (again, if started over)."""
                    nonlocal h, size, sent
                    f.seek(0)
                    h, size = hashlib.sha256(), 0
                    while True:
                        block = f.read(self.store.part_size)
                        if not block:
                            return
                        h.update(block)
                        size += len(block)
                        if progress and size > sent:  # bytes sent before a restart count once
                            progress(size - sent)
                            sent = size
                        yield block

                self.store.put_stream(key, chunks, src.size)
        return src.entry(size, h.hexdigest())

    def _upload(
        self, files: list[SourceFile], root: str, progress: ProgressFn | None
    ) -> list[FileEntry]:
        """Upload files under the key prefix ``root``: big files streamed a few at a time
        (multipart, bounded memory), small ones many at a time."""
        big = sorted((f for f in files if f.size > SMALL), key=lambda f: -f.size)
        small = [f for f in files if f.size <= SMALL]

        def task(f: SourceFile) -> FileEntry:
            key = f"{root}{f.rel}"
            try:
                return self._upload_one(f, key, progress)
            except DestinationError:
                raise
            except OSError as e:
                if "Object at location" in str(e) or missing_bucket(e):
                    raise self._error(e, "uploading", key) from e
                raise DestinationError(f"reading {f.abspath} failed: {e.strerror or e}") from e
            except Exception as e:
                raise self._error(e, "uploading", key) from e

        with ThreadPoolExecutor(max_workers=_BIG_FILES) as big_pool:
            big_futs = [big_pool.submit(task, f) for f in big]  # a few: big files are few
            entries = list(bounded_map(task, small, self._threads(len(small)), batch=4))
            entries += [fut.result() for fut in big_futs]
        return entries

    def stage(
        self,
        files: Iterable[SourceFile],
        token: str,
        progress: ProgressFn | None,
        dirs: Sequence[str] = (),
    ) -> Staged:
        files = list(files)  # sorted by size below; a bucket's push holds its list
        # A bucket has no empty directories: ``dirs`` are recorded in the manifest, not written
        # (no marker objects; TF Serving and Triton do not need them).
        # Files too big for a server-side copy (S3: over 5 GiB) go straight to <v>/: the version
        # is visible for their upload instead of their copy, still without its entry files,
        # and unrecorded until the record lands, so recovery removes it after a crash.
        # Small files are held back (hashed here, uploaded into <v>/ by publish): one request
        # each instead of an upload plus a copy, and still nothing numeric before publish.
        # With PUSHGATE_S3_DIRECT=1 every file but the entry files goes straight to <v>/
        # (``push_direct``). It is not the default: a push that fails with the store
        # unreachable cannot delete what it wrote, and leaves a partial, unrecorded <v>/ in
        # sight of model servers until a later push's recovery (once its lease is stale), where
        # staging and holding back leave nothing numeric. Triton's model files go first (a
        # version prefix without one hangs Triton); the entry files land last, by publish.
        version = token_version(token)
        direct = [
            f for f in files if not _is_entry(f.rel) and (self.push_direct or self._direct(f.size))
        ]
        names = frozenset(f.rel for f in direct)
        held: list[SourceFile] = []
        budget = HOLD_BUDGET
        for f in files:
            if f.rel not in names and f.size <= HOLD_MAX and f.size <= budget:
                held.append(f)
                budget -= f.size
        holding = frozenset(f.rel for f in held)
        staged = [f for f in files if f.rel not in names and f.rel not in holding]
        firsts = [f for f in direct if is_triton_entry(f.rel)]
        rest = [f for f in direct if not is_triton_entry(f.rel)]
        try:
            entries = list(bounded_map(lambda f: self._hash_held(f, progress), held, workers()))
            entries += self._upload(staged, self._meta(f"staging/{token}/"), progress)
            entries += self._upload(firsts, self._key(f"{version}/"), progress)
            entries += self._upload(rest, self._key(f"{version}/"), progress)
        except BaseException:
            self._clean_failed_stage(token, version)
            raise
        return Staged(token, Manifest.of(entries, dirs), names, tuple(held))

    @staticmethod
    def _read_small(src: SourceFile) -> bytes:
        try:
            with open(src.abspath, "rb", buffering=0) as f:
                return f.read(HOLD_MAX + 1)
        except OSError as e:
            raise DestinationError(f"reading {src.abspath} failed: {e.strerror or e}") from e

    def _hash_held(self, src: SourceFile, progress: ProgressFn | None) -> FileEntry:
        """The manifest entry of a file held back for ``publish`` (read and hashed only)."""
        data = self._read_small(src)
        entry = src.entry(len(data), hashlib.sha256(data).hexdigest())
        if progress:
            progress(len(data))
        return entry

    def _put_held(self, src: SourceFile, want: FileEntry, key: str) -> None:
        """Upload a held-back file into ``key``: the bytes sent are the bytes checked against
        the manifest (read again whole: a file changed since ``stage`` is refused, not sent)."""
        data = self._read_small(src)
        if len(data) != want.size or hashlib.sha256(data).hexdigest() != want.sha256:
            raise DestinationError(
                f"{src.abspath} changed while being pushed; push a model directory nobody is "
                "writing to"
            )
        try:
            self.store.put(key, data)
        except Exception as e:
            raise self._error(e, "uploading", key) from e

    def stage_from_version(
        self,
        version: str,
        token: str,
        progress: ProgressFn | None,
        dirs: Sequence[str] = (),
    ) -> Staged:
        files = self.list_version_files(version)
        if not files:
            raise DestinationError(f"version {self.version_url(version)} holds no files")
        root = self._meta(f"staging/{token}/")
        new_version = token_version(token)

        def task(rel: str) -> FileEntry:
            src = self._key(f"{version}/{rel}")
            if self._direct(files[rel]) and not _is_entry(rel):
                # too big to copy server-side: streamed through, hashed on the way (as stage())
                dst = self._key(f"{new_version}/{rel}")
                hashers: list[Any] = []

                def chunks() -> Iterator[bytes]:  # from the start, with a fresh hash, each time
                    hashers.append(hashlib.sha256())
                    return self._read_ahead(src, hashers[-1])

                try:
                    self.store.put_stream(dst, chunks, files[rel])
                except PushgateError:
                    raise
                except Exception as e:
                    raise self._error(e, "copying to", dst) from e
                digest = hashers[-1].hexdigest()
            else:
                try:
                    self.store.copy(src, f"{root}{rel}")
                except NOT_FOUND as e:
                    if missing_bucket(e):
                        raise self._error(e, "copying", src) from e
                    raise DestinationError(
                        f"{self._where(src)} (of version {version}) disappeared while it was "
                        "being copied: the version was removed (by a prune?) or damaged; "
                        "nothing was published"
                    ) from e
                except Exception as e:
                    raise self._error(e, "copying to", f"{root}{rel}") from e
                # hash the staged copy itself (never trust the record): a damaged target must
                # be caught by the caller's digest check, not republished as intact
                with self._open(f"{root}{rel}") as f:
                    digest = hash_stream(cast(Any, f), size=files[rel])
            entry = FileEntry(rel, files[rel], digest)
            if progress:
                progress(files[rel])
            return entry

        try:
            with self._pool(len(files)) as pool:
                entries = list(pool.map(task, sorted(files)))
        except BaseException:
            self._clean_failed_stage(token, new_version)
            raise
        streamed = frozenset(r for r, n in files.items() if self._direct(n) and not _is_entry(r))
        return Staged(token, Manifest.of(entries, dirs), streamed)

    def _clean_failed_stage(self, token: str, version: str) -> None:
        """Best effort after a failed stage: the staging prefix, then whatever went straight
        into ``<version>/`` (each on its own: one failing must not skip the other; recover()
        finishes what is left)."""
        with contextlib.suppress(Exception):
            self.discard(token)
        with contextlib.suppress(Exception):
            self._remove_unrecorded(version)

    def _read_ahead(self, key: str, h: Any) -> Iterator[bytes]:
        """The object's blocks, hashed into ``h``, read by a helper thread: obstore may not
        read one object from inside the iterator it is uploading another from."""
        blocks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def offer(item: bytes | BaseException | None) -> bool:
            while not stop.is_set():  # the consumer may stop early: never block forever
                try:
                    blocks.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    pass
            return False

        def produce() -> None:
            try:
                with self._open(key) as f:
                    for block in iter(lambda: f.read(self.store.part_size), b""):
                        if not offer(block):
                            return
                offer(None)
            except BaseException as e:
                offer(e)

        reader = threading.Thread(target=produce, name="pushgate-read-ahead", daemon=True)
        reader.start()
        try:
            while (item := blocks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                h.update(item)
                yield item
        finally:
            stop.set()
            reader.join()

    def put_files(
        self, files: list[SourceFile], rel_prefix: str, progress: ProgressFn | None = None
    ) -> Manifest:
        """Upload local files under ``<BASE>/<rel_prefix>`` (plain copies, no protocol)."""
        return Manifest.of(self._upload(files, self._key(rel_prefix), progress))

    def put_bytes(self, rel: str, data: bytes) -> None:
        """Write one small object at ``<BASE>/<rel>`` (plain write, no protocol)."""
        key = self._key(rel)
        try:
            self.store.put(key, data)
        except Exception as e:
            raise self._error(e, "writing", key) from e

    def delete_files(self, rels: list[str]) -> None:
        """Delete ``<BASE>/<rel>`` for each listed path (artifact outputs, no protocol)."""
        self._delete([self._key(rel) for rel in rels])

    def publish(self, staged: Staged, version: str, record: bytes) -> None:
        root = self._meta(f"staging/{staged.token}/")
        others, entries = _entry_last(
            e.path for e in staged.manifest.entries() if e.path not in staged.direct
        )
        firsts, others = _triton_first(others)
        # The staging copy of a file is deleted as soon as the file is copied, a DeleteObjects
        # of up to 1000 keys at a time on a helper thread, so the deletes overlap the copies
        # and the staging prefix is never listed back (the manifest names every key).
        cleaner = ThreadPoolExecutor(max_workers=1)
        done: list[str] = []
        held = {f.rel: f for f in staged.held}
        entry_of = {e.path: e for e in staged.manifest.entries()} if held else {}

        def copied(p: str) -> None:
            if p in held:
                return
            done.append(f"{root}{p}")
            if len(done) >= 1000:
                batch = done[:]
                done.clear()
                cleaner.submit(self._delete, batch)

        def copy(p: str) -> str:
            if p in held:
                self._put_held(held[p], entry_of[p], self._key(f"{version}/{p}"))
            else:
                self._copy(f"{root}{p}", self._key(f"{version}/{p}"))
            return p

        try:
            for p in firsts:
                copied(copy(p))
            for p in bounded_map(copy, others, self._threads(len(others)), batch=4):
                copied(p)
            for p in entries:
                copied(copy(p))
            if staged.manifest.apart:
                self.store_manifest(version, staged.manifest)
            self.write_meta(f"records/{version}.json", record)
        except BaseException:
            cleaner.shutdown(wait=True)
            # Leave nothing that looks like a version; recover() finishes this if we cannot.
            with contextlib.suppress(Exception):
                self._remove_unrecorded(version)
            raise
        try:
            if done:
                cleaner.submit(self._delete, done[:])
        finally:
            cleaner.shutdown(wait=True)
        with contextlib.suppress(Exception):
            # a failed batch leaves keys behind: the listing finds them (empty, one request)
            self.discard(staged.token)

    def discard(self, token: str) -> None:
        keys = [m["path"] for m in self._list(f"{META}/staging/{token}/")]
        self._delete(keys)

    def _remove_unrecorded(self, version: str) -> bool:
        if self.read_meta(f"records/{version}.json") is not None:
            return False
        self.delete_meta(manifest_key(version))  # stored just before the record: never read
        keys = [m["path"] for m in self._list(f"{version}/")]
        if not keys:
            return False
        others, entries = _entry_last(keys)
        lasts, others = _triton_first(others)
        self._delete(entries[::-1])
        self._delete(others)
        self._delete(lasts)
        return True

    def _lease_is_stale(self, raw: bytes | None) -> bool:
        if raw is None:
            return True
        try:
            doc = json.loads(raw)
        except ValueError:
            return True
        return not isinstance(doc, dict) or owner_gone(doc)

    def recover(self) -> list[str]:
        prefixes, objects = self._list_dir(f"{META}/staging/")
        tokens = set(prefixes)
        tokens |= {
            m["path"].rsplit("/", 1)[-1][: -len(".lease")]
            for m in objects
            if m["path"].endswith(".lease")
        }
        done: list[str] = []
        for token in sorted(tokens):
            if not self._lease_is_stale(self.read_meta(f"staging/{token}.lease")):
                continue
            version = token_version(token)
            if is_version_name(version) and self._remove_unrecorded(version):
                done.append(
                    f"removed unfinished version {self.version_url(version)} "
                    "(no record; its number stays used)"
                )
            if token in prefixes:
                self.discard(token)
                done.append(f"removed staging debris {self.url}/{META}/staging/{token}/")
            self.delete_meta(f"staging/{token}.lease")
        return done

    def remove_version(self, version: str) -> bool:
        keys = [m["path"] for m in self._list(f"{version}/")]
        others, entries = _entry_last(keys)
        lasts, others = _triton_first(others)
        self._delete(entries[::-1])  # top-level saved_model.pb first: loaders stop starting on it
        self._delete(others)
        self._delete(lasts)  # Triton's model file last: never a version without it
        return bool(keys)

    # -- server configuration files -----------------------------------------------------------
    def read_file(self, rel: str) -> tuple[bytes | None, str | None]:
        key = self._key(rel)
        try:
            return self.store.get_tagged(key)
        except NOT_FOUND as e:
            if missing_bucket(e):
                raise self._error(e, "reading", key) from e
            return None, None
        except Exception as e:
            raise self._error(e, "reading", key) from e

    def write_file_conditional(self, rel: str, data: bytes, tag: str | None) -> bool:
        # one PUT replaces an object whole; If-Match (S3, Azure) or ifGenerationMatch (GCS)
        key = self._key(rel)
        try:
            self.store.put_if(key, data, tag)
            return True
        except EXISTS:
            return False
        except NOT_FOUND:  # deleted since it was read
            return False
        except Exception as e:
            raise self._error(e, "writing", key) from e
