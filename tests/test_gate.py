"""TFX's truth table, decided from real marker-file blessings, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import blessing, cli_json, numeric_dirs, tfx_model

B, N, V, A = "blessed", "not_blessed", "no_verdict", "absent"

TRUTH_TABLE = [
    # model blessing, infra blessing, pushed
    (A, A, True),
    (B, A, True),
    (N, A, False),
    (V, A, False),
    (N, B, False),
    (V, B, False),
    (N, N, False),
    (A, B, True),
    (B, B, True),
    (A, N, False),
    (A, V, False),
    (B, N, False),
    (B, V, False),
]


@pytest.mark.parametrize(("model_verdict", "infra_verdict", "pushed"), TRUTH_TABLE)
def test_push_follows_tfx_truth_table(
    tmp_path: Path, model_verdict: str, infra_verdict: str, pushed: bool
) -> None:
    model = tfx_model(tmp_path / "model")
    mb = blessing(tmp_path / "mb", "model", model_verdict)
    ib = blessing(tmp_path / "ib", "infra", infra_verdict)
    base = tmp_path / "serving"
    args: list[str | Path] = ["push", "--model", model, "--to", base]
    args += ["--model-blessing", mb] if mb else []
    args += ["--infra-blessing", ib] if ib else []
    code, out = cli_json(*args)
    assert code == 0
    assert out["pushed"] is pushed
    assert out["blessings"] == {"model_blessing": model_verdict, "infra_blessing": infra_verdict}
    if pushed:
        assert numeric_dirs(base) == [out["version"]]
        assert out["destination"] == str(base / out["version"])
    else:
        # "do not push" touches no destination at all
        assert not base.exists()
        assert out["version"] is None and out["destination"] is None and out["digest"] is None
        for verdict, kind in ((model_verdict, "model blessing"), (infra_verdict, "infra blessing")):
            if verdict == N:
                assert f"{kind} says NOT blessed" in out["reason"]
            if verdict == V:
                assert f"{kind} has no verdict" in out["reason"]


def test_no_blessing_at_all_pushes_with_a_warning(tmp_path: Path) -> None:
    from conftest import cli

    proc = cli("push", "--model", tfx_model(tmp_path / "m"), "--to", tmp_path / "s")
    assert proc.returncode == 0
    assert "nothing validated this model" in proc.stderr


@pytest.mark.parametrize("verdict", [N, V])
def test_force_reason_pushes_and_records_that_the_model_was_not_blessed(
    tmp_path: Path, verdict: str
) -> None:
    import json

    mb = blessing(tmp_path / "mb", "model", verdict)
    base = tmp_path / "s"
    code, out = cli_json(
        "push",
        "--model",
        tfx_model(tmp_path / "m"),
        "--model-blessing",
        mb,
        "--to",
        base,
        "--force-reason",
        "hotfix for incident 42",
    )
    assert code == 0 and out["pushed"] and out["forced"]
    assert out["blessings"]["model_blessing"] == verdict
    assert "hotfix for incident 42" in out["reason"]
    record = json.loads((base / ".pushgate/records" / f"{out['version']}.json").read_text())
    assert record["decision"]["forced"] is True
    assert record["decision"]["force_reason"] == "hotfix for incident 42"
    assert record["blessings"]["model_blessing"]["verdict"] == verdict


def test_both_markers_is_refused_as_ambiguous(tmp_path: Path) -> None:
    from conftest import cli

    mb = blessing(tmp_path / "mb", "model", B)
    assert mb is not None
    (mb / "NOT_BLESSED").touch()
    proc = cli(
        "push", "--model", tfx_model(tmp_path / "m"), "--model-blessing", mb, "--to", tmp_path / "s"
    )
    assert proc.returncode == 2
    assert str(mb) in proc.stderr and "ambiguous" in proc.stderr
