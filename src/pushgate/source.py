"""Find the model directory to push, and list its files safely.

Accepted ``--model`` shapes, in the order they are tried:

1. TFX Model artifact: ``<uri>/Format-Serving/`` (current TFX) or ``<uri>/serving_model_dir/``
   (older TFX). Inside either, the Estimator layout ``export/<exporter>/<timestamp>/`` is followed
   with TFX's rule: exactly one entry at each of those two levels, otherwise an error.
2. A bare model directory: a SavedModel (``saved_model.pb``), a Triton version folder...

Without ``--model``, the InfraValidator's ``<infra_blessing>/stamped_model`` is used. Whichever
directory is found must hold a layout :mod:`pushgate.model_layout` knows (or ``any_model`` is
given), and is never a blessing directory.

:func:`list_tree` lists what is pushed: every regular file, and every empty directory (TFX's
``assets/``), links inside the model followed as their content.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, NamedTuple

from pushgate.errors import DestinationError, InputError
from pushgate.layout import SERVER_WRITTEN_DIRS
from pushgate.manifest import FileEntry
from pushgate.model_layout import refuse_blessing, servable_kind

FORMAT_SERVING = "Format-Serving"
SERVING_MODEL_DIR = "serving_model_dir"
STAMPED_MODEL = "stamped_model"


class SourceFile(NamedTuple):
    """One regular file of the model: its path inside the model and where to read it (a tuple
    holding a string, not a ``Path``: a model of a million files lists a million of them)."""

    rel: str
    abspath: str | Path
    size: int

    def entry(self, copied: int, sha256: str) -> FileEntry:
        """The manifest entry of a copy of this file, refusing one whose size changed."""
        if copied != self.size:
            raise DestinationError(
                f"{self.abspath} changed size while being pushed ({self.size} -> {copied} "
                "bytes); push a model directory nobody is writing to"
            )
        return FileEntry(self.rel, copied, sha256)


@dataclass(frozen=True)
class ModelSource:
    """The resolved model directory and how it was found."""

    path: Path
    layout: str  # "tfx-format-serving" | "tfx-serving-model-dir" | "tfx-estimator-export" | ...
    artifact: Path | None = None  # the Model artifact directory given, when a TFX layout
    kind: str = ""  # the servable layout (model_layout.LAYOUTS), "unrecognised" with any_model
    any_model: bool = False  # pushed with --any-model

    def describe(self) -> str:
        if self.artifact is not None and self.artifact != self.path:
            return f"{self.path} ({self.layout} in {self.artifact})"
        return f"{self.path} ({self.layout})"


def _only_child(directory: Path, what: str) -> Path:
    entries = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    if len(entries) != 1:
        names = ", ".join(p.name for p in entries) or "nothing"
        raise InputError(
            f"{directory} must hold exactly one {what} (TFX's Estimator export rule), found: "
            f"{names}. Point --model at the one you mean."
        )
    return entries[0]


def _follow_estimator_export(serving: Path) -> tuple[Path, bool]:
    export = serving / "export"
    if (serving / "saved_model.pb").exists() or not export.is_dir():
        return serving, False
    exporter = _only_child(export, "exporter directory")
    stamp = _only_child(exporter, "timestamped export")
    return stamp, True


def resolve_model(
    model: Path | None, infra_blessing: Path | None, *, any_model: bool = False
) -> tuple[ModelSource, list[str]]:
    """Resolve the model directory; returns it and any warnings for the user.

    The directory found must be a servable layout (:func:`~pushgate.model_layout.check_servable`)
    unless ``any_model``; a blessing directory is refused either way.
    """
    source, warnings = _locate(model, infra_blessing)
    what = "stamped model" if source.layout == "infra-stamped-model" else "model"
    kind = servable_kind(source.path, what, any_model=any_model)
    return replace(source, kind=kind, any_model=any_model), warnings


def _locate(model: Path | None, infra_blessing: Path | None) -> tuple[ModelSource, list[str]]:
    warnings: list[str] = []
    if model is None:
        if infra_blessing is None:
            raise InputError(
                "nothing to push: give --model, or --infra-blessing with a stamped model"
            )
        stamped = infra_blessing / STAMPED_MODEL
        if not stamped.is_dir():
            raise InputError(
                f"no --model given and the infra blessing {infra_blessing} has no "
                f"{STAMPED_MODEL}/: "
                "run the InfraValidator with warmup making on (pushgate infra-validate "
                "--make-warmup), or pass --model"
            )
        _check_model_dir(stamped, "stamped model")
        return ModelSource(stamped, "infra-stamped-model", infra_blessing), warnings
    if infra_blessing is not None and (infra_blessing / STAMPED_MODEL).is_dir():
        warnings.append(
            f"--model wins over the warmup-stamped model in {infra_blessing / STAMPED_MODEL}, "
            "which is ignored (as in TFX); drop --model to push the stamped model"
        )
    _check_model_dir(model, "model")
    refuse_blessing(model, "--model")
    for name, layout in (
        (FORMAT_SERVING, "tfx-format-serving"),
        (SERVING_MODEL_DIR, "tfx-serving-model-dir"),
    ):
        inner = model / name
        if inner.is_dir():
            path, estimator = _follow_estimator_export(inner)
            _check_model_dir(path, "model")
            return ModelSource(
                path, "tfx-estimator-export" if estimator else layout, model
            ), warnings
    return ModelSource(
        model, "saved-model" if (model / "saved_model.pb").exists() else "directory"
    ), warnings


def _check_model_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{what} path does not exist: {path}")
    if not path.is_dir():
        raise InputError(f"{what} path is a file, not a model directory: {path}")
    try:
        next(path.iterdir())
    except StopIteration:
        raise InputError(f"{what} directory is empty: {path}") from None
    except OSError as e:
        raise InputError(f"cannot read {what} directory {path}: {e.strerror}") from e


#: a model of more files than this is listed into a temporary file, not into memory
SPOOL_FROM = 10_000


class FileList:
    """A model's files in path order, listed once and read as often as needed: the first
    :data:`SPOOL_FROM` in memory, beyond that all of them in an unlinked temporary file (a
    million ``SourceFile`` tuples would take about 300 MB)."""

    def __init__(self, root: Path | str) -> None:
        self._base = os.path.join(str(root), "")
        self._mem: list[SourceFile] = []
        self._spool: BinaryIO | None = None
        self._size = 0  # bytes in the spool
        self.count = 0
        self.total_bytes = 0

    def append(self, f: SourceFile) -> None:
        self.count += 1
        self.total_bytes += f.size
        if self._spool is None:
            self._mem.append(f)
            if len(self._mem) <= SPOOL_FROM:
                return
            self._spool = tempfile.TemporaryFile(prefix="pushgate-files-")  # noqa: SIM115
            held, self._mem = self._mem, []
            for g in held:
                self._write(g)
            return
        self._write(f)

    def _write(self, f: SourceFile) -> None:
        assert self._spool is not None
        where = str(f.abspath)
        if where == self._base + f.rel:
            where = ""  # the usual case: only links inside the model lead elsewhere
        data = f"{f.size}\0{f.rel}\0{where}\0".encode(errors="surrogateescape")
        self._spool.write(data)
        self._size += len(data)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[SourceFile]:
        if self._spool is None:
            yield from self._mem
            return
        self._spool.flush()
        fd, offset, rest = self._spool.fileno(), 0, b""
        while offset < self._size:
            chunk = os.pread(fd, min(1 << 20, self._size - offset), offset)
            if not chunk:
                break
            offset += len(chunk)
            fields = (rest + chunk).split(b"\0")
            whole = len(fields) - 1 - (len(fields) - 1) % 3
            rest = b"\0".join(fields[whole:])
            for i in range(0, whole, 3):
                rel = fields[i + 1].decode(errors="surrogateescape")
                where = fields[i + 2].decode(errors="surrogateescape") or self._base + rel
                yield SourceFile(rel, where, int(fields[i]))

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


@dataclass(frozen=True)
class ModelTree:
    """What a push copies: the regular files in path order, and the directories that hold
    nothing at all (``assets/`` of a TFX model), as paths inside the model."""

    files: FileList
    dirs: tuple[str, ...] = ()


def list_files(root: Path) -> list[SourceFile]:
    """The regular files of :func:`list_tree` (for copies that keep no empty directories)."""
    return list(list_tree(root).files)


def list_tree(root: Path) -> ModelTree:
    """Every regular file and empty directory under ``root``, sorted, following symlinks that
    stay inside ``root``: a link to a file or a directory of the model is pushed as its content.

    Files come in the manifest's order (sorted by path) from a walk that visits each
    directory's entries sorted by name, a directory's name taken with its ``/``: so nothing is
    sorted but one directory at a time.

    Refused with InputError, naming the entry: a symlink that resolves outside the model, a
    dangling one, a link cycle (a link to a directory that contains it, or links that point at
    each other), a special file (FIFO, socket, device). The pushed version must be
    self-contained.
    """
    real_root = root.resolve()
    files = FileList(root)
    empty: list[str] = []

    def walk(directory: Path, rel: str, ancestors: tuple[Path, ...]) -> None:
        try:
            # by name: the first bad entry is the one named, whatever the directory's order
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as e:
            raise InputError(f"cannot read {directory}: {e.strerror}") from e
        if not entries and rel:
            empty.append(rel.rstrip("/"))
        found: list[tuple[str, SourceFile | tuple[Path, Path]]] = []
        for entry in entries:
            child_rel = f"{rel}{entry.name}"
            target: Path | None = None
            if not entry.is_symlink():  # the common case, from scandir's own data: no Path
                try:
                    st = entry.stat()
                except OSError as e:
                    raise InputError(f"cannot stat {entry.path}: {e.strerror}") from e
                if stat.S_ISREG(st.st_mode):
                    found.append((entry.name, SourceFile(child_rel, entry.path, st.st_size)))
                    continue
            path = Path(entry.path)
            if entry.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except FileNotFoundError:
                    raise InputError(f"dangling symlink inside the model: {path}") from None
                except (RuntimeError, OSError):  # ELOOP: links that point at each other
                    raise InputError(
                        f"symlink cycle inside the model at {path}: it resolves through links "
                        "that lead back to themselves; replace it by the file or directory "
                        "it should be"
                    ) from None
                if target != real_root and real_root not in target.parents:
                    raise InputError(
                        f"symlink inside the model points outside it: {path} -> {target}; "
                        "copy the file into the model directory instead"
                    )
            try:
                st = path.stat()
            except OSError as e:
                raise InputError(f"cannot stat {path}: {e.strerror}") from e
            if stat.S_ISDIR(st.st_mode):
                if entry.name in SERVER_WRITTEN_DIRS:  # a server's cache, not the model
                    continue
                real = target if target is not None else ancestors[-1] / entry.name
                if real in ancestors:
                    raise InputError(
                        f"symlink cycle inside the model: {path} -> {real} points at a "
                        "directory that contains it, so the model would be endless; remove the "
                        "link or point it at a sibling directory"
                    )
                found.append((entry.name + "/", (path, real)))
            elif stat.S_ISREG(st.st_mode):
                found.append((entry.name, SourceFile(child_rel, str(path), st.st_size)))
            else:
                raise InputError(f"not a regular file inside the model: {path}")
        # "a.txt" < "a/b": a directory sorts by its name and slash, as its files' paths do
        found.sort(key=itemgetter(0))
        for name, item in found:
            if isinstance(item, SourceFile):
                files.append(item)
            else:
                walk(item[0], f"{rel}{name}", (*ancestors, item[1]))

    walk(root, "", (real_root,))
    if not files.count:
        raise InputError(f"model directory holds no files: {root}")
    return ModelTree(files, tuple(sorted(empty)))
