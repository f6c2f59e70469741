"""The whole flow, through the CLI as a user runs it (the README shows the same commands).

Evaluator -> InfraValidator (with warmup) -> Pusher: a new model is evaluated against the version
serving now, infra-validated with warmup requests made, pushed from the InfraBlessing without
``--model``, and the pushed version loads and answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from conftest import cli
from models import (
    labelled_data,
    make_saved_model,
    predict_saved_model,
    reference_predict,
    write_examples_artifact,
)


def run_json(*args: str | Path) -> dict[str, Any]:
    proc = cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def test_evaluate_infra_validate_with_warmup_then_push_the_stamped_model(tmp_path: Path) -> None:
    serving = tmp_path / "serving" / "my_model"
    x, y = labelled_data(60, seed=5)
    examples = write_examples_artifact(tmp_path / "Examples", x, y)

    # The version serving now: an older model (seed 1).
    old = make_saved_model(tmp_path / "old" / "Format-Serving", seed=1).parent
    first = run_json("push", "--model", old, "--to", serving)
    assert first["pushed"] is True

    # The candidate, as a TFX Trainer's Model artifact.
    candidate = make_saved_model(tmp_path / "trainer" / "Format-Serving", seed=0).parent
    (tmp_path / "thresholds.yaml").write_text(
        "metrics:\n"
        "  accuracy:\n"
        "    value: {lower: 0.6}\n"
        "    change: {direction: higher_is_better, absolute: -0.01}\n"
        "  log_loss:\n"
        "    change: {direction: lower_is_better, relative: 0.1}\n"
    )
    evaluation = run_json(
        "evaluate",
        "--model",
        candidate,
        "--examples",
        examples,
        "--baseline-from",
        serving,
        "--thresholds",
        tmp_path / "thresholds.yaml",
        "--output",
        tmp_path / "Evaluator" / "blessing",
    )
    assert evaluation["baseline_version"] == first["version"]
    assert [t["outcome"] for t in evaluation["thresholds"]] == ["pass", "pass", "pass"]
    assert evaluation["verdict"] == "blessed"

    infra = run_json(
        "infra-validate",
        "--model",
        candidate,
        "--examples",
        examples,
        "--num-examples",
        "4",
        "--make-warmup",
        "--num-tries",
        "2",
        "--output",
        tmp_path / "InfraValidator" / "blessing",
    )
    assert infra["verdict"] == "blessed"
    assert infra["has_model"] is True and infra["warmup_records"] == 4

    pushed = run_json(
        "push",
        "--model-blessing",
        tmp_path / "Evaluator" / "blessing",
        "--infra-blessing",
        tmp_path / "InfraValidator" / "blessing",
        "--to",
        serving,
    )
    assert pushed["pushed"] is True
    assert int(pushed["version"]) > int(first["version"])
    version_dir = serving / pushed["version"]
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").is_file()
    np.testing.assert_allclose(
        predict_saved_model(version_dir, x), reference_predict(x, seed=0), rtol=1e-6
    )
