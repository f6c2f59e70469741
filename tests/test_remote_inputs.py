# ruff: noqa: F811  (pytest fixtures imported from servers.py are parameters here)
"""Inputs and outputs as URLs: ``--model``, ``--model-blessing``, ``--infra-blessing`` and
``--pushed-model`` on real S3 / GCS / Azure servers (127.0.0.1), through the CLI with each cloud's
standard environment variables, and ``memory://`` through the Python API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import pushgate
from conftest import blessing, cli, cli_json, make_model_dir, tfx_model
from pushgate.destination import open_destination
from pushgate.journal import Journal
from pushgate.manifest import hash_file
from pushgate.pushed_model import write_pushed_model
from pushgate.remote import materialize, upload_tree
from pushgate.source import list_files
from servers import (  # noqa: F401  (fixtures)
    StoreURL,
    azurite_server,
    gcs_server,
    s3_server,
    store_url,
)


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hash_file(p) for p in root.rglob("*") if p.is_file()}


def upload_artifacts(tmp_path: Path, s: StoreURL, model_verdict: str = "blessed") -> str:
    """A TFX pipeline root in the bucket: Model (Format-Serving/), ModelBlessing, InfraBlessing
    with a warmup-stamped model. Returns the root URL."""
    root = f"{s.base.rsplit('/', 2)[0]}/pipeline"
    local = tmp_path / "pipeline"
    tfx_model(local / "Model", seed=1)
    make_model_dir(local / "Model" / "Format-TFMA", seed=3)  # TFMA's copy: never downloaded
    blessing(local / "ModelBlessing", "model", model_verdict)
    blessing(local / "InfraBlessing", "infra", "blessed")
    make_model_dir(local / "InfraBlessing" / "stamped_model", seed=2)
    for name in ("Model", "ModelBlessing", "InfraBlessing"):
        upload_tree(local / name, f"{root}/{name}", s.options)
    return root


@pytest.mark.parametrize("kind", ["s3", "gcs", "azure"])
def test_every_input_and_the_pushed_model_may_be_urls(
    kind: str, store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url(kind)
    root = upload_artifacts(tmp_path, s)
    code, out = cli_json(
        "push",
        "--model",
        f"{root}/Model",
        "--model-blessing",
        f"{root}/ModelBlessing",
        "--infra-blessing",
        f"{root}/InfraBlessing",
        "--pushed-model",
        f"{root}/PushedModel",
        "--to",
        s.base,
        "--no-progress",
        env=s.subprocess_env(),
    )
    assert code == 0, out
    assert out["pushed"] and out["model"] == f"{root}/Model/Format-Serving"
    assert out["pushed_model"] == f"{root}/PushedModel"
    # --model wins over the stamped model, and the warning names the URL, not a temp dir
    assert any(f"{root}/InfraBlessing/stamped_model" in w for w in out["warnings"]), out
    # the record names the URLs the user gave
    record = Journal(open_destination(s.base, s.options)).record(out["version"])
    assert record is not None
    assert record["source"]["path"] == f"{root}/Model/Format-Serving"
    assert record["source"]["artifact"] == f"{root}/Model"
    assert record["blessings"]["model_blessing"]["path"] == f"{root}/ModelBlessing"
    assert record["blessings"]["infra_blessing"]["verdict"] == "blessed"
    # the published version and the PushedModel artifact hold the model's exact bytes
    model = tmp_path / "pipeline" / "Model" / "Format-Serving"
    with materialize(f"{s.base}/{out['version']}", s.options) as local:
        assert tree(local) == tree(model)
    with materialize(f"{root}/PushedModel", s.options) as local:
        props = json.loads((local / ".pushgate-artifact.json").read_text())["properties"]
        assert props["pushed"] == 1 and props["pushed_version"] == out["version"]
        assert props["pushed_destination"] == f"{s.base}/{out['version']}"
        del_props = {k: v for k, v in tree(local).items() if k != ".pushgate-artifact.json"}
        assert del_props == tree(model)


def test_only_the_serving_folder_of_a_model_artifact_is_downloaded(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url("s3")
    root = upload_artifacts(tmp_path, s)
    prefer = ("Format-Serving", "serving_model_dir")
    with materialize(f"{root}/Model", s.options, prefer=prefer) as local:
        assert sorted(p.name for p in local.iterdir()) == ["Format-Serving"]
        assert tree(local / "Format-Serving") == tree(tmp_path / "pipeline/Model/Format-Serving")
    with materialize(f"{root}/InfraBlessing", s.options, prefer=prefer) as local:
        assert (local / "stamped_model").is_dir()  # no preferred folder there: everything


def test_stamped_model_comes_from_an_infra_blessing_url(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url("s3")
    root = upload_artifacts(tmp_path, s)
    dest = tmp_path / "serving"
    code, out = cli_json(
        "push",
        "--infra-blessing",
        f"{root}/InfraBlessing",
        "--model-blessing",
        f"{root}/ModelBlessing",
        "--to",
        dest,
        env=s.subprocess_env(),
    )
    assert code == 0, out
    assert out["model"] == f"{root}/InfraBlessing/stamped_model"
    stamped = tmp_path / "pipeline" / "InfraBlessing" / "stamped_model"
    assert tree(dest / out["version"]) == tree(stamped)


def test_refused_push_downloads_no_model_and_overwrites_the_pushed_model_url(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url("s3")
    root = upload_artifacts(tmp_path, s, model_verdict="not_blessed")
    # an earlier PushedModel there is replaced by one that says pushed=0 and holds no model
    old = list_files(make_model_dir(tmp_path / "old"))
    write_pushed_model(f"{root}/PushedModel", old, {"pushed": 1}, s.options)
    code, out = cli_json(
        "push",
        # nothing is stored here: a refused push must not even look
        "--model",
        f"{root}/NoSuchModel",
        "--model-blessing",
        f"{root}/ModelBlessing",
        "--pushed-model",
        f"{root}/PushedModel",
        "--to",
        s.base,
        env=s.subprocess_env(),
    )
    assert code == 0 and not out["pushed"], out  # a refusal is an answer, not an error
    assert out["reason"] == f"not pushed: model blessing says NOT blessed ({root}/ModelBlessing)"
    assert out["model"] == f"{root}/NoSuchModel"
    assert open_destination(s.base, s.options).numeric_children() == []
    with materialize(f"{root}/PushedModel", s.options) as local:
        assert sorted(tree(local)) == [".pushgate-artifact.json"]
        props = json.loads((local / ".pushgate-artifact.json").read_text())["properties"]
        assert props == {"pushed": 0}


def test_missing_url_inputs_are_named_with_a_hint(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url("s3")
    root = upload_artifacts(tmp_path, s)
    env = s.subprocess_env()
    proc = cli(
        "push",
        "--model",
        f"{root}/Model",
        "--model-blessing",
        f"{root}/ModelBlesing",  # a typo
        "--to",
        s.base,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"--model-blessing {root}/ModelBlesing: nothing is stored under this URL" in proc.stderr
    proc = cli(
        "push", "--model", f"{root}/Modl", "--model-blessing", f"{root}/ModelBlessing", "--to",
        s.base, env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"--model {root}/Modl: nothing is stored under this URL" in proc.stderr
    assert "pushgate-input-" not in proc.stderr  # never a temporary directory's name
    assert open_destination(s.base, s.options).numeric_children() == []


def test_memory_urls_work_in_one_process(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "model", seed=4)
    upload_tree(model, "memory://pipeline/Model")
    upload_tree(blessing(tmp_path / "mb", "model", "blessed") or tmp_path, "memory://pipeline/MB")
    result = pushgate.push(
        model="memory://pipeline/Model",
        model_blessing="memory://pipeline/MB",
        to=str(tmp_path / "serving"),
        pushed_model="memory://pipeline/Pushed",
    )
    assert result.pushed and result.model == "memory://pipeline/Model"
    assert tree(tmp_path / "serving" / str(result.version)) == tree(model)
    with materialize("memory://pipeline/Pushed") as local:
        assert set(tree(local)) == set(tree(model)) | {".pushgate-artifact.json"}
