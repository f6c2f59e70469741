"""The worker side of a runtime job: read the job file, run it, write the result file.

Two modes. One-shot: ``python -m pushgate.runtime.<x>_worker JOB RESULT`` runs the job (examples
inside it) and writes the result. Streaming: ``... JOB RESULT --stream IN_FD OUT_FD`` loads the
model once, answers a ``ready`` frame with the signature info, then reads batches from ``IN_FD``
and writes each batch's scores to ``OUT_FD``, in order, predicting several batches at once on a
thread pool (the runtimes release the GIL while they compute). Frames are a 4-byte little-endian
length and a pickle; an empty frame ends the input. The pipes connect pushgate to a process it
started itself, so the pickles come from pushgate's own code.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import queue
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

Predict = Callable[[list[dict[str, Any]] | None, list[str], list[bytes] | None], Any]


class MissingRuntime(Exception):
    """The runtime library (TensorFlow, onnxruntime) is not installed in this Python."""


def write_frame(f: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(struct.pack("<I", len(data)) + data)
    f.flush()


def write_end(f: BinaryIO) -> None:
    f.write(struct.pack("<I", 0))
    f.flush()


def read_frame(f: BinaryIO) -> Any | None:
    """The next frame's object; ``None`` at the end (an empty frame, or the pipe closed)."""
    head = f.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack("<I", head)
    if n == 0:
        return None
    data = f.read(n)
    if len(data) < n:
        return None
    return pickle.loads(data)


def _stream(
    opener: Callable[[dict[str, Any]], tuple[dict[str, Any], Predict]],
    job: dict[str, Any],
    in_fd: int,
    out_fd: int,
) -> dict[str, Any]:
    info, predict = opener(job)
    threads = max(1, int(job.get("threads") or os.cpu_count() or 1))
    with os.fdopen(in_fd, "rb") as rf, os.fdopen(out_fd, "wb") as wf:
        write_frame(wf, ("ready", info))
        pending: queue.Queue[Future[Any] | None] = queue.Queue(maxsize=2 * threads)
        failed = threading.Event()

        def answer() -> None:  # in input order, whatever order the pool finishes in
            while (fut := pending.get()) is not None:
                if failed.is_set():
                    continue
                try:
                    scores = fut.result()
                    write_frame(wf, ("scores", scores))
                except BrokenPipeError:
                    failed.set()
                except Exception as e:  # the model failed on this batch: report, then stop
                    traceback.print_exc()
                    failed.set()
                    with contextlib.suppress(BrokenPipeError):
                        write_frame(wf, ("error", f"{type(e).__name__}: {e}"))

        writer = threading.Thread(target=answer, daemon=True)
        writer.start()
        batches = 0
        with ThreadPoolExecutor(threads) as pool:
            while not failed.is_set() and (frame := read_frame(rf)) is not None:
                rows, names, serialized = frame
                pending.put(pool.submit(predict, rows, names, serialized))
                batches += 1
            pending.put(None)
            writer.join()
        if not failed.is_set():
            write_end(wf)
    return {**info, "batches": batches, "failed": failed.is_set()}


def serve(
    handler: Callable[[dict[str, Any]], dict[str, Any]],
    opener: Callable[[dict[str, Any]], tuple[dict[str, Any], Predict]] | None = None,
) -> int:
    """``python -m pushgate.runtime.<x>_worker JOB RESULT [--stream IN_FD OUT_FD]``."""
    args = sys.argv[1:]
    stream = len(args) == 5 and args[2] == "--stream" and opener is not None
    if len(args) != 2 and not stream:
        print("usage: python -m pushgate.runtime.<runtime>_worker JOB.json RESULT.json")
        return 2
    job_path, result_path = args[0], args[1]
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    code = 0
    try:
        if stream:
            assert opener is not None
            result = {"ok": True, **_stream(opener, job, int(args[3]), int(args[4]))}
        else:
            result = {"ok": True, **handler(job)}
    except MissingRuntime as e:
        result, code = {"ok": False, "error": str(e), "missing_dependency": True}, 1
    except Exception as e:  # everything the runtime raises is a failed attempt, reported
        traceback.print_exc()
        result, code = {"ok": False, "error": f"{type(e).__name__}: {e}"}, 1
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return code
