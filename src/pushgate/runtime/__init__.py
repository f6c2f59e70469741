"""Run a model in its serving runtime, in a separate process with a deadline.

pushgate's own process never imports TensorFlow or onnxruntime. ``evaluate`` streams batches
through one worker (:mod:`pushgate.runtime.stream`); ``infra-validate`` writes a job file and
starts ``python -m pushgate.runtime.tf_worker`` (SavedModels) or ``pushgate.runtime.onnx_worker``
(ONNX) in a new process group; the worker loads the model, does the job, and writes a JSON result
file. A crash, a hang past the deadline (the whole process group is killed), an error, or a
missing result is a failed :class:`Attempt`, never an exception in pushgate.

Job (JSON)::

    {"task": "load" | "predict" | "validate", "model": "/path", "tags": ["serve"],
     "signatures": ["serving_default"], "prediction_key": null,
     "examples": {"feature_names": [...], "rows": [...], "serialized": [base64, ...] | null},
     "warmup_path": "/tmp/.../tf_serving_warmup_requests" | null}

Result (JSON): ``{"ok": true, ...task fields}`` or ``{"ok": false, "error": "...",
"missing_dependency": "tensorflow" | null}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushgate.errors import InputError, MissingDependencyError

TENSORFLOW = "tensorflow"
ONNX = "onnx"
RUNTIMES = (TENSORFLOW, ONNX)
_WORKER = {TENSORFLOW: "pushgate.runtime.tf_worker", ONNX: "pushgate.runtime.onnx_worker"}
_EXTRA = {TENSORFLOW: "tensorflow", ONNX: "onnx"}


@dataclass(frozen=True)
class ModelRef:
    """A model to run: the SavedModel directory or ``.onnx`` file, and its runtime."""

    path: Path
    runtime: str
    given: Path

    def describe(self) -> str:
        where = str(self.path) if self.path == self.given else f"{self.path} (in {self.given})"
        return f"{where} [{self.runtime}]"


def locate_model(path: Path) -> ModelRef:
    """Find the servable model at ``path``: a SavedModel (bare or in a TFX Model artifact), an
    ``.onnx`` file, or a directory holding exactly one ``.onnx`` file (Triton's layout)."""
    from pushgate.source import resolve_model

    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".onnx":
            return ModelRef(path, ONNX, path)
        raise InputError(f"{path} is a file but not an .onnx model; give a SavedModel directory")
    # the runtimes' own check follows (a blessing directory is still refused by resolve_model)
    source, _warnings = resolve_model(path, None, any_model=True)
    d = source.path
    if (d / "saved_model.pb").exists() or (d / "saved_model.pbtxt").exists():
        return ModelRef(d, TENSORFLOW, path)
    onnx_files = sorted(d.glob("*.onnx"))
    if len(onnx_files) == 1:
        return ModelRef(onnx_files[0], ONNX, path)
    if len(onnx_files) > 1:
        raise InputError(
            f"{d} holds several .onnx files ({', '.join(p.name for p in onnx_files)}); "
            "give the one to use"
        )
    raise InputError(
        f"no servable model in {d}: expected saved_model.pb (a SavedModel) or one .onnx file"
    )


@dataclass(frozen=True)
class Attempt:
    """One run of a worker."""

    ok: bool
    error: str = ""
    returncode: int | None = None
    timed_out: bool = False
    seconds: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "returncode": self.returncode,
            "timed_out": self.timed_out,
            "seconds": round(self.seconds, 3),
        }


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the runtime process was killed by {name}"
    return f"the runtime process exited with code {code}"


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return "\n".join(kept)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def spawn_group(
    cmd: list[str], log_path: Path, env: dict[str, str], pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session (its process group is ended as one, see
    :func:`_kill_group`), output appended to ``log_path``, no stdin. OSError when it cannot
    start."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            pass_fds=pass_fds,
            start_new_session=True,
        )


def worker_env() -> dict[str, str]:
    """The environment of a worker: this pushgate first on the path, TensorFlow's logs quiet."""
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_worker(
    runtime: str,
    job: dict[str, Any],
    *,
    deadline: float | None,
    python: str | None = None,
) -> Attempt:
    """Run one job in a fresh worker process; never raises for what happens inside it.

    Raises :class:`MissingDependencyError` only when the worker reports that the runtime itself
    (TensorFlow, onnxruntime) is not installed for ``python``.
    """
    if runtime not in _WORKER:
        raise ValueError(f"unknown runtime {runtime!r}")
    env = worker_env()
    with tempfile.TemporaryDirectory(prefix="pushgate-runtime-") as tmp:
        job_path, result_path, log_path = (
            Path(tmp) / n for n in ("job.json", "result.json", "log")
        )
        job_path.write_text(json.dumps(job), encoding="utf-8")
        cmd = [python or sys.executable, "-m", _WORKER[runtime], str(job_path), str(result_path)]
        start = time.monotonic()
        try:
            proc = spawn_group(cmd, log_path, env)  # its process group is killed on timeout
        except OSError as e:
            return Attempt(ok=False, error=f"cannot start the runtime {cmd[0]}: {e.strerror}")
        try:
            code = proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return Attempt(
                ok=False,
                error=f"the runtime did not finish within the deadline of {deadline:g} s "
                "(killed); raise --deadline if the model is just slow to load",
                returncode=proc.returncode,
                timed_out=True,
                seconds=time.monotonic() - start,
            )
        except BaseException:  # Ctrl-C: take the runtime down with us
            _kill_group(proc)
            raise
        seconds = time.monotonic() - start
        try:
            result = json.loads(result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            result = None
        if not isinstance(result, dict):
            tail = _tail(log_path)
            return Attempt(
                ok=False,
                error=_describe_exit(code) + " without a result" + (f":\n{tail}" if tail else ""),
                returncode=code,
                seconds=seconds,
            )
        if result.get("missing_dependency"):
            raise MissingDependencyError(
                f"running a {runtime} model ({result.get('error', '')})",
                _EXTRA[runtime],
            )
        ok = bool(result.get("ok")) and code == 0
        error = "" if ok else str(result.get("error") or _describe_exit(code))
        return Attempt(ok=ok, error=error, returncode=code, seconds=seconds, result=result)
