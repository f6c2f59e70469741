"""``pushgate adopt``: versions pushgate did not push (copied in as TFX's Pusher does) become
versions verify, rollback --to and prune treat like any other — on local disk and on a real S3
protocol server (moto) on 127.0.0.1. The TFX pipeline test adopts a BASE TFX's own Pusher wrote."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import pushgate
import servers
from conftest import cli, make_model_dir
from pushgate.adopt import AdoptRequest, adopt
from servers import StoreURL
from test_lifecycle import Store, push

s3_server = servers.s3_server
store_url = servers.store_url


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, store_url: Callable[[str], StoreURL]) -> Store:
    return Store(store_url(request.param))


def copy_in(store: Store, model: Path, version: str) -> dict[str, bytes]:
    """Copy a model into ``<BASE>/<version>/`` around pushgate, as TFX's Pusher does."""
    files = {
        p.relative_to(model).as_posix(): p.read_bytes() for p in model.rglob("*") if p.is_file()
    }
    for rel, data in files.items():
        store.write(version, rel, data)
    return files


def run(store: Store, *args: str) -> tuple[int, dict]:
    proc = cli(*args, *store.cli_args(), "--json")
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_adopted_versions_verify_roll_back_and_prune_like_pushed_ones(
    store: Store, tmp_path: Path
) -> None:
    copy_in(store, make_model_dir(tmp_path / "m1", seed=1), "1700000001")
    files2 = copy_in(store, make_model_dir(tmp_path / "m2", seed=2), "1700000002")
    code, report = run(store, "verify", store.base)
    assert code == 3 and set(report["unrecorded"]) == {"1700000001", "1700000002"}

    code, dry = run(store, "adopt", store.base, "--dry-run")
    assert code == 0 and dry["adopted"] == [] and dry["dry_run"]
    assert [v["version"] for v in dry["versions"]] == ["1700000001", "1700000002"]
    assert store.journal().records() == {}

    code, result = run(store, "adopt", store.base)
    assert code == 0, result
    assert result["adopted"] == ["1700000001", "1700000002"]
    records = store.journal().records()
    assert records["1700000002"]["provenance"] == "adopted"
    assert records["1700000002"]["kind"] == "adopt"
    assert records["1700000002"]["user"] and records["1700000002"]["adopted_at"]
    assert {f["path"] for f in records["1700000002"]["manifest"]["files"]} == set(files2)
    code, report = run(store, "verify", store.base)
    assert code == 0 and report["unrecorded"] == [], report

    # an adopted version is damaged: verify sees it, as for a pushed one
    store.write("1700000002", "assets/vocab.txt", b"changed\n")
    assert run(store, "verify", store.base)[0] == 3
    store.write("1700000002", "assets/vocab.txt", files2["assets/vocab.txt"])

    # a pushgate push on top, then rollback --to the adopted version
    pushed = push(store, make_model_dir(tmp_path / "m3", seed=3), versioning="auto")
    back = pushgate.rollback(store.base, to="1700000001", storage_options=store.options)
    assert back.version not in ("1700000001", "1700000002", pushed.version)
    assert store.journal().record(back.version)["digest"] == records["1700000001"]["digest"]
    # prune keeps the newest two, removing the adopted versions like any other
    pruned = pushgate.prune(store.base, keep=2, storage_options=store.options)
    assert set(pruned.removed) == {"1700000001", "1700000002"}, pruned.to_json()
    assert store.numeric() == sorted([pushed.version, back.version], key=int)


def test_adopt_refuses_a_directory_that_is_not_a_model(local: Store, tmp_path: Path) -> None:
    local.write("5", "notes.txt", b"not a model\n")
    copy_in(local, make_model_dir(tmp_path / "m", seed=1), "6")
    code, result = run(local, "adopt", local.base)
    assert code == 1
    by = {v["version"]: v for v in result["versions"]}
    assert "not a servable model" in by["5"]["skipped"] and "notes.txt" in by["5"]["skipped"]
    assert by["6"]["adopted"]
    assert set(local.journal().records()) == {"6"}
    code, result = run(local, "adopt", local.base, "5", "--any-model")
    assert code == 0 and result["adopted"] == ["5"]


def test_adopt_knows_the_layouts_push_knows_and_never_takes_a_blessing(local: Store) -> None:
    local.write("10", "model.onnx", b"onnx bytes")
    local.write("11", "model.savedmodel/saved_model.pb", b"pb")
    local.write("11", "model.savedmodel/variables/variables.index", b"ix")
    local.write("12", "INFRA_BLESSED", b"")
    local.write("12", "stamped_model/saved_model.pb", b"pb")
    code, result = run(local, "adopt", local.base, "--any-model")
    assert code == 1
    by = {v["version"]: v for v in result["versions"]}
    assert by["10"]["adopted"] and by["11"]["adopted"]
    assert "blessing's marker (INFRA_BLESSED)" in by["12"]["skipped"]
    assert set(local.journal().records()) == {"10", "11"}


def test_adopt_leaves_recorded_and_claimed_versions_alone(local: Store, tmp_path: Path) -> None:
    pushed = push(local, make_model_dir(tmp_path / "m1", seed=1))
    # a number a pushgate push claimed and whose directory exists without a record: a push
    # being published, or one a crash left for recovery
    journal = local.journal()
    assert journal.claim(90, "90-deadbeef")
    copy_in(local, make_model_dir(tmp_path / "m2", seed=2), "90")
    result = adopt(AdoptRequest(local.base, (pushed.version, "90")))
    by = {v.version: v for v in result.versions}
    assert by[pushed.version].skipped == "already recorded"
    assert "claimed by a pushgate push" in (by["90"].skipped or "")
    assert result.adopted == []
    assert journal.record("90") is None


def test_adopt_of_a_missing_version_is_a_usage_error(local: Store, tmp_path: Path) -> None:
    copy_in(local, make_model_dir(tmp_path / "m", seed=1), "7")
    proc = cli("adopt", local.base, "8")
    assert proc.returncode == 2 and "no version 8" in proc.stderr
    proc = cli("adopt", local.base, "v8")
    assert proc.returncode == 2 and "not a version number" in proc.stderr


@pytest.fixture
def local(store_url: Callable[[str], StoreURL]) -> Store:
    return Store(store_url("local"))


def test_an_adopted_version_has_the_digest_a_push_of_the_same_tree_records(
    local: Store, tmp_path: Path, store_url: Callable[[str], StoreURL]
) -> None:
    """TFX's models hold an empty assets/ directory; a push records it, and so does adopt."""
    model = make_model_dir(tmp_path / "m", seed=4)
    (model / "assets" / "empty").mkdir()
    pushed = Store(store_url("local"))
    digest = push(pushed, model).digest
    shutil.copytree(model, Path(local.base) / "1700000000")
    result = adopt(AdoptRequest(local.base))
    assert result.adopted == ["1700000000"]
    record = local.journal().record("1700000000")
    assert record is not None and record["digest"] == digest
    assert record["manifest"]["dirs"] == ["assets/empty"]
    assert pushgate.verify(local.base).ok
