"""Worker: an ONNX model in onnxruntime.

Run as ``python -m pushgate.runtime.onnx_worker JOB RESULT [--stream IN_FD OUT_FD]``.

Same tasks as :mod:`pushgate.runtime.tf_worker`, without warmup (a TF Serving feature). An ONNX
model has one graph: the job's signature names are not used.
"""

from __future__ import annotations

from typing import Any

from pushgate.runtime.feed import (
    InputSpec,
    build_inputs,
    check_outputs,
    decode_serialized,
    pick_scores,
)
from pushgate.runtime.job import MissingRuntime, Predict, serve

BATCH = 256
GRAPH = "(onnx graph)"
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


def _dims(shape: Any) -> tuple[int | None, ...] | None:
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) else None for d in shape)


def _session(job: dict[str, Any]) -> tuple[Any, list[InputSpec], list[str], dict[str, Any]]:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise MissingRuntime(f"onnxruntime is not installed for this Python: {e}") from e
    session = ort.InferenceSession(job["model"], providers=["CPUExecutionProvider"])
    specs = [
        InputSpec(i.name, _DTYPES.get(i.type, i.type), _dims(i.shape)) for i in session.get_inputs()
    ]
    out_names = [o.name for o in session.get_outputs()]
    expected = {o.name: _DTYPES.get(o.type, o.type) for o in session.get_outputs()}
    return session, specs, out_names, expected


def open_predictor(job: dict[str, Any]) -> tuple[dict[str, Any], Predict]:
    """Load the model once; the graph info and a thread-safe batch -> scores function."""
    import numpy as np

    session, specs, out_names, expected = _session(job)
    key = job.get("prediction_key")

    def predict(
        rows: list[dict[str, Any]] | None, names: list[str], raw: list[bytes] | None
    ) -> Any:
        values = session.run(out_names, build_inputs(specs, rows, names, raw))
        return np.asarray(pick_scores(dict(zip(out_names, values, strict=True)), key))

    info = {"signatures": {GRAPH: {"inputs": [s.__dict__ for s in specs], "outputs": expected}}}
    return info, predict


def run(job: dict[str, Any]) -> dict[str, Any]:
    session, specs, out_names, expected = _session(job)
    info: dict[str, Any] = {
        "signatures": {GRAPH: {"inputs": [s.__dict__ for s in specs], "outputs": expected}}
    }
    examples = job.get("examples") or {"feature_names": [], "rows": [], "serialized": None}
    rows, names = examples["rows"], examples["feature_names"]
    serialized = decode_serialized(examples)
    task = job["task"]
    if task == "load":
        return info
    if task == "predict":
        scores: list[float] = []
        for start in range(0, len(rows), BATCH):
            raw = None if serialized is None else serialized[start : start + BATCH]
            feeds = build_inputs(specs, rows[start : start + BATCH], names, raw)
            values = session.run(out_names, feeds)
            scores.extend(pick_scores(dict(zip(out_names, values)), job.get("prediction_key")))
        return {**info, "scores": scores}
    if task != "validate":
        raise ValueError(f"unknown task {task!r}")
    if job.get("warmup_path"):
        raise ValueError("warmup records are for TF Serving SavedModels, not ONNX models")
    for i in range(len(rows)):
        raw = None if serialized is None else serialized[i : i + 1]
        feeds = build_inputs(specs, rows[i : i + 1], names, raw)
        values = session.run(out_names, feeds)
        problems = check_outputs(dict(zip(out_names, values)), expected, 1)
        if problems:
            return {**info, "ok": False, "error": f"example {i}: " + "; ".join(problems)}
    return {**info, "requests": len(rows), "warmup_records": 0}


if __name__ == "__main__":
    raise SystemExit(serve(run, open_predictor))
