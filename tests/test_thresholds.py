"""TFMA's threshold semantics, as a table, and the thresholds file format."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from pushgate import thresholds as th
from pushgate.errors import InputError, UsageError

HIB = "higher_is_better"
LIB = "lower_is_better"

NAN = float("nan")
INF = float("inf")

# (threshold spec, candidate value, baseline value or None for "no baseline model", outcomes)
#
# Every expected outcome is derived by hand from TFMA 0.47's metrics_validator.validate_metrics /
# _check_threshold (tensorflow/model-analysis, tag v0.47.0,
# tensorflow_model_analysis/evaluators/metrics_validator.py), the validator of TFX 1.16:
#
#   value:  lower_bound, upper_bound = -inf, inf (each replaced when HasField)
#           return metric >= lower_bound and metric <= upper_bound
#   change: diff = metric          # the diff metric, candidate - baseline (AddDiffMetrics)
#           abs_result = True; if HasField('absolute'): diff <= / >= absolute (direction)
#           rel_result = True; if HasField('relative'):
#               ratio = nan if math.isclose(baseline, 0.0) else diff / baseline
#               ratio <= / >= relative (direction)
#           return abs_result and rel_result
#   a threshold whose metric key is absent ("Metric not found.") is a failure; the diff key
#   exists only when both models have the metric.
#   no baseline: TFX calls update_eval_config_with_defaults(has_baseline=False,
#   rubber_stamp=True), which clears every change_threshold before validation.
CASES: list[tuple[str, dict[str, Any], float | None, float | None, list[str]]] = [
    # value thresholds: inclusive bounds, a missing bound is unbounded
    ("lower bound met", {"value": {"lower": 0.7}}, 0.8, None, ["pass"]),
    ("lower bound equal passes", {"value": {"lower": 0.7}}, 0.7, None, ["pass"]),
    ("lower bound missed", {"value": {"lower": 0.7}}, 0.69, None, ["fail"]),
    ("upper bound equal passes", {"value": {"upper": 0.5}}, 0.5, None, ["pass"]),
    ("upper bound missed", {"value": {"upper": 0.5}}, 0.51, None, ["fail"]),
    ("inside both bounds", {"value": {"lower": 0.1, "upper": 0.2}}, 0.15, None, ["pass"]),
    ("below both bounds", {"value": {"lower": 0.1, "upper": 0.2}}, 0.05, None, ["fail"]),
    ("above both bounds", {"value": {"lower": 0.1, "upper": 0.2}}, 0.25, None, ["fail"]),
    ("inverted bounds never pass", {"value": {"lower": 0.2, "upper": 0.1}}, 0.15, None, ["fail"]),
    ("no bounds at all passes", {"value": {}}, -1e9, None, ["pass"]),
    ("no bounds passes infinity", {"value": {}}, INF, None, ["pass"]),
    ("NaN never passes", {"value": {"lower": 0.0}}, NAN, None, ["fail"]),
    ("NaN fails even with no bounds", {"value": {}}, NAN, None, ["fail"]),  # nan >= -inf False
    ("missing candidate metric fails", {"value": {"lower": 0.0}}, None, None, ["fail"]),
    ("value checked with a baseline too", {"value": {"lower": 0.7}}, 0.6, 0.9, ["fail"]),
    # change thresholds, higher is better: diff >= absolute and diff/baseline >= relative
    ("hib absolute met", {"change": {"direction": HIB, "absolute": -0.01}}, 0.795, 0.8, ["pass"]),
    (
        "hib absolute equal passes",
        {"change": {"direction": HIB, "absolute": 0.0}},
        0.8,
        0.8,
        ["pass"],
    ),
    ("hib absolute missed", {"change": {"direction": HIB, "absolute": -0.01}}, 0.78, 0.8, ["fail"]),
    ("hib relative met", {"change": {"direction": HIB, "relative": -0.05}}, 0.77, 0.8, ["pass"]),
    ("hib relative missed", {"change": {"direction": HIB, "relative": -0.05}}, 0.75, 0.8, ["fail"]),
    (
        "hib both set, relative fails",
        {"change": {"direction": HIB, "absolute": -0.1, "relative": 0.01}},
        0.8,
        0.8,
        ["fail"],
    ),
    (
        "hib both set, absolute fails",
        {"change": {"direction": HIB, "absolute": 0.05, "relative": -0.5}},
        0.81,
        0.8,
        ["fail"],
    ),
    (
        "hib both set, both pass",
        {"change": {"direction": HIB, "absolute": 0.0, "relative": 0.01}},
        0.81,
        0.8,
        ["pass"],
    ),
    ("hib no bounds passes", {"change": {"direction": HIB}}, 0.1, 0.8, ["pass"]),
    # lower is better: diff <= absolute and diff/baseline <= relative
    ("lib absolute met", {"change": {"direction": LIB, "absolute": 0.02}}, 0.515, 0.5, ["pass"]),
    ("lib absolute missed", {"change": {"direction": LIB, "absolute": 0.02}}, 0.53, 0.5, ["fail"]),
    ("lib relative met", {"change": {"direction": LIB, "relative": 0.0}}, 0.49, 0.5, ["pass"]),
    ("lib relative missed", {"change": {"direction": LIB, "relative": 0.0}}, 0.51, 0.5, ["fail"]),
    (
        "lib both set, both pass",
        {"change": {"direction": LIB, "absolute": 0.0, "relative": -0.01}},
        0.4,
        0.5,
        ["pass"],
    ),
    (
        "lib both set, relative fails",
        {"change": {"direction": LIB, "absolute": 0.1, "relative": 0.0}},
        0.55,
        0.5,
        ["fail"],
    ),
    ("lib no bounds passes", {"change": {"direction": LIB}}, 9.0, 0.5, ["pass"]),
    # a zero baseline: the ratio is computed only for a relative bound (issue 9, item 18)
    (
        "zero baseline, hib absolute only passes",
        {"change": {"direction": HIB, "absolute": -0.1}},
        0.9,
        0.0,
        ["pass"],
    ),
    (
        "zero baseline, hib absolute only fails on diff",
        {"change": {"direction": HIB, "absolute": 0.95}},
        0.9,
        0.0,
        ["fail"],
    ),
    (
        "zero baseline, lib absolute only passes",
        {"change": {"direction": LIB, "absolute": 0.02}},
        0.01,
        0.0,
        ["pass"],
    ),
    (
        "zero baseline, lib absolute only fails on diff",
        {"change": {"direction": LIB, "absolute": 0.0}},
        0.01,
        0.0,
        ["fail"],
    ),
    ("zero baseline, direction only passes", {"change": {"direction": HIB}}, 0.3, 0.0, ["pass"]),
    (
        "negative zero baseline, absolute only passes",
        {"change": {"direction": HIB, "absolute": 0.0}},
        0.3,
        -0.0,
        ["pass"],
    ),
    (
        "zero baseline, hib relative fails (ratio NaN)",
        {"change": {"direction": HIB, "relative": -1e9}},
        0.9,
        0.0,
        ["fail"],
    ),
    (
        "zero baseline, lib relative fails (ratio NaN)",
        {"change": {"direction": LIB, "relative": 1e9}},
        0.0,
        0.0,
        ["fail"],
    ),
    (
        "zero baseline, absolute passes but relative set fails",
        {"change": {"direction": HIB, "absolute": -0.1, "relative": -0.5}},
        0.9,
        0.0,
        ["fail"],
    ),
    # math.isclose(x, 0.0) with its default tolerances is only true for 0: a tiny baseline divides
    (
        "tiny baseline is not zero",
        {"change": {"direction": HIB, "relative": 1.0}},
        1e-300,
        1e-310,
        ["pass"],
    ),
    # negative baselines: the ratio keeps TFMA's sign (diff / baseline, not / |baseline|)
    (
        "negative baseline ratio",
        {"change": {"direction": HIB, "relative": 0.1}},
        -0.9,
        -1.0,
        ["fail"],
    ),
    (
        "negative baseline ratio, lib",
        {"change": {"direction": LIB, "relative": -0.05}},
        -0.9,
        -1.0,
        ["pass"],
    ),
    # NaN and infinities follow float comparisons: NaN fails any bound, no bound passes anything
    (
        "NaN candidate fails absolute",
        {"change": {"direction": HIB, "absolute": -INF}},
        NAN,
        0.5,
        ["fail"],
    ),
    ("NaN candidate, direction only passes", {"change": {"direction": LIB}}, NAN, 0.5, ["pass"]),
    (
        "NaN baseline fails relative",
        {"change": {"direction": LIB, "relative": INF}},
        0.5,
        NAN,
        ["fail"],
    ),
    (
        "inf - inf is NaN and fails",
        {"change": {"direction": HIB, "absolute": -1.0}},
        INF,
        INF,
        ["fail"],
    ),
    (
        "infinite baseline: -inf / inf is NaN",
        {"change": {"direction": HIB, "relative": 0.0}},
        1.0,
        INF,
        ["fail"],
    ),
    (
        "negative infinite baseline: inf / -inf is NaN",
        {"change": {"direction": LIB, "relative": 0.0}},
        1.0,
        -INF,
        ["fail"],
    ),
    # a metric missing on either side fails its change threshold ("Metric not found.")
    ("missing candidate fails change", {"change": {"direction": HIB}}, None, 0.5, ["fail"]),
    # value and change together: both reported, in that order
    (
        "value passes, change fails",
        {"value": {"lower": 0.5}, "change": {"direction": HIB, "absolute": 0.0}},
        0.6,
        0.7,
        ["pass", "fail"],
    ),
    (
        "value fails, zero-baseline absolute change passes",
        {"value": {"lower": 0.95}, "change": {"direction": HIB, "absolute": -0.1}},
        0.9,
        0.0,
        ["fail", "pass"],
    ),
    # no baseline model: change thresholds dropped (TFX), value thresholds still apply
    (
        "no baseline drops change",
        {"value": {"lower": 0.0}, "change": {"direction": HIB, "absolute": 0.5}},
        0.1,
        None,
        ["pass", "skipped"],
    ),
    (
        "no baseline, value still checked",
        {"value": {"lower": 0.9}, "change": {"direction": HIB, "absolute": 0.5}},
        0.8,
        None,
        ["fail", "skipped"],
    ),
]


@pytest.mark.parametrize(
    ("spec", "candidate", "baseline", "outcomes"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_threshold_semantics_follow_tfma(
    spec: dict[str, Any], candidate: float | None, baseline: float | None, outcomes: list[str]
) -> None:
    thresholds = th.parse({"metrics": {"accuracy": spec}})
    cand = {} if candidate is None else {"accuracy": candidate}
    base = None if baseline is None else {"accuracy": baseline}
    ok, results = th.check(thresholds, cand, base)
    assert [r.outcome for r in results] == outcomes
    assert ok == ("fail" not in outcomes)


def test_the_issue_example_passes_like_tfma() -> None:
    """Issue 9, item 18: accuracy 0.9 against a baseline of 0.0, absolute -0.1: TFMA passes."""
    thresholds = th.parse(
        {"metrics": {"accuracy": {"change": {"direction": HIB, "absolute": -0.1}}}}
    )
    ok, results = th.check(thresholds, {"accuracy": 0.9}, {"accuracy": 0.0})
    assert ok and results[0].outcome == "pass" and results[0].reason == ""


def _tfma_change(
    direction: str, absolute: float | None, relative: float | None, c: float, b: float
) -> bool:
    """TFMA 0.47's _check_threshold for a GenericChangeThreshold, statement for statement."""
    diff = c - b  # AddDiffMetrics: v - result[baseline_key]
    if absolute is not None:
        abs_result = diff <= absolute if direction == LIB else diff >= absolute
    else:
        abs_result = True
    if relative is not None:
        ratio = float("nan") if math.isclose(b, 0.0) else diff / b
        rel_result = ratio <= relative if direction == LIB else ratio >= relative
    else:
        rel_result = True
    return abs_result and rel_result


_GRID_VALUES = (0.0, -0.0, 0.5, -0.5, 1.0, 1e-12, 2.0, NAN, INF, -INF)
_GRID_BOUNDS = (None, -0.5, 0.0, 0.5, -INF, INF)


def test_every_combination_of_bounds_directions_and_values_matches_tfma() -> None:
    """The grid: 2 directions x 6 absolute x 6 relative x 10 candidates x 10 baselines."""
    checked = disagreements = 0
    failures: list[str] = []
    for direction in (HIB, LIB):
        for absolute in _GRID_BOUNDS:
            for relative in _GRID_BOUNDS:
                change = {"direction": direction, "absolute": absolute, "relative": relative}
                thresholds = th.parse({"metrics": {"auc": {"change": change}}})
                for c in _GRID_VALUES:
                    for b in _GRID_VALUES:
                        want = _tfma_change(direction, absolute, relative, c, b)
                        ok, results = th.check(thresholds, {"auc": c}, {"auc": b})
                        checked += 1
                        if ok != want or results[0].outcome != ("pass" if want else "fail"):
                            disagreements += 1
                            failures.append(f"{change} candidate={c} baseline={b}: want {want}")
    assert checked == 2 * 6 * 6 * 10 * 10
    assert disagreements == 0, failures[:10]


@pytest.mark.parametrize(
    ("doc", "has_baseline", "checkable"),
    [
        ({"accuracy": {"change": {"direction": HIB, "absolute": 0}}}, False, False),
        ({"accuracy": {"change": {"direction": HIB, "absolute": 0}}}, True, True),
        ({"accuracy": {"change": {"direction": HIB}}, "auc": {"value": {}}}, False, True),
        (
            {"accuracy": {"change": {"direction": HIB}}, "auc": {"change": {"direction": LIB}}},
            False,
            False,
        ),
        ({"accuracy": {"value": {"lower": 0.5}}}, False, True),
    ],
)
def test_without_a_baseline_change_thresholds_alone_leave_nothing_to_check(
    doc: dict[str, Any], has_baseline: bool, checkable: bool
) -> None:
    assert th.checkable(th.parse({"metrics": doc}), has_baseline) is checkable


def test_metric_missing_from_the_baseline_fails_its_change_threshold() -> None:
    thresholds = th.parse({"metrics": {"auc": {"change": {"direction": HIB, "absolute": -1}}}})
    ok, results = th.check(thresholds, {"auc": 0.9}, {"accuracy": 0.9})
    assert not ok
    assert results[0].reason == "metric not found for the baseline"


def test_every_threshold_is_reported_even_after_a_failure() -> None:
    thresholds = th.parse(
        {
            "metrics": {
                "accuracy": {"value": {"lower": 0.99}},
                "mse": {"value": {"upper": 1.0}, "change": {"direction": LIB, "absolute": 0}},
            }
        }
    )
    ok, results = th.check(thresholds, {"accuracy": 0.5, "mse": 0.4}, {"mse": 0.5})
    assert not ok
    assert [(r.metric, r.kind, r.outcome) for r in results] == [
        ("accuracy", "value", "fail"),
        ("mse", "value", "pass"),
        ("mse", "change", "pass"),
    ]


def test_yaml_and_json_files_give_the_same_thresholds(tmp_path: Path) -> None:
    doc = {
        "metrics": {
            "accuracy": {
                "value": {"lower": 0.7},
                "change": {"direction": "higher_is_better", "absolute": -0.01, "relative": -0.05},
            }
        }
    }
    (tmp_path / "t.json").write_text(json.dumps(doc))
    (tmp_path / "t.yaml").write_text(
        "metrics:\n"
        "  accuracy:\n"
        "    value: {lower: 0.7}\n"
        "    change: {direction: higher_is_better, absolute: -0.01, relative: -0.05}\n"
    )
    a = th.load(tmp_path / "t.json")
    b = th.load(tmp_path / "t.yaml")
    assert a.metrics == b.metrics
    assert a.metrics[0].change == th.ChangeThreshold("higher_is_better", -0.01, -0.05)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"metrics": {"acuracy": {"value": {"lower": 1}}}}, "unknown metric"),
        ({"metrics": {"accuracy": {"change": {"absolute": 0.1}}}}, "direction must be one of"),
        ({"metrics": {"accuracy": {"value": {"lower": "high"}}}}, "must be a number"),
        ({"metrics": {"accuracy": {"value": {"min": 0.5}}}}, "unknown key(s) min"),
        ({"metric": {}}, "unknown key(s) metric"),
        ([1, 2], "a thresholds file is a mapping"),
    ],
)
def test_malformed_thresholds_are_refused_with_the_reason(doc: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        th.parse(doc, "t.json")


def test_empty_thresholds_are_falsy_so_evaluate_can_refuse_them() -> None:
    assert not th.parse({"metrics": {}})
    assert not th.parse({"metrics": {"accuracy": {}}})
    assert th.parse({"metrics": {"accuracy": {"value": {}}}})


def test_missing_thresholds_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=str(tmp_path / "nope.json")):
        th.load(tmp_path / "nope.json")
