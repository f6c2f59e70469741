"""Labels (stable, canary) through the real CLI on local disk and S3 (moto): journal, history,
refusals, prune, promote, and the server configuration they drive: Triton's config.pbtxt
(only its version_policy changes) and TF Serving's model_config_file, parsed by TF Serving's own
protos. A label move racing a prune never leaves a label on a removed version."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import pushgate.labels
import pushgate.lifecycle
import servers
from conftest import cli, cli_json
from pushgate.destination import open_destination
from pushgate.errors import PushgateError
from pushgate.serving import ServeRequest
from pushgate.serving.server_config import (
    edit_triton_config,
    parse_server_config,
    write_server_configs,
)
from pushgate.serving.withdraw import withdraw_version
from test_serving_tfserving import FakeTFServing, available, failed, not_found
from triton_server import CONFIG_PBTXT, triton_model_dir

# a config with comments, strings holding braces and a nested version_policy to replace
CONFIG = (
    CONFIG_PBTXT.format(name="m")
    + '# keep me { not a brace }\nparameters { key: "x" value: { string_value: "a}{b" } }\n'
    + "version_policy: { latest { num_versions: 2 } }  # old policy\n"
    + "dynamic_batching { }\n"
)


def tfs_config(path: Path) -> Any:
    """TF Serving's own parser over the file pushgate wrote."""
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(path.read_text(), config)
    (model,) = config.model_config_list.config
    return model


def push_versions(base: str, tmp_path: Path, n: int, opts: list[str]) -> None:
    for i in range(1, n + 1):
        model = triton_model_dir(tmp_path / f"m{i}", float(i))
        proc = cli("push", "--model", model, "--to", base, "--versioning", "sequential", *opts)
        assert proc.returncode == 0, proc.stderr


def events(base: str, opts: list[str]) -> list[dict[str, Any]]:
    rc, doc = cli_json("history", base, *opts)
    assert rc == 0, doc
    return [e for e in doc["events"] if e["event"] in ("label", "unlabel")]


def test_labels_on_local_disk_drive_triton_and_tfserving_configs(tmp_path: Path) -> None:
    base = tmp_path / "repo" / "m"
    base.mkdir(parents=True)
    (base / "config.pbtxt").write_text(CONFIG)
    tfs = tmp_path / "tfs" / "models.config"
    tfs.parent.mkdir()
    push_versions(str(base), tmp_path, 3, [])

    rc, doc = cli_json(
        "label", base, "canary", "2", "--server-config", "triton",
        "--server-config", f"tfserving:{tfs}?base_path=/models/m",
    )  # fmt: skip
    assert rc == 0 and doc["labels"] == {"canary": "2"}, doc
    text = (base / "config.pbtxt").read_text()
    assert text == CONFIG.replace(
        "version_policy: { latest { num_versions: 2 } }",
        "version_policy: { specific: { versions: [ 2 ] } }",
    )
    model = tfs_config(tfs)
    assert model.name == "m" and model.base_path == "/models/m"
    assert list(model.model_version_policy.specific.versions) == [2]
    assert dict(model.version_labels) == {"canary": 2}

    # the configs are remembered: later moves rewrite them
    assert cli_json("label", base, "stable", "1")[0] == 0
    assert "versions: [ 1, 2 ]" in (base / "config.pbtxt").read_text()
    assert dict(tfs_config(tfs).version_labels) == {"canary": 2, "stable": 1}

    rc, doc = cli_json("promote", base, "canary", "stable")
    assert rc == 0 and doc["labels"] == {"canary": "2", "stable": "2"}, doc
    assert "versions: [ 2 ]" in (base / "config.pbtxt").read_text()
    model = tfs_config(tfs)
    assert list(model.model_version_policy.specific.versions) == [2]
    assert dict(model.version_labels) == {"canary": 2, "stable": 2}

    rc, doc = cli_json("labels", base)
    assert [(e["label"], e["version"]) for e in doc["labels"]] == [("canary", "2"), ("stable", "2")]
    assert doc["server_configs"] == ["triton", f"tfserving:{tfs}?base_path=%2Fmodels%2Fm"], doc

    # prune never removes a labelled version
    assert cli_json("label", base, "canary", "1")[0] == 0
    rc, doc = cli_json("prune", base, "--keep", "1")
    assert rc == 0 and doc["removed"] == [] and doc["pinned"] == ["1", "2"], doc
    assert cli_json("label", base, "canary", "--remove")[0] == 0
    assert "versions: [ 2 ]" in (base / "config.pbtxt").read_text()
    rc, doc = cli_json("prune", base, "--keep", "1")
    assert rc == 0 and doc["removed"] == ["1"], doc

    # never at a pruned, withdrawn or missing version: exit 2 naming it
    proc = cli("label", base, "canary", "1")
    assert proc.returncode == 2 and "version 1" in proc.stderr and "pruned" in proc.stderr
    withdraw_version(open_destination(str(base)), "3", "did not serve", servers=[], action="push")
    proc = cli("label", base, "canary", "3")
    assert proc.returncode == 2 and "version 3" in proc.stderr and "withdrawn" in proc.stderr
    proc = cli("label", base, "canary", "9")
    assert proc.returncode == 2 and "version 9" in proc.stderr
    assert cli("label", base, "Bad Name", "2").returncode == 2
    assert cli("promote", base, "nope", "stable").returncode == 2

    # push --label: published, then labelled; the configs follow
    rc, doc = cli_json(
        "push", "--model", triton_model_dir(tmp_path / "m4", 4.0), "--to", base,
        "--versioning", "sequential", "--label", "canary",
    )  # fmt: skip
    assert rc == 0 and doc["labels"][0]["version"] == "4", doc
    assert "versions: [ 2, 4 ]" in (base / "config.pbtxt").read_text()
    assert dict(tfs_config(tfs).version_labels) == {"canary": 4, "stable": 2}

    moves = [
        (e["event"], e.get("via"), e.get("label"), e.get("version"), e.get("previous"))
        for e in events(str(base), [])
    ]
    assert moves[::-1] == [
        ("label", "label", "canary", "2", None),
        ("label", "label", "stable", "1", None),
        ("label", "promote", "stable", "2", "1"),
        ("label", "label", "canary", "1", "2"),
        ("unlabel", None, "canary", None, "1"),
        ("label", "push", "canary", "4", None),
    ], moves
    # everything else in config.pbtxt is untouched, byte for byte
    assert (base / "config.pbtxt").read_text() == CONFIG.replace(
        "version_policy: { latest { num_versions: 2 } }",
        "version_policy: { specific: { versions: [ 2, 4 ] } }",
    )

    # rollback --label: the new version (version 2's bytes) takes the label
    rc, doc = cli_json("rollback", base, "--to", "2", "--label", "canary")
    assert rc == 0 and doc["version"] == "5", doc
    assert dict(tfs_config(tfs).version_labels) == {"canary": 5, "stable": 2}
    assert "versions: [ 2, 5 ]" in (base / "config.pbtxt").read_text()
    assert events(str(base), [])[0]["via"] == "rollback"
    # --server-config needs --label on push and rollback
    assert cli("rollback", base, "--server-config", "triton").returncode == 2


def test_triton_config_missing_or_unparsable_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "m"
    base.mkdir()
    push_versions(str(base), tmp_path, 1, [])
    proc = cli("label", base, "stable", "1", "--server-config", "triton")
    assert proc.returncode == 2 and "config.pbtxt" in proc.stderr, proc.stderr
    assert not (base / ".pushgate" / "labels").exists()
    (base / "config.pbtxt").write_text('name: "m"\ninput [ { name: "x" }\n')
    proc = cli("label", base, "stable", "1", "--server-config", "triton")
    assert proc.returncode == 2 and "unbalanced" in proc.stderr, proc.stderr
    assert (base / "config.pbtxt").read_text() == 'name: "m"\ninput [ { name: "x" }\n'
    proc = cli("label", base, "stable", "1", "--server-config", "nginx")
    assert proc.returncode == 2 and "--server-config" in proc.stderr
    # push --label refuses before publishing anything
    model = triton_model_dir(tmp_path / "m2", 2.0)
    args = ["--to", base, "--label", "stable", "--server-config", "triton"]
    proc = cli("push", "--model", model, *args)
    assert proc.returncode == 2 and "config.pbtxt" in proc.stderr, proc.stderr
    assert sorted(p.name for p in base.iterdir() if p.name.isdigit()) == ["1"]


@pytest.mark.parametrize("kind", ["local", "s3", "gcs", "azure"])
def test_a_server_config_is_replaced_only_if_nobody_wrote_it_since_it_was_read(
    kind: str, store_url: Any
) -> None:
    store = store_url(kind)
    if kind == "local":
        Path(store.base).mkdir()
    dest = open_destination(store.base, store.options)
    assert dest.read_file("config.pbtxt") == (None, None)
    assert dest.write_file_conditional("config.pbtxt", b"one", None)
    assert not dest.write_file_conditional("config.pbtxt", b"two", None)  # exists now
    raw, tag = dest.read_file("config.pbtxt")
    assert raw == b"one" and tag
    assert dest.write_file_conditional("config.pbtxt", b"two", tag)
    assert not dest.write_file_conditional("config.pbtxt", b"three", tag)  # stale tag
    assert dest.read_file("config.pbtxt")[0] == b"two"


def test_a_tfserving_config_pushgate_did_not_write_is_not_replaced(tmp_path: Path) -> None:
    base = tmp_path / "m"
    push_versions(str(base), tmp_path, 1, [])
    tfs = tmp_path / "models.config"
    tfs.write_text("model_config_list { }\n")
    proc = cli("label", base, "stable", "1", "--server-config", f"tfserving:{tfs}")
    assert proc.returncode == 2 and "not written by pushgate" in proc.stderr, proc.stderr
    assert tfs.read_text() == "model_config_list { }\n"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('name: "m"\n', 'name: "m"\nversion_policy: { specific: { versions: [ 3 ] } }\n'),
        ('name: "m"', 'name: "m"\nversion_policy: { specific: { versions: [ 3 ] } }\n'),
        (
            'name: "m" version_policy < all { } > backend: "python"\n',
            'name: "m" version_policy: { specific: { versions: [ 3 ] } } backend: "python"\n',
        ),
        (
            'name: "version_policy {"\nversion_policy{latest{num_versions:1}}\n',
            'name: "version_policy {"\nversion_policy: { specific: { versions: [ 3 ] } }\n',
        ),
    ],
)
def test_only_the_version_policy_of_a_triton_config_changes(text: str, want: str) -> None:
    assert edit_triton_config(text, ["3"], "config.pbtxt") == want


def test_labels_on_s3(tmp_path: Path, s3_server: servers.S3Server) -> None:
    bucket = s3_server.make_bucket()
    base = f"s3://{bucket}/repo/m"
    opts: list[str] = []
    for k, v in s3_server.options().items():
        opts += ["--storage-option", f"{k}={v}"]
    push_versions(base, tmp_path, 3, opts)
    dest = open_destination(base, s3_server.options())
    assert dest.write_file_conditional("config.pbtxt", CONFIG.encode(), None)
    tfs = f"s3://{bucket}/tfs/models.config"

    rc, doc = cli_json(
        "label", base, "canary", "3", "--server-config", "triton",
        "--server-config", f"tfserving:{tfs}", *opts,
    )  # fmt: skip
    assert rc == 0, doc
    assert cli_json("label", base, "stable", "1", *opts)[0] == 0
    got, _tag = dest.read_file("config.pbtxt")
    assert got is not None and "versions: [ 1, 3 ]" in got.decode()
    old = got.decode().replace("specific: { versions: [ 1, 3 ] }", "latest { num_versions: 2 }")
    assert old == CONFIG
    raw, _tag = open_destination(f"s3://{bucket}/tfs", s3_server.options()).read_file(
        "models.config"
    )
    assert raw is not None
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(raw.decode(), config)
    (model,) = config.model_config_list.config
    assert model.base_path == base and dict(model.version_labels) == {"canary": 3, "stable": 1}

    rc, doc = cli_json("promote", base, "canary", "stable", *opts)
    assert rc == 0 and doc["labels"] == {"canary": "3", "stable": "3"}, doc
    rc, doc = cli_json("prune", base, "--keep", "1", *opts)
    assert rc == 0 and doc["removed"] == ["1", "2"], doc
    proc = cli("label", base, "stable", "1", *opts)
    assert proc.returncode == 2 and "version 1" in proc.stderr
    rc, doc = cli_json("labels", base, *opts)
    assert [(e["label"], e["version"], e["exists"]) for e in doc["labels"]] == [
        ("canary", "3", True),
        ("stable", "3", True),
    ]
    assert [e.get("via") for e in events(base, opts)] == ["promote", "label", "label"]


def _race(base: Path, delay: float, outcomes: dict[str, int]) -> list[str]:
    """One label move of canary to version 1 against one prune --keep 1, started together."""
    barrier = threading.Barrier(2)
    errors: list[str] = []

    def move() -> None:
        barrier.wait()
        try:
            pushgate.labels.label(base, "canary", "1")
            outcomes["labelled"] += 1
        except PushgateError as e:
            errors.append(str(e))
            outcomes["refused"] += 1

    def prune() -> None:
        barrier.wait()
        time.sleep(delay)
        if pushgate.lifecycle.prune(base, keep=1).removed[:1] == ["1"]:
            outcomes["pruned"] += 1

    threads = [threading.Thread(target=move), threading.Thread(target=prune)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_a_label_move_racing_prune_never_leaves_a_label_on_a_removed_version(
    tmp_path: Path,
) -> None:
    outcomes = {"labelled": 0, "refused": 0, "pruned": 0}
    rng = random.Random(11)
    for trial in range(20):
        base = tmp_path / f"t{trial}"
        for i in range(1, 4):
            model = triton_model_dir(tmp_path / "models" / str(i), float(i))
            pushgate.push(model=model, to=base, versioning="sequential")
        # the prune starts a little later in some trials, so both orders are met
        errors = _race(base, rng.choice([0.0, 0.0, 0.005, 0.01, 0.02, 0.04]), outcomes)
        labels = pushgate.labels.read_labels(open_destination(str(base)))
        for name, version in labels.items():
            assert (base / version).is_dir(), (trial, name, version, errors)
        assert all("version 1" in e for e in errors), errors
    print(f"\nlabel vs prune, 20 trials: {outcomes}")
    assert outcomes["labelled"] + outcomes["refused"] == 20
    # Which side wins depends on the machine's load; what must hold is checked in every trial
    # above (no label on a removed version; a refusal names the version).


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_config_write_that_loses_to_another_writer_is_redone_from_fresh_labels(
    kind: str, store_url: Any, tmp_path: Path
) -> None:
    """A label move writes a config between our read and our write (driven through the state
    callback, a seam of write_server_configs): ours is refused and redone, so the config names
    both moves. An unconditional write would drop the other move."""
    store = store_url(kind)
    for i in (1, 2, 3):
        model = triton_model_dir(tmp_path / "models" / str(i), float(i))
        pushgate.push(
            model=model, to=store.base, versioning="sequential", storage_options=store.options
        )
    dest = open_destination(store.base, store.options)
    assert dest.write_file_conditional("config.pbtxt", CONFIG.encode(), None)
    tfs = tmp_path / "models.config"
    configs = [parse_server_config("triton"), parse_server_config(f"tfserving:{tfs}")]
    opts = store.options
    pushgate.labels.label(store.base, "a", "1", server_configs=("triton", f"tfserving:{tfs}"),
                          storage_options=opts)  # fmt: skip
    calls = []

    def state() -> tuple[list[str], dict[str, str]]:
        """Our configs move label a to 3; the labels are read after each read of the file."""
        calls.append(1)
        if len(calls) == 1:  # another process moves label b and writes every config now
            pushgate.labels.label(store.base, "b", "2", storage_options=opts)
            return ["3"], {"a": "3"}  # what we had read before it: stale
        labels = {**pushgate.labels.read_labels(dest), "a": "3"}
        return sorted(set(labels.values()), key=int), labels

    write_server_configs(dest, configs, state, opts)
    raw, _tag = dest.read_file("config.pbtxt")
    assert raw is not None and "versions: [ 2, 3 ]" in raw.decode(), raw
    assert dict(tfs_config(tfs).version_labels) == {"a": 3, "b": 2}
    assert len(calls) == 3  # the Triton write was refused once and redone; TF Serving once


@pytest.fixture
def fake_tfs() -> Iterator[FakeTFServing]:
    fake = FakeTFServing()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def test_tfserving_label_moves_only_once_the_version_is_available(
    tmp_path: Path, fake_tfs: FakeTFServing
) -> None:
    """TF Serving's rule: a label may only name a loaded version. The fake answers as TF
    Serving would from the config file as it is when asked: a version the policy lists is
    AVAILABLE (version 3: fails to load), any other is not found."""
    base = tmp_path / "m"
    push_versions(str(base), tmp_path, 3, [])
    path = tmp_path / "models.config"
    seen: list[tuple[str, list[int], dict[str, int]]] = []

    def status(version: str, _n: int) -> tuple[int, dict[str, Any]]:
        model = tfs_config(path)
        listed = list(model.model_version_policy.specific.versions)
        seen.append((version, listed, dict(model.version_labels)))
        if int(version) not in listed:
            return not_found(version)
        return failed(version) if version == "3" else available(version)

    fake_tfs.status = status
    serve = ServeRequest((fake_tfs.url,), timeout=5, interval=0.05)
    configs = (f"tfserving:{path}",)
    first = pushgate.labels.label(base, "stable", "1", server_configs=configs, serve=serve)
    assert first.ok and seen[0] == ("1", [1], {}), seen
    result = pushgate.labels.label(base, "canary", "2", serve=serve)
    assert result.ok and result.labels == {"stable": "1", "canary": "2"}
    # asked while version 2 was loaded next to 1 and no label named it yet
    assert seen[-1] == ("2", [1, 2], {"stable": 1}), seen
    model = tfs_config(path)
    assert list(model.model_version_policy.specific.versions) == [1, 2]
    assert dict(model.version_labels) == {"stable": 1, "canary": 2}

    # a version that never becomes AVAILABLE: the label stays, the policy is put back
    result = pushgate.labels.label(base, "canary", "3", serve=serve)
    assert not result.ok and result.labels == {"stable": "1", "canary": "2"}
    assert "Op type not registered" in (result.serve.reason or "")
    assert seen[-1] == ("3", [1, 2, 3], {"stable": 1, "canary": 2}), seen
    model = tfs_config(path)
    assert list(model.model_version_policy.specific.versions) == [1, 2]
    assert dict(model.version_labels) == {"stable": 1, "canary": 2}
    assert (base / "3").is_dir()  # a label command withdraws nothing
    proc = cli("label", base, "canary", "3", "--serve", fake_tfs.url, "--serve-timeout", "5")
    assert proc.returncode == 1 and "NOT MOVED" in proc.stdout, proc.stdout + proc.stderr
