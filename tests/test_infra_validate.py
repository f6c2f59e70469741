"""``pushgate infra-validate``: real models in their real runtimes, in real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from conftest import cli
from models import (
    labelled_data,
    make_broken_saved_model,
    make_hanging_onnx_model,
    make_onnx_model,
    make_saved_model,
    write_examples_csv,
)
from pushgate.artifact import read_properties
from pushgate.blessing import BlessingKind, Verdict, read_blessing
from pushgate.errors import UsageError
from pushgate.infra_validator import InfraValidateRequest, InfraValidationResult, infra_validate


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("infra")
    x, y = labelled_data(5)
    return {
        "csv": write_examples_csv(root / "eval.csv", x, y),
        "saved_model": make_saved_model(root / "saved_model"),
        "other_signature": make_saved_model(root / "other_sig", signature_name="predict_only"),
        "onnx": make_onnx_model(root / "onnx" / "model.onnx"),
    }


def validate(model: Path, output: Path, **request: Any) -> InfraValidationResult:
    """Infra-validate ``model`` into ``output``; one try unless ``num_tries`` says otherwise."""
    request.setdefault("num_tries", 1)
    return infra_validate(InfraValidateRequest(model=model, output=output, **request))


def validate_cli(model: Path, output: Path, *args: str | Path) -> CompletedProcess[str]:
    """``pushgate infra-validate --model MODEL --output OUTPUT ARGS``."""
    return cli("infra-validate", "--model", model, "--output", output, *args)


def test_good_saved_model_answering_requests_is_blessed(assets: dict, tmp_path: Path) -> None:
    result = validate(
        assets["saved_model"], tmp_path / "ib", examples=assets["csv"], num_examples=3
    )
    assert result.blessed, result.to_text()
    assert result.requests == 3
    blessing = read_blessing(tmp_path / "ib", BlessingKind.INFRA)
    assert blessing.verdict is Verdict.BLESSED
    props = read_properties(tmp_path / "ib")
    assert props["blessed"] == 1 and props["has_model"] == 0
    assert not (tmp_path / "ib" / "stamped_model").exists()


def test_broken_saved_model_is_not_blessed_and_pushgate_survives(
    assets: dict, tmp_path: Path
) -> None:
    model = make_broken_saved_model(tmp_path / "broken")
    result = validate(model, tmp_path / "ib", deadline=120)
    assert not result.blessed
    assert len(result.attempts) == 1
    assert not result.attempts[0].timed_out
    assert result.attempts[0].error
    assert read_blessing(tmp_path / "ib", BlessingKind.INFRA).verdict is Verdict.NOT_BLESSED
    assert read_properties(tmp_path / "ib")["has_model"] == 0


def test_model_whose_load_hangs_is_cut_at_the_deadline_on_every_try(tmp_path: Path) -> None:
    model = make_hanging_onnx_model(tmp_path / "hang")
    result = validate(model, tmp_path / "ib", num_tries=2, deadline=6)
    assert not result.blessed
    assert [a.timed_out for a in result.attempts] == [True, True]
    assert "deadline" in result.attempts[0].error
    assert (tmp_path / "ib" / "INFRA_NOT_BLESSED").exists()


def test_missing_signature_is_not_blessed_and_names_the_signatures_there(
    assets: dict, tmp_path: Path
) -> None:
    result = validate(assets["other_signature"], tmp_path / "ib", examples=assets["csv"])
    assert not result.blessed
    assert "no signature 'serving_default'" in result.attempts[0].error
    assert "predict_only" in result.attempts[0].error
    # naming the signature it has makes the same model pass
    ok = validate(
        assets["other_signature"],
        tmp_path / "ib2",
        examples=assets["csv"],
        signatures=("predict_only",),
    )
    assert ok.blessed, ok.to_text()


def test_onnx_model_is_blessed_through_the_cli_with_json(assets: dict, tmp_path: Path) -> None:
    proc = validate_cli(
        assets["onnx"].parent,
        tmp_path / "ib",
        "--examples",
        assets["csv"],
        "--num-examples",
        "4",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["blessed"] is True
    assert doc["runtime"] == "onnx"
    assert doc["requests"] == 4
    assert doc["has_model"] is False
    assert (tmp_path / "ib" / "INFRA_BLESSED").exists()


def test_garbage_onnx_fails_every_try_and_the_cli_still_exits_0(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(b"not an onnx model")
    proc = validate_cli(tmp_path / "m", tmp_path / "ib", "--num-tries", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "not_blessed"
    assert [a["ok"] for a in doc["attempts"]] == [False, False, False]
    assert (tmp_path / "ib" / "INFRA_NOT_BLESSED").exists()


def test_reusing_an_output_directory_replaces_the_old_verdict(assets: dict, tmp_path: Path) -> None:
    out = tmp_path / "ib"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(b"garbage")
    assert not validate(tmp_path / "m", out).blessed
    assert validate(assets["onnx"], out).blessed
    assert read_blessing(out, BlessingKind.INFRA).verdict is Verdict.BLESSED
    assert not (out / "INFRA_NOT_BLESSED").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_tries": 0}, "--num-tries"),
        ({"deadline": 0}, "--deadline"),
        ({"make_warmup": True}, "give --examples"),
    ],
)
def test_malformed_requests_are_refused(
    assets: dict, tmp_path: Path, kwargs: dict, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        infra_validate(
            InfraValidateRequest(model=assets["saved_model"], output=tmp_path / "ib", **kwargs)
        )
    assert not (tmp_path / "ib").exists()


def test_missing_model_is_exit_2_naming_the_path(tmp_path: Path) -> None:
    proc = validate_cli(tmp_path / "nope", tmp_path / "ib")
    assert proc.returncode == 2
    assert str(tmp_path / "nope") in proc.stderr


def test_a_failed_run_leaves_no_earlier_verdict_in_the_output(tmp_path: Path) -> None:
    """An InfraBlessing directory that said blessed says nothing after a run that could not
    decide (here: the model is gone), so a stale INFRA_BLESSED is never pushed."""
    out = tmp_path / "ib"
    out.mkdir()
    (out / "INFRA_BLESSED").touch()
    proc = validate_cli(tmp_path / "gone", out)
    assert proc.returncode == 2, proc.stderr
    assert read_blessing(out, BlessingKind.INFRA).verdict is Verdict.NO_VERDICT
