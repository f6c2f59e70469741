"""The one protocol every destination (local disk, object stores) implements.

A destination is a BASE location where model servers watch numeric children ``<BASE>/<version>/``.
pushgate keeps everything of its own under ``<BASE>/.pushgate/`` (never numeric, so never served):

- ``claims/<version>.json``  create-only: owning a claim is owning that version number
- ``records/<version>.json`` the journal record of a published version
- ``manifests/<version>.txt`` its manifest, one line per file, when it lists more files than a
  record holds (:data:`pushgate.manifest.INLINE_FILES`)
- ``index.json``              what is published now, summarised (see pushgate.journal_index)
- ``log/<day>/<time>-<id>.json`` one lifecycle event (push, rollback, prune, pin, hook ...);
  ``events/<time>-<id>.json`` in journals of pushgate 0.x
- ``gone/<version>.json``     a tombstone per pruned version
- ``pins/<version>``          versions prune must keep
- ``removing/<version>.json`` a removal under way (written before the removal starts)
- ``labels/<name>.json``      where each label (stable, canary ...) points
- ``staging/<id>/``           copies being made; never served, removed when stale
- ``pending-events/<v>.json`` the journal event of a version being published, until it is in
  the event log (recovery writes the ones a failure or a kill left)

The destination owns the commit protocol: ``publish`` makes a staged copy visible as a version
and writes its record in the order that keeps the store true on a crash at any instant.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

from pushgate.errors import PushgateError
from pushgate.manifest import Manifest, ManifestFile, bounded_map, hash_stream, workers
from pushgate.source import SourceFile

META = ".pushgate"
PENDING_EVENTS = "pending-events"
VERSION_NAME = re.compile(r"[0-9]+")
#: TF Serving keeps version ids in an int64: a version must stay below this number
MAX_VERSION = 2**63 - 1

ProgressFn = Callable[[int], None]


class FileHash(NamedTuple):
    """One file's sha256 hex, or why it could not be read."""

    sha256: str | None
    error: str | None


def is_numeric_name(name: str) -> bool:
    """True when ``name`` is all ASCII digits (what servers scan for), whatever its size
    (``str``'s ``isdigit`` also accepts ``²`` and other scripts' digits, which ``int`` may then
    refuse)."""
    return VERSION_NAME.fullmatch(name) is not None


def is_version_name(name: str) -> bool:
    """True when a model server would treat ``name`` as a version: all ASCII digits and below
    TF Serving's int64 limit (:data:`MAX_VERSION`). Bigger numeric names are not versions:
    pushgate ignores them for numbering and flags them (:meth:`Destination.oversized_children`)."""
    return is_numeric_name(name) and int(name) < MAX_VERSION


def owner_gone(doc: Mapping[str, Any]) -> bool:
    """True when the process that wrote ``doc`` (a lease or a removal intent with ``expires``,
    ``host`` and ``pid``) can no longer act on it: past its expiry, or dead on this host. A
    document without those fields counts as gone."""
    try:
        expires, host, pid = float(doc["expires"]), str(doc["host"]), int(doc["pid"])
    except (KeyError, TypeError, ValueError):
        return True
    if time.time() > expires:
        return True
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


def make_token(version: int | str, suffix: str) -> str:
    """A push's staging token: ``<version>-<suffix>``, so debris names the version it was for."""
    return f"{version}-{suffix}"


def token_version(token: str) -> str:
    """The version a staging token (see :func:`make_token`) was claimed for."""
    return token.split("-", 1)[0]


def manifest_key(version: str) -> str:
    """Where a version's manifest is stored apart from its record (under ``.pushgate/``)."""
    return f"manifests/{version}.txt"


@dataclass(frozen=True)
class Staged:
    """A copy of the model under the destination's staging area."""

    token: str
    manifest: Manifest | ManifestFile
    #: paths already written straight into ``<BASE>/<version>/`` (object stores), not staged
    direct: frozenset[str] = frozenset()
    #: small files hashed but not uploaded yet (object stores): ``publish`` uploads each straight
    #: into ``<BASE>/<version>/``, read again and checked against the manifest, where a staged
    #: file would be copied
    held: tuple[SourceFile, ...] = ()


@dataclass
class Found:
    """What comparing a version's files with its manifest found (:meth:`compare_lines`)."""

    files: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Destination(ABC):
    """A BASE location that holds numbered model versions and pushgate's own records."""

    #: the URL or path as the user gave it, for messages (never with credentials)
    url: str
    #: True when reading its files costs CPU, not network round trips (a local disk)
    local: bool = False
    #: True when the store can hold empty directories (a filesystem; buckets cannot: there the
    #: manifest records them and nothing is written for them)
    holds_empty_dirs: bool = False

    # -- versions -----------------------------------------------------------------------------
    @abstractmethod
    def exists(self) -> bool:
        """True when BASE is there (a directory; on a bucket, any object under the prefix).
        Reads only: every command but push refuses a BASE that is not there."""

    @abstractmethod
    def numeric_children(self) -> list[str]:
        """Names of the direct children of BASE whose name is all digits."""

    def oversized_children(self) -> list[str]:
        """All-digit children of BASE at or above :data:`MAX_VERSION` (not versions: ignored)."""
        return []

    @abstractmethod
    def version_url(self, version: str) -> str:
        """The full location of a version, for records and output."""

    @abstractmethod
    def list_version_files(self, version: str) -> dict[str, int]:
        """``{relative path: size}`` of every file stored under ``<BASE>/<version>/``."""

    @abstractmethod
    def open_version_file(self, version: str, rel: str) -> BinaryIO:
        """A binary stream of one file of a version (for verify and downloads)."""

    def list_version_names(self, version: str) -> dict[str, int]:
        """:meth:`list_version_files` where a size may be -1, unknown (a local listing then skips
        one ``stat`` per file: verify reads every file anyway)."""
        return self.list_version_files(version)

    def iter_version_names(self, version: str) -> Iterator[tuple[str, int]]:
        """:meth:`list_version_names` sorted by path, produced lazily where the store can (a
        local walk); IntegrityError, when the version holds what is not a file, may come once
        everything else is out."""
        yield from sorted(self.list_version_names(version).items())

    def compare_lines(
        self,
        version: str,
        manifest: ManifestFile,
        found: Found,
        progress: ProgressFn | None = None,
    ) -> bool:
        """Compare a version's files with a manifest stored as lines into ``found``, where the
        store has a faster way than reading both side by side (local disk: worker processes
        that parse, open and hash whole batches of lines); False, with nothing done, when it
        has not."""
        return False

    def hash_version_file(
        self, version: str, rel: str, size: int, progress: ProgressFn | None = None
    ) -> str:
        """sha256 hex of one file of a version (``size``: the recorded size, a read hint)."""
        with self.open_version_file(version, rel) as stream:
            return hash_stream(cast(Any, stream), progress, size)

    def hash_version_files(
        self, version: str, items: Iterable[tuple[str, int]], progress: ProgressFn | None = None
    ) -> Iterator[FileHash]:
        """sha256 of many files of a version (``(rel, recorded size)``), in their order; a file
        that cannot be read gives its error instead. On a bucket: many requests at once.
        ``items`` is read as the work goes (a bounded number ahead): it may be a stream."""

        def one(item: tuple[str, int]) -> FileHash:
            try:
                return FileHash(self.hash_version_file(version, item[0], item[1], progress), None)
            except (OSError, PushgateError) as e:
                return FileHash(None, str(e))

        yield from bounded_map(one, items, self._hashing_threads(), cost=lambda item: item[1])

    def _hashing_threads(self) -> int:
        """Threads for :meth:`hash_version_files`: a bucket's reads are network-bound."""
        return workers()

    def missing_dirs(self, version: str, dirs: Sequence[str]) -> list[str]:
        """Which of a version's recorded empty ``dirs`` are not directories on the store (none
        where the store has no empty directories)."""
        return []

    # -- meta (small documents under .pushgate/) ----------------------------------------------
    @abstractmethod
    def read_meta(self, key: str) -> bytes | None:
        """Bytes of ``.pushgate/<key>``, or None when it does not exist."""

    @abstractmethod
    def write_meta(
        self, key: str, data: bytes, *, create_only: bool = False, durable: bool = True
    ) -> bool:
        """Write ``.pushgate/<key>`` whole (never torn), and durably unless ``durable`` is False
        (no flush: a crash may lose it); with ``create_only`` return False if it exists."""

    def read_meta_tagged(self, key: str) -> tuple[bytes | None, str | None]:
        """``(bytes, tag)`` of ``.pushgate/<key>``, ``(None, None)`` when it does not exist;
        ``tag`` names this content for :meth:`write_meta_if` (an ETag, a GCS generation)."""
        raise NotImplementedError(f"{type(self).__name__} has no conditional meta writes")

    def write_meta_if(self, key: str, data: bytes, tag: str | None) -> bool:
        """Replace ``.pushgate/<key>`` whole only if it still holds what ``tag`` names
        (``None``: only if it does not exist); False when another writer changed it meanwhile:
        nothing was written, read it again. For stores whose :meth:`lifecycle_lock` orders
        nothing (buckets); a locked store writes with :meth:`write_meta`."""
        raise NotImplementedError(f"{type(self).__name__} has no conditional meta writes")

    @abstractmethod
    def list_meta(self, prefix: str) -> list[str]:
        """Keys (relative to ``.pushgate/``) under a prefix like ``records/``, sorted."""

    def iter_meta(self, prefix: str) -> Iterator[str]:
        """Every key under a prefix, at any depth, in ascending order, produced lazily (a bucket
        lists a page at a time; a directory tree is walked one directory at a time), so a caller
        that stops early reads about as much as it used. This default lists one level."""
        yield from self.list_meta(prefix)

    @abstractmethod
    def delete_meta(self, key: str) -> None:
        """Remove ``.pushgate/<key>``; no error when it is already gone."""

    @contextmanager
    def meta_file(self, key: str) -> Iterator[Path | None]:
        """A local file holding ``.pushgate/<key>`` for the block (None when it does not exist):
        a store's copy downloaded into a temporary file, removed afterwards."""
        data = self.read_meta(key)
        if data is None:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="pushgate-meta-") as tmp:
            path = Path(tmp) / "meta"
            path.write_bytes(data)
            del data
            yield path

    def store_manifest(self, version: str, manifest: Manifest | ManifestFile) -> None:
        """Store a manifest apart from its record (:func:`manifest_key`), before the record
        that names it is written."""
        self.write_meta(manifest_key(version), manifest.lines())

    # -- the push protocol --------------------------------------------------------------------
    @abstractmethod
    def check_writable(self) -> None:
        """Raise DestinationInputError when BASE cannot be used (a file, read-only, no bucket)."""

    @abstractmethod
    def stage(
        self,
        files: Iterable[SourceFile],
        token: str,
        progress: ProgressFn | None,
        dirs: Sequence[str] = (),
    ) -> Staged:
        """Copy the files (sorted by path) under the staging area, durably, hashing while
        copying; the empty ``dirs`` are created where the store can hold them, and recorded in
        the manifest."""

    @abstractmethod
    def stage_from_version(
        self,
        version: str,
        token: str,
        progress: ProgressFn | None,
        dirs: Sequence[str] = (),
    ) -> Staged:
        """Stage an exact copy of an existing version (server-side where the store can), with
        the empty ``dirs`` its record lists."""

    @abstractmethod
    def publish(self, staged: Staged, version: str, record: bytes) -> None:
        """Make the staged copy ``<BASE>/<version>`` and store its record, crash-safely."""

    @abstractmethod
    def discard(self, token: str) -> None:
        """Remove a staging copy (best effort, idempotent)."""

    @abstractmethod
    def recover(self) -> list[str]:
        """Clean what dead pushers left (staging, unfinished versions); return what was done."""

    @abstractmethod
    def remove_version(self, version: str) -> bool:
        """Make a version invisible to servers first, then delete its bytes; False when there
        was nothing to remove (idempotent: a removal cut short is finished by calling again)."""

    def lifecycle_lock(self) -> AbstractContextManager[bool]:
        """Hold off other processes' pin and removal decisions for the block, where the store
        can (a local ``flock``: yields True). Object stores yield False: there, pin and prune
        are ordered by create-only removal intents alone (see :mod:`pushgate.journal`)."""
        return contextlib.nullcontext(False)

    @abstractmethod
    def lease(self, token: str) -> AbstractContextManager[None]:
        """Mark staging ``token`` as owned by this live process for the length of the block,
        so ``recover`` in another process never removes it (flock locally, a lease object on
        object stores)."""

    # -- server configuration files (outside .pushgate/) -----------------------------------
    def read_file(self, rel: str) -> tuple[bytes | None, str | None]:
        """``(bytes, tag)`` of the file ``<BASE>/<rel>`` (a server's configuration), or
        ``(None, None)`` when absent; ``tag`` identifies this content for
        :meth:`write_file_conditional` (an ETag, a GCS generation, a local digest)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read {rel}")

    def write_file_conditional(self, rel: str, data: bytes, tag: str | None) -> bool:
        """Replace ``<BASE>/<rel>`` whole and atomically (a reader sees the old bytes or the new,
        never a mix), only if it still holds what ``tag`` names (``None``: only if it does not
        exist). False when it changed meanwhile: nothing was written; read it again."""
        raise NotImplementedError(f"{type(self).__name__} cannot write {rel}")
