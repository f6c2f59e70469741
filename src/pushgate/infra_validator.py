"""``pushgate infra-validate``: TFX's InfraValidator verdict, without TFX or Docker.

The model is loaded in its serving runtime (TensorFlow for SavedModels, onnxruntime for ONNX) in
a separate process (:mod:`pushgate.runtime`) under a deadline, up to ``num_tries`` times. Without
examples the attempt only loads the model (and checks the signatures exist); with examples it
sends one request per example to each chosen signature and checks every answer. As in TFX, an
attempt that passes ends the retries, and the model is blessed when one attempt passed.

With ``make_warmup`` (SavedModels only) the blessed model is copied into ``stamped_model/`` with
``assets.extra/tf_serving_warmup_requests``: one ``PredictionLog`` per request, at most 1000.
Push it with ``pushgate push --infra-blessing DIR`` and no ``--model``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushgate.artifact import utc_now
from pushgate.blessing import BlessingKind, clear_verdict, write_blessing
from pushgate.errors import InputError, MissingDependencyError, UsageError
from pushgate.examples import read_examples, to_jsonable
from pushgate.runtime import TENSORFLOW, Attempt, locate_model, run_worker
from pushgate.runtime.warmup import ASSETS_EXTRA, MAX_WARMUP_RECORDS, WARMUP_FILE

INFRA_SCHEMA = "pushgate.infra-validation/v1"
REPORT_JSON = "infra_validation.json"
STAMPED_MODEL = "stamped_model"


@dataclass(frozen=True)
class InfraValidateRequest:
    """Everything ``pushgate infra-validate`` needs; see ``pushgate infra-validate --help``."""

    model: Path
    output: Path
    examples: Path | None = None
    num_examples: int = 1
    signatures: tuple[str, ...] = ("serving_default",)
    tags: tuple[str, ...] = ("serve",)
    deadline: float = 300.0
    num_tries: int = 5
    make_warmup: bool = False
    label: str = "label"
    split: str = "eval"
    features: tuple[str, ...] | None = None
    python: str | None = None


@dataclass
class InfraValidationResult:
    """The verdict, each attempt, and the stamped model when one was written."""

    blessed: bool
    blessing: Path
    model: str
    runtime: str
    attempts: list[Attempt]
    requests: int = 0
    stamped_model: Path | None = None
    warmup_records: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def has_model(self) -> bool:
        return self.stamped_model is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": INFRA_SCHEMA,
            "blessed": self.blessed,
            "verdict": "blessed" if self.blessed else "not_blessed",
            "blessing": str(self.blessing),
            "model": self.model,
            "runtime": self.runtime,
            "requests": self.requests,
            "has_model": self.has_model,
            "stamped_model": str(self.stamped_model) if self.stamped_model else None,
            "warmup_records": self.warmup_records,
            "attempts": [a.to_json() for a in self.attempts],
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        lines = [f"model: {self.model} [{self.runtime}]"]
        for i, a in enumerate(self.attempts, start=1):
            status = "passed" if a.ok else f"failed: {a.error}"
            lines.append(f"attempt {i}/{len(self.attempts)} ({a.seconds:.1f} s): {status}")
        if self.requests:
            lines.append(f"requests answered: {self.requests}")
        if self.stamped_model is not None:
            lines.append(
                f"stamped model: {self.stamped_model} ({self.warmup_records} warmup records)"
            )
        lines += [f"note: {n}" for n in self.notes]
        verdict = "INFRA_BLESSED" if self.blessed else "INFRA_NOT_BLESSED"
        lines.append(f"verdict: {verdict} -> {self.blessing}")
        return "\n".join(lines) + "\n"


def _check_request(request: InfraValidateRequest) -> None:
    if request.num_tries < 1:
        raise UsageError(f"--num-tries must be at least 1, got {request.num_tries}")
    if not request.deadline > 0:
        raise UsageError(f"--deadline must be a positive number of seconds, got {request.deadline}")
    if request.num_examples < 1:
        raise UsageError(f"--num-examples must be at least 1, got {request.num_examples}")
    if not request.signatures:
        raise UsageError("give at least one --signature")
    if request.make_warmup and request.examples is None:
        raise UsageError("--make-warmup builds its requests from examples: give --examples")
    planned = len(request.signatures) * request.num_examples
    if request.make_warmup and planned > MAX_WARMUP_RECORDS:
        raise UsageError(
            f"--make-warmup would write {planned} records ({len(request.signatures)} signature(s) "
            f"x {request.num_examples} examples); TF Serving refuses a model with more than "
            f"{MAX_WARMUP_RECORDS}. Lower --num-examples"
        )


def _require_numpy(runtime: str, python: str | None) -> None:
    """Refuse to run (no verdict written) when the runtime's Python lacks numpy, which every
    worker needs: a missing runtime is not a verdict on the model."""
    if python is None:
        try:
            found = importlib.util.find_spec("numpy") is not None
        except ImportError:
            found = False
    else:
        try:
            probe = subprocess.run(
                [python, "-c", "import numpy"], capture_output=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise InputError(f"cannot run --python {python}: {e}") from e
        found = probe.returncode == 0
    if not found:
        where = f"--python {python}" if python else f"this Python ({sys.executable})"
        raise MissingDependencyError(
            f"infra-validate (numpy is not installed for {where})",
            "tensorflow" if runtime == TENSORFLOW else "onnx",
        )


def infra_validate(request: InfraValidateRequest) -> InfraValidationResult:
    """Validate the model in its runtime and write the InfraBlessing."""
    _check_request(request)
    clear_verdict(request.output, BlessingKind.INFRA)  # a failed run leaves no old verdict
    ref = locate_model(request.model)
    _require_numpy(ref.runtime, request.python)
    if request.make_warmup and ref.runtime != TENSORFLOW:
        raise UsageError(
            f"--make-warmup writes TF Serving warmup requests; {ref.describe()} is not a SavedModel"
        )
    notes: list[str] = []
    if ref.runtime != TENSORFLOW and (
        request.signatures != ("serving_default",) or request.tags != ("serve",)
    ):
        notes.append("an ONNX model has one graph: --signature and --tag-set are not used")
    examples_doc = None
    if request.examples is not None:
        examples = read_examples(
            request.examples,
            label=request.label,
            split=request.split,
            limit=request.num_examples,
            features=request.features,
        )
        examples_doc = to_jsonable(examples)
    out = request.output
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} is a file; give a directory for the InfraBlessing")

    with tempfile.TemporaryDirectory(prefix="pushgate-infra-") as tmp:
        warmup_path = Path(tmp) / WARMUP_FILE if request.make_warmup else None
        job = {
            "task": "validate" if examples_doc is not None else "load",
            "model": str(ref.path),
            "tags": list(request.tags),
            "signatures": list(request.signatures),
            "examples": examples_doc,
            "warmup_path": str(warmup_path) if warmup_path else None,
        }
        attempts: list[Attempt] = []
        for _ in range(request.num_tries):
            attempt = run_worker(ref.runtime, job, deadline=request.deadline, python=request.python)
            attempts.append(attempt)
            if attempt.ok:
                break
        passed = attempts[-1] if attempts[-1].ok else None
        result = InfraValidationResult(
            blessed=passed is not None,
            blessing=out,
            model=str(ref.path),
            runtime=ref.runtime,
            attempts=attempts,
            requests=int(passed.result.get("requests", 0)) if passed else 0,
            notes=notes,
        )
        _write(result, ref.path, warmup_path if passed else None, passed)
    return result


def _write(
    result: InfraValidationResult,
    model_dir: Path,
    warmup_path: Path | None,
    passed: Attempt | None,
) -> None:
    out = result.blessing
    try:
        out.mkdir(parents=True, exist_ok=True)
        for marker in BlessingKind.INFRA.markers:  # no stale verdict while we write
            (out / marker).unlink(missing_ok=True)
        stamped = out / STAMPED_MODEL
        if stamped.exists():
            shutil.rmtree(stamped)
        if warmup_path is not None and passed is not None:
            staging = out / f".{STAMPED_MODEL}.tmp"
            if staging.exists():
                shutil.rmtree(staging)
            shutil.copytree(model_dir, staging)
            extra = staging / ASSETS_EXTRA
            extra.mkdir(exist_ok=True)
            shutil.copyfile(warmup_path, extra / WARMUP_FILE)
            staging.rename(stamped)
            result.stamped_model = stamped
            result.warmup_records = int(passed.result.get("warmup_records", 0))
        doc = {**result.to_json(), "written_at": utc_now()}
        (out / REPORT_JSON).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        write_blessing(
            out,
            BlessingKind.INFRA,
            result.blessed,
            {"has_model": 1 if result.has_model else 0, "model": result.model},
        )
    except OSError as e:
        raise InputError(f"cannot write the InfraBlessing to {out}: {e}") from e
