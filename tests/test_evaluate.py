"""``pushgate evaluate`` with real models run in their real runtimes."""

from __future__ import annotations

import json
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

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
from pushgate.errors import UsageError, ValidationError
from pushgate.evaluator import EvaluateRequest, EvaluationResult, evaluate


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


def thresholds_file(tmp_path: Path, metrics: dict[str, object]) -> Path:
    """``tmp_path/t.json`` setting these thresholds: ``{"metrics": metrics}``."""
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"metrics": metrics}))
    return path


def evaluate_into(tmp_path: Path, metrics: dict[str, object], **request: Any) -> EvaluationResult:
    """Evaluate against the thresholds ``{"metrics": metrics}`` (written to ``tmp_path/t.json``),
    writing the ModelBlessing to ``tmp_path/blessing`` unless ``output`` says otherwise."""
    request.setdefault("output", tmp_path / "blessing")
    return evaluate(EvaluateRequest(thresholds=thresholds_file(tmp_path, metrics), **request))


def evaluate_cli(tmp_path: Path, thresholds: Path, *args: str | Path) -> CompletedProcess[str]:
    """``pushgate evaluate ARGS --thresholds FILE --output tmp_path/blessing``."""
    return cli("evaluate", *args, "--thresholds", thresholds, "--output", tmp_path / "blessing")


def assert_metrics_match(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k


def assert_reference_metrics(got: dict[str, float], data: dict, seed: int = 0) -> dict[str, float]:
    """``got`` matches the metrics computed independently for model ``seed``; returns those."""
    want = reference_metrics(data["y"], reference_predict(data["x"], seed=seed), "classification")
    assert_metrics_match(got, want)
    return want


def test_metrics_from_csv_with_a_saved_model_match_an_independent_computation(
    data: dict, tmp_path: Path
) -> None:
    result = evaluate_into(
        tmp_path,
        {"accuracy": {"value": {"lower": 0.5}}},
        model=data["saved_model"],
        examples=data["csv"],
    )
    want = assert_reference_metrics(result.candidate_metrics, data)
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
    result = evaluate_into(
        tmp_path,
        {"auc": {"value": {"lower": 0.99}}},
        model=data["onnx0"],
        examples=data["artifact"],
    )
    want = assert_reference_metrics(result.candidate_metrics, data)
    assert want["auc"] < 0.99  # the data is noisy: this threshold must fail
    assert not result.blessed
    assert (tmp_path / "blessing" / "NOT_BLESSED").exists()
    assert not (tmp_path / "blessing" / "BLESSED").exists()


def test_tfx_style_model_is_fed_the_artifacts_own_serialized_examples(
    data: dict, tmp_path: Path
) -> None:
    result = evaluate_into(
        tmp_path,
        {"accuracy": {"value": {"lower": 0.5}}},
        model=data["tfx_model"],
        examples=data["artifact"],
    )
    assert_reference_metrics(result.candidate_metrics, data)
    assert result.blessed


def test_baseline_is_the_version_serving_now_at_a_destination(data: dict, tmp_path: Path) -> None:
    base = tmp_path / "serving"
    pushed = push(PushRequest(model=data["onnx1"].parent, destinations=(str(base),)))
    assert pushed.pushed
    th = {"auc": {"change": {"direction": "higher_is_better", "absolute": 0.0}}}
    result = evaluate_into(
        tmp_path, th, model=data["onnx0"], examples=data["csv"], baseline_from=str(base)
    )
    cand = reference_metrics(data["y"], reference_predict(data["x"], seed=0), "classification")
    assert result.baseline_metrics is not None
    base_m = assert_reference_metrics(result.baseline_metrics, data, seed=1)
    assert result.baseline_version == pushed.version
    assert result.blessed == (cand["auc"] >= base_m["auc"])
    assert result.blessed  # the labels follow model 0, so it beats model 1
    props = read_properties(tmp_path / "blessing")
    assert props["baseline_model"] == f"{base}/{pushed.version}"
    assert props["baseline_version"] == pushed.version

    # The other way round, the worse model is not blessed against the better one.
    worse = evaluate_into(
        tmp_path,
        th,
        output=tmp_path / "blessing2",
        model=data["onnx1"],
        examples=data["csv"],
        baseline_model=data["onnx0"],
    )
    assert not worse.blessed
    assert [c.outcome for c in worse.checks] == ["fail"]


def test_first_model_with_no_published_version_skips_change_thresholds(
    data: dict, tmp_path: Path
) -> None:
    (tmp_path / "serving").mkdir()
    result = evaluate_into(
        tmp_path,
        {
            "accuracy": {
                "value": {"lower": 0.5},
                "change": {"direction": "higher_is_better", "absolute": 0.5},
            }
        },
        model=data["onnx0"],
        examples=data["csv"],
        baseline_from=str(tmp_path / "serving"),
    )
    assert [c.outcome for c in result.checks] == ["pass", "skipped"]
    assert result.blessed
    assert result.baseline_metrics is None
    assert any("no version is published" in n for n in result.notes)


def test_no_thresholds_is_refused_and_writes_no_blessing(data: dict, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="sets no thresholds"):
        evaluate_into(tmp_path, {}, model=data["onnx0"], examples=data["csv"])
    assert not (tmp_path / "blessing").exists()


def test_cli_refuses_no_thresholds_with_exit_2_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"accuracy": 0.9}')
    th = thresholds_file(tmp_path, {"accuracy": {}})
    proc = evaluate_cli(tmp_path, th, "--candidate-metrics", tmp_path / "m.json")
    assert proc.returncode == 2, proc.stderr
    assert "sets no thresholds" in proc.stderr
    assert not (tmp_path / "blessing").exists()


def test_cli_change_thresholds_only_and_no_baseline_exit_2_and_write_no_verdict(
    tmp_path: Path,
) -> None:
    """Issue 9, item 19: TFX drops change thresholds without a baseline, writes no verdict and
    does not push; pushgate used to write BLESSED having checked nothing."""
    (tmp_path / "m.json").write_text('{"accuracy": 0.9}')
    th = thresholds_file(
        tmp_path, {"accuracy": {"change": {"direction": "higher_is_better", "absolute": -0.1}}}
    )
    proc = evaluate_cli(tmp_path, th, "--candidate-metrics", tmp_path / "m.json")
    assert proc.returncode == 2, proc.stderr
    assert "only change thresholds" in proc.stderr
    assert "--baseline-model" in proc.stderr and "value bound" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "blessing").exists()


def test_change_thresholds_only_and_nothing_published_yet_is_refused_before_running_the_model(
    data: dict, tmp_path: Path
) -> None:
    (tmp_path / "serving").mkdir()
    with pytest.raises(UsageError, match="no version is published at"):
        evaluate_into(
            tmp_path,
            {"auc": {"change": {"direction": "higher_is_better", "relative": -0.05}}},
            model=tmp_path / "no-such-model",  # never run: refused before
            examples=data["csv"],
            baseline_from=str(tmp_path / "serving"),
        )
    assert not (tmp_path / "blessing").exists()


def test_zero_baseline_with_an_absolute_change_bound_is_blessed_like_tfma(tmp_path: Path) -> None:
    """Issue 9, item 18, end to end: the ModelBlessing says BLESSED where TFMA passes."""
    (tmp_path / "cand.json").write_text('{"accuracy": 0.9}')
    (tmp_path / "base.json").write_text('{"accuracy": 0.0}')
    result = evaluate_into(
        tmp_path,
        {"accuracy": {"change": {"direction": "higher_is_better", "absolute": -0.1}}},
        candidate_metrics=tmp_path / "cand.json",
        baseline_metrics=tmp_path / "base.json",
    )
    assert result.blessed
    assert read_blessing(tmp_path / "blessing", BlessingKind.MODEL).verdict is Verdict.BLESSED


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
    proc = evaluate_cli(
        tmp_path,
        th,
        "--candidate-metrics",
        tmp_path / "cand.json",
        "--baseline-metrics",
        tmp_path / "base.json",
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
    th = thresholds_file(tmp_path, {"accuracy": {"value": {"lower": 0}}})
    model_and_examples = ("--model", data["onnx0"], "--examples", tmp_path / "e.csv")
    proc = evaluate_cli(tmp_path, th, *model_and_examples)
    assert proc.returncode == 1, proc.stderr
    assert "takes 2 features per example" in proc.stderr
    assert "--features" in proc.stderr
    assert not (tmp_path / "blessing").exists()
    # choosing the features the model takes makes it run
    assert evaluate_cli(tmp_path, th, *model_and_examples, "--features", "a,c").returncode == 0
    report = json.loads((tmp_path / "blessing" / "evaluation.json").read_text())
    assert np.isfinite(report["candidate_metrics"]["log_loss"])


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """1000 examples: several batches of any small size, as CSV and as a TFX Examples artifact."""
    root = tmp_path_factory.mktemp("streaming")
    x, y = labelled_data(1000, seed=11)
    return {
        "x": x,
        "y": y,
        "csv": write_examples_csv(root / "eval.csv", x, y),
        "artifact": write_examples_artifact(root / "Examples", x, y),
    }


@pytest.mark.parametrize(
    ("model", "examples"),
    [("saved_model", "artifact"), ("saved_model", "csv"), ("onnx0", "artifact"), ("onnx0", "csv")],
)
def test_streaming_in_small_batches_equals_the_whole_file_at_once(
    data: dict, big: dict, tmp_path: Path, model: str, examples: str
) -> None:
    """Issue 13: batches of 7 (143 of them, several in flight on the runtime's threads) give the
    metrics of one batch holding every example, and both match an independent computation."""
    spec = {"auc": {"value": {"lower": 0.5}}, "log_loss": {"value": {"upper": 10.0}}}
    results = {
        size: evaluate_into(
            tmp_path,
            spec,
            output=tmp_path / f"blessing-{size}",
            model=data[model],
            examples=big[examples],
            batch_size=size,
        )
        for size in (7, 100_000)
    }
    small, whole = results[7], results[100_000]
    assert set(small.candidate_metrics) == set(whole.candidate_metrics)
    for k, v in whole.candidate_metrics.items():
        assert small.candidate_metrics[k] == pytest.approx(v, rel=1e-12, abs=1e-15), k
    assert small.candidate_metrics["example_count"] == 1000
    assert small.blessed == whole.blessed
    assert [c.outcome for c in small.checks] == [c.outcome for c in whole.checks]
    want = reference_metrics(big["y"], reference_predict(big["x"], seed=0), "classification")
    assert_metrics_match(small.candidate_metrics, want)


def test_a_corrupt_tfrecord_stops_evaluate_with_exit_2_naming_the_file_and_record(
    data: dict, tmp_path: Path
) -> None:
    import gzip

    x, y = labelled_data(600, seed=5)
    root = write_examples_artifact(tmp_path / "Examples", x, y)
    shard = sorted((root / "Split-eval").iterdir())[1]
    raw = bytearray(gzip.decompress(shard.read_bytes()))
    raw[len(raw) // 2] ^= 0x08  # a byte in the middle of the second shard
    shard.write_bytes(gzip.compress(bytes(raw)))
    th = thresholds_file(tmp_path, {"accuracy": {"value": {"lower": 0}}})
    proc = evaluate_cli(
        tmp_path, th, "--model", data["onnx0"], "--examples", root, "--batch-size", "16"
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{shard}: record " in proc.stderr and "is corrupt" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "blessing").exists()


def test_a_model_failing_mid_stream_names_the_examples_it_failed_on(
    data: dict, big: dict, tmp_path: Path
) -> None:
    lines = big["csv"].read_text().splitlines()
    lines[501] = "oops," + lines[501].split(",", 1)[1]  # example 500: a feature that is no number
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationError, match=r"examples 496\.\.511 .*not a number"):
        evaluate_into(
            tmp_path,
            {"accuracy": {"value": {"lower": 0}}},
            model=data["onnx0"],
            examples=tmp_path / "e.csv",
            batch_size=16,
        )
    assert not (tmp_path / "blessing").exists()


def test_a_model_that_hangs_is_killed_at_the_deadline(data: dict, tmp_path: Path) -> None:
    import time

    from models import make_hanging_onnx_model

    model = make_hanging_onnx_model(tmp_path / "hang")
    start = time.monotonic()
    with pytest.raises(ValidationError, match="deadline of 3 s"):
        evaluate_into(
            tmp_path,
            {"accuracy": {"value": {"lower": 0}}},
            model=model,
            examples=data["csv"],
            deadline=3.0,
        )
    assert time.monotonic() - start < 30
    assert not (tmp_path / "blessing").exists()


def test_a_failed_run_leaves_no_earlier_verdict_in_the_output(tmp_path: Path) -> None:
    """A stale BLESSED from an earlier run must not survive a run that fails: it would be
    pushed as this run's verdict (fail closed)."""
    (tmp_path / "m.json").write_text('{"accuracy": 0.9}')
    ok = thresholds_file(tmp_path, {"accuracy": {"value": {"lower": 0.5}}})
    assert evaluate_cli(tmp_path, ok, "--candidate-metrics", tmp_path / "m.json").returncode == 0
    assert read_blessing(tmp_path / "blessing", BlessingKind.MODEL).verdict is Verdict.BLESSED
    (tmp_path / "m.json").write_text("not json")
    proc = evaluate_cli(tmp_path, ok, "--candidate-metrics", tmp_path / "m.json")
    assert proc.returncode == 2, proc.stderr
    assert read_blessing(tmp_path / "blessing", BlessingKind.MODEL).verdict is Verdict.NO_VERDICT
