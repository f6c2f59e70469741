"""``pushgate evaluate`` with real models run in their real runtimes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import cli
from models import (
    labelled_data,
    make_onnx_model,
    make_saved_model,
    make_tfx_style_saved_model,
    reference_metrics,
    reference_predict,
    write_examples_artifact,
    write_examples_csv,
)
from pushgate.api import PushRequest, push
from pushgate.artifact import read_properties
from pushgate.blessing import BlessingKind, Verdict, read_blessing
from pushgate.errors import UsageError
from pushgate.evaluate import EvaluateRequest, evaluate


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("evaluate")
    x, y = labelled_data(80)
    return {
        "x": x,
        "y": y,
        "csv": write_examples_csv(root / "eval.csv", x, y),
        "artifact": write_examples_artifact(root / "Examples", x, y),
        "saved_model": make_saved_model(root / "saved_model"),
        "tfx_model": make_tfx_style_saved_model(root / "tfx_model"),
        "onnx0": make_onnx_model(root / "onnx0" / "model.onnx", seed=0),
        "onnx1": make_onnx_model(root / "onnx1" / "model.onnx", seed=1),
    }


def thresholds_file(path: Path, doc: dict[str, object]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def assert_metrics_match(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k


def test_metrics_from_csv_with_a_saved_model_match_an_independent_computation(
    data: dict, tmp_path: Path
) -> None:
    th = thresholds_file(tmp_path / "t.json", {"metrics": {"accuracy": {"value": {"lower": 0.5}}}})
    result = evaluate(
        EvaluateRequest(
            output=tmp_path / "blessing",
            thresholds=th,
            model=data["saved_model"],
            examples=data["csv"],
        )
    )
    want = reference_metrics(data["y"], reference_predict(data["x"]), "classification")
    assert_metrics_match(result.candidate_metrics, want)
    assert result.blessed == (want["accuracy"] >= 0.5) and result.blessed
    blessing = read_blessing(tmp_path / "blessing", BlessingKind.MODEL)
    assert blessing.verdict is Verdict.BLESSED
    assert blessing.properties is not None
    assert blessing.properties["current_model"] == str(data["saved_model"])
    assert blessing.properties["baseline_model"] == ""
    report = json.loads((tmp_path / "blessing" / "evaluation.json").read_text())
    assert report["thresholds"][0]["metric"] == "accuracy"
    assert report["thresholds"][0]["outcome"] == "pass"
    assert "accuracy" in (tmp_path / "blessing" / "evaluation.txt").read_text()


def test_metrics_from_tfx_examples_with_an_onnx_model_match_an_independent_computation(
    data: dict, tmp_path: Path
) -> None:
    th = thresholds_file(tmp_path / "t.json", {"metrics": {"auc": {"value": {"lower": 0.99}}}})
    result = evaluate(
        EvaluateRequest(
            output=tmp_path / "blessing",
            thresholds=th,
            model=data["onnx0"],
            examples=data["artifact"],
        )
    )
    want = reference_metrics(data["y"], reference_predict(data["x"]), "classification")
    assert_metrics_match(result.candidate_metrics, want)
    assert want["auc"] < 0.99  # the data is noisy: this threshold must fail
    assert not result.blessed
    assert (tmp_path / "blessing" / "NOT_BLESSED").exists()
    assert not (tmp_path / "blessing" / "BLESSED").exists()


def test_tfx_style_model_is_fed_the_artifacts_own_serialized_examples(
    data: dict, tmp_path: Path
) -> None:
    th = thresholds_file(tmp_path / "t.json", {"metrics": {"accuracy": {"value": {"lower": 0.5}}}})
    result = evaluate(
        EvaluateRequest(
            output=tmp_path / "blessing",
            thresholds=th,
            model=data["tfx_model"],
            examples=data["artifact"],
        )
    )
    want = reference_metrics(data["y"], reference_predict(data["x"]), "classification")
    assert_metrics_match(result.candidate_metrics, want)
    assert result.blessed


def test_baseline_is_the_version_serving_now_at_a_destination(data: dict, tmp_path: Path) -> None:
    base = tmp_path / "serving"
    pushed = push(PushRequest(model=data["onnx1"].parent, destinations=(str(base),)))
    assert pushed.pushed
    th = thresholds_file(
        tmp_path / "t.json",
        {"metrics": {"auc": {"change": {"direction": "higher_is_better", "absolute": 0.0}}}},
    )
    result = evaluate(
        EvaluateRequest(
            output=tmp_path / "blessing",
            thresholds=th,
            model=data["onnx0"],
            examples=data["csv"],
            baseline_from=str(base),
        )
    )
    cand = reference_metrics(data["y"], reference_predict(data["x"], seed=0), "classification")
    base_m = reference_metrics(data["y"], reference_predict(data["x"], seed=1), "classification")
    assert result.baseline_metrics is not None
    assert_metrics_match(result.baseline_metrics, base_m)
    assert result.baseline_version == pushed.version
    assert result.blessed == (cand["auc"] >= base_m["auc"])
    assert result.blessed  # the labels follow model 0, so it beats model 1
    props = read_properties(tmp_path / "blessing")
    assert props["baseline_model"] == f"{base}/{pushed.version}"
    assert props["baseline_version"] == pushed.version

    # The other way round, the worse model is not blessed against the better one.
    worse = evaluate(
        EvaluateRequest(
            output=tmp_path / "blessing2",
            thresholds=th,
            model=data["onnx1"],
            examples=data["csv"],
            baseline_model=data["onnx0"],
        )
    )
    assert not worse.blessed
    assert [c.outcome for c in worse.checks] == ["fail"]


def test_first_model_with_no_published_version_skips_change_thresholds(
    data: dict, tmp_path: Path
) -> None:
    (tmp_path / "serving").mkdir()
    th = thresholds_file(
        tmp_path / "t.json",
        {
            "metrics": {
                "accuracy": {
                    "value": {"lower": 0.5},
                    "change": {"direction": "higher_is_better", "absolute": 0.5},
                }
            }
        },
    )
    result = evaluate(
        EvaluateRequest(
            output=tmp_path / "blessing",
            thresholds=th,
            model=data["onnx0"],
            examples=data["csv"],
            baseline_from=str(tmp_path / "serving"),
        )
    )
    assert [c.outcome for c in result.checks] == ["pass", "skipped"]
    assert result.blessed
    assert result.baseline_metrics is None
    assert any("no version is published" in n for n in result.notes)


def test_no_thresholds_is_refused_and_writes_no_blessing(data: dict, tmp_path: Path) -> None:
    th = thresholds_file(tmp_path / "t.json", {"metrics": {}})
    with pytest.raises(UsageError, match="sets no thresholds"):
        evaluate(
            EvaluateRequest(
                output=tmp_path / "blessing",
                thresholds=th,
                model=data["onnx0"],
                examples=data["csv"],
            )
        )
    assert not (tmp_path / "blessing").exists()


def test_cli_refuses_no_thresholds_with_exit_2_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"accuracy": 0.9}')
    th = thresholds_file(tmp_path / "t.json", {"metrics": {"accuracy": {}}})
    proc = cli(
        "evaluate",
        "--candidate-metrics",
        tmp_path / "m.json",
        "--thresholds",
        th,
        "--output",
        tmp_path / "blessing",
    )
    assert proc.returncode == 2, proc.stderr
    assert "sets no thresholds" in proc.stderr
    assert not (tmp_path / "blessing").exists()


def test_cli_json_reports_every_threshold_and_a_missing_metric_fails(tmp_path: Path) -> None:
    (tmp_path / "cand.json").write_text('{"metrics": {"accuracy": 0.91, "auc": 0.80}}')
    (tmp_path / "base.json").write_text('{"accuracy": 0.90, "auc": 0.85}')
    th = tmp_path / "t.yaml"
    th.write_text(
        "metrics:\n"
        "  accuracy:\n"
        "    value: {lower: 0.9}\n"
        "    change: {direction: higher_is_better, absolute: 0}\n"
        "  auc:\n"
        "    change: {direction: higher_is_better, relative: -0.05}\n"
        "  mse:\n"
        "    value: {upper: 1.0}\n"
    )
    proc = cli(
        "evaluate",
        "--candidate-metrics",
        tmp_path / "cand.json",
        "--baseline-metrics",
        tmp_path / "base.json",
        "--thresholds",
        th,
        "--output",
        tmp_path / "blessing",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    rows = [(t["metric"], t["kind"], t["outcome"]) for t in doc["thresholds"]]
    assert rows == [
        ("accuracy", "value", "pass"),
        ("accuracy", "change", "pass"),
        ("auc", "change", "fail"),  # (0.80 - 0.85) / 0.85 < -0.05
        ("mse", "value", "fail"),  # not computed: missing metric fails
    ]
    assert doc["thresholds"][3]["reason"] == "metric not found for the candidate"
    assert doc["verdict"] == "not_blessed"
    assert doc["candidate_metrics"]["auc"] == 0.80
    assert (tmp_path / "blessing" / "NOT_BLESSED").exists()


def test_examples_that_do_not_fit_the_model_are_a_validation_error(
    data: dict, tmp_path: Path
) -> None:
    (tmp_path / "e.csv").write_text("a,b,c,label\n1,2,3,0\n4,5,6,1\n")
    th = thresholds_file(tmp_path / "t.json", {"metrics": {"accuracy": {"value": {"lower": 0}}}})
    proc = cli(
        "evaluate",
        "--model",
        data["onnx0"],
        "--examples",
        tmp_path / "e.csv",
        "--thresholds",
        th,
        "--output",
        tmp_path / "blessing",
    )
    assert proc.returncode == 1, proc.stderr
    assert "takes 2 features per example" in proc.stderr
    assert "--features" in proc.stderr
    assert not (tmp_path / "blessing").exists()
    # choosing the features the model takes makes it run
    assert (
        cli(
            "evaluate",
            "--model",
            data["onnx0"],
            "--examples",
            tmp_path / "e.csv",
            "--features",
            "a,c",
            "--thresholds",
            th,
            "--output",
            tmp_path / "blessing",
        ).returncode
        == 0
    )
    report = json.loads((tmp_path / "blessing" / "evaluation.json").read_text())
    assert np.isfinite(report["candidate_metrics"]["log_loss"])
