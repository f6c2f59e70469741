"""Labelled examples for the validators: CSV, JSON lines, and TFX ``Examples`` artifacts.

=======================  ==================================================================
input                    how it is read
=======================  ==================================================================
``*.csv``                header row; numbers become floats, anything else stays a string
``*.jsonl``/``*.json``   one JSON object per line; values are numbers, strings or lists
``*.tfrecord*``/``*.gz`` TFRecord of serialized ``tf.Example`` (gzip detected by its magic)
a directory              a TFX ``Examples`` artifact: the files of ``Split-<split>/`` (or the
                         pre-1.0 ``<split>/``), else the TFRecord files directly inside it
=======================  ==================================================================

Any of these may be an object-store URL (``s3://``, ``gs://``, ``az://``...): the files are then
streamed from the store (:func:`pushgate.remote.open_url`), never downloaded whole, so a Beam
worker reads its own shards straight from the bucket.

Examples are read as a stream of :class:`Batch` es (:func:`open_examples`), so a dataset of any
size is evaluated in bounded memory; :func:`read_examples` collects a few for ``infra-validate``.
The feature names are the CSV header, else the first example's keys (sorted for ``tf.Example``,
whose features are a map), or ``--features``.

TFRecord framing is checked as TensorFlow does: the masked CRC32C of the length and of the data
(the ``crc32c`` package); a corrupt or truncated record is an :class:`InputError` naming the file
and the record. ``tf.Example`` is decoded with ``protobuf`` and the published message definitions
(:mod:`pushgate.protos`), never TensorFlow; the raw records are kept, so a model whose signature
takes serialized ``tf.Example`` strings gets exactly the bytes of the artifact.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import itertools
import json
import math
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, TextIO, Union

from pushgate.errors import InputError, MissingDependencyError

# Union, not |: this alias is evaluated at run time, and pushgate runs on Python 3.9
Value = Union[float, str, list[float], list[str]]
# A local file, or an object-store URL (a string)
FileRef = Union[Path, str]
# Storage options, hashable (ExampleSource is frozen): sorted ``(key, value)`` pairs
StorageOptions = tuple[tuple[str, Any], ...]

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".gz", ".tfrecord.gz")


DEFAULT_BATCH = 1024


@dataclass(frozen=True)
class Batch:
    """Consecutive examples: rows of features, labels, and for TFRecords the raw records."""

    start: int
    rows: list[dict[str, Value]] | None  # None: not decoded, see ``serialized``
    labels: list[float | None]
    serialized: list[bytes] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class ExampleSet:
    """Examples as rows of features, with their labels and, for TFRecords, the raw records."""

    source: str
    feature_names: tuple[str, ...]
    rows: list[dict[str, Value]]
    labels: list[float | None]
    serialized: list[bytes] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def require_labels(self, label: str) -> list[float]:
        """Every label as a float; InputError naming the first example without one."""
        return require_labels(self.source, 0, self.labels, label)


def require_labels(source: str, start: int, labels: list[float | None], label: str) -> list[float]:
    """``labels`` as floats; InputError naming the first example (counted from ``start``) without
    one."""
    for i, y in enumerate(labels):
        if y is None:
            raise InputError(
                f"{source}: example {start + i} has no numeric label {label!r}; "
                "pick the label column with --label"
            )
    return labels  # type: ignore[return-value]  # checked: no None left


@dataclass(frozen=True)
class ExampleSource:
    """Opened examples, read again from the start by each :meth:`batches` call."""

    path: FileRef
    source: str
    kind: str
    feature_names: tuple[str, ...]
    label: str
    files: tuple[FileRef, ...] = ()
    storage_options: StorageOptions = field(default=(), repr=False)  # for URLs: may hold keys

    def _records(self, decode: bool = True) -> Iterator[tuple[dict[str, Value], bytes | None]]:
        opts = self.storage_options
        if self.kind == "csv":
            return ((r, None) for r in _read_csv(self.path, opts))
        if self.kind == "jsonl":
            return ((r, None) for r in _read_jsonl(self.path, opts))
        only = None if decode else self.label
        return (item for f in self.files for item in _read_tfrecord_examples(f, only, opts))

    def batches(
        self, size: int = DEFAULT_BATCH, limit: int | None = None, *, decode: bool = True
    ) -> Iterator[Batch]:
        """The examples in batches of ``size`` (the last may be smaller), at most ``limit``.

        ``decode=False`` leaves a TFRecord batch's features undecoded (``rows`` is ``None``; only
        the labels are read): the model runtime decodes the records it is sent, in parallel.
        """
        lazy = not decode and self.kind == "tfrecord"
        records: Iterable[tuple[dict[str, Value], bytes | None]] = self._records(not lazy)
        if limit is not None:
            records = itertools.islice(records, limit)
        index = 0
        tfrecord = self.kind == "tfrecord"
        while True:
            chunk = list(itertools.islice(records, size))
            if not chunk:
                return
            rows: list[dict[str, Value]] = []
            labels: list[float | None] = []
            for i, (row, _raw) in enumerate(chunk):
                labels.append(
                    _as_label(row.pop(self.label, None), self.source, index + i, self.label)
                )
                rows.append(row)
            serialized = [raw for _row, raw in chunk if raw is not None] if tfrecord else None
            yield Batch(index, None if lazy else rows, labels, serialized)
            index += len(chunk)


def open_examples(
    path: FileRef,
    *,
    label: str = "label",
    split: str = "eval",
    features: tuple[str, ...] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ExampleSource:
    """Open ``path`` (a local path or an object-store URL) for streaming; reads only the first
    example (for the feature names)."""
    from pushgate.remote import is_url

    opts: StorageOptions = tuple(sorted((storage_options or {}).items()))
    files: tuple[FileRef, ...] = ()
    if is_url(str(path)):
        path, kind, files, source = _open_url(str(path), split, storage_options)
    else:
        path = Path(str(path)[len("file://") :] if str(path).startswith("file://") else path)
        if not path.exists():
            raise InputError(f"examples path does not exist: {path}")
        if path.is_dir():
            found, source = _artifact_files(path, split)
            files, kind = tuple(found), "tfrecord"
        else:
            source = str(path)
            kind = _kind_of(path.name, source)
            files = (path,) if kind == "tfrecord" else ()
    opened = ExampleSource(path, source, kind, (), label, files, opts)
    first = next(opened._records(), None)
    if first is None:
        raise InputError(f"no examples in {source}")
    if kind == "csv":
        order = [k for k in _csv_header(path, opts) if k != label]
    else:
        order = [k for k in first[0] if k != label]
        if kind == "tfrecord":
            order.sort()  # tf.Example features are a map: no file order to keep
    if features is not None:
        missing = [f for f in features if f not in order]
        if missing:
            raise InputError(
                f"{source}: feature(s) {', '.join(missing)} not found; it has {', '.join(order)}"
            )
        order = list(features)
    return ExampleSource(path, source, kind, tuple(order), label, files, opts)


def _kind_of(name: str, shown: str) -> str:
    """The format a file's name says: ``csv``, ``jsonl`` or ``tfrecord``."""
    lower = name.lower()
    suffix = PurePosixPath(lower).suffix
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if ".tfrecord" in lower or suffix == ".gz":
        return "tfrecord"
    raise InputError(
        f"cannot tell the format of {shown}: name it .csv, .jsonl, .tfrecord or .gz, "
        "or give a TFX Examples artifact directory"
    )


def _open_url(
    url: str, split: str, storage_options: Mapping[str, Any] | None
) -> tuple[str, str, tuple[FileRef, ...], str]:
    """``(url, kind, files, source)`` of examples in an object store: one object, or a TFX
    Examples artifact (the same rules as a local directory: :func:`_artifact_files`)."""
    from pushgate.remote import list_url
    from pushgate.secrets import clean_url

    url = clean_url(url).rstrip("/")
    single, listed = list_url(url, storage_options, what="--examples")
    if single:
        kind = _kind_of(url.rpartition("/")[2], url)
        return url, kind, ((url,) if kind == "tfrecord" else ()), url
    for name in (f"Split-{split}", split):
        inside = [
            rel
            for rel, _size in listed
            if rel.startswith(f"{name}/")
            and "/" not in rel[len(name) + 1 :]
            and not rel[len(name) + 1 :].startswith(".")
        ]
        if any(rel.startswith(f"{name}/") for rel, _size in listed):
            if not inside:
                raise InputError(f"split folder {url}/{name} holds no files")
            return url, "tfrecord", tuple(f"{url}/{rel}" for rel in inside), f"{url}/{name}"
    direct = [
        rel
        for rel, _size in listed
        if "/" not in rel and (".tfrecord" in rel or rel.endswith(".gz"))
    ]
    if direct:
        return url, "tfrecord", tuple(f"{url}/{rel}" for rel in direct), url
    splits = sorted({rel.split("/", 1)[0] for rel, _size in listed if "/" in rel})
    raise InputError(
        f"{url} has no split {split!r} (looked for Split-{split}/ and {split}/); "
        f"it has: {', '.join(splits) or 'no folders'}. Choose one with --split"
    )


def read_examples(
    path: Path,
    *,
    label: str = "label",
    split: str = "eval",
    limit: int | None = None,
    features: tuple[str, ...] | None = None,
) -> ExampleSet:
    """Read up to ``limit`` examples from ``path`` into memory (for a few examples; stream the
    rest with :func:`open_examples`)."""
    opened = open_examples(path, label=label, split=split, features=features)
    rows: list[dict[str, Value]] = []
    labels: list[float | None] = []
    serialized: list[bytes] = []
    for batch in opened.batches(DEFAULT_BATCH, limit):
        rows.extend(batch.rows or ())
        labels.extend(batch.labels)
        serialized.extend(batch.serialized or ())
    return ExampleSet(
        source=opened.source,
        feature_names=opened.feature_names,
        rows=rows,
        labels=labels,
        serialized=serialized if opened.kind == "tfrecord" else None,
    )


def _as_label(y: Any, source: str, index: int, label: str) -> float | None:
    if isinstance(y, list):
        if len(y) != 1:
            raise InputError(f"{source}: example {index}: label {label!r} has {len(y)} values")
        y = y[0]
    if y is None or y == "":
        return None
    if isinstance(y, bytes):
        y = y.decode("utf-8", "replace")
    try:
        out = float(y)
    except (TypeError, ValueError) as e:
        raise InputError(
            f"{source}: example {index}: label {label!r} is not a number: {y!r}"
        ) from e
    if math.isnan(out):
        return None
    return out


def _artifact_files(directory: Path, split: str) -> tuple[list[Path], str]:
    for name in (f"Split-{split}", split):
        d = directory / name
        if d.is_dir():
            files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
            if not files:
                raise InputError(f"split directory {d} holds no files")
            return files, str(d)
    direct = sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and (".tfrecord" in "".join(p.suffixes) or p.suffix == ".gz")
    )
    if direct:
        return direct, str(directory)
    splits = sorted(p.name for p in directory.iterdir() if p.is_dir())
    raise InputError(
        f"{directory} has no split {split!r} (looked for Split-{split}/ and {split}/); "
        f"it has: {', '.join(splits) or 'no directories'}. Choose one with --split"
    )


def _number_or_string(s: str) -> float | str:
    try:
        return float(s)
    except ValueError:
        return s


def _open_binary(path: FileRef, storage_options: StorageOptions = ()) -> io.BufferedReader:
    """A local file, or an object-store URL streamed (a string), opened for reading."""
    if isinstance(path, str):
        from pushgate.remote import open_url

        return open_url(path, dict(storage_options))
    return path.open("rb")


def _open_text(path: FileRef, storage_options: StorageOptions = ()) -> TextIO:
    return io.TextIOWrapper(_open_binary(path, storage_options), encoding="utf-8", newline="")


def _csv_header(path: FileRef, storage_options: StorageOptions = ()) -> list[str]:
    try:
        with _open_text(path, storage_options) as f:
            return list(csv.DictReader(f).fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"examples file {path} is not a readable CSV: {e}") from e


def _read_csv(path: FileRef, storage_options: StorageOptions = ()) -> Iterator[dict[str, Value]]:
    try:
        with _open_text(path, storage_options) as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames:
                raise InputError(f"CSV file {path} has no header row")
            for lineno, rec in enumerate(reader, start=2):
                if None in rec:
                    raise InputError(f"{path}:{lineno}: more fields than the header has")
                yield {k: _number_or_string(v) for k, v in rec.items() if v is not None}
    except OSError as e:
        raise InputError(f"cannot read examples {path}: {e.strerror}") from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"examples file {path} is not a readable CSV: {e}") from e


def _read_jsonl(path: FileRef, storage_options: StorageOptions = ()) -> Iterator[dict[str, Value]]:
    try:
        with _open_text(path, storage_options) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    raise InputError(f"{path}:{lineno}: not a JSON object: {e}") from e
                if not isinstance(rec, dict):
                    raise InputError(f"{path}:{lineno}: each line must be a JSON object")
                yield rec
    except OSError as e:
        raise InputError(f"cannot read examples {path}: {e.strerror}") from e


# -- TFRecord framing -------------------------------------------------------------------------


def _open_maybe_gzip(path: FileRef, storage_options: StorageOptions = ()) -> BinaryIO:
    f = _open_binary(path, storage_options)
    magic = f.peek(2)[:2]  # a buffered reader: a stream cannot seek back
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


_MASK_DELTA = 0xA282EAD8


def _masked_crc(data: bytes, crc32c: Any) -> int:
    """TFRecord's masked CRC32C (tensorflow/core/lib/hash/crc32c.h: Mask)."""
    crc = int(crc32c(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _crc32c_fn() -> Any:
    try:
        from crc32c import crc32c
    except ImportError as e:
        raise MissingDependencyError("checking TFRecord checksums (crc32c)", "tfrecord") from e
    return crc32c


_CHUNK = 1 << 20


def read_tfrecords(path: FileRef, storage_options: StorageOptions = ()) -> Iterator[bytes]:
    """The records of a TFRecord file (local or a URL), gzip or not, each one's length and data
    CRC32C checked."""
    crc32c = _crc32c_fn()
    index = 0
    buf = bytearray()
    pos = 0
    try:
        with _open_maybe_gzip(path, storage_options) as f:
            eof = False

            def fill(n: int) -> bool:
                """At least ``n`` bytes in ``buf`` from ``pos`` (read in 1 MiB chunks)?"""
                nonlocal buf, pos, eof
                while len(buf) - pos < n and not eof:
                    chunk = f.read(max(_CHUNK, n))
                    if not chunk:
                        eof = True
                        break
                    if pos:
                        del buf[:pos]
                        pos = 0
                    buf += chunk
                return len(buf) - pos >= n

            while fill(1):
                if not fill(12):
                    raise InputError(
                        f"{path}: record {index} is truncated (its header is cut short); "
                        "the file is damaged or was not fully written"
                    )
                length_bytes = bytes(buf[pos : pos + 8])
                (length_crc,) = struct.unpack_from("<I", buf, pos + 8)
                if _masked_crc(length_bytes, crc32c) != length_crc:
                    raise InputError(
                        f"{path}: record {index} is corrupt (the CRC32C of its length does not "
                        "match); the file is damaged or is not a TFRecord file"
                    )
                (length,) = struct.unpack("<Q", length_bytes)
                pos += 12
                if not fill(length + 4):
                    raise InputError(
                        f"{path}: record {index} is truncated (it is cut short); the file is "
                        "damaged or was not fully written"
                    )
                data = bytes(buf[pos : pos + length])
                (data_crc,) = struct.unpack_from("<I", buf, pos + length)
                if _masked_crc(data, crc32c) != data_crc:
                    raise InputError(
                        f"{path}: record {index} is corrupt (the CRC32C of its data does not "
                        "match); the file is damaged"
                    )
                pos += length + 4
                yield data
                index += 1
    except OSError as e:  # gzip.BadGzipFile is an OSError
        raise InputError(f"cannot read TFRecord file {path} (at record {index}): {e}") from e
    except EOFError as e:  # a gzip stream cut short
        raise InputError(f"{path}: record {index}: the gzip stream is cut short: {e}") from e


def _example_class() -> Any:
    try:
        from pushgate.protos.example_pb2 import Example
    except ImportError as e:
        raise MissingDependencyError("reading tf.Example records (protobuf)", "tfrecord") from e
    return Example


def _read_tfrecord_examples(
    path: FileRef, only: str | None = None, storage_options: StorageOptions = ()
) -> Iterator[tuple[dict[str, Value], bytes]]:
    """``(features, raw record)``; with ``only``, the features hold just that one (the label)."""
    from google.protobuf.message import DecodeError

    example = _example_class()
    for i, raw in enumerate(read_tfrecords(path, storage_options)):
        try:
            parsed = example.FromString(raw)
            if only is None:
                yield _row(parsed), raw
            else:
                fmap = parsed.features.feature
                yield ({only: _values(fmap[only])} if only in fmap else {}), raw
        except (DecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: record {i} is not a tf.Example: {e}") from e


def _values(feature: Any) -> Value:
    kind = feature.WhichOneof("kind")
    values: list[Any]
    if kind == "bytes_list":
        values = [v.decode("utf-8", "replace") for v in feature.bytes_list.value]
    elif kind == "float_list":
        values = list(feature.float_list.value)
    elif kind == "int64_list":
        values = [float(v) for v in feature.int64_list.value]
    else:
        values = []
    return values[0] if len(values) == 1 else values


def _row(example: Any) -> dict[str, Value]:
    return {name: _values(feature) for name, feature in example.features.feature.items()}


def decode_example(raw: bytes) -> dict[str, Value]:
    """A serialized ``tf.Example`` as ``{name: value}``; one-element lists become scalars."""
    return _row(_example_class().FromString(raw))


def encode_example(row: dict[str, Any]) -> bytes:
    """A row as a serialized ``tf.Example``: numbers as ``float_list``, the rest ``bytes_list``."""
    example = _example_class()()
    for name, value in row.items():
        values = value if isinstance(value, list) else [value]
        feature = example.features.feature[name]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            feature.float_list.value.extend(float(v) for v in values)
        else:
            feature.bytes_list.value.extend(
                v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values
            )
    return bytes(example.SerializeToString(deterministic=True))


def to_jsonable(examples: ExampleSet) -> dict[str, Any]:
    """The examples in the shape the runtime workers read (serialized records in base64)."""
    return {
        "feature_names": list(examples.feature_names),
        "rows": [{k: r[k] for k in examples.feature_names if k in r} for r in examples.rows],
        "serialized": None
        if examples.serialized is None
        else [base64.b64encode(s).decode("ascii") for s in examples.serialized],
    }


__all__ = [
    "Batch",
    "ExampleSet",
    "ExampleSource",
    "decode_example",
    "encode_example",
    "open_examples",
    "read_examples",
    "read_tfrecords",
    "to_jsonable",
]
