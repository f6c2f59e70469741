"""``pushgate evaluate --runner beam``: the same evaluation as an Apache Beam pipeline.

The pipeline (DirectRunner locally; Dataflow, Flink or Spark where a team runs TFX's Evaluator)::

    example files -> read (pushgate's readers: CRC-checked TFRecord, CSV, JSON lines) in batches
                  -> Reshuffle -> infer (:class:`_Infer`: the model loaded once per worker by the
                     runtime's own ``open_predictor``) -> combine (:class:`_MetricsCombineFn`, whose
                     accumulator is :class:`pushgate.metrics.Accumulator`, merged across workers)
                  -> the metrics, written as JSON where the launching process reads them back

Thresholds, verdict and ModelBlessing are then pushgate's own, as for the in-process path, so both
give the same metrics (sums merged in another order: equal to ~1e-12) and the same verdict. AUC
follows the same rule on both paths: exact while the examples fit in
:data:`~pushgate.metrics.AUC_EXACT_BUDGET` (the kept scores are merged), TFMA's thresholded AUC
past it. Every worker must be able to read the model and the examples at the paths given (a shared
filesystem), and have pushgate and the model's runtime installed. Beam is the ``beam`` extra: this
module is imported only for ``--runner beam``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pushgate.errors import InputError, MissingDependencyError, UsageError, ValidationError
from pushgate.examples import ExampleSource, require_labels
from pushgate.metrics import AUC_EXACT_BUDGET, Accumulator
from pushgate.runtime import ONNX, ModelRef

logging.disable(logging.WARNING)  # Beam warns at import about GCP clients it may not use
try:
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions
except ImportError as e:  # exercised in a subprocess without the extra
    raise MissingDependencyError(
        "running the evaluation on Apache Beam (--runner beam)", "beam"
    ) from e
finally:
    logging.disable(logging.NOTSET)

# An error raised inside a worker crosses the runner as text; this marker carries its kind back.
_MARK = "pushgate-beam-error"
_ERROR_RE = re.compile(rf"\[{_MARK} (\w+)\] (.*?)\[/{_MARK}\]", re.S)


class _WorkerError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"[{_MARK} {kind}] {message}[/{_MARK}]")


def pipeline_flags(options: Sequence[str]) -> list[str]:
    """``K=V`` (or a bare ``K`` for a switch) as Beam's ``--K=V`` command-line flags."""
    flags = []
    for opt in options:
        key, sep, value = opt.partition("=")
        key = key.strip().lstrip("-")
        if not key or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UsageError(
                f"--beam-option {opt!r} is not KEY=VALUE (a Beam pipeline option, e.g. "
                "runner=DataflowRunner or direct_num_workers=2)"
            )
        flags.append(f"--{key}={value}" if sep else f"--{key}")
    return flags


def pipeline_options(options: Sequence[str]) -> Any:
    """Beam's ``PipelineOptions`` for ``K=V`` options; an option Beam does not know is refused
    (Beam would drop it with a warning, so a typo would silently run somewhere else)."""
    opts = PipelineOptions(pipeline_flags(options))
    logging.disable(logging.WARNING)
    try:
        unknown = sorted(
            set(opts.get_all_options(retain_unknown_options=True)) - set(opts.get_all_options())
        )
    finally:
        logging.disable(logging.NOTSET)
    if unknown:
        raise UsageError(
            f"--beam-option: Beam has no pipeline option {', '.join(unknown)}; see "
            "https://beam.apache.org/documentation/runners/ (e.g. runner, direct_num_workers, "
            "direct_running_mode, project, temp_location)"
        )
    return opts


def _read(shard: ExampleSource, batch_size: int) -> Iterator[tuple[str, int, Any, Any, Any]]:
    """One file's examples in batches: ``(source, start, rows, labels, serialized records)``."""
    try:
        for b in shard.batches(batch_size, decode=False):
            yield shard.source, b.start, b.rows, b.labels, b.serialized
    except InputError as e:
        raise _WorkerError("InputError", str(e)) from e


class _Infer(beam.DoFn):
    """Scores of each batch; the model is loaded once per DoFn instance, in ``setup``."""

    def __init__(self, runtime: str, job: dict[str, Any], names: tuple[str, ...], label: str):
        self._runtime = runtime
        self._job = job
        self._names = list(names)
        self._label = label
        self._predict: Any = None

    def setup(self) -> None:
        if self._runtime == ONNX:
            from pushgate.runtime import onnx_worker as worker
        else:
            from pushgate.runtime import tf_worker as worker  # type: ignore[no-redef]
        from pushgate.runtime.job import MissingRuntime

        try:
            _info, self._predict = worker.open_predictor(self._job)
        except MissingRuntime as e:
            raise _WorkerError("MissingRuntime", str(e)) from e
        except Exception as e:  # loading failed: the runner reports it, pushgate says why
            raise _WorkerError(
                "ValidationError",
                f"could not load the model {self._job['model']}: {type(e).__name__}: {e}",
            ) from e

    def process(self, element: tuple[str, int, Any, Any, Any]) -> Iterator[tuple[Any, Any]]:
        source, start, rows, labels, serialized = element
        try:
            labels = require_labels(source, start, labels, self._label)
        except InputError as e:
            raise _WorkerError("InputError", str(e)) from e
        try:
            scores = self._predict(rows, self._names, serialized)
        except Exception as e:
            raise _WorkerError(
                "ValidationError",
                f"{source}: examples {start}..{start + len(labels) - 1} (indices within them "
                f"count from 0): {type(e).__name__}: {e}",
            ) from e
        yield labels, scores


class _MetricsCombineFn(beam.CombineFn):
    """pushgate's :class:`Accumulator` as a Beam combiner: add batches, merge across workers."""

    def __init__(self, task: str, auc_exact_budget: int) -> None:
        self._task = task
        self._budget = auc_exact_budget

    def create_accumulator(self) -> Accumulator:
        return Accumulator(self._task, self._budget)

    def add_input(self, acc: Accumulator, batch: tuple[Any, Any]) -> Accumulator:
        try:
            acc.add(*batch)
        except InputError as e:
            raise _WorkerError("InputError", str(e)) from e
        return acc

    def merge_accumulators(self, accumulators: Any) -> Accumulator:
        it = iter(accumulators)
        first: Accumulator = next(it)
        for other in it:
            first.merge(other)
        return first

    def extract_output(self, acc: Accumulator) -> dict[str, Any]:
        try:
            return {"metrics": acc.result(), "auc_method": acc.auc_method, "n": acc.n}
        except InputError as e:
            return {"error": str(e)}


def _write_json(doc: dict[str, Any], path: str) -> None:
    with FileSystems.create(path) as f:
        f.write(json.dumps(doc).encode("utf-8"))


def _shards(examples: ExampleSource) -> list[ExampleSource]:
    """One source per file (absolute paths: workers need not share this process's directory)."""
    if examples.kind == "tfrecord":
        return [
            dataclasses.replace(examples, files=(f.absolute(),), source=str(f), path=f.absolute())
            for f in examples.files
        ]
    return [dataclasses.replace(examples, path=examples.path.absolute())]


def beam_metrics(
    ref: ModelRef,
    job: dict[str, Any],
    examples: ExampleSource,
    *,
    task: str,
    label: str,
    batch_size: int,
    options: Sequence[str],
    auc_exact_budget: int = AUC_EXACT_BUDGET,
) -> tuple[dict[str, float], str, int]:
    """Run the model over the examples as a Beam pipeline: ``(metrics, auc_method, examples)``."""
    beam_options = pipeline_options(options)
    job = {**job, "model": str(Path(job["model"]).absolute())}
    temp = beam_options.get_all_options().get("temp_location")
    with tempfile.TemporaryDirectory(prefix="pushgate-beam-") as local:
        # the result must be readable here: temp_location (gs://... on Dataflow) or a local dir
        out_dir = temp or local
        out = FileSystems.join(out_dir, f"pushgate-metrics-{uuid.uuid4().hex}.json")
        log = Path(local) / "beam.log"
        try:
            with _stderr_to(log), beam.Pipeline(options=beam_options) as p:
                _ = (
                    p
                    | "Files" >> beam.Create(_shards(examples))
                    | "Read" >> beam.FlatMap(_read, batch_size)
                    | "Spread" >> beam.Reshuffle()
                    | "Infer" >> beam.ParDo(_Infer(ref.runtime, job, examples.feature_names, label))
                    | "Metrics" >> beam.CombineGlobally(_MetricsCombineFn(task, auc_exact_budget))
                    | "Write" >> beam.Map(_write_json, out)
                )
        except Exception as e:
            raise _pipeline_error(ref, e, log) from e
        try:
            with FileSystems.open(out) as f:
                doc = json.loads(f.read().decode("utf-8"))
        except (OSError, ValueError) as e:
            raise ValidationError(
                f"the Beam pipeline for {ref.describe()} finished without its metrics at {out}: "
                f"{e}; on a distributed runner give --beam-option temp_location=<a location both "
                "the workers and this machine can read>"
            ) from e
        finally:
            if temp:
                with contextlib.suppress(Exception):
                    FileSystems.delete([out])
    if "error" in doc:
        raise InputError(str(doc["error"]))
    return doc["metrics"], doc["auc_method"], int(doc["n"])


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """The runner's and its worker processes' logs (file descriptor 2) into ``path``, as the
    in-process path keeps its runtime's log: the user sees pushgate's error, not Beam's."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with path.open("ab") as f:
            os.dup2(f.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])


def _pipeline_error(ref: ModelRef, e: Exception, log: Path) -> Exception:
    """The worker's own error when the runner's message carries one, else a ValidationError."""
    text = str(e) + "\n" + _tail(log, 1000)
    found = _ERROR_RE.search(text)
    if found:
        kind, message = found.group(1), found.group(2).strip()
        if kind == "MissingRuntime":
            extra = "onnx" if ref.runtime == ONNX else "tensorflow"
            return MissingDependencyError(f"running a {ref.runtime} model ({message})", extra)
        if kind == "InputError":
            return InputError(message)
        return ValidationError(
            f"could not run the model {ref.describe()} over the examples: {message}"
        )
    first = (str(e).strip().splitlines() or [""])[0]
    tail = _tail(log)
    return ValidationError(
        f"the Beam pipeline evaluating {ref.describe()} failed: {type(e).__name__}: {first}"
        + (f"\nthe runner's log ends:\n{tail}" if tail else "")
    )


__all__ = ["beam_metrics", "pipeline_flags", "pipeline_options"]
