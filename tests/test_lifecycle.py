"""verify, rollback, prune, pin/unpin, history; idempotent pushes, several destinations and the
after-publish hook — on local disk and on a real S3 protocol server (moto) on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pushgate
import servers
from conftest import blessing, cli, cli_json, make_model_dir
from pushgate.destination import open_destination
from pushgate.journal import Journal, event_key
from pushgate.progress import Progress
from servers import StoreURL

BACKENDS = ["local", "s3"]

# the shared fixtures of tests/servers.py, made visible to this module
s3_server = servers.s3_server
store_url = servers.store_url


# -- helpers ------------------------------------------------------------------------------------
class Store:
    """One fresh BASE and the few raw operations the tests need to damage or inspect it."""

    def __init__(self, url: StoreURL) -> None:
        self.url = url
        self.base = url.base
        self.options = url.options

    @property
    def kind(self) -> str:
        return self.url.kind

    def cli_args(self) -> list[str]:
        out: list[str] = []
        for k, v in self.options.items():
            out += ["--storage-option", f"{k}={v}"]
        return out

    def journal(self) -> Journal:
        return Journal(open_destination(self.base, self.options))

    def numeric(self) -> list[str]:
        return sorted(open_destination(self.base, self.options).numeric_children(), key=int)

    # raw access, around pushgate
    def _s3(self) -> tuple[Any, str, str]:
        import boto3

        bucket, _, prefix = self.base.removeprefix("s3://").partition("/")
        client = boto3.client(
            "s3",
            endpoint_url=self.options["endpoint"],
            aws_access_key_id=self.options["access_key_id"],
            aws_secret_access_key=self.options["secret_access_key"],
            region_name=self.options["region"],
        )
        return client, bucket, prefix

    def read(self, version: str, rel: str) -> bytes:
        if self.kind == "local":
            return (Path(self.base) / version / rel).read_bytes()
        client, bucket, prefix = self._s3()
        return client.get_object(Bucket=bucket, Key=f"{prefix}/{version}/{rel}")["Body"].read()

    def write(self, version: str, rel: str, data: bytes) -> None:
        if self.kind == "local":
            path = Path(self.base) / version / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        client, bucket, prefix = self._s3()
        client.put_object(Bucket=bucket, Key=f"{prefix}/{version}/{rel}", Body=data)

    def delete(self, version: str, rel: str) -> None:
        if self.kind == "local":
            (Path(self.base) / version / rel).unlink()
            return
        client, bucket, prefix = self._s3()
        client.delete_object(Bucket=bucket, Key=f"{prefix}/{version}/{rel}")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, store_url: Callable[[str], StoreURL]) -> Store:
    return Store(store_url(request.param))


@pytest.fixture
def local(store_url: Callable[[str], StoreURL]) -> Store:
    return Store(store_url("local"))


def push(store: Store, model: Path, **kw: Any) -> pushgate.PushResult:
    kw.setdefault("versioning", "sequential")
    result = pushgate.push(
        model=model, destinations=(store.base,), storage_options=store.options, **kw
    )
    assert result.pushed and not result.failed, result.to_json()
    return result


def push_models(store: Store, tmp_path: Path, n: int) -> list[str]:
    """Push ``n`` different models; return their versions, oldest first."""
    out = []
    for seed in range(1, n + 1):
        model = make_model_dir(tmp_path / f"model-{seed}", seed=seed)
        out.append(str(push(store, model).version))
    return out


def digest_of(store: Store, version: str) -> str:
    record = store.journal().record(version)
    assert record is not None
    return str(record["digest"])


def tree_snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """``{path: (inode, size, mtime_ns)}`` of everything under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


# -- verify -------------------------------------------------------------------------------------
def test_verify_passes_on_intact_versions(store: Store, tmp_path: Path) -> None:
    versions = push_models(store, tmp_path, 2)
    code, out = cli_json("verify", store.base, *store.cli_args())
    assert code == 0, out
    assert out["ok"] is True
    assert [v["version"] for v in out["versions"]] == versions
    assert all(v["files"] == 7 and not v["changed"] for v in out["versions"])


@pytest.mark.parametrize(
    ("damage", "field", "rel"),
    [
        ("flip", "changed", "variables/variables.data-00000-of-00002"),
        ("flip", "changed", "saved_model.pb"),
        ("truncate", "changed", "assets/vocab.txt"),
        ("delete", "missing", "variables/variables.index"),
        ("extra", "extra", "assets/sneaked_in.txt"),
    ],
)
def test_verify_catches_damage(
    store: Store, tmp_path: Path, damage: str, field: str, rel: str
) -> None:
    good, bad = push_models(store, tmp_path, 2)
    if damage == "flip":  # same size, one bit different: only the checksum can tell
        data = bytearray(store.read(bad, rel))
        data[len(data) // 2] ^= 0x01
        store.write(bad, rel, bytes(data))
    elif damage == "truncate":
        store.write(bad, rel, store.read(bad, rel)[:-1])
    elif damage == "delete":
        store.delete(bad, rel)
    else:
        store.write(bad, rel, b"not part of the model\n")

    code, out = cli_json("verify", store.base, *store.cli_args())
    assert code == 3
    assert out["ok"] is False
    by_version = {v["version"]: v for v in out["versions"]}
    assert by_version[good]["ok"] is True
    assert by_version[bad]["ok"] is False
    assert by_version[bad][field] == [rel]
    others = {"changed", "missing", "extra"} - {field}
    assert all(by_version[bad][f] == [] for f in others)

    # one version at a time: the good one passes, the bad one fails
    assert cli("verify", store.base, good, *store.cli_args()).returncode == 0
    proc = cli("verify", store.base, bad, *store.cli_args())
    assert proc.returncode == 3
    assert rel in proc.stdout and "MISMATCH" in proc.stdout


def test_verify_reports_a_numeric_directory_without_record(store: Store, tmp_path: Path) -> None:
    (v,) = push_models(store, tmp_path, 1)
    store.write("999", "saved_model.pb", b"dropped here by hand")
    report = pushgate.verify(store.base, storage_options=store.options)
    assert report.ok is False
    assert report.unrecorded == ["999"]
    assert {c.version: c.ok for c in report.versions} == {v: True, "999": False}
    code, out = cli_json("verify", store.base, *store.cli_args())
    assert code == 3 and out["unrecorded"] == ["999"]


def test_verify_reports_a_recorded_version_missing_from_the_store(
    local: Store, tmp_path: Path
) -> None:
    a, _b = push_models(local, tmp_path, 2)
    shutil.rmtree(Path(local.base) / a)  # removed by hand, not by prune
    report = pushgate.verify(local.base)
    assert not report.ok
    missing = next(c for c in report.versions if c.version == a)
    assert missing.exists is False and "missing from the store" in missing.problems()[0]


def test_verify_of_an_unknown_version_or_an_empty_base_is_a_usage_error(
    local: Store, tmp_path: Path
) -> None:
    proc = cli("verify", local.base)
    assert proc.returncode == 2 and "there is no BASE at" in proc.stderr  # a mistyped BASE
    Path(local.base).mkdir()
    proc = cli("verify", local.base)
    assert proc.returncode == 2 and "nothing to verify" in proc.stderr  # an empty one
    push_models(local, tmp_path, 1)
    assert cli("verify", local.base, "12345").returncode == 2
    assert cli("verify", local.base, "abc").returncode == 2


def test_verify_streams_progress_over_every_byte(local: Store, tmp_path: Path) -> None:
    push_models(local, tmp_path, 2)

    class Count(Progress):
        def __init__(self) -> None:
            self.total = self.done = 0
            self.lock = threading.Lock()

        def start(self, label: str, total: int) -> None:
            self.total = total

        def advance(self, n: int) -> None:
            with self.lock:
                self.done += n

    progress = Count()
    report = pushgate.verify(local.base, progress=progress)
    assert report.ok
    assert progress.done == progress.total == sum(c.bytes for c in report.versions) > 0


# -- rollback -----------------------------------------------------------------------------------
def test_rollback_publishes_the_previous_versions_bytes_as_a_new_highest_version(
    store: Store, tmp_path: Path
) -> None:
    v1, v2, v3 = push_models(store, tmp_path, 3)
    code, out = cli_json("rollback", store.base, "--reason", "AUC dropped", *store.cli_args())
    assert code == 0, out
    new = out["version"]
    assert int(new) > int(v3)
    assert out["rolled_back_from"] == v3 and out["rollback_to"] == v2
    assert store.numeric() == [v1, v2, v3, new]  # the version rolled back from stays
    assert digest_of(store, new) == digest_of(store, v2) == out["digest"]
    assert store.read(new, "saved_model.pb") == store.read(v2, "saved_model.pb")
    record = store.journal().record(new)
    assert record is not None
    assert record["kind"] == "rollback"
    assert record["rollback_of"] == record["rolled_back_from"] == v3
    assert record["rollback_to"] == v2
    assert record["rollback_reason"] == "AUC dropped"
    assert record["user"]
    events = [e for e in store.journal().events() if e["event"] == "rollback"]
    assert len(events) == 1 and events[0]["version"] == new and events[0]["reason"] == "AUC dropped"
    assert pushgate.verify(store.base, storage_options=store.options).ok


def test_rollback_to_an_explicit_version(store: Store, tmp_path: Path) -> None:
    v1, _v2, v3 = push_models(store, tmp_path, 3)
    result = pushgate.rollback(store.base, to=v1, storage_options=store.options)
    assert result.rollback_to == v1 and result.rolled_back_from == v3
    assert digest_of(store, str(result.version)) == digest_of(store, v1)
    assert store.journal().newest_published().version == result.version  # type: ignore[union-attr]


def test_rolling_back_a_rollback_returns_to_the_version_rolled_back_from(
    local: Store, tmp_path: Path
) -> None:
    _v1, v2, v3 = push_models(local, tmp_path, 3)
    first = pushgate.rollback(local.base)
    assert first.rollback_to == v2
    second = pushgate.rollback(local.base)
    assert second.rolled_back_from == first.version and second.rollback_to == v3


def test_rollback_dry_run_changes_nothing(local: Store, tmp_path: Path) -> None:
    _v1, v2, v3 = push_models(local, tmp_path, 3)
    before = tree_snapshot(Path(local.base))
    code, out = cli_json("rollback", local.base, "--dry-run")
    assert code == 0
    assert out["dry_run"] is True and out["pushed"] is False and out["version"] is None
    assert out["rolled_back_from"] == v3 and out["rollback_to"] == v2
    assert tree_snapshot(Path(local.base)) == before


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--to", "424242"], "not a published version"),
        (["--to", "3"], "already the newest"),
        (["--to", "x1"], "not a version number"),
        (["--reason", "  "], "non-empty"),
    ],
)
def test_rollback_with_bad_input_is_refused_with_exit_2(
    local: Store, tmp_path: Path, args: list[str], why: str
) -> None:
    assert push_models(local, tmp_path, 3) == ["1", "2", "3"]
    before = tree_snapshot(Path(local.base))
    proc = cli("rollback", local.base, *args)
    assert proc.returncode == 2, proc.stderr
    assert why in proc.stderr
    assert tree_snapshot(Path(local.base)) == before


def test_rollback_with_nothing_to_roll_back_to_is_refused(local: Store, tmp_path: Path) -> None:
    Path(local.base).mkdir()
    proc = cli("rollback", local.base)
    assert proc.returncode == 2 and "nothing to roll back" in proc.stderr
    push_models(local, tmp_path, 1)
    proc = cli("rollback", local.base)
    assert proc.returncode == 2 and "nothing to roll back to" in proc.stderr


def test_rollback_warns_when_an_unrecorded_directory_is_served(
    local: Store, tmp_path: Path
) -> None:
    _v1, v2, v3 = push_models(local, tmp_path, 3)
    (Path(local.base) / "50").mkdir()
    code, out = cli_json("rollback", local.base)
    assert code == 0
    assert out["rolled_back_from"] == v3 and out["rollback_to"] == v2
    assert int(out["version"]) > 50
    assert "version 50" in out["warnings"][0]


def test_rollback_refuses_to_republish_a_damaged_version(store: Store, tmp_path: Path) -> None:
    v1, _v2, v3 = push_models(store, tmp_path, 3)
    rel = "variables/variables.index"
    data = bytearray(store.read(v1, rel))
    data[0] ^= 0xFF  # same size, other bytes
    store.write(v1, rel, bytes(data))
    proc = cli("rollback", store.base, "--to", v1, *store.cli_args())
    assert proc.returncode == 3, proc.stderr
    assert "no longer matches its record" in proc.stderr
    assert store.numeric()[-1] == v3  # nothing new is served
    dest = open_destination(store.base, store.options)
    assert [k for k in dest.list_meta("staging/") if not k.endswith(".lease")] == []


def test_rollback_runs_the_on_publish_hook(local: Store, tmp_path: Path) -> None:
    push_models(local, tmp_path, 2)
    out_file = tmp_path / "hook.json"
    hook = f'{sys.executable} -c "{_HOOK_SCRIPT}" {out_file}'
    code, out = cli_json("rollback", local.base, "--on-publish", hook)
    assert code == 0 and out["hook"]["ok"] is True
    seen = json.loads(out_file.read_text())
    assert seen["env"]["PUSHGATE_EVENT"] == "rollback"
    assert seen["env"]["PUSHGATE_VERSION"] == out["version"]
    assert seen["env"]["PUSHGATE_DIGEST"] == out["digest"]
    assert seen["stdin"]["version"] == out["version"] and seen["stdin"]["event"] == "rollback"


# -- prune and pins -----------------------------------------------------------------------------
def test_prune_keeps_the_newest_n_and_pinned_versions(store: Store, tmp_path: Path) -> None:
    v1, v2, v3, v4, v5 = push_models(store, tmp_path, 5)
    assert cli("pin", store.base, v2, "--reason", "audit", *store.cli_args()).returncode == 0
    code, out = cli_json("prune", store.base, "--keep", "2", *store.cli_args())
    assert code == 0, out
    assert out["removed"] == [v1, v3]  # oldest first
    assert out["pinned"] == [v2] and out["kept"] == [v4, v5]
    assert store.numeric() == [v2, v4, v5]
    journal = store.journal()
    assert journal.record(v1) is not None  # records of removed versions are kept
    infos = {i.version: i for i in journal.versions()}
    assert not any("missing" in note for i in infos.values() for note in i.notes)
    assert pushgate.verify(store.base, storage_options=store.options).ok
    proc = cli("verify", store.base, v1, *store.cli_args())
    assert proc.returncode == 2 and "removed by prune" in proc.stderr
    prunes = [e for e in journal.events() if e["event"] == "prune"]
    assert [p["removed"] for p in prunes] == [[v1], [v3]]  # one event right after each removal


def test_prune_never_removes_the_newest_or_an_unrecorded_directory(
    local: Store, tmp_path: Path
) -> None:
    push_models(local, tmp_path, 3)
    foreign = Path(local.base) / "7"
    foreign.mkdir()
    (foreign / "saved_model.pb").write_bytes(b"put here by hand")
    code, out = cli_json("prune", local.base, "--keep", "1")
    assert code == 0
    assert out["removed"] == ["1", "2"] and out["kept"] == ["3"] and out["skipped"] == ["7"]
    assert local.numeric() == ["3", "7"]
    assert (foreign / "saved_model.pb").read_bytes() == b"put here by hand"


def test_prune_dry_run_removes_nothing(local: Store, tmp_path: Path) -> None:
    push_models(local, tmp_path, 3)
    before = tree_snapshot(Path(local.base))
    code, out = cli_json("prune", local.base, "--keep", "1", "--dry-run")
    assert code == 0 and out["removed"] == ["1", "2"] and out["dry_run"] is True
    assert tree_snapshot(Path(local.base)) == before


@pytest.mark.parametrize("keep", ["0", "-1", "two"])
def test_prune_needs_keep_of_at_least_one(local: Store, tmp_path: Path, keep: str) -> None:
    push_models(local, tmp_path, 2)
    proc = cli("prune", local.base, "--keep", keep)
    assert proc.returncode == 2
    assert local.numeric() == ["1", "2"]
    with pytest.raises(pushgate.PushgateError):
        pushgate.prune(local.base, 0)


def test_unpinned_version_is_pruned_again(store: Store, tmp_path: Path) -> None:
    v1, _v2, v3 = push_models(store, tmp_path, 3)
    assert pushgate.pin(store.base, v1, storage_options=store.options) is True
    assert pushgate.pin(store.base, v1, storage_options=store.options) is False
    assert pushgate.prune(store.base, 1, storage_options=store.options).pinned == [v1]
    assert store.numeric() == [v1, v3]
    code, out = cli_json("unpin", store.base, v1, *store.cli_args())
    assert code == 0 and out["changed"] is True
    assert pushgate.unpin(store.base, v1, storage_options=store.options) is False
    assert pushgate.prune(store.base, 1, storage_options=store.options).removed == [v1]
    assert store.numeric() == [v3]


def test_pin_of_a_version_that_does_not_exist_is_refused(local: Store, tmp_path: Path) -> None:
    push_models(local, tmp_path, 1)
    assert cli("pin", local.base, "5").returncode == 2
    assert local.journal().pins() == set()


# -- history ------------------------------------------------------------------------------------
def test_history_lists_every_action_newest_first(store: Store, tmp_path: Path) -> None:
    m1 = make_model_dir(tmp_path / "m1", seed=1)
    m2 = make_model_dir(tmp_path / "m2", seed=2)
    v1 = push(store, m1).version
    not_blessed = blessing(tmp_path / "eval", "model", "not_blessed")
    v2 = push(store, m2, model_blessing=not_blessed, force_reason="hotfix for incident 12").version
    again = push(store, m2)
    assert again.already_present and again.version == v2
    rb = pushgate.rollback(store.base, reason="hotfix broke login", storage_options=store.options)
    pushgate.pin(store.base, v1, storage_options=store.options)
    pushgate.unpin(store.base, v1, storage_options=store.options)
    pushgate.prune(store.base, 1, storage_options=store.options)

    code, out = cli_json("history", store.base, *store.cli_args())
    assert code == 0
    events = out["events"]
    assert [e["event"] for e in events] == [
        "prune",
        "prune",
        "unpin",
        "pin",
        "rollback",
        "push",
        "push",
        "push",
    ]
    prune_2, prune_1, _unpin, _pin, rb_e, repush, forced, first = events
    assert prune_1["removed"] == [v1] and prune_2["removed"] == [v2]
    assert rb_e["rolled_back_from"] == v2 and rb_e["rollback_to"] == v1
    assert rb_e["version"] == rb.version and rb_e["reason"] == "hotfix broke login"
    assert repush["already_present"] is True and repush["version"] == v2
    assert forced["forced"] is True and forced["force_reason"] == "hotfix for incident 12"
    assert first["version"] == v1 and not first.get("forced")
    assert all(e["user"] and e["at"] for e in events)
    ats = [e["at"] for e in events]
    assert ats == sorted(ats, reverse=True)

    text = cli("history", store.base, "--limit", "3", *store.cli_args()).stdout
    assert "pruned" in text and "unpinned" in text and "rolled back" not in text


# -- a reader walking BASE while rollback and prune run -------------------------------------------
class Walker(threading.Thread):
    """Walks BASE again and again like a model server; records any numeric directory it sees
    whose files do not match its record's manifest (names and sizes) while the name exists."""

    def __init__(self, base: Path) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.stop = threading.Event()
        self.walks = 0
        self.versions_seen = 0
        self.violations: list[str] = []

    def check(self, name: str) -> None:
        path = self.base / name
        try:
            ino = path.stat().st_ino
        except FileNotFoundError:
            return  # gone before we looked: invisible, fine
        record_file = self.base / ".pushgate" / "records" / f"{name}.json"
        try:
            record = json.loads(record_file.read_bytes())
        except FileNotFoundError:
            record = None
        files: dict[str, int] = {}
        for dirpath, _dirs, names in os.walk(path):
            for n in names:
                p = Path(dirpath) / n
                try:
                    files[p.relative_to(path).as_posix()] = p.stat().st_size
                except FileNotFoundError:
                    files[p.relative_to(path).as_posix()] = -1
        try:
            still_there = path.stat().st_ino == ino
        except FileNotFoundError:
            still_there = False
        if not still_there:
            return  # renamed away while we read it: a server would see it disappear, whole
        self.versions_seen += 1
        if record is None:
            self.violations.append(f"{name}: visible without a record")
            return
        want = {f["path"]: f["size"] for f in record["manifest"]["files"]}
        if files != want:
            self.violations.append(f"{name}: saw {sorted(files)} sizes differ or missing")

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for entry in os.scandir(self.base):
                    if entry.name.isdigit():
                        self.check(entry.name)
                self.walks += 1
        except Exception as e:  # a reader that crashed proves nothing: fail the test
            self.violations.append(f"reader crashed: {e!r}")


@pytest.fixture
def walker(local: Store) -> Iterator[Callable[[], Walker]]:
    started: list[Walker] = []

    def start() -> Walker:
        w = Walker(Path(local.base))
        w.start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop.set()
        w.join(10)


def test_a_reader_never_sees_an_incomplete_version_during_rollback_and_prune(
    local: Store, tmp_path: Path, walker: Callable[[], Walker]
) -> None:
    for seed in range(1, 4):  # bigger shards so copies and deletions take a while
        push(local, make_model_dir(tmp_path / f"m{seed}", seed=seed, shards=4, shard_bytes=2**20))
    w = walker()
    for _ in range(4):
        pushgate.rollback(local.base)
        pushgate.prune(local.base, 2)
    time.sleep(0.05)
    w.stop.set()
    w.join(10)
    assert w.walks > 0 and w.versions_seen > 0
    assert w.violations == []
    assert len(local.numeric()) == 2
    assert pushgate.verify(local.base).ok


def test_an_s3_reader_never_sees_a_loadable_but_incomplete_version(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    """Object stores have no rename: a version appears object by object. What must hold is the
    contract's order: while a version's ``saved_model.pb`` or ``.pbtxt`` (what a loader starts
    from) is listed, every other file of it is listed too (copied before, deleted after)."""
    s3 = Store(store_url("s3"))
    for seed in range(1, 4):
        push(s3, make_model_dir(tmp_path / f"m{seed}", seed=seed, shards=6))
    names = {
        p.relative_to(tmp_path / "m1").as_posix()
        for p in (tmp_path / "m1").rglob("*")
        if p.is_file()
    }
    entries = {"saved_model.pb", "saved_model.pbtxt"}
    client, bucket, prefix = s3._s3()
    stop = threading.Event()
    seen: list[int] = []
    violations: list[str] = []

    def read() -> None:
        try:
            while not stop.is_set():
                listed: dict[str, set[str]] = {}
                pages = client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=f"{prefix}/"
                )
                for page in pages:
                    for obj in page.get("Contents", []):
                        version, _, rel = obj["Key"][len(prefix) + 1 :].partition("/")
                        if version.isdigit():
                            listed.setdefault(version, set()).add(rel)
                for version, rels in listed.items():
                    if rels & entries:
                        seen.append(1)
                        if not rels >= names - entries:
                            violations.append(f"{version}: {sorted(names - rels)} not there")
        except Exception as e:
            violations.append(f"reader crashed: {e!r}")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        for _ in range(3):
            pushgate.rollback(s3.base, storage_options=s3.options)
            pushgate.prune(s3.base, 2, storage_options=s3.options)
    finally:
        stop.set()
        reader.join(30)
    assert seen and violations == []
    assert len(s3.numeric()) == 2
    assert pushgate.verify(s3.base, storage_options=s3.options).ok


def rollback_caught_copying(
    local: Store, tmp_path: Path, **popen: Any
) -> tuple[subprocess.Popen[Any], str, str, Path]:
    """Push a big version v1 and a small v2, start ``pushgate rollback BASE --to v1`` in a
    subprocess (``popen``: its Popen arguments) and return once its staging copy exists, that is
    once it has chosen what to roll back from: (process, v1, v2, the staging directory)."""
    big = make_model_dir(tmp_path / "big", seed=1, shards=4, shard_bytes=32 * 2**20)
    v1 = str(push(local, big).version)
    v2 = str(push(local, make_model_dir(tmp_path / "m2", seed=2)).version)
    staging = Path(local.base) / ".pushgate" / "staging"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushgate", "rollback", local.base, "--to", v1], **popen
    )
    while not any(p.is_dir() for p in staging.iterdir()) and proc.poll() is None:
        time.sleep(0.002)
    return proc, v1, v2, staging


def test_a_rollback_gives_up_when_a_push_lands_while_it_copies(
    local: Store, tmp_path: Path
) -> None:
    proc, v1, v2, staging = rollback_caught_copying(
        local, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # Its staging copy exists only after it chose what to roll back from; land a push then.
    v3 = push(local, make_model_dir(tmp_path / "m3", seed=3)).version
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert f"the newest version is now {v3}, not {v2}" in err
    assert local.numeric() == [v1, v2, v3]  # nothing published from the stale view
    assert [p for p in staging.iterdir() if p.is_dir()] == []


def test_a_rollback_killed_while_copying_leaves_no_version_and_is_cleaned_up(
    local: Store, tmp_path: Path
) -> None:
    import signal

    proc, v1, v2, staging = rollback_caught_copying(
        local, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert local.numeric() == [v1, v2]  # nothing half-published
    code, out = cli_json("rollback", local.base, "--to", str(v1))
    assert code == 0
    assert any("staging" in line for line in out["recovered"])
    assert local.numeric() == [v1, v2, out["version"]]
    assert [p for p in staging.iterdir() if p.is_dir()] == []
    assert pushgate.verify(local.base).ok


def test_concurrent_rollbacks_fail_cleanly_or_publish_whole_versions(
    local: Store, tmp_path: Path, walker: Callable[[], Walker]
) -> None:
    push_models(local, tmp_path, 3)
    w = walker()
    for _ in range(3):
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "pushgate", "rollback", local.base, "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        codes = [p.wait(120) for p in procs]
        for p, code in zip(procs, codes, strict=True):
            assert p.stdout is not None and p.stderr is not None
            if code != 0:  # the only acceptable failure: it saw the store change and gave up
                assert code == 1 and "changed while rolling back" in p.stderr.read()
        assert 0 in codes
    w.stop.set()
    w.join(10)
    assert w.violations == []
    # Each rollback rolled back from the version below it, or (the documented window between
    # the last check and the publish) duplicates the rollback just below it, same bytes.
    records = local.journal().records()
    published = sorted(records, key=int)
    for below, version in itertools.pairwise(published):
        record = records[version]
        if record["kind"] == "rollback" and record["rolled_back_from"] != below:
            twin = records[below]
            assert twin["kind"] == "rollback", (version, record)
            assert twin["rolled_back_from"] == record["rolled_back_from"]
            assert twin["digest"] == record["digest"]
    assert local.numeric() == published
    assert [p for p in (Path(local.base) / ".pushgate" / "staging").iterdir() if p.is_dir()] == []
    assert pushgate.verify(local.base).ok


# -- idempotent push (item 4) -------------------------------------------------------------------
def test_repush_of_an_unchanged_model_copies_nothing(local: Store, tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m", seed=1)
    code, first = cli_json("push", "--model", model, "--to", local.base)
    assert code == 0
    base = Path(local.base)
    claims_before = sorted(os.listdir(base / ".pushgate" / "claims"))
    version_before = tree_snapshot(base / first["version"])
    records_before = tree_snapshot(base / ".pushgate" / "records")

    code, again = cli_json("push", "--model", model, "--to", local.base)
    assert code == 0
    assert again["pushed"] is True and again["already_present"] is True
    assert again["version"] == first["version"] and again["digest"] == first["digest"]
    assert again["destinations"][0]["already_present"] is True
    assert local.numeric() == [first["version"]]
    assert sorted(os.listdir(base / ".pushgate" / "claims")) == claims_before  # no number claimed
    assert os.listdir(base / ".pushgate" / "staging") == []  # nothing staged
    assert tree_snapshot(base / first["version"]) == version_before  # inodes, sizes, mtimes
    assert tree_snapshot(base / ".pushgate" / "records") == records_before
    pushes = [e for e in local.journal().events() if e["event"] == "push"]
    assert [bool(e.get("already_present")) for e in pushes] == [False, True]


def test_repush_claims_no_number_and_stages_nothing(store: Store, tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m", seed=1)
    first = push(store, model)
    dest = open_destination(store.base, store.options)
    claims = dest.list_meta("claims/")
    again = push(store, model)
    assert again.already_present and again.version == first.version
    assert dest.list_meta("claims/") == claims
    assert dest.list_meta("staging/") == []
    assert store.numeric() == [first.version]


def test_changed_model_or_allow_duplicate_makes_a_new_version(local: Store, tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m", seed=1)
    first = push(local, model)
    dup = push(local, model, allow_duplicate=True)
    assert not dup.already_present and int(str(dup.version)) > int(str(first.version))
    assert dup.digest == first.digest
    (model / "assets" / "vocab.txt").write_text("a\nb\nd\n")  # same size, other bytes
    changed = push(local, model)
    assert not changed.already_present and changed.digest != first.digest
    assert len(local.numeric()) == 3


# -- several destinations (item 6) --------------------------------------------------------------
def test_a_failing_destination_does_not_affect_the_others(local: Store, tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m", seed=1)
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("I am a file")
    code, out = cli_json("push", "--model", model, "--to", local.base, "--to", not_a_dir)
    assert code == 1
    good, bad = out["destinations"]
    assert good["pushed"] is True and good["error"] is None
    assert bad["pushed"] is False and "is a file" in bad["error"]
    assert not_a_dir.read_text() == "I am a file"
    assert pushgate.verify(local.base).ok


def test_each_destination_gets_its_own_version(
    store: Store, tmp_path: Path, store_url: Callable[[str], StoreURL]
) -> None:
    other = Store(store_url("local"))
    push_models(other, tmp_path / "pre", 2)  # the local one is already at version 2
    model = make_model_dir(tmp_path / "m", seed=9)
    result = pushgate.push(
        model=model,
        destinations=(store.base, other.base),
        storage_options=store.options,
        versioning="sequential",
    )
    assert [d.version for d in result.destinations] == ["1", "3"]
    assert pushgate.verify(store.base, storage_options=store.options).ok
    assert pushgate.verify(other.base).ok
    assert digest_of(store, "1") == digest_of(other, "3")


# -- after-publish hook (item 7) ----------------------------------------------------------------
_HOOK_SCRIPT = (
    "import json, os, sys; "
    "doc = {'env': {k: v for k, v in os.environ.items() if k.startswith('PUSHGATE_')}, "
    "'stdin': json.load(sys.stdin)}; "
    "open(sys.argv[1], 'w').write(json.dumps(doc))"
)


def test_push_hook_gets_env_and_json_on_stdin(local: Store, tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m", seed=1)
    out_file = tmp_path / "hook.json"
    hook = f'{sys.executable} -c "{_HOOK_SCRIPT}" {out_file}'
    code, out = cli_json("push", "--model", model, "--to", local.base, "--on-publish", hook)
    assert code == 0 and out["destinations"][0]["hook"]["ok"] is True
    seen = json.loads(out_file.read_text())
    env, stdin = seen["env"], seen["stdin"]
    assert env["PUSHGATE_EVENT"] == "push" and stdin["event"] == "push"
    assert env["PUSHGATE_VERSION"] == stdin["version"] == out["version"]
    assert env["PUSHGATE_DIGEST"] == stdin["digest"] == out["digest"]
    assert env["PUSHGATE_VERSION_PATH"] == stdin["version_path"] == out["destination"]
    assert env["PUSHGATE_DESTINATION"] == stdin["destination"] == str(Path(local.base).absolute())


def test_an_unchanged_repush_runs_no_hook(local: Store, tmp_path: Path) -> None:
    """The hook announces a publish; an unchanged re-push publishes nothing."""
    model = make_model_dir(tmp_path / "m", seed=1)
    push(local, model)
    marker = tmp_path / "hook-ran"
    code, out = cli_json(
        "push", "--model", model, "--to", local.base, "--on-publish", f"touch {marker}"
    )
    assert code == 0 and out["already_present"] is True
    assert out["destinations"][0]["hook"] is None
    assert not marker.exists()


def test_a_failing_hook_is_reported_and_recorded_and_unpublishes_nothing(
    local: Store, tmp_path: Path
) -> None:
    model = make_model_dir(tmp_path / "m", seed=1)
    proc = cli(
        "push",
        "--model",
        model,
        "--to",
        local.base,
        "--json",
        "--on-publish",
        "echo reload failed >&2; exit 7",
    )
    out = json.loads(proc.stdout)
    assert out["pushed"] is True
    hook = out["destinations"][0]["hook"]
    assert hook["ok"] is False and hook["exit_code"] == 7 and "reload failed" in hook["error"]
    assert "hook failed" in proc.stderr
    assert local.numeric() == [out["version"]]
    assert pushgate.verify(local.base).ok
    hooks = [e for e in local.journal().events() if e["event"] == "hook"]
    assert len(hooks) == 1 and hooks[0]["ok"] is False and hooks[0]["exit_code"] == 7
    history = pushgate.history(local.base)
    assert history[0]["event"] == "hook"


# -- CLI surface --------------------------------------------------------------------------------
def test_every_lifecycle_command_and_option_has_help() -> None:
    from pushgate.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    names = ["verify", "rollback", "prune", "pin", "unpin", "history"]
    helps = {a.dest: a.help for a in sub._choices_actions}  # type: ignore[attr-defined]
    for name in names:
        assert helps.get(name), name
        for action in sub.choices[name]._actions:  # type: ignore[attr-defined]
            assert action.help, f"{name} {action.option_strings or action.dest}"
    for name in ("rollback", "prune"):
        opts = {o for a in sub.choices[name]._actions for o in a.option_strings}  # type: ignore[attr-defined]
        assert {"--dry-run", "--json"} <= opts


# -- a BASE that is not there (issue 9 item 3) ---------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        ["versions"],
        ["history"],
        ["verify"],
        ["prune", "--keep", "1"],
        ["pin", "1"],
        ["unpin", "1"],
        ["rollback"],
    ],
)
def test_every_command_but_push_refuses_a_base_that_does_not_exist_and_creates_nothing(
    store: Store, command: list[str]
) -> None:
    """A typo in BASE must not say "no versions" (exit 0) nor create the mistyped path."""
    name, *rest = command
    proc = cli(name, store.base, *rest, *store.cli_args())
    assert proc.returncode == 2, proc.stderr
    assert f"there is no BASE at {store.base}" in proc.stderr
    assert "Traceback" not in proc.stderr
    if store.kind == "local":
        assert not Path(store.base).exists()
    else:
        client, bucket, _ = store._s3()
        assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


# -- names that look numeric to str.isdigit() (issue 9 item 15) ----------------------------------
def test_superscript_and_arabic_indic_digits_are_never_taken_for_versions(
    local: Store, tmp_path: Path
) -> None:
    (v,) = push_models(local, tmp_path, 1)
    meta = Path(local.base) / ".pushgate"
    (meta / "records" / "².json").write_text("{}")  # isdigit() is True, int() fails
    (meta / "records" / "١٢.json").write_text("{}")  # Arabic-Indic 12: int() says 12
    (meta / "claims" / "²³.json").write_text("{}")
    (Path(local.base) / "١٢").mkdir()  # a directory no model server takes for a version
    code, out = cli_json("versions", local.base)
    assert code == 0, out
    assert [i["version"] for i in out["versions"]] == [v]
    code, out = cli_json("verify", local.base)
    assert code == 0 and [c["version"] for c in out["versions"]] == [v]
    assert cli("prune", local.base, "--keep", "1").returncode == 0
    assert push(local, make_model_dir(tmp_path / "next", seed=7)).version == str(int(v) + 1)


# -- one damaged journal entry (issue 9 item 15) -------------------------------------------------
def test_a_damaged_event_file_is_reported_by_name_and_the_rest_still_shown(
    store: Store, tmp_path: Path
) -> None:
    v1, v2 = push_models(store, tmp_path, 2)
    pushgate.prune(store.base, 1, storage_options=store.options)
    bad = ".pushgate/" + event_key("2020-01-01T00:00:00.000000Z", "0123456789ab")
    if store.kind == "local":
        (Path(store.base) / bad).parent.mkdir(parents=True, exist_ok=True)
        (Path(store.base) / bad).write_bytes(b"{not json\xff")
    else:
        client, bucket, prefix = store._s3()
        client.put_object(Bucket=bucket, Key=f"{prefix}/{bad}", Body=b"{not json\xff")

    proc = cli("history", store.base, *store.cli_args())
    assert proc.returncode == 0, proc.stderr
    assert f"DAMAGED journal entry {store.base}/{bad}" in proc.stdout
    assert f"pruned {v1}" in proc.stdout and f"pushed version {v2}" in proc.stdout
    assert bad in proc.stderr and "warning" in proc.stderr
    code, out = cli_json("history", store.base, *store.cli_args())
    assert code == 0
    assert [e["event"] for e in out["events"]][-1] == "damaged"  # oldest: its key sorts first
    assert out["events"][-1]["file"] == f"{store.base}/{bad}"

    code, out = cli_json("verify", store.base, *store.cli_args())
    assert code == 3, out
    assert out["journal_errors"] and bad in out["journal_errors"][0]
    assert all(c["ok"] for c in out["versions"])  # the versions themselves are fine
    code, out = cli_json("versions", store.base, *store.cli_args())
    assert code == 0 and v1 not in {i["version"] for i in out["versions"]}  # pruned: not listed


# -- special files planted in a version (issue 9 item 15) ---------------------------------------
@pytest.mark.parametrize("kind", ["fifo", "socket", "symlink"])
def test_a_special_file_planted_in_a_version_is_damage_and_never_hangs_verify_or_rollback(
    local: Store, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    model = make_model_dir(tmp_path / "m1", seed=1)
    (model / "assets" / "empty.txt").write_bytes(b"")  # same size as a FIFO: verify opens it
    v1 = push(local, model).version
    v2 = push(local, make_model_dir(tmp_path / "m2", seed=2)).version
    assert v1 is not None and v2 is not None
    planted = Path(local.base) / v1 / "assets" / "empty.txt"
    planted.unlink()
    if kind == "fifo":
        os.mkfifo(planted)
    elif kind == "socket":
        monkeypatch.chdir(planted.parent)  # AF_UNIX paths are short: bind a relative name
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(planted.name)
        sock.close()
    else:
        secret = tmp_path / "outside.txt"
        secret.write_bytes(b"")
        planted.symlink_to(secret)
    what = {"fifo": "a FIFO", "socket": "a socket", "symlink": "a symlink"}[kind]

    proc = cli("verify", local.base, timeout=60)  # the old code never returned here
    assert proc.returncode == 3, proc.stderr
    assert f"assets/empty.txt ({what})" in proc.stdout
    proc = cli("rollback", local.base, "--to", v1, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert f"assets/empty.txt ({what})" in proc.stderr and "Traceback" not in proc.stderr
    assert local.numeric() == [v1, v2]  # nothing published
    assert [p for p in (Path(local.base) / ".pushgate" / "staging").iterdir() if p.is_dir()] == []


# -- the target of a rollback removed while it is copied (issue 9 item 15) ----------------------
def test_a_rollback_whose_target_is_pruned_mid_copy_names_the_target_not_staging(
    store: Store, tmp_path: Path
) -> None:
    if store.kind == "local":  # big shards first, so the small files are still to be opened
        big = make_model_dir(tmp_path / "big", seed=1, shards=4, shard_bytes=32 * 2**20)
    else:  # many files: server-side copies a few at a time
        big = make_model_dir(tmp_path / "big", seed=1, shards=300, shard_bytes=1024)
    v1 = str(push(store, big).version)
    v2 = str(push(store, make_model_dir(tmp_path / "m2", seed=2)).version)
    dest = open_destination(store.base, store.options)
    rollback = ["rollback", store.base, "--to", v1, "--no-progress", *store.cli_args()]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushgate", *rollback],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=store.url.subprocess_env(),
    )
    while not dest.list_meta("staging/") and proc.poll() is None:
        time.sleep(0.002)
    pruned = pushgate.prune(store.base, 1, storage_options=store.options)
    _out, err = proc.communicate(timeout=300)
    assert pruned.removed == [v1]
    assert proc.returncode == 1, err
    assert "disappeared while it was being copied" in err, err
    assert f"version {v1}" in err and ".pushgate/staging" not in err
    assert store.numeric() == [v2]  # nothing published
