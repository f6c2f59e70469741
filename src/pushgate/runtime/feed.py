"""Turn example rows into a model's input tensors, and check its outputs (worker side, numpy).

How examples are mapped to a signature's inputs, tried in order:

1. one string input: serialized ``tf.Example`` records (the artifact's own bytes when the examples
   came from TFRecords, else built from the row) — TFX's usual serving signature;
2. every input is named after a feature: one tensor per feature;
3. one numeric input of rank 2: the features stacked in order (``--features`` sets the order).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class InputSpec:
    """One input of a signature: name, numpy dtype name (or ``string``), and shape."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None  # None: unknown rank


class FeedError(ValueError):
    """The examples cannot be turned into this signature's inputs."""


def decode_serialized(examples: dict[str, Any]) -> list[bytes] | None:
    raw = examples.get("serialized")
    return None if raw is None else [base64.b64decode(s) for s in raw]


def _column(rows: Sequence[dict[str, Any]], name: str, spec: InputSpec) -> np.ndarray:
    values = []
    for i, row in enumerate(rows):
        if name not in row:
            raise FeedError(f"example {i} has no feature {name!r}")
        values.append(row[name])
    if spec.dtype == "string":
        arr = np.array(
            [v.encode() if isinstance(v, str) else str(v).encode() for v in values], dtype=object
        )
    else:
        try:
            arr = np.array(values, dtype=spec.dtype)
        except (TypeError, ValueError) as e:
            raise FeedError(f"feature {name!r} does not convert to {spec.dtype}: {e}") from e
    return _fit_rank(arr, spec)


def _fit_rank(arr: np.ndarray, spec: InputSpec) -> np.ndarray:
    if spec.shape is None:
        return arr
    rank = len(spec.shape)
    if arr.ndim == 1 and rank == 2:
        arr = arr.reshape(-1, 1)
    if arr.ndim != rank:
        raise FeedError(f"input {spec.name!r} wants rank {rank}, the examples give rank {arr.ndim}")
    for got, want in zip(arr.shape[1:], spec.shape[1:]):
        if want is not None and want >= 0 and got != want:
            raise FeedError(
                f"input {spec.name!r} wants shape {list(spec.shape)}, the examples give "
                f"{list(arr.shape)}"
            )
    return arr


def build_inputs(
    specs: Sequence[InputSpec],
    rows: Sequence[dict[str, Any]] | None,
    feature_names: Sequence[str],
    serialized: Sequence[bytes] | None,
    encode_example: Callable[[dict[str, Any]], bytes] | None = None,
) -> dict[str, np.ndarray]:
    """The input tensors of one batch (``rows``; ``serialized`` are the same rows' raw records).

    ``rows`` is ``None`` when pushgate sent only the raw ``tf.Example`` records: they are decoded
    here, in the runtime process, and only when the signature takes features.
    """
    names = [s.name for s in specs]
    takes_serialized = (
        len(specs) == 1 and specs[0].dtype == "string" and specs[0].name not in feature_names
    )
    if rows is None:
        if serialized is None:
            raise FeedError("a batch with neither rows nor serialized examples")
        if takes_serialized:
            return {specs[0].name: _fit_rank(np.array(list(serialized), dtype=object), specs[0])}
        from pushgate.examples import decode_example

        rows = [decode_example(raw) for raw in serialized]
    if takes_serialized:
        spec = specs[0]
        if serialized is None:
            if encode_example is None:
                raise FeedError(
                    f"input {spec.name!r} takes serialized tf.Example strings; give TFRecord "
                    "examples (a TFX Examples artifact)"
                )
            serialized = [encode_example(r) for r in rows]
        return {spec.name: _fit_rank(np.array(list(serialized), dtype=object), spec)}
    if specs and all(n in feature_names for n in names):
        return {s.name: _column(rows, s.name, s) for s in specs}
    if len(specs) == 1 and specs[0].shape is not None and len(specs[0].shape) == 2:
        spec = specs[0]
        want = spec.shape[1] if spec.shape else None
        if want is not None and want >= 0 and want != len(feature_names):
            raise FeedError(
                f"input {spec.name!r} takes {want} features per example, the examples have "
                f"{len(feature_names)} ({', '.join(feature_names)}); choose them with --features"
            )
        matrix = []
        for i, row in enumerate(rows):
            try:
                matrix.append([float(row[f]) for f in feature_names])
            except KeyError as e:
                raise FeedError(f"example {i} has no feature {e.args[0]!r}") from e
            except (TypeError, ValueError) as e:
                raise FeedError(f"example {i}: a feature is not a number: {e}") from e
        return {spec.name: np.array(matrix, dtype=spec.dtype)}
    raise FeedError(
        f"cannot map the examples' features ({', '.join(feature_names)}) to the inputs "
        f"{', '.join(f'{s.name}:{s.dtype}{list(s.shape or [])}' for s in specs)}: name the "
        "features after the inputs, or give a single rank-2 input"
    )


def pick_scores(outputs: dict[str, np.ndarray], key: str | None) -> list[float]:
    """One score per example from the outputs: ``key``'s, or the only output's.

    ``[N]`` and ``[N, 1]`` are taken as they are; ``[N, 2]`` (two-class probabilities) gives
    column 1, the probability of class 1.
    """
    if key is None:
        if len(outputs) != 1:
            raise FeedError(
                f"the model has several outputs ({', '.join(sorted(outputs))}); "
                "choose one with --prediction-key"
            )
        key = next(iter(outputs))
    if key not in outputs:
        raise FeedError(f"no output {key!r}; the model has {', '.join(sorted(outputs))}")
    arr = np.asarray(outputs[key])
    if arr.ndim == 2 and arr.shape[1] == 2:
        arr = arr[:, 1]
    elif arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise FeedError(f"output {key!r} has shape {list(arr.shape)}; expected [N], [N,1] or [N,2]")
    return list(arr.astype(np.float64).tolist())


def check_outputs(
    outputs: dict[str, Any], expected: dict[str, str] | None, batch: int
) -> list[str]:
    """Problems with one answer: a missing output, a wrong batch size, a wrong dtype."""
    problems = []
    if not outputs:
        problems.append("the answer has no outputs")
    if expected is not None:
        for name in sorted(set(expected) - set(outputs)):
            problems.append(f"output {name!r} is missing")
    for name, value in outputs.items():
        arr = np.asarray(value)
        if arr.ndim == 0 or arr.shape[0] != batch:
            problems.append(
                f"output {name!r} has shape {list(arr.shape)}; its first dimension should be "
                f"the batch size {batch}"
            )
        declared = (expected or {}).get(name)
        if declared not in (None, "string") and arr.dtype.name != declared:
            problems.append(f"output {name!r} is {arr.dtype.name}, declared {declared}")
    return problems
