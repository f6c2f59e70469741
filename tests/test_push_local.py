"""``pushgate push`` to a local BASE: model layouts, versions, records, artifacts, bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import pushgate
from conftest import (
    assert_every_version_complete,
    blessing,
    cli,
    cli_json,
    make_model_dir,
    numeric_dirs,
    tfx_model,
)


def test_tensorflow_savedmodel_pushed_from_tfx_artifact_loads_with_same_outputs(
    tmp_path: Path,
) -> None:
    from models import make_saved_model, predict_saved_model

    artifact = tmp_path / "trainer" / "model"
    make_saved_model(artifact / "Format-Serving", seed=3)
    mb = blessing(tmp_path / "evaluator", "model", "blessed")
    ib = blessing(tmp_path / "infra", "infra", "blessed")
    base = tmp_path / "serving" / "my_model"
    code, out = cli_json(
        "push", "--model", artifact, "--model-blessing", mb, "--infra-blessing", ib, "--to", base
    )
    assert code == 0 and out["pushed"] is True
    assert out["model_layout"] == "tfx-format-serving"
    x = np.array([[0.5, -1.0], [2.0, 3.0], [0.0, 0.0]], dtype=np.float32)
    before = predict_saved_model(artifact / "Format-Serving", x)
    after = predict_saved_model(base / out["version"], x)
    np.testing.assert_array_equal(before, after)
    assert_every_version_complete(base)


def test_every_file_is_published_including_pbtxt_and_nested_entry_names(
    tmp_path: Path, model: Path
) -> None:
    base = tmp_path / "s"
    code, out = cli_json("push", "--model", model, "--to", base)
    assert code == 0
    src = model / "Format-Serving"
    want = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    got = sorted(
        p.relative_to(base / out["version"]).as_posix()
        for p in (base / out["version"]).rglob("*")
        if p.is_file()
    )
    assert got == want
    assert "saved_model.pbtxt" in got and "assets/nested/saved_model.pb" in got


@pytest.mark.parametrize(
    ("layout", "make"),
    [
        ("tfx-format-serving", lambda r: make_model_dir(r / "Format-Serving")),
        ("tfx-serving-model-dir", lambda r: make_model_dir(r / "serving_model_dir")),
        (
            "tfx-estimator-export",
            lambda r: make_model_dir(r / "Format-Serving" / "export" / "chicago" / "1600000000"),
        ),
        ("saved-model", lambda r: make_model_dir(r)),
    ],
)
def test_model_layouts_are_found(tmp_path: Path, layout: str, make: object) -> None:
    root = tmp_path / "artifact"
    model_dir = make(root)  # type: ignore[operator]
    code, out = cli_json("push", "--model", root, "--to", tmp_path / "s")
    assert code == 0 and out["model_layout"] == layout
    assert out["model"] == str(model_dir)


def test_any_model_directory_is_pushed_as_is(tmp_path: Path) -> None:
    onnx_dir = tmp_path / "triton_version"
    onnx_dir.mkdir()
    (onnx_dir / "model.onnx").write_bytes(b"\x08\x07onnx-bytes")
    code, out = cli_json("push", "--model", onnx_dir, "--to", tmp_path / "s")
    assert code == 0 and out["model_layout"] == "directory"
    assert (tmp_path / "s" / out["version"] / "model.onnx").read_bytes() == b"\x08\x07onnx-bytes"


def test_estimator_export_with_two_timestamps_is_refused_like_tfx(tmp_path: Path) -> None:
    root = tmp_path / "artifact"
    for stamp in ("1600000000", "1600000001"):
        make_model_dir(root / "Format-Serving" / "export" / "chicago" / stamp)
    proc = cli("push", "--model", root, "--to", tmp_path / "s")
    assert proc.returncode == 2
    assert "exactly one" in proc.stderr and "1600000001" in proc.stderr
    assert not (tmp_path / "s").exists()


def test_stamped_model_is_pushed_without_model_and_ignored_with_a_warning_when_model_given(
    tmp_path: Path,
) -> None:
    ib = blessing(tmp_path / "infra", "infra", "blessed")
    assert ib is not None
    make_model_dir(ib / "stamped_model", seed=9)
    code, out = cli_json("push", "--infra-blessing", ib, "--to", tmp_path / "a")
    assert code == 0 and out["model"] == str(ib / "stamped_model")
    assert out["model_layout"] == "infra-stamped-model"
    model = tfx_model(tmp_path / "m", seed=1)
    proc = cli("push", "--model", model, "--infra-blessing", ib, "--to", tmp_path / "b", "--json")
    out = json.loads(proc.stdout)
    assert out["model"] == str(model / "Format-Serving")
    assert "stamped model" in proc.stderr and "ignored" in proc.stderr


def test_missing_stamped_model_tells_user_to_make_warmup(tmp_path: Path) -> None:
    ib = blessing(tmp_path / "infra", "infra", "blessed")
    proc = cli("push", "--infra-blessing", ib, "--to", tmp_path / "s")  # type: ignore[arg-type]
    assert proc.returncode == 2
    assert "stamped_model" in proc.stderr and "--make-warmup" in proc.stderr


def test_auto_versions_are_unix_seconds_and_strictly_increasing(tmp_path: Path) -> None:
    import time

    base = tmp_path / "s"
    versions = []
    for seed in range(3):
        t0 = int(time.time())
        code, out = cli_json(
            "push", "--model", tfx_model(tmp_path / f"m{seed}", seed=seed), "--to", base
        )
        assert code == 0
        versions.append(int(out["version"]))
        assert versions[-1] >= t0
    assert versions == sorted(set(versions)), "two pushes in one second must not share a version"
    assert all(not str(v).startswith("0") for v in versions)


def test_auto_version_never_goes_below_an_existing_future_version(tmp_path: Path) -> None:
    base = tmp_path / "s"
    future = 4_000_000_000  # a version written by a pusher whose clock ran ahead
    make_model_dir(base / str(future))
    code, out = cli_json("push", "--model", tfx_model(tmp_path / "m"), "--to", base)
    assert code == 0 and int(out["version"]) == future + 1


def test_sequential_versions_start_at_one(tmp_path: Path) -> None:
    base = tmp_path / "s"
    got = [
        cli_json(
            "push",
            "--model",
            tfx_model(tmp_path / f"m{i}", seed=i),
            "--to",
            base,
            "--versioning",
            "sequential",
        )[1]["version"]
        for i in range(3)
    ]
    assert got == ["1", "2", "3"]


def test_record_holds_manifest_blessings_and_provenance(tmp_path: Path, model: Path) -> None:
    mb = blessing(tmp_path / "mb", "model", "blessed")
    base = tmp_path / "s"
    _, first = cli_json("push", "--model", model, "--model-blessing", mb, "--to", base)
    _, second = cli_json("push", "--model", tfx_model(tmp_path / "m2", seed=2), "--to", base)
    rec = json.loads((base / ".pushgate" / "records" / f"{second['version']}.json").read_text())
    assert rec["schema"] == "pushgate.record/v1"
    assert rec["previous_newest"] == first["version"]
    assert rec["digest"] == second["digest"] and rec["digest"].startswith("sha256:")
    assert {"user", "host", "pushed_at", "pushgate_version", "source", "blessings"} <= set(rec)
    assert rec["source"]["path"] == str(tmp_path / "m2" / "Format-Serving")
    first_rec = json.loads(
        (base / ".pushgate" / "records" / f"{first['version']}.json").read_text()
    )
    assert first_rec["blessings"]["model_blessing"]["verdict"] == "blessed"
    sizes = {f["path"]: f["size"] for f in rec["manifest"]["files"]}
    assert sizes["saved_model.pbtxt"] == len("# text form 2\n")


def test_versions_lists_records_marks_serving_and_flags_unrecorded(
    tmp_path: Path, model: Path
) -> None:
    base = tmp_path / "s"
    _, out = cli_json("push", "--model", model, "--to", base, "--versioning", "sequential")
    make_model_dir(base / "7")  # someone copied a version by hand
    code, listing = cli_json("versions", base)
    assert code == 0
    by = {v["version"]: v for v in listing["versions"]}
    assert by[out["version"]]["recorded"] is True and by[out["version"]]["serving"] is False
    assert by["7"]["recorded"] is False and by["7"]["serving"] is True
    assert "no pushgate record" in by["7"]["notes"][0]
    text = cli("versions", base).stdout
    assert "* 7" in text


def test_pushed_model_artifact_has_copy_and_tfx_properties(tmp_path: Path, model: Path) -> None:
    pm = tmp_path / "pushed"
    base = tmp_path / "s"
    _, out = cli_json("push", "--model", model, "--to", base, "--pushed-model", pm)
    props = json.loads((pm / ".pushgate-artifact.json").read_text())
    assert props["type"] == "PushedModel"
    assert props["properties"]["pushed"] == 1
    assert props["properties"]["pushed_version"] == out["version"]
    assert props["properties"]["pushed_destination"] == str(base / out["version"])
    assert (pm / "saved_model.pb").read_bytes() == (
        model / "Format-Serving" / "saved_model.pb"
    ).read_bytes()

    mb = blessing(tmp_path / "mb", "model", "not_blessed")
    _, out = cli_json(
        "push", "--model", model, "--model-blessing", mb, "--to", base, "--pushed-model", pm
    )
    assert out["pushed"] is False
    props = json.loads((pm / ".pushgate-artifact.json").read_text())
    assert props["properties"] == {"pushed": 0}
    assert [p.name for p in pm.iterdir()] == [".pushgate-artifact.json"]


def test_tfx_guide_pusher_code_runs_with_only_imports_changed(tmp_path: Path) -> None:
    from pushgate import PushDestination, Pusher

    class Artifact:  # what a TFX channel hands over: an object with a uri
        def __init__(self, uri: Path) -> None:
            self.uri = str(uri)

    trainer_model = tfx_model(tmp_path / "Trainer" / "model" / "6")
    evaluator_blessing = blessing(tmp_path / "Evaluator" / "blessing" / "7", "model", "blessed")
    infra_blessing = blessing(tmp_path / "InfraValidator" / "blessing" / "8", "infra", "blessed")
    serving_model_dir = tmp_path / "serving_model" / "taxi"
    pusher = Pusher(
        model=Artifact(trainer_model),
        model_blessing=Artifact(evaluator_blessing),  # type: ignore[arg-type]
        infra_blessing=infra_blessing,
        push_destination=PushDestination(
            filesystem=PushDestination.Filesystem(base_directory=str(serving_model_dir))
        ),
    )
    result = pusher.run()
    assert result.pushed and numeric_dirs(serving_model_dir) == [result.version]
    assert pusher.outputs["pushed_model"]["pushed"] == 1
    assert pusher.outputs["pushed_model"]["pushed_destination"] == str(
        serving_model_dir / str(result.version)
    )


def test_python_api_push_returns_result_object(tmp_path: Path, model: Path) -> None:
    result = pushgate.push(model=model, to=tmp_path / "s", versioning="sequential")
    assert result.pushed and result.version == "1"
    assert result.to_json()["digest"] == result.digest
    assert [v.version for v in pushgate.versions(tmp_path / "s")] == ["1"]


# -- bad input: exit 2, a message naming the path, nothing touched -------------------------------


def _refused(proc: subprocess.CompletedProcess[str], path: Path | str, code: int = 2) -> None:
    assert proc.returncode == code, proc.stderr
    assert str(path) in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_model_path_that_does_not_exist(tmp_path: Path) -> None:
    _refused(cli("push", "--model", tmp_path / "nope", "--to", tmp_path / "s"), tmp_path / "nope")
    assert not (tmp_path / "s").exists()


def test_model_directory_that_is_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = cli("push", "--model", tmp_path / "empty", "--to", tmp_path / "s")
    _refused(proc, tmp_path / "empty")
    assert "empty" in proc.stderr


def test_model_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "model.pb").write_bytes(b"x")
    proc = cli("push", "--model", tmp_path / "model.pb", "--to", tmp_path / "s")
    _refused(proc, tmp_path / "model.pb")
    assert "is a file" in proc.stderr


def test_symlink_pointing_outside_the_model(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m")
    (tmp_path / "secret").write_text("outside")
    os.symlink(tmp_path / "secret", model / "assets" / "leak.txt")
    proc = cli("push", "--model", model, "--to", tmp_path / "s")
    _refused(proc, model / "assets" / "leak.txt")
    assert "outside" in proc.stderr
    assert not (tmp_path / "s").exists() or numeric_dirs(tmp_path / "s") == []


def test_symlink_inside_the_model_is_pushed_as_its_content(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m")
    os.symlink(model / "assets" / "vocab.txt", model / "assets" / "vocab-link.txt")
    code, out = cli_json("push", "--model", model, "--to", tmp_path / "s")
    pushed = tmp_path / "s" / out["version"] / "assets" / "vocab-link.txt"
    assert code == 0 and pushed.read_text() == "a\nb\nc\n" and not pushed.is_symlink()


@pytest.mark.parametrize("flag", ["--model-blessing", "--infra-blessing"])
def test_blessing_path_that_does_not_exist(tmp_path: Path, model: Path, flag: str) -> None:
    _refused(
        cli("push", "--model", model, flag, tmp_path / "nope", "--to", tmp_path / "s"),
        tmp_path / "nope",
    )
    assert not (tmp_path / "s").exists()


def test_base_that_is_a_file(tmp_path: Path, model: Path) -> None:
    (tmp_path / "base").write_text("not a dir")
    proc = cli("push", "--model", model, "--to", tmp_path / "base")
    _refused(proc, tmp_path / "base")
    assert (tmp_path / "base").read_text() == "not a dir"


def _in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a private mount namespace (so tests can mount small or read-only
    filesystems without touching the machine)."""
    return subprocess.run(
        ["unshare", "-rm", "sh", "-ec", script], capture_output=True, text=True, timeout=300
    )


def test_base_that_is_not_writable(tmp_path: Path, model: Path) -> None:
    import sys

    base = tmp_path / "ro"
    base.mkdir()
    proc = _in_namespace(
        f"mount -o bind,ro {base} {base}; "
        f"{sys.executable} -m pushgate push --model {model} --to {base} || exit $?"
    )
    _refused(proc, base)
    assert list(base.iterdir()) == []


def test_disk_full_half_way_removes_staging_and_says_so(tmp_path: Path) -> None:
    import sys

    model = make_model_dir(tmp_path / "m", shards=4, shard_bytes=1024 * 1024)  # ~4 MiB
    base = tmp_path / "small"
    base.mkdir()
    proc = _in_namespace(
        f"mount -t tmpfs -o size=2m tmpfs {base}; "
        f"set +e; {sys.executable} -m pushgate push --model {model} --to {base}; rc=$?; "
        f"echo LISTING; find {base} -mindepth 1 | sort; exit $rc"
    )
    assert proc.returncode == 1, proc.stderr
    assert "no space left" in proc.stderr and str(base) in proc.stderr
    assert "partial staging copy was removed" in proc.stderr
    listing = proc.stdout.split("LISTING", 1)[1].split()
    assert not [p for p in listing if Path(p).name.isdigit() and Path(p).parent == base]
    assert not [p for p in listing if "/staging/" in p], listing


def test_unknown_scheme_is_usage_error(tmp_path: Path, model: Path) -> None:
    _refused(cli("push", "--model", model, "--to", "ftp://host/models"), "ftp://host/models")
