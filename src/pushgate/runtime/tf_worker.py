"""Worker: a SavedModel in TensorFlow.

Run as ``python -m pushgate.runtime.tf_worker JOB RESULT [--stream IN_FD OUT_FD]``.

Streaming (:func:`open_predictor`): the scores of the first signature, batch by batch.
Tasks: ``load`` (load with the tag set, check the signatures exist), ``predict`` (scores of the
first signature over every example, in batches), ``validate`` (one request of one example per
signature and example, sent as ``TensorProto``s decoded back, exactly as TF Serving would get them;
the answers are checked and, with ``warmup_path``, written as ``PredictionLog`` warmup records).
"""

from __future__ import annotations

from typing import Any

from pushgate.examples import encode_example
from pushgate.runtime.feed import (
    InputSpec,
    build_inputs,
    check_outputs,
    decode_serialized,
    pick_scores,
)
from pushgate.runtime.job import MissingRuntime, Predict, serve
from pushgate.runtime.warmup import MAX_WARMUP_RECORDS, predict_log

BATCH = 256


def _tf() -> Any:
    try:
        import tensorflow as tf
    except ImportError as e:
        raise MissingRuntime(f"TensorFlow is not installed for this Python: {e}") from e
    return tf


def _dtype_name(tf: Any, dtype: Any) -> str:
    if dtype == tf.string:
        return "string"
    import numpy as np

    return str(np.dtype(dtype.as_numpy_dtype).name)


def _specs(tf: Any, fn: Any) -> tuple[list[InputSpec], dict[str, str]]:
    kwargs = fn.structured_input_signature[1]
    specs = []
    for name, spec in sorted(kwargs.items()):
        shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
        specs.append(InputSpec(name, _dtype_name(tf, spec.dtype), shape))
    outputs = fn.structured_outputs
    expected = (
        {name: _dtype_name(tf, s.dtype) for name, s in outputs.items()}
        if isinstance(outputs, dict)
        else None
    )
    return specs, expected or {}


def _load(tf: Any, job: dict[str, Any]) -> Any:
    loaded = tf.saved_model.load(job["model"], tags=job.get("tags") or ["serve"])
    have = sorted(loaded.signatures.keys())
    for name in job.get("signatures") or ["serving_default"]:
        if name not in loaded.signatures:
            raise KeyError(
                f"the model has no signature {name!r}; it has: {', '.join(have) or 'none'}"
            )
    return loaded


def _info(tf: Any, loaded: Any, signatures: list[str]) -> dict[str, Any]:
    return {
        "signatures": {
            name: {
                "inputs": [s.__dict__ for s in _specs(tf, loaded.signatures[name])[0]],
                "outputs": _specs(tf, loaded.signatures[name])[1],
            }
            for name in signatures
        }
    }


def _predictor(tf: Any, loaded: Any, job: dict[str, Any]) -> Predict:
    signatures = job.get("signatures") or ["serving_default"]
    fn = loaded.signatures[signatures[0]]
    specs, _ = _specs(tf, fn)
    key = job.get("prediction_key")

    def predict(
        rows: list[dict[str, Any]] | None, names: list[str], raw: list[bytes] | None
    ) -> Any:
        import numpy as np

        inputs = build_inputs(specs, rows, names, raw, encode_example)
        out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        return np.asarray(pick_scores({k: v.numpy() for k, v in out.items()}, key))

    return predict


def open_predictor(job: dict[str, Any]) -> tuple[dict[str, Any], Predict]:
    """Load the model once; the signature info and a thread-safe batch -> scores function."""
    tf = _tf()
    loaded = _load(tf, job)
    return _info(tf, loaded, job.get("signatures") or ["serving_default"]), _predictor(
        tf, loaded, job
    )


def run(job: dict[str, Any]) -> dict[str, Any]:
    tf = _tf()
    loaded = _load(tf, job)
    signatures = job.get("signatures") or ["serving_default"]
    examples = job.get("examples") or {"feature_names": [], "rows": [], "serialized": None}
    rows = examples["rows"]
    names = examples["feature_names"]
    serialized = decode_serialized(examples)
    encode = encode_example
    info = _info(tf, loaded, signatures)
    task = job["task"]
    if task == "load":
        return info
    if task == "predict":
        predict = _predictor(tf, loaded, job)
        scores: list[float] = []
        for start in range(0, len(rows), BATCH):
            raw = None if serialized is None else serialized[start : start + BATCH]
            scores.extend(float(x) for x in predict(rows[start : start + BATCH], names, raw))
        return {**info, "scores": scores}
    if task != "validate":
        raise ValueError(f"unknown task {task!r}")
    records: list[bytes] = []
    requests = 0
    for name in signatures:
        fn = loaded.signatures[name]
        specs, expected = _specs(tf, fn)
        for i in range(len(rows)):
            raw = None if serialized is None else serialized[i : i + 1]
            inputs = build_inputs(specs, rows[i : i + 1], names, raw, encode)
            protos = {k: tf.make_tensor_proto(v) for k, v in inputs.items()}
            # What TF Serving would do with the request: decode each TensorProto, then run.
            out = fn(**{k: tf.constant(tf.make_ndarray(p)) for k, p in protos.items()})
            problems = check_outputs({k: v.numpy() for k, v in out.items()}, expected, 1)
            if problems:
                return {
                    **info,
                    "ok": False,
                    "error": f"signature {name!r}, example {i}: " + "; ".join(problems),
                }
            requests += 1
            if job.get("warmup_path"):
                records.append(
                    predict_log(name, {k: p.SerializeToString() for k, p in protos.items()})
                )
    if job.get("warmup_path"):
        if len(records) > MAX_WARMUP_RECORDS:
            raise ValueError(f"{len(records)} warmup records; TF Serving refuses more than 1000")
        with tf.io.TFRecordWriter(job["warmup_path"]) as writer:
            for record in records:
                writer.write(record)
    return {**info, "requests": requests, "warmup_records": len(records)}


if __name__ == "__main__":
    raise SystemExit(serve(run, open_predictor))
