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

TFRecord framing and ``tf.Example`` are decoded here with the standard library (no TensorFlow in
pushgate's process); the raw records are kept, so a model whose signature takes serialized
``tf.Example`` strings gets exactly the bytes of the artifact. Record checksums are not verified
(``crc32c`` is not in the standard library); a truncated record is an error.
"""

from __future__ import annotations

import base64
import csv
import gzip
import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Union

from pushgate.errors import InputError

# Union, not |: this alias is evaluated at run time, and pushgate runs on Python 3.9
Value = Union[float, str, list[float], list[str]]

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".gz", ".tfrecord.gz")


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
        out: list[float] = []
        for i, y in enumerate(self.labels):
            if y is None:
                raise InputError(
                    f"{self.source}: example {i} has no numeric label {label!r}; "
                    "pick the label column with --label"
                )
            out.append(y)
        return out


def read_examples(
    path: Path,
    *,
    label: str = "label",
    split: str = "eval",
    limit: int | None = None,
    features: tuple[str, ...] | None = None,
) -> ExampleSet:
    """Read up to ``limit`` examples from ``path``; ``features`` picks and orders the features."""
    if not path.exists():
        raise InputError(f"examples path does not exist: {path}")
    if path.is_dir():
        files, source = _artifact_files(path, split)
        rows_iter: Iterator[tuple[dict[str, Value], bytes | None]] = (
            item for f in files for item in _read_tfrecord_examples(f)
        )
        kind = "tfrecord"
    else:
        source = str(path)
        suffixes = "".join(path.suffixes).lower()
        if path.suffix.lower() == ".csv":
            rows_iter, kind = ((r, None) for r in _read_csv(path)), "csv"
        elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            rows_iter, kind = ((r, None) for r in _read_jsonl(path)), "jsonl"
        elif ".tfrecord" in suffixes or path.suffix.lower() == ".gz":
            rows_iter, kind = _read_tfrecord_examples(path), "tfrecord"
        else:
            raise InputError(
                f"cannot tell the format of {path}: name it .csv, .jsonl, .tfrecord or .gz, "
                "or give a TFX Examples artifact directory"
            )
    rows: list[dict[str, Value]] = []
    labels: list[float | None] = []
    serialized: list[bytes] = []
    order: list[str] = []
    for row, raw in rows_iter:
        if limit is not None and len(rows) >= limit:
            break
        y = row.pop(label, None)
        labels.append(_as_label(y, source, len(rows), label))
        for k in row:
            if k not in order:
                order.append(k)
        rows.append(row)
        if raw is not None:
            serialized.append(raw)
    if not rows:
        raise InputError(f"no examples in {source}")
    if kind == "tfrecord":
        order.sort()  # tf.Example features are a map: no file order to keep
    if features is not None:
        missing = [f for f in features if f not in order]
        if missing:
            raise InputError(
                f"{source}: feature(s) {', '.join(missing)} not found; it has {', '.join(order)}"
            )
        order = list(features)
    return ExampleSet(
        source=source,
        feature_names=tuple(order),
        rows=rows,
        labels=labels,
        serialized=serialized if kind == "tfrecord" else None,
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


def _read_csv(path: Path) -> Iterator[dict[str, Value]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
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


def _read_jsonl(path: Path) -> Iterator[dict[str, Value]]:
    try:
        with path.open(encoding="utf-8") as f:
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


def _open_maybe_gzip(path: Path) -> BinaryIO:
    f = path.open("rb")
    magic = f.read(2)
    f.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


def read_tfrecords(path: Path) -> Iterator[bytes]:
    """The records of a TFRecord file, gzip or not (framing only; checksums not verified)."""
    try:
        with _open_maybe_gzip(path) as f:
            while True:
                head = f.read(12)
                if not head:
                    return
                if len(head) < 12:
                    raise InputError(f"{path}: truncated TFRecord header")
                (length,) = struct.unpack("<Q", head[:8])
                data = f.read(length)
                tail = f.read(4)
                if len(data) < length or len(tail) < 4:
                    raise InputError(f"{path}: truncated TFRecord (a record is cut short)")
                yield data
    except OSError as e:  # gzip.BadGzipFile is an OSError
        raise InputError(f"cannot read TFRecord file {path}: {e}") from e


def _read_tfrecord_examples(path: Path) -> Iterator[tuple[dict[str, Value], bytes]]:
    for i, raw in enumerate(read_tfrecords(path)):
        try:
            yield decode_example(raw), raw
        except (ValueError, IndexError, struct.error) as e:
            raise InputError(f"{path}: record {i} is not a tf.Example: {e}") from e


# -- tf.Example wire format (tensorflow/core/example/{example,feature}.proto) ------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a protobuf message; length-delimited as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("length-delimited field runs past the end")
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _decode_feature(buf: bytes) -> list[Any]:
    for number, _wire, value in _fields(buf):
        if number == 1:  # BytesList
            return [v.decode("utf-8", "replace") for n, _w, v in _fields(value) if n == 1]
        if number == 2:  # FloatList, packed or not
            floats: list[float] = []
            for n, w, v in _fields(value):
                if n != 1:
                    continue
                if w == 2:
                    floats.extend(struct.unpack(f"<{len(v) // 4}f", v))
                else:
                    floats.append(struct.unpack("<f", v)[0])
            return floats
        if number == 3:  # Int64List, packed or not
            ints: list[float] = []
            for n, w, v in _fields(value):
                if n != 1:
                    continue
                if w == 2:
                    p = 0
                    while p < len(v):
                        x, p = _varint(v, p)
                        ints.append(float(_signed64(x)))
                else:
                    ints.append(float(_signed64(v)))
            return ints
    return []


def decode_example(raw: bytes) -> dict[str, Value]:
    """A serialized ``tf.Example`` as ``{name: value}``; one-element lists become scalars."""
    out: dict[str, Value] = {}
    for number, _wire, features in _fields(raw):
        if number != 1:
            continue
        for n, _w, entry in _fields(features):
            if n != 1:
                continue
            name, value = "", b""
            for en, _ew, ev in _fields(entry):
                if en == 1:
                    name = ev.decode("utf-8")
                elif en == 2:
                    value = ev
            decoded = _decode_feature(value)
            out[name] = decoded[0] if len(decoded) == 1 else decoded
    return out


def to_jsonable(examples: ExampleSet) -> dict[str, Any]:
    """The examples in the shape the runtime workers read (serialized records in base64)."""
    return {
        "feature_names": list(examples.feature_names),
        "rows": [{k: r[k] for k in examples.feature_names if k in r} for r in examples.rows],
        "serialized": None
        if examples.serialized is None
        else [base64.b64encode(s).decode("ascii") for s in examples.serialized],
    }


__all__ = ["ExampleSet", "decode_example", "read_examples", "read_tfrecords", "to_jsonable"]
