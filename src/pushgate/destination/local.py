"""Local filesystem destination: stage, fsync, then one atomic rename into ``<BASE>/<version>``.

Crash safety comes from the order of writes:

1. claim ``.pushgate/claims/<v>.json`` with ``O_CREAT|O_EXCL`` (two pushers never share a number);
2. copy every file into ``.pushgate/staging/<token>/`` (hashing on the way) and make the tree
   durable (:class:`TreeSync`: fsync of each file and directory, or one ``syncfs`` for a tree of
   many files); the staging copy is owned through an ``flock`` held for the whole push;
3. write the record ``.pushgate/records/<v>.json`` (tmp + fsync + rename);
4. ``renameat2(RENAME_NOREPLACE)`` the staging directory to ``<BASE>/<v>`` and fsync BASE.

Killed before 4: no numeric directory exists; a later push's ``recover`` removes the staging copy
(its flock is free) and the record of the version that never appeared. Killed after 4: the
version is complete and recorded. No instant exists where ``<BASE>/<v>`` is partial.

Links inside BASE never redirect a write or a delete: every directory under ``.pushgate/`` is
reached through :meth:`LocalDestination._inside`, which refuses (exit 2, naming it) a symbolic
link or a file where pushgate expects its own directory, and everything pushgate removes goes
through :func:`remove_entry`, which removes a link itself, never what it points at.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import hashlib
import io
import itertools
import multiprocessing
import os
import shutil
import stat
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.pool import AsyncResult, Pool
from pathlib import Path
from typing import BinaryIO, NamedTuple, TypeVar

from pushgate.destination.base import (
    MAX_VERSION,
    META,
    PENDING_EVENTS,
    Destination,
    FileHash,
    Found,
    ProgressFn,
    Staged,
    is_numeric_name,
    is_version_name,
    manifest_key,
    token_version,
)
from pushgate.errors import (
    DestinationError,
    DestinationInputError,
    IntegrityError,
    StorageFullError,
)
from pushgate.layout import SERVER_WRITTEN_DIRS
from pushgate.manifest import (
    CHUNK,
    SMALL_FILE,
    FileEntry,
    Manifest,
    ManifestFile,
    ManifestWriter,
    bounded_map,
    checked_rel,
    checked_rels,
    hash_fd,
    hash_threads,
    parse_lines,
    workers,
)
from pushgate.source import SourceFile

T = TypeVar("T")
R = TypeVar("R")

_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2_noreplace(src: Path, dst: Path) -> None:
    """Rename that fails with EEXIST instead of replacing an (empty) directory at ``dst``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:  # pragma: no cover - old glibc: exists-check + rename (ENOTEMPTY guards most)
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "exists", str(dst))
        os.rename(src, dst)
        return
    rc = fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS):  # filesystem without RENAME_NOREPLACE
            if os.path.lexists(dst):
                raise FileExistsError(errno.EEXIST, "exists", str(dst))
            os.rename(src, dst)
            return
        raise OSError(err, os.strerror(err), str(dst))


_SYNC_FILE_RANGE_WRITE = 2
_WRITEBACK_EVERY = 8 * 1024 * 1024
#: pushgate's own directories under ``.pushgate/`` (see :mod:`pushgate.destination.base`)
INTERNAL_DIRS = (
    "staging",
    "claims",
    "records",
    "manifests",
    "events",
    "pins",
    "trash",
    "withdrawals",
    "removing",
    PENDING_EVENTS,
)
#: a temporary lock file younger than this may be a live pusher's, not yet locked
STALE_TMP_LOCK_S = 60.0


def _writeback_starter() -> Callable[..., int] | None:
    """``sync_file_range`` from libc (Linux), to start writeback while still copying."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    return fn


_start_writeback = _writeback_starter()


#: ``statfs`` magic numbers of the filesystems whose ``syncfs`` writes every dirty page and inode
#: and commits the journal (directory entries included) before it returns: ext2/3/4, XFS, Btrfs.
#: Elsewhere (NFS, FUSE, overlay, ...) ``syncfs`` may do less than ``fsync`` of each file.
_SYNCFS_FILESYSTEMS = frozenset({0xEF53, 0x58465342, 0x9123683E})
#: before Linux 5.8, ``syncfs`` returned 0 even when writing back failed
_SYNCFS_KERNEL = (5, 8)
#: files of one tree fsynced one by one before the rest is left to one ``syncfs``: a model of a
#: few big files never flushes other writers' dirty data (see :class:`TreeSync`)
PER_FILE_FSYNCS = 64


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """``syncfs(2)`` from libc where it reports write-back errors (Linux 5.8 on), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        release = tuple(int(x) for x in os.uname().release.split(".")[:2])
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not glibc/musl
        return None
    if release < _SYNCFS_KERNEL:  # pragma: no cover - old kernel
        return None
    fn.argtypes = [ctypes.c_int]
    return fn


def _fs_magic(fd: int) -> int | None:
    """The ``f_type`` of the filesystem holding ``fd`` (``fstatfs``; Linux), or None."""
    try:
        fstatfs = ctypes.CDLL(None, use_errno=True).fstatfs
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return None
    buf = (ctypes.c_long * 32)()  # struct statfs (120 bytes on 64-bit); f_type comes first
    if fstatfs(fd, buf) != 0:
        return None
    return buf[0] & 0xFFFFFFFF


class TreeSync:
    """Makes a freshly written tree durable before it is published.

    Per file, ``fsync`` costs a journal commit and a flush of the device's cache, which for
    many small files adds up to more than writing them. So only the first
    :data:`PER_FILE_FSYNCS` files are fsynced one by one (with each directory, deepest first);
    the rest are written without, and
    :meth:`finish` makes them, their inodes and every directory entry durable with one
    ``syncfs(2)`` on the tree's filesystem. ``syncfs`` is used only where it is known to cover
    data and metadata and to report write-back errors (:data:`_SYNCFS_FILESYSTEMS`, Linux 5.8
    on); elsewhere (macOS, NFS, FUSE, older kernels) every file is fsynced as before.

    The cost of ``syncfs``: it flushes the whole filesystem, so on a filesystem where others
    write a lot the push also waits for their dirty data. That is why a tree of few (typically
    big) files never calls it, and why the directory descriptor is opened before the copy:
    ``syncfs`` reports any write-back error since then, including one of a page the kernel
    wrote in the background.
    """

    def __init__(self, root: str) -> None:
        self._fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        self._syncfs = _syncfs() if _fs_magic(self._fd) in _SYNCFS_FILESYSTEMS else None
        self._files = itertools.count()
        self._deferred = False

    def per_file(self) -> bool:
        """Whether the caller must fsync the file it has just written (thread-safe)."""
        if self._syncfs is None or next(self._files) < PER_FILE_FSYNCS:
            return True
        self._deferred = True
        return False

    def finish(self, dirs: Iterable[str]) -> None:
        """Make the tree durable: ``syncfs`` when files were left to it, else ``fsync`` of each
        of ``dirs`` (absolute paths, deepest first)."""
        if self._deferred and self._syncfs is not None:
            if self._syncfs(self._fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            return
        for d in dirs:
            fsync_dir(Path(d))

    def close(self) -> None:
        os.close(self._fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_entry(path: Path) -> bool:
    """Remove ``path``: a directory tree, a file, or a link (the link itself, never what it
    points at; ``shutil.rmtree`` walks with ``O_NOFOLLOW`` directory descriptors). Returns True
    when nothing is left there."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if stat.S_ISDIR(mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return not os.path.lexists(path)


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFLNK: "a symlink",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def open_regular(path: Path | str, *, follow: bool) -> int:
    """A read-only descriptor of ``path``, which must be a regular file. Opened non-blocking
    (a FIFO planted there must never hang the reader) and, unless ``follow``, without following
    a symlink; raises ``OSError(EINVAL)`` naming what it found otherwise."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            raise OSError(errno.EINVAL, f"{path} is a symlink, not a regular file") from e
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path} is {_kind(st.st_mode)}, not a regular file")
    os.set_blocking(fd, True)
    return fd


def _link_create_only(tmp: Path, path: Path, data: bytes) -> bool:
    """Give the complete file ``tmp`` the name ``path`` unless ``path`` exists (a hard link:
    atomic and create-only). Returns False when it exists. Where the filesystem has no hard
    links, falls back to ``O_EXCL`` (which a kill can leave empty)."""
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _wrap(e: OSError, what: str, path: Path | str) -> DestinationError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(f"no space left on the device while {what} {path}")
    return DestinationError(f"{what} {path} failed: {e.strerror or e}")


#: files per task handed to a hashing process, and the fewest files worth starting processes for
_HASH_CHUNK_FILES = 1000
_HASH_PROCESSES_FROM = 4 * _HASH_CHUNK_FILES


def _hash_processes(files: int) -> int:
    """Processes for hashing ``files`` local files: one per core for many files, on Linux, from
    a process without other threads (forking one that has them may copy a held lock); else 0."""
    cores = os.cpu_count() or 1
    if files < _HASH_PROCESSES_FROM or cores < 2 or not sys.platform.startswith("linux"):
        return 0
    return min(cores, 8) if threading.active_count() == 1 else 0


def _hash_paths(chunk: list[tuple[str, int]]) -> list[str]:
    """sha256 hex of files given by full path and recorded size (in a hashing process), never
    following a link: ``""`` for a file whose size differs (it cannot match), ``"!<why>"`` for
    one that cannot be read. Plain strings cross the process boundary cheaply.

    Per file: open, fstat, one read, close. The size from ``fstat`` replaces the read to the end
    (a file that grew shows as a size change) and, as the file is known to be regular, the
    descriptor is left non-blocking (that changes nothing for a regular file): at 100,000 small
    files those three system calls fewer were a quarter of the work.
    """
    out: list[str] = []
    for path, size in chunk:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError as e:
            why = f"{path} is a symlink, not a regular file" if e.errno == errno.ELOOP else e
            out.append(f"!{why}")
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                out.append(f"!{path} is {_kind(st.st_mode)}, not a regular file")
            elif size >= 0 and st.st_size != size:
                out.append("")
            elif 0 <= size <= SMALL_FILE:
                data = os.read(fd, size) if size else b""
                out.append(hashlib.sha256(data).hexdigest() if len(data) == size else "")
            else:
                out.append(hash_fd(fd, None, size))
        except OSError as e:
            out.append(f"!{e}")
        finally:
            os.close(fd)
    return out


#: bytes of manifest lines handed to a worker process at a time (about 1,000 small files)
_LINES_BLOCK = 128 * 1024


class _Lines(NamedTuple):
    """What a worker process found in one block of manifest lines (plain data: it is pickled)."""

    read: int
    present: int
    bytes: int
    first: str
    last: str
    escaped: bool
    missing: list[str]
    changed: list[str]
    errors: list[str]


def _check_lines(root: str, block: bytes) -> _Lines:
    """Parse a block of a manifest's lines and check each file under ``root`` (a worker
    process's task): missing, changed (size or sha256), or unreadable."""
    try:
        entries, escaped = parse_lines(io.BytesIO(block).readlines(), "")  # split at \n only
    except IntegrityError as bad:
        return _Lines(0, 0, 0, "", "", False, [], [], [str(bad)])
    missing: list[str] = []
    changed: list[str] = []
    errors: list[str] = []
    present = size = 0
    order = [entry.path for entry in entries]
    if order != sorted(order) or len(set(order)) != len(order):
        errors.append("the manifest is not sorted by path: it was edited or damaged")
    results = _hash_paths([(root + entry.path, entry.size) for entry in entries])
    for entry, got in zip(entries, results):
        if got.startswith("!") and not os.path.lexists(root + entry.path):
            missing.append(entry.path)
            continue
        present += 1
        size += entry.size
        if got.startswith("!"):
            errors.append(f"cannot read {entry.path}: {got[1:]}")
        elif got != entry.sha256:
            changed.append(entry.path)
    first, last = (order[0], order[-1]) if order else ("", "")
    return _Lines(len(entries), present, size, first, last, escaped, missing, changed, errors)


def _scan(directory: str, rel: str, odd: list[str]) -> list[tuple[str, str | None]]:
    """One directory of a version, from its entries' types (no ``stat`` per file): ``(name,
    None)`` per regular file, ``(name + "/", path)`` per directory (a server's own cache left
    out); anything else is added to ``odd``. OSError when it cannot be read."""
    found: list[tuple[str, str | None]] = []
    with os.scandir(directory) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                if e.name not in SERVER_WRITTEN_DIRS:
                    found.append((f"{e.name}/", e.path))
            elif e.is_file(follow_symlinks=False):
                found.append((e.name, None))
            else:
                odd.append(f"{rel}{e.name} ({_kind(e.stat(follow_symlinks=False).st_mode)})")
    return found


def _count_files(top: str) -> tuple[int, list[str]]:
    """Regular files under ``top`` and what is neither a file nor a directory (a worker
    process's task)."""
    count = 0
    odd: list[str] = []
    stack = [(top, "")]
    while stack:
        directory, rel = stack.pop()
        try:
            found = _scan(directory, rel, odd)
        except OSError:
            continue
        for name, path in found:
            if path is None:
                count += 1
            else:
                stack.append((path, f"{rel}{name}"))
    return count, odd


@contextmanager
def _fork_pool(processes: int) -> Iterator[Pool]:
    pool = multiprocessing.get_context("fork").Pool(processes)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def _in_order(
    pool: Pool, fn: Callable[[T], R], tasks: Iterable[T], window: int
) -> Iterator[tuple[T, R]]:
    """``(task, fn(task))`` for each task, run on ``pool``, in the tasks' order, with at most
    ``window`` tasks in flight (``Pool.imap`` would read every task up front)."""
    pending: deque[tuple[T, AsyncResult[R]]] = deque()
    for task in tasks:
        pending.append((task, pool.apply_async(fn, (task,))))
        if len(pending) > window:
            done, result = pending.popleft()
            yield done, result.get()
    while pending:
        done, result = pending.popleft()
        yield done, result.get()


def _reads_whole(manifest: ManifestFile) -> bool:
    try:
        for _ in manifest.entries():
            pass
    except IntegrityError:
        return False
    return True


def _copy_small(fin: int, fd: int, size: int, progress: ProgressFn | None) -> tuple[int, str]:
    """Copy a small file with plain ``read``/``write`` calls (no file object, no buffer to
    fill): at 100,000 small files the per-file Python objects were most of the copy's cost."""
    h = hashlib.sha256()
    copied = 0
    want = size + 1 if size else 1
    while chunk := os.read(fin, want):
        h.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
        copied += len(chunk)
        if progress:
            progress(len(chunk))
        want = CHUNK  # the file grew since it was listed: read on (src.entry refuses it)
    return copied, h.hexdigest()


def _copy_big(fin: int, fd: int, size: int, progress: ProgressFn | None) -> tuple[int, str]:
    # a fresh buffer per file, no bigger than the file (see manifest.hash_stream)
    view = memoryview(bytearray(min(size + 1, CHUNK)))
    h = hashlib.sha256()
    copied = flushed = 0
    while True:
        n = os.readv(fin, [view])
        if not n:
            break
        chunk = view[:n]
        h.update(chunk)
        written = 0
        while written < n:
            written += os.write(fd, chunk[written:])
        copied += n
        if _start_writeback is not None and copied - flushed >= _WRITEBACK_EVERY:
            # start writing this range to disk now (non-blocking), so the fsync has little
            # left to do: disk time overlaps copy time
            _start_writeback(fd, flushed, copied - flushed, _SYNC_FILE_RANGE_WRITE)
            flushed = copied
        if progress:
            progress(n)
    return copied, h.hexdigest()


class LocalDestination(Destination):
    """A BASE directory on a local (or mounted, POSIX) filesystem."""

    local = True
    holds_empty_dirs = True

    def __init__(self, base: Path | str) -> None:
        self.base = Path(base).expanduser().absolute()
        self.url = str(self.base)
        self.meta = self.base / META

    # -- versions -----------------------------------------------------------------------------
    def _numeric_dirs(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.base) if is_numeric_name(e.name) and e.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as e:
            raise _wrap(e, "listing", self.base) from e

    def numeric_children(self) -> list[str]:
        return [n for n in self._numeric_dirs() if int(n) < MAX_VERSION]

    def oversized_children(self) -> list[str]:
        return [n for n in self._numeric_dirs() if int(n) >= MAX_VERSION]

    def exists(self) -> bool:
        return self.base.is_dir()

    def version_url(self, version: str) -> str:
        return str(self.base / version)

    def list_version_files(self, version: str) -> dict[str, int]:
        """Every regular file of the version; anything else in it (a FIFO, socket, device or
        symlink, which pushgate never writes) is damage: IntegrityError naming each one."""
        return self._list_version(version, sizes=True)

    def list_version_names(self, version: str) -> dict[str, int]:
        # the directory entries' types say which are regular files: no stat per file (at
        # 100,000 files the stats were a fifth of verify's time); sizes are -1
        return self._list_version(version, sizes=False)

    def _list_version(self, version: str, *, sizes: bool) -> dict[str, int]:
        out: dict[str, int] = {}
        odd: list[str] = []

        # scandir with strings, not os.walk with Paths: at 100,000 files the Paths cost more
        # than hashing the files
        def walk(directory: str, rel: str) -> None:
            try:
                entries = list(os.scandir(directory))
            except OSError:
                return  # gone or unreadable, as os.walk skips it: its files show as missing
            for e in entries:
                r = f"{rel}{e.name}"
                if e.is_dir(follow_symlinks=False):
                    if e.name not in SERVER_WRITTEN_DIRS:  # a server's own cache
                        walk(e.path, f"{r}/")
                    continue
                if not sizes and e.is_file(follow_symlinks=False):
                    out[r] = -1
                    continue
                st = e.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    out[r] = st.st_size
                else:
                    odd.append(f"{r} ({_kind(st.st_mode)})")

        walk(str(self.base / version), "")
        if odd:
            raise self._odd(version, odd)
        return out

    def _odd(self, version: str, odd: list[str]) -> IntegrityError:
        return IntegrityError(
            f"version {version} at {self.url} holds what pushgate never writes, not regular "
            f"files: {', '.join(sorted(odd))}; remove them or roll back to another version"
        )

    def iter_version_names(self, version: str) -> Iterator[tuple[str, int]]:
        # one directory's entries at a time, sorted by name (a directory's with its slash), so
        # the paths come sorted and a million of them are never held
        odd: list[str] = []

        def walk(directory: str, rel: str) -> Iterator[tuple[str, int]]:
            try:
                found = _scan(directory, rel, odd)
            except OSError:
                return  # gone or unreadable: its files show as missing
            found.sort()
            for name, path in found:
                if path is None:
                    yield f"{rel}{name}", -1
                else:
                    yield from walk(path, f"{rel}{name}")

        yield from walk(str(self.base / version), "")
        if odd:
            raise self._odd(version, odd)

    def open_version_file(self, version: str, rel: str) -> BinaryIO:
        rel = checked_rel(rel)
        # a string, not a Path: verify opens every file of a version through here
        return os.fdopen(open_regular(f"{self.url}/{version}/{rel}", follow=False), "rb")

    def hash_version_file(
        self, version: str, rel: str, size: int, progress: ProgressFn | None = None
    ) -> str:
        rel = checked_rel(rel)
        fd = open_regular(f"{self.url}/{version}/{rel}", follow=False)
        try:
            return hash_fd(fd, progress, size)
        finally:
            os.close(fd)

    def _hashing_threads(self) -> int:
        return hash_threads()  # local files: CPU-bound, one thread per core

    def hash_version_files(
        self, version: str, items: Iterable[tuple[str, int]], progress: ProgressFn | None = None
    ) -> Iterator[FileHash]:
        # Many small files are hashed by worker processes, one per core: per file the work is
        # a few system calls and some bytecode, and threads serialise on the GIL for the
        # bytecode (100,000 files of 1 KiB on 2 cores: one thread 1.13 s, two 1.00 s, two
        # processes half that). Big files stream through threads (hashlib drops the GIL).
        root = f"{self.url}/{version}/"
        rest = iter(items)
        head = list(itertools.islice(rest, _HASH_PROCESSES_FROM))
        processes = _hash_processes(len(head))
        if processes <= 1:
            yield from super().hash_version_files(version, itertools.chain(head, rest), progress)
            return

        def chunks() -> Iterator[list[tuple[str, int]]]:
            stream = itertools.chain(head, rest)
            while chunk := list(itertools.islice(stream, _HASH_CHUNK_FILES)):
                checked_rels([rel for rel, _ in chunk])
                yield [(root + rel, size) for rel, size in chunk]

        with _fork_pool(processes) as pool:
            for chunk, got in _in_order(pool, _hash_paths, chunks(), 2 * processes):
                if progress:
                    progress(sum(max(size, 0) for _, size in chunk))
                for digest in got:
                    if digest.startswith("!"):
                        yield FileHash(None, digest[1:])
                    else:
                        yield FileHash(digest, None)

    def compare_lines(
        self,
        version: str,
        manifest: ManifestFile,
        found: Found,
        progress: ProgressFn | None = None,
    ) -> bool:
        # The main process only reads the manifest in blocks (hashing their bytes, which are
        # the digest's text) and hands each block to a worker that parses, opens and hashes
        # its files; another worker counts the version's files. Extra files are named (a walk
        # side by side with the manifest) only when the count says there are some. At 100,000
        # small files the main process's per-file work in Python was most of verify's time.
        processes = _hash_processes(manifest.count)
        if processes <= 1:
            return False
        root = f"{self.url}/{version}/"
        h = hashlib.sha256()
        count, escaped, last = 0, False, ""

        def blocks() -> Iterator[bytes]:
            with open(manifest.path, "rb") as lines:
                while block := lines.read(_LINES_BLOCK):
                    if not block.endswith(b"\n"):
                        block += lines.readline()
                    h.update(block)
                    yield block

        check = functools.partial(_check_lines, root)
        try:
            with _fork_pool(processes) as pool:
                listed = pool.apply_async(_count_files, (root,))
                for _, got in _in_order(pool, check, blocks(), 2 * processes):
                    count += got.read
                    escaped |= got.escaped
                    if got.read and last and got.first <= last:
                        found.errors.append(
                            "the manifest is not sorted by path: it was edited or damaged"
                        )
                    last = got.last or last
                    found.files += got.present
                    found.bytes += got.bytes
                    found.missing += got.missing
                    found.changed += got.changed
                    found.errors += got.errors
                    if progress:
                        progress(got.bytes)
                files, odd = listed.get()
        except OSError as e:
            raise IntegrityError(f"cannot read the manifest {manifest.path}: {e}") from e
        for d in manifest.dirs:
            h.update(f"dir {d}/\n".encode())
        intact = f"sha256:{h.hexdigest()}" == manifest.digest and count == manifest.count
        if escaped and count == manifest.count:  # a path written as JSON: the slow check
            intact = _reads_whole(manifest)
        if not intact:
            found.errors.append(
                f"the manifest {manifest.path} does not give its record's digest "
                f"{manifest.digest} ({count} files read, {manifest.count} recorded): it was "
                "edited or damaged"
            )
        if odd:
            found.errors.append(str(self._odd(version, odd)))
        if files != found.files:
            found.extra += self._extra(version, manifest)
        return True

    def _extra(self, version: str, manifest: ManifestFile) -> list[str]:
        """The files of a version its manifest does not list (both read in path order)."""
        extra: list[str] = []
        wanted = (e.path for e in manifest.entries())
        want = next(wanted, None)
        with contextlib.suppress(IntegrityError):  # reported by the caller
            for rel, _ in self.iter_version_names(version):
                while want is not None and want < rel:
                    want = next(wanted, None)
                if want != rel:
                    extra.append(rel)
        return extra

    def missing_dirs(self, version: str, dirs: Sequence[str]) -> list[str]:
        root = self.base / version
        return [d for d in dirs if not (root / d).is_dir() or (root / d).is_symlink()]

    def local_version_dir(self, version: str) -> Path:
        return self.base / version

    # -- pushgate's own directories -----------------------------------------------------------
    def _inside(self, *parts: str, create: bool = False) -> Path:
        """``<BASE>/.pushgate/<parts>``, checked one level at a time: each level must be a real
        directory, never a symbolic link (which would send writes and deletes outside BASE) nor
        a file (:class:`DestinationInputError`, exit 2, naming it). With ``create`` missing
        levels are made (and BASE itself: only a push creates BASE); without, a missing level
        is returned as it is, for readers to find nothing there."""
        if create:
            try:
                self.base.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise _wrap(e, "creating", self.base) from e
        path = self.base
        for part in (META, *parts):
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                if not create:
                    return self.meta.joinpath(*parts)
                try:
                    os.mkdir(path)
                    continue
                except FileExistsError:  # made by another pusher just now: check what it is
                    mode = os.lstat(path).st_mode
                except OSError as e:
                    raise _wrap(e, "creating", path) from e
            except NotADirectoryError:
                raise self._not_a_directory(path.parent) from None
            except OSError as e:
                raise _wrap(e, "reading", path) from e
            if stat.S_ISLNK(mode):
                raise DestinationInputError(
                    f"{path} is a symbolic link; pushgate never writes or deletes through a link "
                    f"inside {self.base}/{META}: remove the link (pushgate recreates the directory)"
                )
            if not stat.S_ISDIR(mode):
                raise self._not_a_directory(path)
        return path

    def _not_a_directory(self, path: Path) -> DestinationInputError:
        return DestinationInputError(
            f"{path} is not a directory; pushgate keeps its journal there: move the file away "
            "(or give another BASE)"
        )

    def _meta_path(self, key: str, create: bool = False) -> Path:
        *dirs, name = key.split("/")
        return self._inside(*dirs, create=create) / name

    # -- meta ---------------------------------------------------------------------------------
    def read_meta(self, key: str) -> bytes | None:
        path = self._meta_path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise DestinationInputError(
                    f"{path} is a symbolic link, not a pushgate record; remove it"
                ) from e
            raise _wrap(e, "reading", path) from e
        try:
            with os.fdopen(fd, "rb") as f:
                return f.read()
        except OSError as e:
            raise _wrap(e, "reading", path) from e

    def write_meta(
        self, key: str, data: bytes, *, create_only: bool = False, durable: bool = True
    ) -> bool:
        path = self._meta_path(key, create=True)
        try:
            # Written whole under a temporary name first, so a kill or a full disk never leaves
            # a half-written (or, create-only, an empty) document under its real name.
            tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                with open(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    if durable:
                        os.fsync(f.fileno())
                if create_only:
                    if not _link_create_only(tmp, path, data):
                        return False
                else:
                    os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            if durable:
                fsync_dir(path.parent)
            return True
        except OSError as e:
            raise _wrap(e, "writing", path) from e

    def list_meta(self, prefix: str) -> list[str]:
        directory = self._inside(*[p for p in prefix.split("/") if p])
        try:
            names = [n for n in os.listdir(directory) if not n.startswith(".tmp-")]
        except FileNotFoundError:
            return []
        except OSError as e:
            raise _wrap(e, "listing", directory) from e
        return sorted(f"{prefix.rstrip('/')}/{n}" for n in names)

    def iter_meta(self, prefix: str) -> Iterator[str]:
        def walk(directory: Path, rel: str) -> Iterator[str]:
            try:
                with os.scandir(directory) as it:
                    entries = sorted(
                        ((e.name, e.is_dir(follow_symlinks=False)) for e in it),
                        key=lambda x: x[0],
                    )
            except (FileNotFoundError, NotADirectoryError):
                return
            except OSError as e:
                raise _wrap(e, "listing", directory) from e
            for name, is_dir in entries:
                if name.startswith(".tmp-"):
                    continue
                if is_dir:
                    yield from walk(directory / name, f"{rel}{name}/")
                else:
                    yield f"{rel}{name}"

        yield from walk(self.meta / prefix, prefix if prefix.endswith("/") else f"{prefix}/")

    def delete_meta(self, key: str) -> None:
        path = self._meta_path(key)
        try:
            path.unlink(missing_ok=True)  # unlink removes a link itself, never its target
        except NotADirectoryError:
            return
        except OSError as e:
            raise _wrap(e, "removing", path) from e

    # -- push protocol ------------------------------------------------------------------------
    def check_writable(self) -> None:
        if self.base.exists() and not self.base.is_dir():
            raise DestinationInputError(
                f"destination is a file, not a directory: {self.base}; give the model's base "
                "directory (the one TF Serving's --model_base_path points at)"
            )
        try:
            for sub in INTERNAL_DIRS:  # a link or a file at any of them: refused here, once
                self._inside(sub, create=sub == "staging")
        except DestinationInputError:
            raise
        except DestinationError as e:  # BASE or .pushgate cannot be created
            raise DestinationInputError(
                f"destination is not writable: {e}; fix its permissions or push as a user who "
                "may write there"
            ) from e
        try:
            probe = self.meta / f".tmp-probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except PermissionError as e:
            raise DestinationInputError(
                f"destination is not writable: {self.base} ({e.strerror}); "
                "fix its permissions or push as a user who may write there"
            ) from e
        except OSError as e:
            raise DestinationInputError(f"cannot use destination {self.base}: {e.strerror}") from e

    @contextmanager
    def lease(self, token: str) -> Iterator[None]:
        staging = self._inside("staging", create=True)
        # Lock under a temporary name, then rename into place, so recover() can never see the
        # lock file before it is locked.
        tmp = staging / f".tmp-{token}.lock"
        fd = -1
        try:
            for attempt in range(3):
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, f"{os.getpid()}\n".encode())
                try:
                    os.rename(tmp, staging / f"{token}.lock")
                    break
                except FileNotFoundError:
                    # a recover() took the unlocked file for a dead pusher's (between our open
                    # and flock) and removed it: lock a new one
                    os.close(fd)
                    fd = -1
                    if attempt == 2:
                        raise
            yield
        finally:
            (staging / f"{token}.lock").unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)
            if fd >= 0:
                os.close(fd)

    def _copy_one(
        self, src: SourceFile, dst: str, progress: ProgressFn | None, fsync: bool = True
    ) -> FileEntry:
        fin = open_regular(src.abspath, follow=True)
        try:
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                if src.size <= SMALL_FILE:
                    size, digest = _copy_small(fin, fd, src.size, progress)
                else:
                    size, digest = _copy_big(fin, fd, src.size, progress)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            os.close(fin)
        return src.entry(size, digest)

    def _copy_tree(
        self,
        files: Iterable[SourceFile],
        root: Path,
        progress: ProgressFn | None,
        empty: Sequence[str],
        lines: Path,
    ) -> ManifestFile:
        """Copy ``files`` (sorted by path) under ``root`` as they come, writing the manifest's
        lines to ``lines`` in the same order: nothing per file is held, whatever their number
        (a bounded window of copies runs ahead on the worker threads)."""
        # relative directory names as strings ("" is the root): Path objects per file cost
        # seconds at 100,000 files; each directory is fsynced once its entries are all there
        top = str(root)
        made = {""}
        os.makedirs(top, exist_ok=True)

        def make(rel: str) -> None:
            missing = []
            while rel not in made:
                missing.append(rel)
                rel = rel.rpartition("/")[0]
            for d in reversed(missing):
                os.makedirs(f"{top}/{d}", exist_ok=True)
                made.add(d)

        for d in empty:
            make(d)

        def ready() -> Iterator[SourceFile]:
            for f in files:  # the directory exists before any copy into it is handed out
                parent = f.rel.rpartition("/")[0]
                if parent not in made:
                    make(parent)
                yield f

        sync = TreeSync(top)

        def task(f: SourceFile) -> FileEntry:
            return self._copy_one(f, f"{top}/{f.rel}", progress, sync.per_file())

        try:
            with open(lines, "xb") as out:
                writer = ManifestWriter(out)
                for entry in bounded_map(task, ready(), workers(), cost=lambda f: f.size):
                    writer.add(entry)
                manifest = writer.finish(lines, empty)
                os.fsync(out.fileno())
            deepest = sorted(made, key=lambda r: -(r.count("/") + bool(r)))
            sync.finish(f"{top}/{d}" if d else top for d in deepest)
        finally:
            sync.close()
        return manifest

    def stage(
        self,
        files: Iterable[SourceFile],
        token: str,
        progress: ProgressFn | None,
        dirs: Sequence[str] = (),
    ) -> Staged:
        root = self._inside("staging", create=True) / token
        try:
            manifest = self._copy_tree(files, root, progress, dirs, self._lines(token))
        except OSError as e:
            self.discard(token)
            err = _wrap(e, "copying the model into", root)
            if isinstance(err, StorageFullError):
                err = StorageFullError(
                    f"no space left on the device under {self.base}: the partial staging copy "
                    "was removed and nothing was published; free space and push again"
                )
            raise err from e
        except BaseException:
            self.discard(token)
            raise
        return Staged(token, manifest)

    def stage_from_version(
        self,
        version: str,
        token: str,
        progress: ProgressFn | None,
        dirs: Sequence[str] = (),
    ) -> Staged:
        root = self.base / version
        files = [
            SourceFile(rel, f"{root}/{rel}", size)
            for rel, size in sorted(self.list_version_files(version).items())
        ]
        # only the recorded empty directories the version still holds: one gone is damage, and
        # the copy's digest then differs from the record's (the caller refuses to publish it)
        # (paths from a record: a ".." one would make the copy create directories outside it)
        kept = [d for d in dirs if checked_rel(d) and (root / d).is_dir()]
        try:
            return self.stage(files, token, progress, kept)
        except DestinationError as e:
            gone = e.__cause__
            if isinstance(gone, FileNotFoundError) and str(gone.filename).startswith(f"{root}/"):
                raise DestinationError(
                    f"{gone.filename} (of version {version} at {self.url}) disappeared while it "
                    "was being copied: the version was removed (by a prune?) or damaged; "
                    "nothing was published"
                ) from e
            raise

    def publish(self, staged: Staged, version: str, record: bytes) -> None:
        src = self._inside("staging") / staged.token
        dst = self.base / version
        key = f"records/{version}.json"
        if staged.manifest.apart:
            self.store_manifest(version, staged.manifest)
        try:
            self.write_meta(key, record)
        except BaseException:
            self.delete_meta(manifest_key(version))
            raise
        try:
            _renameat2_noreplace(src, dst)
            fsync_dir(self.base)
        except OSError as e:
            self.delete_meta(key)
            self.delete_meta(manifest_key(version))
            raise _wrap(e, "publishing", dst) from e
        self._lines(staged.token).unlink(missing_ok=True)

    def _lines(self, token: str) -> Path:
        """Where the copy of staging ``token`` writes its manifest's lines."""
        return self._inside("staging") / f"{token}.lines"

    def store_manifest(self, version: str, manifest: Manifest | ManifestFile) -> None:
        lines = manifest.path if isinstance(manifest, ManifestFile) else None
        if lines is None or lines.parent != self._inside("staging"):
            super().store_manifest(version, manifest)  # not a copy's own lines: written anew
            return
        path = self._meta_path(manifest_key(version), create=True)
        try:
            os.rename(lines, path)  # written and flushed by the copy, under .pushgate/ too
            fsync_dir(path.parent)
        except OSError as e:
            raise _wrap(e, "storing the manifest", path) from e

    @contextmanager
    def meta_file(self, key: str) -> Iterator[Path | None]:
        path = self._meta_path(key)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            yield None
            return
        if not stat.S_ISREG(st.st_mode):
            raise DestinationInputError(f"{path} is {_kind(st.st_mode)}, not pushgate's; remove it")
        yield path

    def discard(self, token: str) -> None:
        with contextlib.suppress(DestinationInputError):  # a planted link: nothing of ours
            remove_entry(self._inside("staging") / token)
            self._lines(token).unlink(missing_ok=True)

    def recover(self) -> list[str]:
        """Clean what dead pushers left. Reports what was removed, and what could not be (a line
        starting ``could not remove``), never a removal that did not happen."""
        done: list[str] = []
        staging = self._inside("staging")
        try:
            names = os.listdir(staging)
        except FileNotFoundError:
            names = []
        except OSError as e:
            raise _wrap(e, "listing", staging) from e

        def remove(path: Path, what: str) -> None:
            if remove_entry(path):
                done.append(f"removed {what}")
            else:
                done.append(f"could not remove {what}: remove it by hand")

        tokens = {n.removesuffix(".lock").removesuffix(".lines") for n in names}
        for token in sorted(t for t in tokens if not t.startswith(".tmp-")):
            lock = staging / f"{token}.lock"
            fd = None
            try:
                if os.path.lexists(lock):
                    fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a live pusher owns it
                version = token_version(token)
                if is_version_name(version) and not os.path.lexists(self.base / version):
                    records = self._inside("records")
                    for tmp in records.glob(f".tmp-*-{version}.json") if records.is_dir() else []:
                        tmp.unlink(missing_ok=True)  # a record write the kill interrupted
                    if self.read_meta(f"records/{version}.json") is not None:
                        self.delete_meta(f"records/{version}.json")
                        done.append(f"removed the record of version {version}, never published")
                    if os.path.lexists(self._meta_path(manifest_key(version))):
                        self.delete_meta(manifest_key(version))
                        done.append(f"removed the manifest of version {version}, never published")
                if os.path.lexists(staging / token):
                    remove(staging / token, f"staging debris {staging / token}")
                if os.path.lexists(self._lines(token)):
                    remove(self._lines(token), f"staging debris {self._lines(token)}")
                lock.unlink(missing_ok=True)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    remove(lock, f"a link planted as a lock file: {lock}")
                continue
            finally:
                if fd is not None:
                    os.close(fd)
        # versions a killed prune renamed out of sight but had not deleted yet
        trash = self._inside("trash")
        for hidden in sorted(trash.iterdir()) if trash.is_dir() else []:
            remove(hidden, f"half-deleted version {hidden.name} from {trash}")
        # stale temporary lock names of pushers killed between open and rename; a young one may
        # belong to a live pusher between its open and its flock, so it is left alone
        for n in names:
            if n.startswith(".tmp-") and n.endswith(".lock"):
                p = staging / n
                try:
                    if time.time() - p.lstat().st_mtime < STALE_TMP_LOCK_S:
                        continue
                    fd = os.open(p, os.O_RDWR | os.O_NOFOLLOW)
                except OSError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    p.unlink(missing_ok=True)
                except BlockingIOError:
                    pass
                finally:
                    os.close(fd)
        # temporary files of journal writes a kill or a full disk interrupted (a young one may
        # be a live writer's, between its write and its rename)
        for sub in INTERNAL_DIRS:
            if sub in ("staging", "trash"):
                continue
            directory = self._inside(sub)
            try:
                tmps = [n for n in os.listdir(directory) if n.startswith(".tmp-")]
            except OSError:
                continue
            for n in tmps:
                p = directory / n
                try:
                    if time.time() - p.lstat().st_mtime < STALE_TMP_LOCK_S:
                        continue
                except OSError:
                    continue
                remove(p, f"an unfinished journal write {p}")
        return done

    def remove_version(self, version: str) -> bool:
        src = self.base / version
        hidden = self._inside("trash", create=True) / f"{version}-{uuid.uuid4().hex[:8]}"
        try:
            if not src.is_dir():
                return False
            os.rename(src, hidden)  # one atomic step: servers stop seeing it, whole
            fsync_dir(self.base)
        except FileNotFoundError:
            return False  # removed meanwhile by another process
        except OSError as e:
            raise _wrap(e, "removing version", src) from e
        # a version that is a link: the link goes, never what it points at; whatever cannot be
        # removed now stays out of sight in the trash, for recover() to finish
        remove_entry(hidden)
        return True

    @contextmanager
    def lifecycle_lock(self) -> Iterator[bool]:
        path = self._inside(create=True) / "lifecycle.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise DestinationInputError(
                f"cannot take the lock {path}: {e.strerror or e}; pin and prune need to write there"
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if this process dies
            yield True
        finally:
            os.close(fd)

    # -- server configuration files -----------------------------------------------------------
    def _config_path(self, rel: str) -> Path:
        path = self.base / rel
        if path.is_symlink():  # never write through a link into what pushgate did not create
            raise DestinationInputError(
                f"{path} is a symbolic link; pushgate replaces server configuration files only "
                "when they are plain files: replace the link by the file it points to"
            )
        return path

    def read_file(self, rel: str) -> tuple[bytes | None, str | None]:
        path = self._config_path(rel)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as e:
            raise _wrap(e, "reading", path) from e
        return data, hashlib.sha256(data).hexdigest()

    def write_file_conditional(self, rel: str, data: bytes, tag: str | None) -> bool:
        path = self._config_path(rel)
        # a dot name that is not a number: no server takes it for a version or a config
        tmp = path.with_name(f".tmp-pushgate-{uuid.uuid4().hex}-{path.name}")
        fd = -1
        try:
            if tag is not None:
                # Lock the file we compare; a writer that replaced it meanwhile made another
                # inode, which shows once we hold the lock.
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                except FileNotFoundError:
                    return False
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.stat(path, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
                    return False
                with open(path, "rb") as f:
                    if hashlib.sha256(f.read()).hexdigest() != tag:
                        return False
            mode = os.fstat(fd).st_mode & 0o777 if fd >= 0 else 0o644
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                os.write(out, data)
                os.fsync(out)
            finally:
                os.close(out)
            if tag is None:
                try:
                    os.link(tmp, path)  # create-only: fails if someone created it meanwhile
                except FileExistsError:
                    return False
            else:
                os.replace(tmp, path)
            fsync_dir(path.parent)
            return True
        except OSError as e:
            raise _wrap(e, "writing", path) from e
        finally:
            tmp.unlink(missing_ok=True)
            if fd >= 0:
                os.close(fd)
