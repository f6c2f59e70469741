"""``pushgate evaluate``: TFX's Evaluator verdict, without TFX or TFMA (Beam optional).

The candidate's metrics come from a JSON file, or are computed by streaming labelled examples in
batches through the model in its own runtime process (:mod:`pushgate.runtime.stream`) and
accumulating :mod:`pushgate.metrics` as the scores come back: memory does not grow with the data.
``runner="beam"`` runs the same steps as an Apache Beam pipeline (:mod:`pushgate.evaluator_beam`).
The baseline is optional: a model, the newest published version at a pushgate destination, or a
metrics file. :mod:`pushgate.thresholds` decides (TFMA's semantics), and the verdict is written as
a ModelBlessing directory with ``evaluation.json`` and ``evaluation.txt`` beside the marker.

No thresholds at all is refused, and so are change thresholds alone with no baseline: TFX drops
change thresholds when there is no baseline model, and with nothing left to check its Evaluator
writes no verdict, so its Pusher does not push. pushgate fails closed the same way, but loudly
(:class:`~pushgate.errors.UsageError`, exit 2) instead of leaving a blessing without a marker.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushgate import thresholds as th
from pushgate.artifact import atomic_write, utc_now
from pushgate.blessing import BlessingKind, clear_verdict, write_blessing
from pushgate.errors import InputError, UsageError, ValidationError
from pushgate.examples import DEFAULT_BATCH, ExampleSource, open_examples, require_labels
from pushgate.metrics import AUC_EXACT_BUDGET, AUC_THRESHOLDS, RUNNERS, TASKS, Accumulator
from pushgate.runtime import locate_model
from pushgate.runtime.stream import StreamFailed, predict_stream

EVALUATION_SCHEMA = "pushgate.evaluation/v1"
REPORT_JSON = "evaluation.json"
REPORT_TEXT = "evaluation.txt"


@dataclass(frozen=True)
class EvaluateRequest:
    """Everything ``pushgate evaluate`` needs; see ``pushgate evaluate --help``."""

    output: Path
    thresholds: Path
    model: Path | str | None = None  # str: an object-store URL
    examples: Path | str | None = None  # str: an object-store URL (streamed, never downloaded)
    candidate_metrics: Path | None = None
    baseline_model: Path | str | None = None
    baseline_from: str | None = None
    baseline_metrics: Path | None = None
    label: str = "label"
    split: str = "eval"
    features: tuple[str, ...] | None = None
    task: str = "auto"
    signature: str = "serving_default"
    tags: tuple[str, ...] = ("serve",)
    prediction_key: str | None = None
    deadline: float | None = 1800.0
    python: str | None = None
    storage_options: dict[str, str] | None = None
    batch_size: int = DEFAULT_BATCH
    threads: int | None = None
    runner: str = "local"
    beam_options: tuple[str, ...] = ()
    auc_exact_budget: int = AUC_EXACT_BUDGET


@dataclass
class EvaluationResult:
    """The verdict and every threshold checked."""

    blessed: bool
    blessing: Path
    candidate_model: str | None
    baseline_model: str | None
    baseline_version: str | None
    candidate_metrics: dict[str, float]
    baseline_metrics: dict[str, float] | None
    checks: list[th.CheckResult]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": EVALUATION_SCHEMA,
            "blessed": self.blessed,
            "verdict": "blessed" if self.blessed else "not_blessed",
            "blessing": str(self.blessing),
            "candidate_model": self.candidate_model,
            "baseline_model": self.baseline_model,
            "baseline_version": self.baseline_version,
            "candidate_metrics": _clean(self.candidate_metrics),
            "baseline_metrics": None
            if self.baseline_metrics is None
            else _clean(self.baseline_metrics),
            "thresholds": [c.to_json() for c in self.checks],
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """The readable report: one line per threshold, then the verdict."""
        lines = [
            f"candidate: {self.candidate_model or '(metrics file)'}",
            f"baseline:  {self.baseline_model or 'none'}"
            + (f" (version {self.baseline_version})" if self.baseline_version else ""),
            "",
            f"{'metric':<14} {'kind':<7} {'candidate':>12} {'baseline':>12}  {'result':<8} bound",
        ]
        for c in self.checks:
            lines.append(
                f"{c.metric:<14} {c.kind:<7} {_fmt(c.candidate):>12} {_fmt(c.baseline):>12}  "
                f"{c.outcome.upper():<8} {c.bound}" + (f"  ({c.reason})" if c.reason else "")
            )
        lines += ["", *(f"note: {n}" for n in self.notes)] if self.notes else []
        lines.append(f"verdict: {'BLESSED' if self.blessed else 'NOT_BLESSED'} -> {self.blessing}")
        return "\n".join(lines) + "\n"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def _clean(metrics: dict[str, float]) -> dict[str, Any]:
    return {k: (v if math.isfinite(v) else str(v)) for k, v in metrics.items()}


def read_metrics(path: Path) -> dict[str, float]:
    """A metrics JSON file: ``{"accuracy": 0.9, ...}``, or the same under a ``"metrics"`` key."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"metrics file does not exist: {path}") from e
    except OSError as e:
        raise InputError(f"cannot read metrics file {path}: {e.strerror}") from e
    except ValueError as e:
        raise InputError(f"metrics file {path} is not valid JSON: {e}") from e
    if isinstance(doc, dict) and isinstance(doc.get("metrics"), dict):
        doc = doc["metrics"]
    if not isinstance(doc, dict):
        raise InputError(f"metrics file {path} must be a JSON object of metric name to number")
    out: dict[str, float] = {}
    for k, v in doc.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InputError(f"metrics file {path}: {k!r} is not a number: {v!r}")
        out[str(k)] = float(v)
    return out


def _model_metrics(
    model: Path | str, examples: ExampleSource, request: EvaluateRequest, notes: list[str]
) -> dict[str, float]:
    ref = locate_model(Path(model))
    job = {
        "model": str(ref.path),
        "tags": list(request.tags),
        "signatures": [request.signature],
        "prediction_key": request.prediction_key,
    }
    if request.runner == "beam":
        from pushgate.evaluator_beam import beam_metrics

        metrics, auc_method, n = beam_metrics(
            ref,
            job,
            examples,
            task=request.task,
            label=request.label,
            batch_size=request.batch_size,
            options=request.beam_options,
            deadline=request.deadline,
            auc_exact_budget=request.auc_exact_budget,
        )
        _auc_note(metrics, auc_method, n, request.auc_exact_budget, ref.describe(), notes)
        return metrics
    acc = Accumulator(request.task, request.auc_exact_budget)
    try:
        for batch, scores in predict_stream(
            ref.runtime,
            job,
            examples.batches(request.batch_size, decode=False),
            examples.feature_names,
            deadline=request.deadline,
            python=request.python,
            threads=request.threads,
        ):
            labels = require_labels(examples.source, batch.start, batch.labels, request.label)
            acc.add(labels, scores)
    except StreamFailed as e:
        raise ValidationError(
            f"could not run the model {ref.describe()} over the examples: {e}"
        ) from e
    metrics = acc.result()
    _auc_note(metrics, acc.auc_method, acc.n, request.auc_exact_budget, ref.describe(), notes)
    return metrics


def _auc_note(
    metrics: dict[str, float], auc_method: str, n: int, budget: int, model: str, notes: list[str]
) -> None:
    if "auc" in metrics and auc_method != "exact":
        notes.append(
            f"{model}: auc is TFMA's thresholded ROC AUC ({AUC_THRESHOLDS} thresholds): "
            f"{n} examples are more than the {budget} of the exact computation"
        )


def _check_request(request: EvaluateRequest) -> None:
    if request.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {request.batch_size}")
    if request.runner not in RUNNERS:
        raise UsageError(f"unknown --runner {request.runner!r}; use one of {', '.join(RUNNERS)}")
    if request.runner == "beam":
        from pushgate.evaluator_beam import pipeline_options  # no Beam: MissingDependencyError

        pipeline_options(request.beam_options)
        if request.python is not None:
            raise UsageError(
                "--python chooses the local runtime's Python; with --runner beam the model runs "
                "in the Beam workers' own Python"
            )
    elif request.beam_options:
        raise UsageError("--beam-option needs --runner beam")
    from pushgate.remote import is_url

    for option, model in (("--model", request.model), ("--baseline-model", request.baseline_model)):
        if model is not None and is_url(str(model)):
            from pushgate.secrets import clean_url

            raise InputError(
                f"{option} {clean_url(str(model))} is an object-store URL, but evaluate runs "
                "models from a local path (with --runner beam, one every worker can read, such "
                "as a shared filesystem); copy the model there first (--examples may be a URL)"
            )
    if request.task not in TASKS:
        raise UsageError(f"unknown --task {request.task!r}; use one of {', '.join(TASKS)}")
    if request.candidate_metrics is None and (request.model is None or request.examples is None):
        raise UsageError(
            "nothing to evaluate: give --model with --examples (metrics computed here), "
            "or --candidate-metrics FILE"
        )
    if request.baseline_model is not None and request.baseline_from is not None:
        raise UsageError("give either --baseline-model or --baseline-from, not both")
    needs_examples = request.baseline_metrics is None and (
        request.baseline_model is not None or request.baseline_from is not None
    )
    if needs_examples and request.examples is None:
        raise UsageError(
            "a baseline model needs --examples to compute its metrics (or give --baseline-metrics)"
        )


def evaluate(request: EvaluateRequest) -> EvaluationResult:
    """Compute or read the metrics, check the thresholds, write the ModelBlessing."""
    _check_request(request)
    clear_verdict(request.output, BlessingKind.MODEL)  # a failed run leaves no old verdict
    thresholds = th.load(request.thresholds)
    if not thresholds:
        raise UsageError(
            f"{request.thresholds} sets no thresholds, so there is nothing to decide: TFX's "
            "Evaluator would write no verdict and every push would be blocked. Add a value or "
            'change threshold, e.g. {"metrics": {"accuracy": {"value": {"lower": 0.7}}}}'
        )
    has_baseline_source = (
        request.baseline_model is not None
        or request.baseline_from is not None
        or request.baseline_metrics is not None
    )
    if not th.checkable(thresholds, has_baseline_source):
        raise _nothing_to_check(request, "no baseline was given")
    notes: list[str] = []
    baseline: dict[str, float] | None = None
    baseline_model: str | None = None
    baseline_version: str | None = None
    with tempfile.TemporaryDirectory(prefix="pushgate-baseline-") as tmp:
        base_path: Path | str | None = request.baseline_model
        if request.baseline_from is not None:
            from pushgate.api import serving_version

            found = serving_version(request.baseline_from, request.storage_options, into=Path(tmp))
            if found is None:
                if request.baseline_metrics is None and not th.checkable(thresholds, False):
                    raise _nothing_to_check(
                        request, f"no version is published at {request.baseline_from}"
                    )
                notes.append(
                    f"no version is published at {request.baseline_from}: no baseline, change "
                    "thresholds skipped"
                )
            else:
                baseline_version, base_path = found
                baseline_model = f"{request.baseline_from.rstrip('/')}/{baseline_version}"
        elif base_path is not None:
            baseline_model = str(base_path)

        examples: ExampleSource | None = None
        if request.examples is not None:
            examples = open_examples(
                request.examples,
                label=request.label,
                split=request.split,
                features=request.features,
                storage_options=request.storage_options,
            )

        if request.candidate_metrics is not None:
            candidate = read_metrics(request.candidate_metrics)
        else:
            assert request.model is not None and examples is not None  # checked above
            candidate = _model_metrics(request.model, examples, request, notes)

        if request.baseline_metrics is not None:
            baseline = read_metrics(request.baseline_metrics)
            baseline_model = baseline_model or str(request.baseline_metrics)
        elif base_path is not None:
            assert examples is not None  # checked above
            baseline = _model_metrics(base_path, examples, request, notes)

    if baseline is None and any(m.change is not None for m in thresholds.metrics):
        notes.append("no baseline: change thresholds skipped (TFMA's first-model rule)")
    blessed, checks = th.check(thresholds, candidate, baseline)
    result = EvaluationResult(
        blessed=blessed,
        blessing=request.output,
        candidate_model=str(request.model) if request.model else None,
        baseline_model=baseline_model,
        baseline_version=baseline_version,
        candidate_metrics=candidate,
        baseline_metrics=baseline,
        checks=checks,
        notes=notes,
    )
    _write(result)
    return result


def _nothing_to_check(request: EvaluateRequest, why: str) -> UsageError:
    return UsageError(
        f"{request.thresholds} sets only change thresholds and {why}: without a baseline TFX's "
        "Evaluator drops change thresholds, has nothing left to check, writes no verdict, and "
        "its Pusher does not push. Give a baseline (--baseline-model, --baseline-from or "
        '--baseline-metrics) or add a value bound, e.g. {"value": {"lower": 0.7}}'
    )


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"))


def _write(result: EvaluationResult) -> None:
    out = result.blessing
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} is a file; give a directory for the ModelBlessing")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for marker in BlessingKind.MODEL.markers:  # no stale verdict beside the new report
            (out / marker).unlink(missing_ok=True)
        doc = {**result.to_json(), "written_at": utc_now()}
        _write_text(out / REPORT_JSON, json.dumps(doc, indent=2) + "\n")
        _write_text(out / REPORT_TEXT, result.to_text())
        props: dict[str, Any] = {
            "current_model": result.candidate_model or "",
            "baseline_model": result.baseline_model or "",
        }
        if result.baseline_version is not None:
            props["baseline_version"] = result.baseline_version
        # The marker last: a blessing without its report is never left behind.
        write_blessing(out, BlessingKind.MODEL, result.blessed, props)
    except OSError as e:
        raise InputError(f"cannot write the ModelBlessing to {out}: {e.strerror}") from e
