"""Metrics and example reading, checked against independent computations and TensorFlow's writer."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models import (
    labelled_data,
    reference_metrics,
    tfma_thresholded_auc,
    write_examples_artifact,
    write_examples_csv,
)
from pushgate import metrics
from pushgate.errors import InputError
from pushgate.examples import decode_example, read_examples, read_tfrecords


def test_classification_metrics_match_their_textbook_formulas() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=200)
    s = np.clip(0.6 * y + rng.normal(scale=0.3, size=200), 0.01, 0.99)
    got = metrics.compute(y.tolist(), s.tolist(), "classification")
    want = reference_metrics(y, s, "classification")
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), k


def test_regression_metrics_match_their_textbook_formulas() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=100) * 10
    s = y + rng.normal(size=100)
    got = metrics.compute(y.tolist(), s.tolist(), "regression")
    want = reference_metrics(y, s, "regression")
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9), k


@pytest.mark.parametrize(
    ("labels", "scores", "task"),
    [
        ([0, 1, 1, 0], [0.1, 0.8, 0.6, 0.4], "classification"),
        ([0, 1, 1, 0], [0.1, 1.8, 0.6, 0.4], "regression"),  # a score outside [0, 1]
        ([0.5, 2.0, 3.0], [0.4, 0.3, 0.9], "regression"),  # labels that are not 0/1
    ],
)
def test_auto_task_is_classification_only_for_01_labels_and_probabilities(
    labels: list[float], scores: list[float], task: str
) -> None:
    assert metrics.infer_task(labels, scores) == task
    assert ("accuracy" in metrics.compute(labels, scores)) == (task == "classification")


def test_auc_is_left_out_when_the_labels_hold_one_class() -> None:
    got = metrics.compute([1, 1, 1], [0.9, 0.7, 0.2], "classification")
    assert "auc" not in got
    assert got["accuracy"] == pytest.approx(2 / 3)


def test_classification_refuses_labels_that_are_not_binary() -> None:
    with pytest.raises(InputError, match="labels 0 or 1"):
        metrics.compute([0, 2], [0.1, 0.2], "classification")


def test_csv_and_jsonl_examples_read_the_same(tmp_path: Path) -> None:
    x, y = labelled_data(10)
    csv_ex = read_examples(write_examples_csv(tmp_path / "e.csv", x, y))
    lines = [
        json.dumps({"a": float(a), "b": float(b), "label": int(lab)})
        for (a, b), lab in zip(x, y, strict=True)
    ]
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n\n")
    jsonl_ex = read_examples(tmp_path / "e.jsonl")
    assert csv_ex.feature_names == jsonl_ex.feature_names == ("a", "b")
    assert csv_ex.labels == jsonl_ex.labels == [float(v) for v in y]
    assert csv_ex.rows == jsonl_ex.rows
    assert csv_ex.serialized is None


def test_tfx_examples_artifact_written_by_tensorflow_is_read_in_order(tmp_path: Path) -> None:
    x, y = labelled_data(12)
    root = write_examples_artifact(tmp_path / "Examples", x, y)
    ex = read_examples(root)  # split "eval" by default
    assert ex.feature_names == ("a", "b")
    assert ex.labels == [float(v) for v in y]
    got = np.array([[r["a"], r["b"]] for r in ex.rows], dtype=np.float32)
    np.testing.assert_array_equal(got, x)
    assert ex.serialized is not None and len(ex.serialized) == 12
    # the raw records are kept byte for byte: decoding them again gives the same example
    assert decode_example(ex.serialized[0])["a"] == ex.rows[0]["a"]
    assert len(read_examples(root, limit=5)) == 5


def test_uncompressed_tfrecords_and_negative_int64_and_bytes_features(tmp_path: Path) -> None:
    import tensorflow as tf

    path = tmp_path / "data.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        ex = tf.train.Example(
            features=tf.train.Features(
                feature={
                    "n": tf.train.Feature(int64_list=tf.train.Int64List(value=[-3, 2**40])),
                    "s": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"hello"])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
                }
            )
        )
        w.write(ex.SerializeToString())
    got = read_examples(path)
    assert got.rows == [{"n": [-3.0, float(2**40)], "s": "hello"}]
    assert got.labels == [1.0]
    assert list(read_tfrecords(path)) == [ex.SerializeToString()]


def test_missing_split_names_the_splits_there(tmp_path: Path) -> None:
    x, y = labelled_data(4)
    root = write_examples_artifact(tmp_path / "Examples", x, y, split="train")
    with pytest.raises(InputError, match=r"has no split 'eval'.*Split-train"):
        read_examples(root)
    assert len(read_examples(root, split="train")) == 4


def test_truncated_tfrecord_is_an_input_error(tmp_path: Path) -> None:
    x, y = labelled_data(4)
    root = write_examples_artifact(tmp_path / "Examples", x, y)
    shard = sorted((root / "Split-eval").iterdir())[0]
    raw = gzip.decompress(shard.read_bytes())
    (tmp_path / "cut.tfrecord").write_bytes(raw[:-7])
    with pytest.raises(InputError, match="truncated"):
        read_examples(tmp_path / "cut.tfrecord")


def test_labels_that_are_not_numbers_name_the_example(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("a,b,label\n1,2,0\n3,4,yes\n")
    with pytest.raises(InputError, match="example 1: label 'label' is not a number"):
        read_examples(tmp_path / "e.csv")


def _tfrecord_written_by_tensorflow(tmp_path: Path, n: int = 6) -> Path:
    """An uncompressed TFRecord of ``n`` examples, framed by TensorFlow's own writer."""
    import tensorflow as tf

    path = tmp_path / "data.tfrecord"
    x, y = labelled_data(n)
    with tf.io.TFRecordWriter(str(path)) as w:
        for i in range(n):
            ex = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "a": tf.train.Feature(float_list=tf.train.FloatList(value=[x[i, 0]])),
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[y[i]])),
                    }
                )
            )
            w.write(ex.SerializeToString())
    return path


def _record_offsets(raw: bytes) -> list[int]:
    offsets, pos = [], 0
    while pos < len(raw):
        offsets.append(pos)
        (length,) = np.frombuffer(raw[pos : pos + 8], dtype="<u8")
        pos += 12 + int(length) + 4
    return offsets


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (lambda off: off + 16 + 1, "record 3 is corrupt (the CRC32C of its data"),  # in the data
        (lambda off: off + 0, "record 3 is corrupt (the CRC32C of its length"),  # in the length
        (lambda off: off + 9, "record 3 is corrupt (the CRC32C of its length"),  # in its CRC
    ],
    ids=["data byte", "length byte", "length crc byte"],
)
def test_a_flipped_byte_in_a_tfrecord_is_an_error_naming_the_file_and_record(
    tmp_path: Path, where: Any, message: str
) -> None:
    path = _tfrecord_written_by_tensorflow(tmp_path)
    raw = bytearray(path.read_bytes())
    assert len(list(read_tfrecords(path))) == 6  # TensorFlow's CRCs check out
    raw[where(_record_offsets(bytes(raw))[3])] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=re.escape(f"{path}: {message}")):
        read_examples(path)


def test_a_flipped_byte_inside_a_gzipped_tfrecord_is_caught_too(tmp_path: Path) -> None:
    x, y = labelled_data(8)
    root = write_examples_artifact(tmp_path / "Examples", x, y)
    shard = sorted((root / "Split-eval").iterdir())[1]
    raw = bytearray(gzip.decompress(shard.read_bytes()))
    raw[_record_offsets(bytes(raw))[2] + 20] ^= 0x40
    shard.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(InputError, match=re.escape(f"{shard}: record 2 is corrupt")):
        read_examples(root)


def test_examples_decode_like_tensorflow_and_encode_for_it(tmp_path: Path) -> None:
    import tensorflow as tf

    from pushgate.examples import encode_example

    raw = encode_example({"f": [1.5, -2.0], "s": "héllo", "one": 3})
    parsed = tf.train.Example.FromString(raw)
    assert list(parsed.features.feature["f"].float_list.value) == [1.5, -2.0]
    assert parsed.features.feature["s"].bytes_list.value[0] == "héllo".encode()
    assert list(parsed.features.feature["one"].float_list.value) == [3.0]
    assert decode_example(raw) == {"f": [1.5, -2.0], "s": "héllo", "one": 3.0}


def test_past_the_exact_budget_auc_is_tfmas_thresholded_auc() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=400)
    s = np.clip(0.3 * y + rng.uniform(size=400) * 0.7, 0.0, 1.0)
    s[:5] = [0.0, 1.0, 0.5, 1e-8, 0.9999]  # the edges of the thresholds
    acc = metrics.Accumulator("classification", auc_exact_budget=100)
    for start in range(0, 400, 64):
        acc.add(y[start : start + 64].tolist(), s[start : start + 64].tolist())
    got = acc.result()
    assert acc.auc_method == "thresholded"
    assert got["auc"] == pytest.approx(tfma_thresholded_auc(y, s), abs=1e-12)
    exact = metrics.compute(y.tolist(), s.tolist(), "classification")
    assert got["auc"] == pytest.approx(exact["auc"], abs=1e-3)  # 10000 thresholds: close
    assert {k: v for k, v in got.items() if k != "auc"} == pytest.approx(
        {k: v for k, v in exact.items() if k != "auc"}, rel=1e-12
    )


def test_metrics_accumulated_in_batches_equal_the_whole_at_once() -> None:
    rng = np.random.default_rng(4)
    for task, y, s in (
        ("classification", rng.integers(0, 2, size=1000), rng.uniform(size=1000)),
        ("regression", rng.normal(size=1000), rng.normal(size=1000)),
    ):
        whole = metrics.compute(y.tolist(), s.tolist(), "auto")
        acc = metrics.Accumulator("auto")
        for start in range(0, 1000, 37):
            acc.add(y[start : start + 37].tolist(), s[start : start + 37].tolist())
        assert acc.auc_method == "exact"
        got = acc.result()
        assert set(got) == set(whole) == set(reference_metrics(y, s, task))
        for k in whole:
            assert got[k] == pytest.approx(whole[k], rel=1e-12, abs=1e-15), (task, k)


def test_a_score_of_exactly_one_half_is_negative_as_in_tfma() -> None:
    """TFMA's BinaryAccuracy / Precision / Recall count ``score > 0.5`` as positive (found side
    by side at 1M examples: one float32 score of exactly 0.5 made accuracy differ by 1e-6)."""
    got = metrics.compute([0, 1, 1, 0], [0.5, 0.5, 0.9, 0.1], "classification")
    assert got["accuracy"] == 0.75  # the 0.5 with label 0 is right, the 0.5 with label 1 wrong
    assert got["precision"] == 1.0 and got["recall"] == 0.5
