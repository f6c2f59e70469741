"""Tiny real models for the tests: TensorFlow SavedModels and ONNX models, made on the spot.

Every model here computes the same function, a logistic regression over two features::

    probability = sigmoid(x @ W + b)      x: float32 [None, 2]  ->  probability: float32 [None, 1]

with weights drawn deterministically from ``seed``. TensorFlow and ONNX are imported inside the
functions, so importing this module stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

INPUT_NAME = "x"
OUTPUT_NAME = "probability"


def weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The (W [2, 1], b [1]) of the model made with ``seed``; seed 0 is a fixed, useful model."""
    if seed == 0:
        return np.array([[2.0], [-1.0]], dtype=np.float32), np.array([0.25], dtype=np.float32)
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(2, 1)).astype(np.float32)
    b = rng.normal(size=(1,)).astype(np.float32)
    return w, b


def reference_predict(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The model's probabilities computed with numpy alone, shape [N]."""
    w, b = weights(seed)
    z = np.asarray(x, dtype=np.float32) @ w + b
    return (1.0 / (1.0 + np.exp(-z))).reshape(-1)


def make_saved_model(path: Path, *, seed: int = 0, signature_name: str = "serving_default") -> Path:
    """Write a SavedModel: one signature ``x: float32[None, 2] -> probability: float32[None, 1]``.

    Returns ``path`` (the SavedModel directory). ``signature_name`` lets a test make a model whose
    ``serving_default`` is missing.
    """
    import tensorflow as tf

    w, b = weights(seed)

    class Logistic(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(w, name="w")
            self.b = tf.Variable(b, name="b")

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name=INPUT_NAME)])
        def serve(self, x: Any) -> dict[str, Any]:
            return {OUTPUT_NAME: tf.sigmoid(tf.matmul(x, self.w) + self.b)}

    module = Logistic()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(module, str(path), signatures={signature_name: module.serve})
    return path


def make_tfx_style_saved_model(path: Path, *, seed: int = 0) -> Path:
    """A SavedModel whose ``serving_default`` takes serialized ``tf.Example`` strings, as TFX's
    Trainer exports it: ``examples: string[None] -> probability: float32[None, 1]``.

    It parses float features ``a`` and ``b`` and computes the same function as the other models.
    """
    import tensorflow as tf

    w, b = weights(seed)
    spec = {
        "a": tf.io.FixedLenFeature([], tf.float32),
        "b": tf.io.FixedLenFeature([], tf.float32),
    }

    class ParsingLogistic(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(w, name="w")
            self.b = tf.Variable(b, name="b")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples: Any) -> dict[str, Any]:
            parsed = tf.io.parse_example(examples, spec)
            x = tf.stack([parsed["a"], parsed["b"]], axis=1)
            return {OUTPUT_NAME: tf.sigmoid(tf.matmul(x, self.w) + self.b)}

    module = ParsingLogistic()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def predict_saved_model(
    model_dir: Path, x: np.ndarray, signature_name: str = "serving_default"
) -> np.ndarray:
    """Load ``model_dir`` with TensorFlow and run ``signature_name`` on ``x``; shape [N]."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_dir), tags=["serve"])
    fn = loaded.signatures[signature_name]
    out = fn(**{INPUT_NAME: tf.constant(np.asarray(x, dtype=np.float32))})
    return np.asarray(out[OUTPUT_NAME]).reshape(-1)


def make_onnx_model(path: Path, *, seed: int = 0) -> Path:
    """Write an ONNX model with the same function; ``path`` is the ``.onnx`` file. Returns it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w, b = weights(seed)
    graph = helper.make_graph(
        nodes=[
            helper.make_node("MatMul", [INPUT_NAME, "W"], ["z0"]),
            helper.make_node("Add", ["z0", "B"], ["z"]),
            helper.make_node("Sigmoid", ["z"], [OUTPUT_NAME]),
        ],
        name="logistic",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, 2])],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 1])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_broken_saved_model(path: Path) -> Path:
    """A SavedModel directory whose ``saved_model.pb`` is garbage: the runtime fails to load it."""
    make_saved_model(path)
    (path / "saved_model.pb").write_bytes(b"\x08\xff\xff\xff this is not a SavedModel proto")
    return path


def make_hanging_onnx_model(directory: Path) -> Path:
    """A model directory whose ``model.onnx`` is a FIFO with no writer.

    onnxruntime opens it and blocks forever: a real hang of the real runtime, which the loading
    deadline has to cut. Returns the directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.mkfifo(directory / "model.onnx")
    return directory


def reference_metrics(labels: np.ndarray, scores: np.ndarray, task: str) -> dict[str, float]:
    """The metrics by their textbook formulas in numpy: an independent check of pushgate's."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    out = {"example_count": float(len(y))}
    if task == "regression":
        err = s - y
        out["mse"] = float(np.mean(err**2))
        out["rmse"] = float(np.sqrt(np.mean(err**2)))
        out["mae"] = float(np.mean(np.abs(err)))
        return out
    pred = s > 0.5  # TFMA's (and Keras') rule: positive above the threshold
    pos = y == 1
    tp = float(np.sum(pred & pos))
    out["accuracy"] = float(np.mean(pred == pos))
    out["precision"] = tp / float(np.sum(pred)) if np.any(pred) else 0.0
    out["recall"] = tp / float(np.sum(pos))
    out["log_loss"] = float(-np.mean(y * np.log(s) + (1 - y) * np.log(1 - s)))
    # AUC as the Mann-Whitney probability that a positive outranks a negative (ties count half)
    sp, sn = s[pos][:, None], s[~pos][None, :]
    out["auc"] = float(np.mean((sp > sn) + 0.5 * (sp == sn)))
    return out


def write_examples_csv(
    path: Path, x: np.ndarray, y: np.ndarray, names: tuple[str, str] = ("a", "b")
) -> Path:
    """A CSV of two float features and an integer label."""
    lines = [f"{names[0]},{names[1]},label"]
    lines += [
        f"{a!r},{b!r},{int(label)}" for (a, b), label in zip(x.tolist(), y.tolist(), strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_examples_artifact(root: Path, x: np.ndarray, y: np.ndarray, split: str = "eval") -> Path:
    """A TFX Examples artifact written by TensorFlow: ``Split-<split>/`` of gzipped TFRecords.

    Features ``a``, ``b`` (float) and ``label`` (int64), in two files as TFX shards them.
    """
    import tensorflow as tf

    d = root / f"Split-{split}"
    d.mkdir(parents=True, exist_ok=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    half = len(x) // 2
    for shard, rows in enumerate((range(0, half), range(half, len(x)))):
        name = d / f"data_tfrecord-{shard:05d}-of-00002.gz"
        with tf.io.TFRecordWriter(str(name), options) as w:
            for i in rows:
                ex = tf.train.Example(
                    features=tf.train.Features(
                        feature={
                            "a": tf.train.Feature(float_list=tf.train.FloatList(value=[x[i, 0]])),
                            "b": tf.train.Feature(float_list=tf.train.FloatList(value=[x[i, 1]])),
                            "label": tf.train.Feature(
                                int64_list=tf.train.Int64List(value=[int(y[i])])
                            ),
                        }
                    )
                )
                w.write(ex.SerializeToString())
    return root


def labelled_data(n: int = 64, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Features [n, 2] (float32) and 0/1 labels the seed-0 model gets mostly, not all, right."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    noisy = reference_predict(x) + rng.normal(scale=0.25, size=n)
    return x, (noisy > 0.5).astype(np.int64)


def tfma_thresholded_auc(y: np.ndarray, s: np.ndarray, num: int = 10_000) -> float:
    """TFMA 0.47's AUC (ROC, interpolation) from its definition, one threshold at a time:
    binary_confusion_matrices._interpolated_thresholds and confusion_matrix_metrics.AUC."""
    eps = 1e-7
    thresholds = [-eps] + [(i + 1) * 1.0 / (num - 1) for i in range(num - 2)] + [1.0 + eps]
    recall, fpr = [], []
    for t in thresholds:
        pred = s > t
        tp, fn = np.sum(pred & (y == 1)), np.sum(~pred & (y == 1))
        fp, tn = np.sum(pred & (y == 0)), np.sum(~pred & (y == 0))
        recall.append(tp / (tp + fn))
        fpr.append(fp / (fp + tn))
    r, f = np.array(recall), np.array(fpr)
    return float(np.nansum((f[:-1] - f[1:]) * (r[:-1] + r[1:]) / 2.0))
