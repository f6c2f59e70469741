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
past it. Every worker must be able to read the model at the path given (a shared filesystem) and
have pushgate and the model's runtime installed; examples given as object-store URLs are read by
each worker straight from the store. The pipeline is launched from a child process
(``python -m pushgate.evaluator_beam``, see :func:`beam_metrics`), so ``--deadline`` can cancel
it and Beam's temporary folders stay inside pushgate's. Beam is the ``beam`` extra: this module is
imported only for ``--runner beam``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pickle
import re
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pushgate.errors import InputError, MissingDependencyError, UsageError, ValidationError
from pushgate.examples import ExampleSource, require_labels
from pushgate.metrics import AUC_EXACT_BUDGET, Accumulator
from pushgate.runtime import ONNX, ModelRef
from pushgate.secrets import clean_url

logging.disable(logging.WARNING)  # Beam warns at import about GCP clients it may not use
try:
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.runner import PipelineState
except ImportError as e:  # exercised in a subprocess without the extra
    raise MissingDependencyError(
        "running the evaluation on Apache Beam (--runner beam)", "beam"
    ) from e
finally:
    logging.disable(logging.NOTSET)

# How long a runner that runs the job on its own gets, past the deadline, to be cancelled.
CANCEL_GRACE_S = 60.0

# How long the launcher gets to exit once it has written its report (then its process group is
# ended: Beam's and gRPC's teardown took 1-2 s, and nothing of the run is left to do).
EXIT_GRACE_S = 0.2

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
    """One source per file (local paths made absolute: workers need not share this process's
    directory; object-store URLs as they are: each worker reads its own shards)."""
    if examples.kind == "tfrecord":
        return [
            dataclasses.replace(
                examples, files=(_absolute(f),), source=_shown(f), path=_absolute(f)
            )
            for f in examples.files
        ]
    return [dataclasses.replace(examples, path=_absolute(examples.path))]


def _absolute(f: Path | str) -> Path | str:
    return f if isinstance(f, str) else f.absolute()


def _shown(f: Path | str) -> str:
    return clean_url(f) if isinstance(f, str) else str(f)


@dataclasses.dataclass(frozen=True)
class _Launch:
    """What the launching child process needs (pickled into pushgate's own temporary folder)."""

    runtime: str
    model: str
    job: dict[str, Any]
    shards: list[ExampleSource]
    feature_names: tuple[str, ...]
    task: str
    label: str
    batch_size: int
    options: list[str]  # K=V, as given
    auc_exact_budget: int
    out: str  # the metrics document the pipeline writes (temp_location, or our folder)
    result: str  # what the launcher reports back: metrics or an error
    submitted: str  # written once the runner runs the pipeline on its own (cancellable)
    log: str
    deadline: float | None
    started: float  # time.time() when pushgate started the launcher


def beam_metrics(
    ref: ModelRef,
    job: dict[str, Any],
    examples: ExampleSource,
    *,
    task: str,
    label: str,
    batch_size: int,
    options: Sequence[str],
    deadline: float | None = None,
    auc_exact_budget: int = AUC_EXACT_BUDGET,
) -> tuple[dict[str, float], str, int]:
    """Run the model over the examples as a Beam pipeline: ``(metrics, auc_method, examples)``.

    The pipeline is launched from a child process in its own session, its temporary folder
    (``TMPDIR``) inside pushgate's, which is removed afterwards: Beam's launcher leaves folders in
    the temporary directory on every run (``beam-temp*`` of the Prism attempt, staging folders),
    and a local runner can only be stopped at the ``deadline`` by ending its processes. A runner
    that runs the job elsewhere (Dataflow, Flink, Spark, Prism) is cancelled at the deadline.
    """
    beam_options = pipeline_options(options)
    job = {**job, "model": str(Path(job["model"]).absolute())}
    temp = beam_options.get_all_options().get("temp_location")
    with tempfile.TemporaryDirectory(prefix="pushgate-beam-") as local_dir:
        local = Path(local_dir)
        (local / "tmp").mkdir()
        # the result must be readable here: temp_location (gs://... on Dataflow) or a local dir
        out = FileSystems.join(temp or local_dir, f"pushgate-metrics-{uuid.uuid4().hex}.json")
        launch = _Launch(
            runtime=ref.runtime,
            model=ref.describe(),
            job=job,
            shards=_shards(examples),
            feature_names=examples.feature_names,
            task=task,
            label=label,
            batch_size=batch_size,
            options=list(options),
            auc_exact_budget=auc_exact_budget,
            out=out,
            result=str(local / "result.json"),
            submitted=str(local / "submitted"),
            log=str(local / "beam.log"),
            deadline=deadline,
            started=time.time(),
        )
        spec = local / "launch.pickle"
        spec.write_bytes(pickle.dumps(launch))
        try:
            doc = _run_launcher(launch, spec, local / "tmp")
        finally:
            if temp:
                with contextlib.suppress(Exception):
                    FileSystems.delete([out])
    return _answer(ref, doc, deadline)


def _run_launcher(launch: _Launch, spec: Path, tmp: Path) -> dict[str, Any]:
    """Run ``python -m pushgate.evaluator_beam SPEC`` to its end or the deadline; its report."""
    from pushgate.runtime import _kill_group, spawn_group, worker_env

    env = {**worker_env(), "TMPDIR": str(tmp), "TEMP": str(tmp), "TMP": str(tmp)}
    cmd = [sys.executable, "-m", "pushgate.evaluator_beam", str(spec)]
    try:
        proc = spawn_group(cmd, Path(launch.log), env)
    except OSError as e:
        raise ValidationError(f"cannot start the Beam launcher {cmd[0]}: {e.strerror}") from e
    killed = False
    try:
        end = None if launch.deadline is None else launch.started + launch.deadline
        reported: float | None = None
        while proc.poll() is None:
            now = time.time()
            # the report is written once the job is done or cancelled; what the launcher still
            # does then (runner threads, a local worker pool shutting down) is not waited for
            if reported is None and os.path.exists(launch.result):
                reported = now
            if reported is not None and now >= reported + EXIT_GRACE_S:
                _kill_group(proc)
                break
            # at the deadline a local runner (running inside the launcher's processes) is ended;
            # one that runs the job on its own gets a grace to be cancelled by the launcher
            if (
                end is not None
                and now >= end
                and (not os.path.exists(launch.submitted) or now >= end + CANCEL_GRACE_S)
            ):
                killed = True
                _kill_group(proc)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:  # interrupted: nothing of the run is left behind
            _kill_group(proc)
    try:
        doc: dict[str, Any] = json.loads(Path(launch.result).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        if killed:
            return {"deadline": "its processes were ended"}
        tail = _tail(Path(launch.log))
        return {
            "kind": "ValidationError",
            "message": f"the Beam pipeline evaluating {launch.model} failed: its launcher "
            f"ended ({_describe(proc.returncode)}) without a result"
            + (f"\nthe runner's log ends:\n{tail}" if tail else ""),
        }
    return doc


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _answer(
    ref: ModelRef, doc: dict[str, Any], deadline: float | None
) -> tuple[dict[str, float], str, int]:
    """The launcher's report as the metrics, or as the pushgate error it names."""
    if "deadline" in doc:
        raise ValidationError(
            f"could not run the model {ref.describe()} over the examples: the Beam pipeline did "
            f"not finish within the deadline of {deadline:g} s ({doc['deadline']}); raise "
            "--deadline if the evaluation is just slow"
        )
    kind, message = doc.get("kind"), str(doc.get("message", ""))
    if kind == "MissingRuntime":
        extra = "onnx" if ref.runtime == ONNX else "tensorflow"
        raise MissingDependencyError(f"running a {ref.runtime} model ({message})", extra)
    if kind == "InputError":
        raise InputError(message)
    if kind is not None:
        raise ValidationError(message)
    return doc["metrics"], doc["auc_method"], int(doc["n"])


def _launch(launch: _Launch) -> dict[str, Any]:
    """In the launcher process: build and run the pipeline, wait for it up to the deadline (then
    cancel it), and read its metrics back."""
    p = beam.Pipeline(options=pipeline_options(launch.options))
    _ = (
        p
        | "Files" >> beam.Create(launch.shards)
        | "Read" >> beam.FlatMap(_read, launch.batch_size)
        | "Spread" >> beam.Reshuffle()
        | "Infer"
        >> beam.ParDo(_Infer(launch.runtime, launch.job, launch.feature_names, launch.label))
        | "Metrics" >> beam.CombineGlobally(_MetricsCombineFn(launch.task, launch.auc_exact_budget))
        | "Write" >> beam.Map(_write_json, launch.out)
    )
    try:
        result = p.run()
        if not PipelineState.is_terminal(result.state):
            Path(launch.submitted).touch()
        if launch.deadline is None:
            state = result.wait_until_finish()
        else:
            left = launch.started + launch.deadline - time.time()
            state = result.wait_until_finish(duration=max(1, int(left * 1000)))
        if not PipelineState.is_terminal(state):
            with contextlib.suppress(Exception):
                result.cancel()
            return {"deadline": "the pipeline was cancelled"}
        if state != PipelineState.DONE:
            raise RuntimeError(f"the pipeline ended in state {state}")
    except Exception as e:
        return _error_doc(launch, e)
    try:
        with FileSystems.open(launch.out) as f:
            doc: dict[str, Any] = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        return {
            "kind": "ValidationError",
            "message": f"the Beam pipeline for {launch.model} finished without its metrics at "
            f"{launch.out}: {e}; on a distributed runner give --beam-option "
            "temp_location=<a location both the workers and this machine can read>",
        }
    if "error" in doc:
        return {"kind": "InputError", "message": str(doc["error"])}
    return doc


def _error_doc(launch: _Launch, e: Exception) -> dict[str, Any]:
    """The worker's own error when the runner's message carries one, else a ValidationError."""
    log = Path(launch.log)
    text = str(e) + "\n" + _tail(log, 1000)
    found = _ERROR_RE.search(text)
    if found:
        kind, message = found.group(1), found.group(2).strip()
        if kind in ("MissingRuntime", "InputError"):
            return {"kind": kind, "message": message}
        return {
            "kind": "ValidationError",
            "message": f"could not run the model {launch.model} over the examples: {message}",
        }
    first = (str(e).strip().splitlines() or [""])[0]
    tail = _tail(log)
    return {
        "kind": "ValidationError",
        "message": f"the Beam pipeline evaluating {launch.model} failed: {type(e).__name__}: "
        f"{first}" + (f"\nthe runner's log ends:\n{tail}" if tail else ""),
    }


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])


def main(argv: Sequence[str]) -> int:
    """The launcher: ``python -m pushgate.evaluator_beam SPEC``; writes its report, exits 0."""
    launch: _Launch = pickle.loads(Path(argv[0]).read_bytes())
    doc = _launch(launch)
    tmp = Path(launch.result + ".part")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, launch.result)
    return 0


if __name__ == "__main__":  # run under the module's own name, so Beam pickles its classes by name
    from pushgate import evaluator_beam

    sys.exit(evaluator_beam.main(sys.argv[1:]))


__all__ = ["beam_metrics", "pipeline_flags", "pipeline_options"]
