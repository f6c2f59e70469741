"""Metric thresholds and their check, with TFMA's semantics.

A thresholds file (JSON, or YAML with the ``yaml`` extra) names, per metric, an optional value
threshold and an optional change threshold::

    {"metrics": {
        "accuracy": {"value": {"lower": 0.7},
                     "change": {"direction": "higher_is_better",
                                "absolute": -0.01, "relative": -0.05}},
        "log_loss": {"value": {"upper": 0.5},
                     "change": {"direction": "lower_is_better", "absolute": 0.02}}}}

The check (:func:`check`) is TFMA 0.47's ``metrics_validator._check_threshold`` (TFX 1.16):

- value: passes when ``lower <= value <= upper``; a missing bound is unbounded.
- change: ``diff = candidate - baseline``. The absolute bound, when set, is checked on ``diff``;
  the relative bound, when set, on ``ratio = diff / baseline``, which is NaN (so fails) when the
  baseline is 0. An unset bound does not constrain, so with only ``absolute`` (or only a
  direction) a zero baseline is an ordinary baseline. ``higher_is_better`` passes when ``diff >=
  absolute`` and ``ratio >= relative``; ``lower_is_better`` with ``<=``.
- no baseline model: change thresholds are dropped, as TFX's Evaluator does (reported as
  ``skipped``); value thresholds still apply. When nothing is left to check (:func:`checkable`),
  TFX writes no verdict and its Pusher does not push: ``pushgate evaluate`` refuses (exit 2).
- a metric missing from the candidate (or, for a change threshold, from the baseline) fails.
- NaN never passes a comparison, so a NaN metric fails every bound on it (a change threshold
  with no bound at all compares nothing and passes, as in TFMA).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pushgate.errors import InputError, MissingDependencyError, UsageError

KNOWN_METRICS = (
    "example_count",
    "accuracy",
    "auc",
    "precision",
    "recall",
    "log_loss",
    "mse",
    "rmse",
    "mae",
)
DIRECTIONS = ("higher_is_better", "lower_is_better")

Outcome = Literal["pass", "fail", "skipped"]


@dataclass(frozen=True)
class ValueThreshold:
    """``lower <= value <= upper``; ``None`` is unbounded."""

    lower: float | None = None
    upper: float | None = None

    def describe(self) -> str:
        lo = "-inf" if self.lower is None else repr(self.lower)
        hi = "+inf" if self.upper is None else repr(self.upper)
        return f"{lo} <= value <= {hi}"


@dataclass(frozen=True)
class ChangeThreshold:
    """Candidate against baseline, in ``direction``; ``absolute``/``relative`` bound the change."""

    direction: str
    absolute: float | None = None
    relative: float | None = None

    def describe(self) -> str:
        op = ">=" if self.direction == "higher_is_better" else "<="
        parts = []
        if self.absolute is not None:
            parts.append(f"candidate - baseline {op} {self.absolute!r}")
        if self.relative is not None:
            parts.append(f"(candidate - baseline) / baseline {op} {self.relative!r}")
        return " and ".join(parts) or f"{self.direction} (no bound)"


@dataclass(frozen=True)
class MetricThreshold:
    """The thresholds of one metric."""

    metric: str
    value: ValueThreshold | None = None
    change: ChangeThreshold | None = None


@dataclass(frozen=True)
class Thresholds:
    """Every metric threshold of a thresholds file, in file order."""

    metrics: tuple[MetricThreshold, ...]
    source: str = ""

    def __bool__(self) -> bool:
        return any(m.value is not None or m.change is not None for m in self.metrics)


@dataclass(frozen=True)
class CheckResult:
    """One threshold checked: what was compared and whether it passed."""

    metric: str
    kind: Literal["value", "change"]
    bound: str
    candidate: float | None
    baseline: float | None
    outcome: Outcome
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "kind": self.kind,
            "bound": self.bound,
            "candidate": _json_float(self.candidate),
            "baseline": _json_float(self.baseline),
            "outcome": self.outcome,
            "reason": self.reason,
        }


def _json_float(x: float | None) -> float | str | None:
    if x is None:
        return None
    if math.isnan(x) or math.isinf(x):
        return str(x)  # JSON has no NaN/Infinity; keep it readable and valid
    return x


def _number(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise UsageError(f"{where} must be a number, got {raw!r}")
    return float(raw)


def _only_keys(d: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


def parse(doc: Any, source: str = "<thresholds>") -> Thresholds:
    """Build :class:`Thresholds` from a parsed JSON/YAML document; UsageError when malformed."""
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics", {}), dict):
        raise UsageError(
            f"{source}: a thresholds file is a mapping with a 'metrics' mapping, "
            'e.g. {"metrics": {"accuracy": {"value": {"lower": 0.7}}}}'
        )
    _only_keys(doc, ("metrics", "schema"), source)
    out: list[MetricThreshold] = []
    for name, spec in doc.get("metrics", {}).items():
        where = f"{source}: metrics.{name}"
        if name not in KNOWN_METRICS:
            raise UsageError(
                f"{where}: unknown metric; pushgate computes {', '.join(KNOWN_METRICS)}"
            )
        if not isinstance(spec, dict):
            raise UsageError(f"{where} must be a mapping with 'value' and/or 'change'")
        _only_keys(spec, ("value", "change"), where)
        value = change = None
        if spec.get("value") is not None:
            v = spec["value"]
            if not isinstance(v, dict):
                raise UsageError(f"{where}.value must be a mapping with 'lower' and/or 'upper'")
            _only_keys(v, ("lower", "upper"), f"{where}.value")
            value = ValueThreshold(
                lower=_number(v.get("lower"), f"{where}.value.lower"),
                upper=_number(v.get("upper"), f"{where}.value.upper"),
            )
        if spec.get("change") is not None:
            c = spec["change"]
            if not isinstance(c, dict):
                raise UsageError(f"{where}.change must be a mapping with 'direction'")
            _only_keys(c, ("direction", "absolute", "relative"), f"{where}.change")
            direction = str(c.get("direction", "")).lower()
            if direction not in DIRECTIONS:
                raise UsageError(
                    f"{where}.change.direction must be one of {', '.join(DIRECTIONS)}, "
                    f"got {c.get('direction')!r}"
                )
            change = ChangeThreshold(
                direction=direction,
                absolute=_number(c.get("absolute"), f"{where}.change.absolute"),
                relative=_number(c.get("relative"), f"{where}.change.relative"),
            )
        out.append(MetricThreshold(metric=name, value=value, change=change))
    return Thresholds(metrics=tuple(out), source=source)


def load(path: Path) -> Thresholds:
    """Read a thresholds file: JSON always; YAML (``.yaml``/``.yml``) with the ``yaml`` extra."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise InputError(f"thresholds file does not exist: {path}") from e
    except OSError as e:
        raise InputError(f"cannot read thresholds file {path}: {e.strerror}") from e
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as e:
            raise MissingDependencyError(f"reading the YAML thresholds file {path}", "yaml") from e
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"thresholds file {path} is not valid YAML: {e}") from e
    else:
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise UsageError(
                f"thresholds file {path} is not valid JSON ({e}); "
                "name it .yaml/.yml to have it read as YAML"
            ) from e
    return parse(doc, str(path))


def _value_ok(t: ValueThreshold, x: float) -> bool:
    lower = -math.inf if t.lower is None else t.lower
    upper = math.inf if t.upper is None else t.upper
    return x >= lower and x <= upper


def _change_ok(t: ChangeThreshold, candidate: float, baseline: float) -> bool:
    # TFMA's _check_threshold: each bound is checked only when it is set, and the ratio is
    # computed only for a relative bound (NaN for a baseline isclose to 0, which then fails).
    diff = candidate - baseline
    higher = t.direction == "higher_is_better"
    abs_ok = True
    if t.absolute is not None:
        abs_ok = diff >= t.absolute if higher else diff <= t.absolute
    rel_ok = True
    if t.relative is not None:
        ratio = math.nan if math.isclose(baseline, 0.0) else diff / baseline
        rel_ok = ratio >= t.relative if higher else ratio <= t.relative
    return abs_ok and rel_ok


def checkable(thresholds: Thresholds, has_baseline: bool) -> bool:
    """Whether anything is left to check: without a baseline, change thresholds are dropped."""
    return any(
        m.value is not None or (has_baseline and m.change is not None) for m in thresholds.metrics
    )


def check(
    thresholds: Thresholds,
    candidate: dict[str, float],
    baseline: dict[str, float] | None,
) -> tuple[bool, list[CheckResult]]:
    """Check every threshold; returns (all passed, one result per threshold).

    ``baseline`` is ``None`` when there is no baseline model: change thresholds are skipped
    (dropped, as TFX does; see :func:`checkable` for the case where nothing is left).
    """
    results: list[CheckResult] = []
    for mt in thresholds.metrics:
        cand = candidate.get(mt.metric)
        base = None if baseline is None else baseline.get(mt.metric)
        cand_f = None if cand is None else float(cand)
        base_f = None if base is None else float(base)
        if mt.value is not None:
            if cand_f is None:
                outcome: Outcome = "fail"
                reason = "metric not found for the candidate"
            else:
                ok = _value_ok(mt.value, cand_f)
                outcome, reason = ("pass", "") if ok else ("fail", "value out of bounds")
            results.append(
                CheckResult(
                    mt.metric, "value", mt.value.describe(), cand_f, base_f, outcome, reason
                )
            )
        if mt.change is not None:
            if baseline is None:
                outcome, reason = "skipped", "no baseline model"
            elif cand_f is None:
                outcome, reason = "fail", "metric not found for the candidate"
            elif base_f is None:
                outcome, reason = "fail", "metric not found for the baseline"
            else:
                ok = _change_ok(mt.change, cand_f, base_f)
                outcome, reason = ("pass", "") if ok else ("fail", "change out of bounds")
                if not ok and mt.change.relative is not None and math.isclose(base_f, 0.0):
                    reason = "baseline is 0: the relative change is undefined (TFMA fails it)"
            results.append(
                CheckResult(
                    mt.metric, "change", mt.change.describe(), cand_f, base_f, outcome, reason
                )
            )
    return all(r.outcome != "fail" for r in results), results
