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
    """Write a SavedModel with one signature ``x: float32[None, 2] -> probability: float32[None, 1]``.

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


def make_hanging_saved_model(path: Path) -> Path:
    """A SavedModel directory whose ``saved_model.pb`` is a FIFO with no writer.

    TensorFlow's loader opens it and blocks forever: a real hang of the real runtime, which the
    loading deadline has to cut.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "variables").mkdir(exist_ok=True)
    os.mkfifo(path / "saved_model.pb")
    return path
