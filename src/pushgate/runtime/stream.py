"""Stream examples through one model runtime process: batches in, scores out, bounded memory.

:func:`predict_stream` starts the model's worker (:mod:`pushgate.runtime.job`, streaming mode) in
its own process group, feeds it batches from a thread over a pipe, and yields each batch with its
scores, in order. At most ``max_in_flight`` batches are between pushgate and the worker, so the
memory of both processes is bounded by the batch size, not by the dataset. The worker predicts
several batches at once on its own threads (one runtime process: a TensorFlow process alone is
about 0.6 GiB). A model error, a crash, or the deadline (the whole run; the process group is
killed) is a :class:`StreamFailed`; an error reading the examples is re-raised as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pushgate.errors import MissingDependencyError
from pushgate.examples import Batch
from pushgate.runtime import (
    _EXTRA,
    _WORKER,
    _describe_exit,
    _kill_group,
    _tail,
    spawn_group,
    worker_env,
)
from pushgate.runtime.job import read_frame, write_end, write_frame


class StreamFailed(Exception):
    """The model could not be run over the examples; the message says why."""


def predict_stream(
    runtime: str,
    job: dict[str, Any],
    batches: Iterator[Batch],
    feature_names: tuple[str, ...],
    *,
    deadline: float | None,
    python: str | None = None,
    threads: int | None = None,
    max_in_flight: int | None = None,
) -> Iterator[tuple[Batch, Any]]:
    """Yield ``(batch, scores)`` for every batch, in order; ``scores`` is a float64 array."""
    threads = threads or os.cpu_count() or 1
    max_in_flight = max_in_flight or 2 * threads + 1
    job = {**job, "threads": threads}
    with tempfile.TemporaryDirectory(prefix="pushgate-runtime-") as tmp:
        job_path, result_path, log_path = (
            Path(tmp) / n for n in ("job.json", "result.json", "log")
        )
        job_path.write_text(json.dumps(job), encoding="utf-8")
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        cmd = [python or sys.executable, "-m", _WORKER[runtime], str(job_path), str(result_path)]
        cmd += ["--stream", str(to_r), str(from_w)]
        try:
            proc = spawn_group(cmd, log_path, worker_env(), pass_fds=(to_r, from_w))
        except OSError as e:
            for fd in (to_r, to_w, from_r, from_w):
                os.close(fd)
            raise StreamFailed(f"cannot start the runtime {cmd[0]}: {e.strerror}") from e
        os.close(to_r)
        os.close(from_w)
        timed_out = threading.Event()

        def on_deadline() -> None:
            timed_out.set()
            _kill_group(proc)

        timer = threading.Timer(deadline, on_deadline) if deadline else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        inflight: queue.Queue[Batch] = queue.Queue()
        slots = threading.Semaphore(max_in_flight)
        stop = threading.Event()
        feed_error: list[BaseException] = []
        wf = os.fdopen(to_w, "wb")
        rf = os.fdopen(from_r, "rb")

        def feed() -> None:
            try:
                for batch in batches:
                    while not slots.acquire(timeout=0.2):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    inflight.put(batch)
                    write_frame(wf, (batch.rows, list(feature_names), batch.serialized))
                write_end(wf)
            except BrokenPipeError:
                pass  # the worker is gone; the reader says why
            except BaseException as e:  # reading the examples failed: stop the worker, re-raise
                feed_error.append(e)
                _kill_group(proc)
            finally:
                with contextlib.suppress(OSError):
                    wf.close()

        feeder = threading.Thread(target=feed, name="pushgate-feed", daemon=True)
        feeder.start()
        failure = ""
        try:
            ready = read_frame(rf)
            if ready is not None:
                while (msg := read_frame(rf)) is not None:
                    kind, payload = msg
                    if kind == "error":
                        failed = inflight.get()
                        failure = (
                            f"examples {failed.start}..{failed.start + len(failed) - 1} "
                            f"(indices within them count from 0): {payload}"
                        )
                        break
                    batch = inflight.get()
                    slots.release()
                    yield batch, payload
        except BaseException:
            stop.set()
            _kill_group(proc)
            raise
        finally:
            stop.set()
            if failure:
                _kill_group(proc)
            feeder.join()
            rf.close()
            code = proc.wait()
            if timer is not None:
                timer.cancel()
        if feed_error:
            raise feed_error[0]
        if timed_out.is_set():
            raise StreamFailed(
                f"the runtime did not finish within the deadline of {deadline:g} s (killed); "
                "raise --deadline if the model is just slow"
            )
        if failure:
            raise StreamFailed(failure)
        try:
            result = json.loads(result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            result = None
        if not isinstance(result, dict) or ready is None or code != 0:
            if isinstance(result, dict) and result.get("missing_dependency"):
                raise MissingDependencyError(
                    f"running a {runtime} model ({result.get('error', '')})", _EXTRA[runtime]
                )
            if isinstance(result, dict) and result.get("error"):
                raise StreamFailed(str(result["error"]))
            tail = _tail(log_path)
            raise StreamFailed(
                _describe_exit(code) + " without a result" + (f":\n{tail}" if tail else "")
            )
