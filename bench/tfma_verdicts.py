"""Check pushgate's threshold verdicts against TFMA's own validator, case by case.

Run with a Python that has TFX's TFMA (0.47) installed, pushgate's ``src/`` on the path::

    PYTHONPATH=src /path/to/tfx-venv/bin/python bench/tfma_verdicts.py

For every combination of direction, ``absolute`` and ``relative`` bounds (unset, finite, infinite),
value bounds, and candidate / baseline values (0, -0, tiny, negative, NaN, infinities), it builds a
real ``tfma.EvalConfig``, hands TFMA's ``metrics_validator.validate_metrics`` the metrics TFMA's
evaluator would (candidate, baseline, and the diff ``candidate - baseline``), and compares
``validation_ok`` with ``pushgate.thresholds.check``. Without a baseline it applies TFX 1.16's
``update_eval_config_with_defaults(has_baseline=False, rubber_stamp=True)`` and compares TFX's
"no thresholds left: no verdict" with ``pushgate.thresholds.checkable``. Prints the counts and
every disagreement; exits 1 on any.
"""

from __future__ import annotations

import itertools
import sys

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.evaluators import metrics_validator
from tensorflow_model_analysis.metrics import metric_specs, metric_types

from pushgate import thresholds as th

NAN, INF = float("nan"), float("inf")
VALUES = (0.0, -0.0, 1e-300, 0.5, -0.5, 1.0, 2.0, NAN, INF, -INF)
BOUNDS = (None, -0.5, 0.0, 0.5, INF, -INF)
VALUE_BOUNDS = ((None, None), (0.0, None), (None, 1.0), (0.25, 0.75))
DIRECTIONS = {
    "higher_is_better": tfma.MetricDirection.HIGHER_IS_BETTER,
    "lower_is_better": tfma.MetricDirection.LOWER_IS_BETTER,
}


def _tfma_threshold(
    value: tuple[float | None, float | None] | None,
    direction: str | None,
    absolute: float | None,
    relative: float | None,
) -> tfma.MetricThreshold:
    t = tfma.MetricThreshold()
    if value is not None:
        t.value_threshold.SetInParent()
        if value[0] is not None:
            t.value_threshold.lower_bound.value = value[0]
        if value[1] is not None:
            t.value_threshold.upper_bound.value = value[1]
    if direction is not None:
        t.change_threshold.direction = DIRECTIONS[direction]
        if absolute is not None:
            t.change_threshold.absolute.value = absolute
        if relative is not None:
            t.change_threshold.relative.value = relative
    return t


def _config(threshold: tfma.MetricThreshold, has_baseline: bool) -> tfma.EvalConfig:
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label")],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="AUC", threshold=threshold)])
        ],
    )
    return tfma.utils.update_eval_config_with_defaults(
        config, has_baseline=has_baseline, rubber_stamp=True
    )


def tfma_verdict(
    threshold: tfma.MetricThreshold, candidate: float, baseline: float | None
) -> bool | None:
    """TFMA's validation_ok, or None where TFX writes no verdict (nothing left to check)."""
    config = _config(threshold, baseline is not None)
    if not metric_specs.metric_thresholds_from_metrics_specs(
        config.metrics_specs, eval_config=config
    ):
        return None
    metrics: dict[metric_types.MetricKey, float] = {}
    cand_key = metric_types.MetricKey(name="auc", model_name="candidate")
    if baseline is None:
        metrics[metric_types.MetricKey(name="auc")] = candidate
    else:
        metrics[cand_key] = candidate
        metrics[cand_key.make_baseline_key("baseline")] = baseline
        metrics[cand_key.make_diff_key()] = candidate - baseline  # AddDiffMetrics
    result = metrics_validator.validate_metrics(((), metrics), config)
    return bool(result.validation_ok)


def pushgate_verdict(
    spec: dict[str, object], candidate: float, baseline: float | None
) -> bool | None:
    thresholds = th.parse({"metrics": {"auc": spec}})
    if not th.checkable(thresholds, baseline is not None):
        return None
    ok, _ = th.check(
        thresholds, {"auc": candidate}, None if baseline is None else {"auc": baseline}
    )
    return ok


def main() -> int:
    cases = disagreements = 0
    for value, direction, absolute, relative in itertools.product(
        (None, *VALUE_BOUNDS), (None, *DIRECTIONS), BOUNDS, BOUNDS
    ):
        if direction is None and (absolute is not None or relative is not None):
            continue
        if value is None and direction is None:
            continue
        spec: dict[str, object] = {}
        if value is not None:
            spec["value"] = {"lower": value[0], "upper": value[1]}
        if direction is not None:
            spec["change"] = {"direction": direction, "absolute": absolute, "relative": relative}
        threshold = _tfma_threshold(value, direction, absolute, relative)
        for candidate, baseline in itertools.product(VALUES, (None, *VALUES)):
            want = tfma_verdict(threshold, candidate, baseline)
            got = pushgate_verdict(spec, candidate, baseline)
            cases += 1
            if want != got:
                disagreements += 1
                if disagreements <= 20:
                    print(
                        f"DIFFER {spec} candidate={candidate} baseline={baseline}: "
                        f"tfma={want} pushgate={got}"
                    )
    print(f"{cases} cases, {disagreements} disagreements (TFMA {tfma.__version__})")
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
