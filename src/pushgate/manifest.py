"""Manifests: the list of a version's files with size and sha256, its empty directories, and
one digest over them.

The digest is ``sha256:<hex>`` of the canonical text ``"<sha256> <size> <path>\\n"`` per file,
sorted by path, then ``"dir <path>/\\n"`` per empty directory, sorted, so it changes with any byte,
name, file or empty directory added or removed, and two pushes of the same tree have the same
digest whatever the machine.

Empty directories (``dirs``, TFX's ``assets/``) were not recorded by earlier builds; a record
written by one has no ``dirs`` and reads as having none, which is what its version holds (those
pushes dropped them). A tree without empty directories has the same digest as before, so old and
new records of such a model compare equal. A model with an empty directory re-pushed over an old
version of the same files is *not* identical to it (that version lacks the directory): it is
published once more, now whole; every later re-push is recognised as unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, NamedTuple, Protocol, TypeVar

from pushgate.errors import IntegrityError

#: read size for copying (read + hash + write)
CHUNK = 4 * 1024 * 1024
#: read size for hashing alone: a buffer that stays in the core's L2 cache between the kernel's
#: copy into it and sha256 reading it (1 GiB on 2 cores: 0.61 s, against 0.93 s with 4 MiB)
HASH_CHUNK = 1024 * 1024
#: a manifest of more files than this is stored apart from its record, as lines in
#: ``.pushgate/manifests/<version>.txt`` (read line by line: a million files never sit in memory
#: as JSON); one of at most this many stays inside the record, as every earlier build wrote it
INLINE_FILES = 10_000


class FileEntry(NamedTuple):
    """One file of a manifest (a tuple: a million of them must stay small in memory)."""

    path: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    """The files of a model version, its empty directories, and their digest."""

    files: tuple[FileEntry, ...]
    #: directories holding nothing at all (no file, no directory), as paths without a slash
    dirs: tuple[str, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[FileEntry], dirs: Iterable[str] = ()) -> Manifest:
        return cls(tuple(sorted(entries, key=itemgetter(0))), tuple(sorted(set(dirs))))

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for e in self.files:
            h.update(f"{e.sha256} {e.size} {e.path}\n".encode())
        for d in self.dirs:  # no line for a tree without empty directories: old digests hold
            h.update(f"dir {d}/\n".encode())
        return f"sha256:{h.hexdigest()}"

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.files)

    @property
    def count(self) -> int:
        return len(self.files)

    @property
    def apart(self) -> bool:
        """Whether its record stores it apart, as lines (see :data:`INLINE_FILES`)."""
        return self.count > INLINE_FILES

    def entries(self) -> Iterator[FileEntry]:
        """The files, sorted by path (as :meth:`ManifestFile.entries`)."""
        return iter(self.files)

    def lines(self) -> bytes:
        """The stored-apart form (see :class:`ManifestWriter`)."""
        return b"".join(stored_line(e) for e in self.files)

    def by_path(self) -> dict[str, FileEntry]:
        return {e.path: e for e in self.files}

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "total_bytes": self.total_bytes,
            "files": [e.to_json() for e in self.files],
            "dirs": list(self.dirs),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Read a manifest; one without ``dirs`` (an earlier build's) has no empty directory. Every
        path goes through :func:`checked_rel`."""
        files = [FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in data["files"]]
        dirs = [str(d) for d in data.get("dirs") or ()]
        checked_rels([e.path for e in files])
        checked_rels(dirs)
        return cls.of(files, dirs)


def stored_line(e: FileEntry) -> bytes:
    """One file's line in a manifest stored apart: the digest's own line ``"<sha256> <size>
    <path>\\n"``, the path as a JSON string where it holds a newline or starts with a quote."""
    path = json.dumps(e.path) if _escaped(e.path) else e.path
    return f"{e.sha256} {e.size} {path}\n".encode()


def _escaped(path: str) -> bool:
    """Whether a stored line holds ``path`` as a JSON string (see :func:`stored_line`)."""
    return "\n" in path or path.startswith('"')


def parse_lines(lines: list[bytes], where: str) -> tuple[list[FileEntry], bool]:
    """The entries of some stored lines, and whether any path was escaped (then the lines are
    not the digest's text)."""
    out: list[FileEntry] = []
    escaped = False
    try:
        for line in lines:
            sha, size, path = line.decode().split(" ", 2)
            if len(sha) != 64 or not size.isdigit() or not path.endswith("\n"):
                raise ValueError(line[:200])
            path = path[:-1]
            if path.startswith('"'):
                path, escaped = json.loads(path), True
                if not isinstance(path, str):
                    raise ValueError(line[:200])
            out.append(FileEntry(path, int(size), sha))
    except (ValueError, UnicodeDecodeError) as e:
        raise IntegrityError(
            f"the manifest {where} holds a line that is not '<sha256> <size> <path>' ({e}); it "
            "was edited or damaged"
        ) from None
    checked_rels([e.path for e in out])
    return out, escaped


def _canonical(e: FileEntry) -> bytes:
    return f"{e.sha256} {e.size} {e.path}\n".encode()


class ManifestWriter:
    """Writes a manifest as it is made, one file at a time in path order, into a binary file:
    the lines of :func:`stored_line`, while its digest, size and count are summed. Nothing per
    file stays in memory."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self._h = hashlib.sha256()
        self._last: str | None = None
        self._pending: list[bytes] = []
        self._canon: list[bytes] = []
        self.count = 0
        self.total_bytes = 0

    def add(self, e: FileEntry) -> None:
        if self._last is not None and e.path <= self._last:
            raise ValueError(f"manifest entries out of order: {e.path!r} after {self._last!r}")
        self._last = e.path
        self.count += 1
        self.total_bytes += e.size
        line = _canonical(e)
        self._canon.append(line)  # what the digest hashes: the path as it is
        self._pending.append(stored_line(e) if _escaped(e.path) else line)
        if len(self._pending) >= 4096:
            self._flush()

    def _flush(self) -> None:
        self._h.update(b"".join(self._canon))
        self.out.write(b"".join(self._pending))
        self._pending.clear()
        self._canon.clear()

    def finish(self, path: Path, dirs: Iterable[str]) -> ManifestFile:
        """The manifest whose lines were written to ``path`` (the file behind ``out``), with the
        empty directories ``dirs``; ``out`` is flushed, not closed."""
        self._flush()
        self.out.flush()
        dirs = tuple(sorted(set(dirs)))
        for d in dirs:
            self._h.update(f"dir {d}/\n".encode())
        return ManifestFile(
            path, f"sha256:{self._h.hexdigest()}", self.total_bytes, self.count, dirs
        )


@dataclass(frozen=True)
class ManifestFile:
    """A manifest held as lines in a file (:class:`ManifestWriter`'s), read one batch at a time:
    what a push of a million files makes and what verify and re-push read."""

    path: Path
    digest: str
    total_bytes: int
    count: int
    dirs: tuple[str, ...] = ()

    @property
    def apart(self) -> bool:
        return self.count > INLINE_FILES

    def entries(self) -> Iterator[FileEntry]:
        """The files in path order. Every path is checked (:func:`checked_rels`); once all are
        read, IntegrityError unless they (and ``dirs``) give ``digest`` and ``count``: a damaged
        or edited file fails as it ends, before a caller takes its last answer for true."""
        h = hashlib.sha256()
        count = 0
        last = ""
        try:
            stream = open(self.path, "rb")  # noqa: SIM115 (closed below, also when abandoned)
        except OSError as e:
            raise IntegrityError(f"cannot read the manifest {self.path}: {e.strerror or e}") from e
        with stream:
            while True:
                batch = stream.readlines(1 << 20)
                if not batch:
                    break
                entries, escaped = parse_lines(batch, str(self.path))
                h.update(b"".join(map(_canonical, entries)) if escaped else b"".join(batch))
                for entry in entries:
                    if entry.path <= last and count:
                        raise IntegrityError(
                            f"the manifest {self.path} is not sorted by path at {entry.path!r}; "
                            "it was edited or damaged"
                        )
                    last = entry.path
                    count += 1
                    yield entry
        for d in self.dirs:
            h.update(f"dir {d}/\n".encode())
        if f"sha256:{h.hexdigest()}" != self.digest or count != self.count:
            raise IntegrityError(
                f"the manifest {self.path} does not give its record's digest {self.digest} "
                f"({count} files read, {self.count} recorded): it was edited or damaged"
            )

    def load(self) -> Manifest:
        return Manifest(tuple(self.entries()), self.dirs)

    def lines(self) -> bytes:
        return self.path.read_bytes()


def checked_rel(path: str) -> str:
    """``path`` when it is a safe relative path inside a version (no absolute path, no ``..``,
    no empty or ``.`` part); IntegrityError otherwise. Paths read from records go through it."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise IntegrityError(
            f"a manifest lists the unsafe path {path!r} (absolute, empty or with '..'); the "
            "record was edited or damaged, and nothing is done with that path"
        )
    return path


#: what an unsafe path looks like in paths joined by (and wrapped in) newlines: an absolute or
#: empty path, an empty, ``.`` or ``..`` part (a newline inside a name can only add false alarms,
#: which the exact check clears)
_UNSAFE_MARKS = (
    *("\n/", "\n\n", "//", "/\n"),
    *("/./", "/.\n", "\n./", "\n.\n"),
    *("/../", "/..\n", "\n../", "\n..\n"),
)


def checked_rels(paths: list[str]) -> None:
    """:func:`checked_rel` of every path: a dozen substring searches over them all (at 100,000
    paths a small fraction of checking them one by one, or of one regular expression), then
    the exact check where one found something."""
    joined = "\n" + "\n".join(paths) + "\n"
    if not paths or any(mark in joined for mark in _UNSAFE_MARKS):
        for path in paths:
            checked_rel(path)


class Readable(Protocol):
    """Anything with ``readinto`` (files, buffered readers, object-store streams)."""

    def readinto(self, buffer: Any, /) -> int | None: ...


def hash_stream(
    stream: Readable, on_bytes: Callable[[int], None] | None = None, size: int | None = None
) -> str:
    """sha256 hex of a stream, read in large chunks (hashlib releases the GIL on them).

    The buffer is fresh for each stream and no larger than ``size`` needs: measured on the
    2-core VM, one buffer reused across files hashed 1 GiB in 0.74 s, a fresh one per file in
    0.53 s (the kernel's copy into the reused buffer took twice the system time).
    """
    h = hashlib.sha256()
    view = memoryview(bytearray(HASH_CHUNK if size is None else min(size + 1, HASH_CHUNK)))
    while True:
        n = stream.readinto(view)
        if not n:
            break
        h.update(view[:n])
        if on_bytes:
            on_bytes(n)
    return h.hexdigest()


#: files up to this size are hashed from ``os.read`` results: no file object, no buffer to fill
SMALL_FILE = 1024 * 1024


def hash_fd(fd: int, on_bytes: Callable[[int], None] | None = None, size: int = -1) -> str:
    """sha256 hex of an open descriptor's content from where it stands (``size``: what the
    caller expects, -1 when unknown). A small file costs two ``read`` calls and no Python file
    object, which at 100,000 small files is most of the time; a big one streams through
    :func:`hash_stream`."""
    if size < 0 or size > SMALL_FILE:
        with open(fd, "rb", buffering=0, closefd=False) as f:
            return hash_stream(f, on_bytes, None if size < 0 else size)
    h = hashlib.sha256()
    while chunk := os.read(fd, size + 1 if size else 1):
        h.update(chunk)
        if on_bytes:
            on_bytes(len(chunk))
        size = HASH_CHUNK  # the file grew since its size was read: read on in big blocks
    return h.hexdigest()


def hash_file(path: Path | str, on_bytes: Callable[[int], None] | None = None) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        return hash_fd(fd, on_bytes, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def workers() -> int:
    """Threads for I/O-bound parallel work: enough to keep every core and the disk busy."""
    return max(4, min(16, 2 * (os.cpu_count() or 2)))


def hash_threads() -> int:
    """Threads for hashing local files: one per core (hashing is CPU-bound once the files are
    cached; more threads only evict each other's buffers from the caches)."""
    return max(2, os.cpu_count() or 2)


T = TypeVar("T")
R = TypeVar("R")

#: small items are handed to a worker in batches of up to this many bytes / items, so a model
#: of 100,000 small files costs a few thousand thread handoffs, not 100,000
BATCH_BYTES = 4 * 1024 * 1024
BATCH_ITEMS = 128
#: batches queued per worker thread: enough to keep every worker busy, few enough that memory
#: does not grow with the number of files
QUEUED_PER_WORKER = 2


def _batches(items: Iterable[T], cost: Callable[[T], int] | None, most: int) -> Iterator[list[T]]:
    batch: list[T] = []
    size = 0
    for item in items:
        batch.append(item)
        size += cost(item) if cost is not None else 0
        if size >= BATCH_BYTES or len(batch) >= most:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def bounded_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    threads: int,
    cost: Callable[[T], int] | None = None,
    batch: int = BATCH_ITEMS,
) -> Iterator[R]:
    """``fn`` over ``items`` on ``threads`` threads, results in the order of ``items``.

    Items are batched (by ``cost``, bytes, and count) and at most ``QUEUED_PER_WORKER`` batches
    per thread are pending at once: memory stays flat in the number of items (a plain
    ``pool.map`` makes one pending task per item up front), and small items do not each pay a
    thread handoff (network-bound work passes a small ``batch``: there the handoff is cheap
    next to a request, and big batches would leave threads idle at the end). The first error
    is raised once the earlier results are out; work not yet started is then cancelled, as it
    is when the caller stops iterating.
    """

    def run(part: list[T]) -> list[R]:
        return [fn(item) for item in part]

    batches = _batches(items, cost, batch)
    if threads <= 1:
        for part in batches:
            yield from run(part)
        return
    pending: deque[Future[list[R]]] = deque()
    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        for part in batches:
            pending.append(pool.submit(run, part))
            if len(pending) >= threads * QUEUED_PER_WORKER:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def hash_files(
    items: Iterable[tuple[str, Path]], on_bytes: Callable[[int], None] | None = None
) -> dict[str, str]:
    """sha256 of many files in parallel: ``{rel: hex}``."""
    return dict(bounded_map(lambda it: (it[0], hash_file(it[1], on_bytes)), items, hash_threads()))
