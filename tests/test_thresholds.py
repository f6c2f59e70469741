"""TFMA's threshold semantics, as a table, and the thresholds file format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pushgate import thresholds as th
from pushgate.errors import InputError, UsageError

HIB = "higher_is_better"
LIB = "lower_is_better"

# (threshold spec, candidate value, baseline value or None for "no baseline model", outcomes)
CASES: list[tuple[str, dict[str, Any], float | None, float | None, list[str]]] = [
    # value thresholds: inclusive bounds, a missing bound is unbounded
    ("lower bound met", {"value": {"lower": 0.7}}, 0.8, None, ["pass"]),
    ("lower bound equal passes", {"value": {"lower": 0.7}}, 0.7, None, ["pass"]),
    ("lower bound missed", {"value": {"lower": 0.7}}, 0.69, None, ["fail"]),
    ("upper bound equal passes", {"value": {"upper": 0.5}}, 0.5, None, ["pass"]),
    ("upper bound missed", {"value": {"upper": 0.5}}, 0.51, None, ["fail"]),
    ("inside both bounds", {"value": {"lower": 0.1, "upper": 0.2}}, 0.15, None, ["pass"]),
    ("below both bounds", {"value": {"lower": 0.1, "upper": 0.2}}, 0.05, None, ["fail"]),
    ("no bounds at all passes", {"value": {}}, -1e9, None, ["pass"]),
    ("NaN never passes", {"value": {"lower": 0.0}}, float("nan"), None, ["fail"]),
    ("missing candidate metric fails", {"value": {"lower": 0.0}}, None, None, ["fail"]),
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
    # a baseline of zero makes the ratio NaN: TFMA fails the change check, even absolute-only
    ("zero baseline fails", {"change": {"direction": HIB, "absolute": -1.0}}, 0.3, 0.0, ["fail"]),
    (
        "negative baseline ratio",
        {"change": {"direction": HIB, "relative": 0.1}},
        -0.9,
        -1.0,
        ["fail"],
    ),
    # no baseline model: change thresholds skipped, value thresholds still apply
    (
        "no baseline skips change",
        {"change": {"direction": HIB, "absolute": 0.5}},
        0.1,
        None,
        ["skipped"],
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
