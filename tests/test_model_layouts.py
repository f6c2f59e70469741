"""What pushgate accepts as a model (issue 9 items 9, 11, 12, 15): only servable layouts (or
--any-model), never a blessing; empty directories pushed and recorded; links to directories
inside the model pushed as their content, link cycles refused by name.

Every push goes through the real CLI on real directories; the SavedModel test uses TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import blessing, cli, cli_json, make_model_dir, numeric_dirs, tfx_model
from pushgate.blessing import BlessingKind, write_blessing
from pushgate.model_layout import LAYOUTS, UNRECOGNISED, check_servable, entry_file
from servers import StoreURL

# -- item 9: only servable layouts ---------------------------------------------------------------


def _record(base: Path, version: str) -> dict[str, Any]:
    return json.loads((base / ".pushgate" / "records" / f"{version}.json").read_text())


def _refused(proc: subprocess.CompletedProcess[str], *names: str) -> None:
    """Exit 2, no traceback, and each of ``names`` in the message."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    for name in names:
        assert name in proc.stderr, proc.stderr


def _layout_dir(root: Path, entry: str) -> Path:
    """A version directory holding ``entry`` (a file, or a directory when it ends in /)."""
    root.mkdir(parents=True)
    if entry.endswith("/"):
        make_model_dir(root / entry.rstrip("/"))
    else:
        (root / entry).write_bytes(b"model bytes of " + entry.encode())
    return root


CASES = [(layout.kind, name) for layout in LAYOUTS for name in layout.entries] + [
    ("torchscript", "resnet50_traced.pt"),
    ("onnx", "classifier.onnx"),
]


@pytest.mark.parametrize(("kind", "entry"), CASES, ids=[f"{k}:{e}" for k, e in CASES])
def test_every_known_layout_is_pushed_and_named(tmp_path: Path, kind: str, entry: str) -> None:
    model = _layout_dir(tmp_path / "m", entry)
    code, out = cli_json("push", "--model", model, "--to", tmp_path / "s")
    assert code == 0, out
    assert out["model_kind"] == kind and out["any_model"] is False
    source = _record(tmp_path / "s", out["version"])["source"]
    assert source["kind"] == kind and source["any_model"] is False
    assert check_servable(model) == kind and entry_file(model) == entry.rstrip("/")


def test_a_real_onnx_model_is_an_onnx_layout(tmp_path: Path) -> None:
    from models import make_onnx_model

    model = make_onnx_model(tmp_path / "triton" / "1" / "model.onnx").parent
    code, out = cli_json("push", "--model", model, "--to", tmp_path / "s")
    assert code == 0 and out["model_kind"] == "onnx"


def _format_tfma_only(root: Path) -> Path:
    make_model_dir(root / "Format-TFMA")
    return root


def _custom_folder(root: Path) -> Path:
    (root / "my_export").mkdir(parents=True)
    (root / "my_export" / "weights.h5").write_bytes(b"keras weights")
    (root / "notes.txt").write_text("trained on monday\n")
    return root


def _no_model_file(root: Path) -> Path:
    (root / "variables").mkdir(parents=True)
    (root / "variables" / "variables.index").write_bytes(b"index")
    (root / "model.json").write_text("{}")  # too generic a name to be taken for a model
    return root


NOT_SERVABLE = {
    "format-tfma-only": (_format_tfma_only, ["Format-TFMA/", "Format-Serving"]),
    "custom-folder": (_custom_folder, ["my_export/", "notes.txt"]),
    "no-model-file": (_no_model_file, ["model.json", "variables/"]),
}


@pytest.mark.parametrize("case", sorted(NOT_SERVABLE))
def test_a_directory_with_no_servable_layout_is_refused_before_any_destination(
    tmp_path: Path, case: str
) -> None:
    make, found = NOT_SERVABLE[case]
    model = make(tmp_path / "artifact")
    proc = cli("push", "--model", model, "--to", tmp_path / "s")
    # what it found, what it expected, and the way out
    _refused(proc, str(model), *found, "saved_model.pb", "model.onnx", "--any-model")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("case", sorted(NOT_SERVABLE))
def test_any_model_pushes_it_anyway_and_is_recorded(tmp_path: Path, case: str) -> None:
    make, _ = NOT_SERVABLE[case]
    model = make(tmp_path / "artifact")
    base = tmp_path / "s"
    code, out = cli_json("push", "--model", model, "--to", base, "--any-model")
    assert code == 0, out
    assert out["any_model"] is True and out["model_kind"] == UNRECOGNISED
    source = _record(base, out["version"])["source"]
    assert source["any_model"] is True and source["kind"] == UNRECOGNISED
    proc = cli("push", "--model", model, "--to", base, "--any-model", "--allow-duplicate")
    assert proc.returncode == 0 and "--any-model" in proc.stdout  # the text output says so too


def test_a_servable_model_pushed_with_any_model_keeps_its_kind(tmp_path: Path) -> None:
    code, out = cli_json(
        "push", "--model", tfx_model(tmp_path / "m"), "--to", tmp_path / "s", "--any-model"
    )
    assert code == 0 and out["model_kind"] == "tf-saved-model" and out["any_model"] is True


def _model_blessing_dir(tmp_path: Path) -> Path:
    b = blessing(tmp_path / "ModelBlessing", "model", "blessed")
    assert b is not None
    return b


def _infra_blessing_with_stamped_model(tmp_path: Path) -> Path:
    b = blessing(tmp_path / "InfraBlessing", "infra", "blessed")
    assert b is not None
    make_model_dir(b / "stamped_model")  # a model inside does not make the blessing one
    return b


def _pushgate_blessing_properties_only(tmp_path: Path) -> Path:
    b = tmp_path / "Evaluated"
    write_blessing(b, BlessingKind.MODEL, True)
    (b / "BLESSED").unlink()  # only pushgate's properties file says what it is
    (b / "saved_model.pb").write_bytes(b"not really")
    return b


BLESSINGS = {
    "model-blessing": (_model_blessing_dir, "BLESSED"),
    "infra-blessing": (_infra_blessing_with_stamped_model, "INFRA_BLESSED"),
    "pushgate-properties": (_pushgate_blessing_properties_only, "ModelBlessing"),
}


@pytest.mark.parametrize("any_model", [False, True])
@pytest.mark.parametrize("case", sorted(BLESSINGS))
def test_a_blessing_directory_is_never_a_model(tmp_path: Path, case: str, any_model: bool) -> None:
    make, why = BLESSINGS[case]
    path = make(tmp_path)
    flags = ["--any-model"] if any_model else []
    proc = cli("push", "--model", path, "--to", tmp_path / "s", *flags)
    _refused(proc, str(path), "blessing directory", why, "--model-blessing")
    assert not (tmp_path / "s").exists()


def test_a_stamped_model_must_be_servable_too(tmp_path: Path) -> None:
    ib = blessing(tmp_path / "InfraBlessing", "infra", "blessed")
    assert ib is not None
    (ib / "stamped_model" / "custom").mkdir(parents=True)
    (ib / "stamped_model" / "custom" / "weights.bin").write_bytes(b"w")
    proc = cli("push", "--infra-blessing", ib, "--to", tmp_path / "s")
    _refused(proc, str(ib / "stamped_model"), "stamped model", "custom/")
    assert not (tmp_path / "s").exists()
    code, out = cli_json("push", "--infra-blessing", ib, "--to", tmp_path / "s", "--any-model")
    assert code == 0 and out["model_layout"] == "infra-stamped-model"
    assert out["model_kind"] == UNRECOGNISED


def test_a_not_servable_model_names_the_folder_one_level_down(tmp_path: Path) -> None:
    model = tmp_path / "export"
    make_model_dir(model / "1700000000")
    proc = cli("push", "--model", model, "--to", tmp_path / "s")
    _refused(proc, f"--model {model / '1700000000'}")


def test_a_refused_push_does_not_look_at_the_model(tmp_path: Path) -> None:
    """The gate comes first: a NOT_BLESSED push of a non-model is 'not pushed', as before."""
    mb = blessing(tmp_path / "mb", "model", "not_blessed")
    assert mb is not None
    code, out = cli_json(
        "push",
        "--model",
        _custom_folder(tmp_path / "m"),
        "--model-blessing",
        mb,
        "--to",
        tmp_path / "s",
    )
    assert code == 0 and out["pushed"] is False


# -- item 11: empty directories ------------------------------------------------------------------


def test_a_real_saved_model_keeps_its_empty_assets_and_loads_back(tmp_path: Path) -> None:
    from models import make_saved_model, predict_saved_model, reference_predict

    trainer = tmp_path / "Model"
    model = make_saved_model(trainer / "Format-Serving", seed=3)
    assert (model / "assets").is_dir() and not any((model / "assets").iterdir())  # TF's own
    base = tmp_path / "serving"
    code, out = cli_json(
        "push", "--model", trainer, "--to", base, "--pushed-model", tmp_path / "PushedModel"
    )
    assert code == 0 and out["model_kind"] == "tf-saved-model"
    version = base / out["version"]
    assert (version / "assets").is_dir() and not any((version / "assets").iterdir())
    assert (tmp_path / "PushedModel" / "assets").is_dir()
    manifest = _record(base, out["version"])["manifest"]
    assert manifest["dirs"] == ["assets"]
    x = np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32)
    np.testing.assert_allclose(
        predict_saved_model(version, x), reference_predict(x, seed=3), rtol=1e-6
    )
    # the same tree again is unchanged; the empty directory is part of what "the same" means
    code, again = cli_json("push", "--model", trainer, "--to", base)
    assert code == 0 and again["already_present"] and again["digest"] == out["digest"]


def _model_with_empty_dirs(root: Path, seed: int = 0) -> Path:
    make_model_dir(root, seed=seed)
    (root / "assets.extra").mkdir()
    (root / "empty" / "deeper").mkdir(parents=True)
    return root


def test_verify_reports_a_missing_empty_directory(tmp_path: Path) -> None:
    model = _model_with_empty_dirs(tmp_path / "m")
    base = tmp_path / "s"
    code, out = cli_json("push", "--model", model, "--to", base)
    assert code == 0
    assert _record(base, out["version"])["manifest"]["dirs"] == ["assets.extra", "empty/deeper"]
    assert cli("verify", base).returncode == 0
    (base / out["version"] / "empty" / "deeper").rmdir()
    proc = cli("verify", base)
    assert proc.returncode == 3 and "missing dir: empty/deeper/" in proc.stdout, proc.stdout


def test_empty_directories_enter_the_digest_only_when_there_are_some(tmp_path: Path) -> None:
    plain = make_model_dir(tmp_path / "plain")
    base = tmp_path / "s"
    code, out = cli_json("push", "--model", plain, "--to", base)
    files = _record(base, out["version"])["manifest"]["files"]
    # the digest of a tree without empty directories is the one earlier builds wrote
    text = "".join(f"{f['sha256']} {f['size']} {f['path']}\n" for f in files)
    assert out["digest"] == f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"
    (plain / "assets.extra").mkdir()
    code, again = cli_json("push", "--model", plain, "--to", base)
    assert code == 0 and not again["already_present"] and again["digest"] != out["digest"]


def test_a_record_from_an_earlier_build_without_dirs_stays_readable(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m")
    base = tmp_path / "s"
    code, out = cli_json("push", "--model", model, "--to", base)
    record_path = base / ".pushgate" / "records" / f"{out['version']}.json"
    record = json.loads(record_path.read_text())
    del record["manifest"]["dirs"]  # as written before empty directories were recorded
    record_path.write_text(json.dumps(record))
    assert cli("verify", base).returncode == 0
    assert cli("versions", base).returncode == 0
    code, again = cli_json("push", "--model", model, "--to", base)  # same tree: unchanged
    assert code == 0 and again["already_present"]
    (model / "assets.extra").mkdir()  # the old version lacks it: a new, whole version
    code, newer = cli_json("push", "--model", model, "--to", base)
    assert code == 0 and not newer["already_present"]
    assert (base / newer["version"] / "assets.extra").is_dir()


def test_a_local_rollback_keeps_the_empty_directories(tmp_path: Path) -> None:
    base = tmp_path / "s"
    first = _model_with_empty_dirs(tmp_path / "m1", seed=1)
    code, v1 = cli_json("push", "--model", first, "--to", base, "--versioning", "sequential")
    code, _ = cli_json(
        "push",
        "--model",
        make_model_dir(tmp_path / "m2", seed=2),
        "--to",
        base,
        "--versioning",
        "sequential",
    )
    code, rb = cli_json("rollback", base)
    assert code == 0, rb
    assert (base / rb["version"] / "empty" / "deeper").is_dir()
    assert (base / rb["version"] / "assets.extra").is_dir()
    assert _record(base, rb["version"])["manifest"]["dirs"] == ["assets.extra", "empty/deeper"]
    assert rb["digest"] == v1["digest"]
    assert cli("verify", base).returncode == 0


@pytest.mark.parametrize("bad", ["../../escaped", "/tmp/escaped", "assets/../../escaped"])
def test_an_unsafe_directory_in_a_record_is_never_used(tmp_path: Path, bad: str) -> None:
    base = tmp_path / "serving" / "s"
    seq = ("--versioning", "sequential")
    _, v1 = cli_json("push", "--model", make_model_dir(tmp_path / "m1", seed=1), "--to", base, *seq)
    cli_json("push", "--model", make_model_dir(tmp_path / "m2", seed=2), "--to", base, *seq)
    record_path = base / ".pushgate" / "records" / f"{v1['version']}.json"
    record = json.loads(record_path.read_text())
    record["manifest"]["dirs"] = [bad]  # a planted record
    record_path.write_text(json.dumps(record))
    proc = cli("verify", base)
    assert proc.returncode == 3 and "unsafe path" in proc.stdout, (proc.stdout, proc.stderr)
    proc = cli("rollback", base, "--to", v1["version"])
    assert proc.returncode == 3 and "unsafe path" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "serving" / "escaped").exists() and not Path("/tmp/escaped").exists()
    assert numeric_dirs(base) == ["1", "2"]


def test_a_bucket_records_empty_directories_without_marker_objects(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    from pushgate.api import serving_version
    from pushgate.destination import open_destination
    from pushgate.journal import Journal

    s = store_url("s3")
    env = s.subprocess_env()
    model = _model_with_empty_dirs(tmp_path / "m", seed=1)
    code, out = cli_json(
        "push", "--model", model, "--to", s.base, "--versioning", "sequential", env=env
    )
    assert code == 0, out
    dest = open_destination(s.base, s.options)
    record = Journal(dest).record(out["version"])
    assert record is not None and record["manifest"]["dirs"] == ["assets.extra", "empty/deeper"]
    stored = dest.list_version_files(out["version"])
    assert set(stored) == {f["path"] for f in record["manifest"]["files"]}  # no "dir/" objects
    assert cli("verify", s.base, env=env).returncode == 0
    found = serving_version(s.base, s.options, into=tmp_path / "download")  # a local copy: whole
    assert found is not None and (found[1] / "empty" / "deeper").is_dir()
    code, again = cli_json("push", "--model", model, "--to", s.base, env=env)
    assert code == 0 and again["already_present"]
    cli_json(
        "push",
        "--model",
        make_model_dir(tmp_path / "m2", seed=2),
        "--to",
        s.base,
        "--versioning",
        "sequential",
        env=env,
    )
    code, rb = cli_json("rollback", s.base, env=env)  # the digest check holds with the dirs
    assert code == 0 and rb["digest"] == out["digest"], rb


# -- item 12 and 15: symlinks --------------------------------------------------------------------


def test_a_link_to_a_directory_inside_the_model_is_pushed_as_its_content(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m")
    os.symlink("variables", model / "variables-link")  # relative, sorted after its target
    os.symlink(model / "assets", model / "a-assets")  # absolute, sorted before its target
    code, out = cli_json("push", "--model", model, "--to", tmp_path / "s")
    assert code == 0, out
    version = tmp_path / "s" / out["version"]
    for link, target in (("variables-link", "variables"), ("a-assets", "assets")):
        assert (version / link).is_dir() and not (version / link).is_symlink()
        assert sorted(p.name for p in (version / link).rglob("*")) == sorted(
            p.name for p in (model / target).rglob("*")
        )
    assert cli("verify", tmp_path / "s").returncode == 0


@pytest.mark.parametrize("where", ["to-root", "to-parent", "to-self", "mutual"])
def test_a_symlink_cycle_is_refused_by_name_without_a_traceback(tmp_path: Path, where: str) -> None:
    model = make_model_dir(tmp_path / "m")
    if where == "to-root":
        link = model / "variables" / "root"
        os.symlink(model, link)
    elif where == "to-parent":
        link = model / "assets" / "nested" / "up"
        os.symlink("..", link)
    elif where == "to-self":
        link = model / "assets" / "loop"
        os.symlink("loop", link)
    else:
        link = model / "a"
        os.symlink("b", link)
        os.symlink("a", model / "b")
    proc = cli("push", "--model", model, "--to", tmp_path / "s")
    _refused(proc, str(link), "symlink cycle inside the model")
    assert not (tmp_path / "s").exists() or numeric_dirs(tmp_path / "s") == []


def test_a_link_to_a_directory_outside_the_model_stays_refused(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret").write_text("outside")
    os.symlink(tmp_path / "elsewhere", model / "assets" / "more")
    proc = cli("push", "--model", model, "--to", tmp_path / "s")
    _refused(proc, str(model / "assets" / "more"), "outside")
    assert not (tmp_path / "s").exists()
