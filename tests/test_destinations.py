# ruff: noqa: F811  (pytest fixtures imported from servers.py are parameters here)
"""One behavioural suite for every destination backend: local disk, S3, GCS, Azure.

Each backend is a real server on 127.0.0.1 (tests/servers.py): moto's S3 server,
fake-gcs-server (spoken to through GCS's JSON API, as pushgate does for real GCS) and Azurite.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pushgate
from pushgate.api import serving_version, versions
from pushgate.destination import open_destination
from pushgate.errors import PushgateError
from pushgate.journal import Journal
from pushgate.lifecycle import verify
from pushgate.manifest import hash_file, hash_stream
from servers import (  # noqa: F401  (fixtures)
    SCHEMES,
    FlakyProxy,
    StoreURL,
    azurite_server,
    free_port,
    gcs_server,
    s3_server,
    start_fake_gcs,
    start_moto,
    store_url,
)

BACKENDS = ["local", "s3", "gcs", "azure"]


def make_model(root: Path, payload: bytes = b"weights", big: int = 0) -> Path:
    """A small model directory shaped like a SavedModel (bytes, not TF: fast)."""
    (root / "variables").mkdir(parents=True, exist_ok=True)
    (root / "assets").mkdir(exist_ok=True)
    (root / "saved_model.pb").write_bytes(b"graph:" + payload)
    (root / "variables" / "variables.index").write_bytes(b"index:" + payload)
    data = root / "variables" / "variables.data-00000-of-00001"
    if big:
        with open(data, "wb") as f:
            for i in range(big // (1 << 20)):
                f.write(bytes([i % 251]) * (1 << 20))
    else:
        data.write_bytes(b"data:" + payload * 100)
    (root / "assets" / "vocab.txt").write_text("a\nb\n")
    return root


def blessing(root: Path, marker: str | None) -> Path | None:
    if marker == "absent":
        return None
    root.mkdir(parents=True, exist_ok=True)
    if marker:
        (root / marker).write_bytes(b"")
    return root


def manifest_of(model: Path) -> dict[str, str]:
    return {p.relative_to(model).as_posix(): hash_file(p) for p in model.rglob("*") if p.is_file()}


def assert_all_versions_complete(s: StoreURL) -> None:
    """Every numeric version has a record and holds exactly the files of its manifest."""
    dest = open_destination(s.base, s.options)
    journal = Journal(dest)
    for v in dest.numeric_children():
        rec = journal.record(v)
        assert rec is not None, f"version {v} has no record"
        files = dest.list_version_files(v)
        assert files == {f["path"]: f["size"] for f in rec["manifest"]["files"]}


def cli(s: StoreURL, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pushgate", *args],
        env=s.subprocess_env(),
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


TRUTH_TABLE = [
    # model blessing marker, infra blessing marker, pushed?
    ("absent", "absent", True),
    ("BLESSED", "absent", True),
    ("NOT_BLESSED", "absent", False),
    (None, "absent", False),  # evaluator gave no verdict
    ("NOT_BLESSED", "INFRA_BLESSED", False),
    ("absent", "INFRA_BLESSED", True),
    ("BLESSED", "INFRA_BLESSED", True),
    ("BLESSED", "INFRA_NOT_BLESSED", False),
    ("absent", None, False),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_blessings_decide_whether_a_version_is_published(
    backend: str, store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url(backend)
    model = make_model(tmp_path / "model")
    for i, (mb, ib, expected) in enumerate(TRUTH_TABLE):
        # before the first row's push there is no BASE, which versions() refuses
        before = len(versions(s.base, s.options)) if i else 0
        result = pushgate.push(
            model=model,
            to=s.base,
            storage_options=s.options,
            allow_duplicate=True,
            model_blessing=blessing(tmp_path / f"mb{i}", mb),
            infra_blessing=blessing(tmp_path / f"ib{i}", ib),
            versioning="sequential",
        )
        assert result.pushed is expected, (mb, ib)
        after = len(open_destination(s.base, s.options).numeric_children())
        assert after == before + (1 if expected else 0), (mb, ib)
    assert_all_versions_complete(s)


@pytest.mark.parametrize("backend", BACKENDS)
def test_versions_increase_strictly_and_are_never_padded(
    backend: str, store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url(backend)
    got = []
    for i, policy in enumerate(["sequential", "sequential", "auto", "auto", "sequential"]):
        model = make_model(tmp_path / f"m{i}", payload=f"v{i}".encode())
        r = pushgate.push(model=model, to=s.base, storage_options=s.options, versioning=policy)
        got.append(r.version)
    assert got[:2] == ["1", "2"]
    assert all(int(a) < int(b) for a, b in itertools.pairwise(got))
    assert all(v == str(int(v)) for v in got)
    assert [i.version for i in versions(s.base, s.options)] == got


@pytest.mark.parametrize("backend", BACKENDS)
def test_record_holds_manifest_digest_blessings_and_who(
    backend: str, store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url(backend)
    model = make_model(tmp_path / "model")
    first = pushgate.push(model=model, to=s.base, storage_options=s.options)
    second = pushgate.push(
        model=make_model(tmp_path / "m2", payload=b"other"),
        to=s.base,
        storage_options=s.options,
        model_blessing=blessing(tmp_path / "mb", "BLESSED"),
    )
    rec = Journal(open_destination(s.base, s.options)).record(second.version or "")
    assert rec is not None
    assert rec["schema"] == "pushgate.record/v1"
    assert rec["digest"] == second.digest
    assert {f["path"]: f["sha256"] for f in rec["manifest"]["files"]} == manifest_of(
        tmp_path / "m2"
    )
    assert rec["blessings"]["model_blessing"]["verdict"] == "blessed"
    assert rec["previous_newest"] == first.version
    assert rec["user"] and rec["host"]
    assert rec["destination"].endswith(f"/{second.version}")
    # the same bytes again: nothing copied, the newest version is reported
    again = pushgate.push(model=tmp_path / "m2", to=s.base, storage_options=s.options)
    assert again.already_present and again.version == second.version


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_push_and_versions_json_use_the_standard_environment(
    backend: str, store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url(backend)  # credentials and endpoints only through the environment here
    model = make_model(tmp_path / "model")
    out = cli(s, "push", "--model", str(model), "--to", s.base, "--json")
    pushed = json.loads(out.stdout)
    assert pushed["pushed"] is True
    listing = json.loads(cli(s, "versions", s.base, "--json").stdout)
    assert [(v["version"], v["recorded"], v["serving"]) for v in listing["versions"]] == [
        (pushed["version"], True, True)
    ]
    assert listing["versions"][0]["digest"] == pushed["digest"]


def test_secrets_never_appear_in_errors(
    store_url: Callable[[str], StoreURL], tmp_path: Path, s3_server
) -> None:
    s = store_url("s3")
    secret = "sup3r-s3cret-value-never-print"
    opts = {**s.options, "secret_access_key": secret}
    bad = s.base.replace("s3://", "s3://no-such-bucket-") + "x"
    with pytest.raises(PushgateError) as info:
        pushgate.push(model=make_model(tmp_path / "m"), to=bad, storage_options=opts)
    text = str(info.value)
    assert secret not in text
    assert "no-such-bucket-" in text and "does not exist" in text


PUSH_SCRIPT = """
import sys, json, pushgate
r = pushgate.push(model=sys.argv[1], to=sys.argv[2], storage_options=json.loads(sys.argv[3]),
                  versioning="sequential", allow_duplicate=True)
print(json.dumps({"version": r.version, "digest": r.digest}))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_eight_concurrent_pushers_get_eight_distinct_complete_versions(
    backend: str, store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url(backend)
    models = [make_model(tmp_path / f"m{i}", payload=f"model-{i}".encode()) for i in range(8)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PUSH_SCRIPT, str(m), s.base, json.dumps(s.options)],
            env=s.subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in models
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert len({r["version"] for r in results}) == 8
    journal = Journal(open_destination(s.base, s.options))
    for m, r in zip(models, results, strict=True):
        rec = journal.record(r["version"])
        assert rec is not None and rec["digest"] == r["digest"]
        assert {f["path"]: f["sha256"] for f in rec["manifest"]["files"]} == manifest_of(m)
    assert_all_versions_complete(s)


@pytest.mark.parametrize("backend", BACKENDS)
def test_push_killed_mid_upload_is_recovered_by_the_next_push(
    backend: str, store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url(backend)
    big = make_model(tmp_path / "big", big=96 << 20)
    dest = open_destination(s.base, s.options)
    proc = subprocess.Popen(
        [sys.executable, "-c", PUSH_SCRIPT, str(big), s.base, json.dumps(s.options)],
        env=s.subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not dest.list_meta("staging/"):
        if backend == "local" and list((Path(s.base) / ".pushgate" / "staging").glob("*/*")):
            break
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    # whatever instant it died at, no version without a record is served as complete
    after = pushgate.push(
        model=make_model(tmp_path / "small"), to=s.base, storage_options=s.options
    )
    assert after.pushed and not after.already_present
    infos = versions(s.base, s.options)
    assert all(i.recorded for i in infos if i.exists), [i.to_json() for i in infos]
    assert not dest.list_meta("staging/")
    assert_all_versions_complete(s)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        from models import make_saved_model
    except ImportError:  # pragma: no cover - the validators' helper is not there yet
        pytest.fail("tests/models.py (make_saved_model) is missing")
    return make_saved_model(tmp_path_factory.mktemp("tf") / "model")  # type: ignore[no-any-return]


@pytest.mark.tensorflow
@pytest.mark.parametrize("backend", BACKENDS)
def test_tensorflow_savedmodel_round_trips_through_the_store(
    backend: str, store_url: Callable[[str], StoreURL], tmp_path: Path, saved_model: Path
) -> None:
    import numpy as np

    from models import predict_saved_model

    s = store_url(backend)
    r = pushgate.push(model=saved_model, to=s.base, storage_options=s.options)
    got = serving_version(s.base, s.options, into=tmp_path / "download")
    assert got is not None and got[0] == r.version
    x = np.array([[0.5, -1.0], [2.0, 3.0]], dtype=np.float32)
    np.testing.assert_allclose(predict_saved_model(got[1], x), predict_saved_model(saved_model, x))
    assert manifest_of(got[1]) == manifest_of(saved_model)


def test_aws_profiles_from_the_shared_files_are_used(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    """obstore reads no ~/.aws profiles; pushgate does, through boto3's chain."""
    s = store_url("s3")
    (tmp_path / "credentials").write_text(
        f"[pg]\naws_access_key_id = {s.options['access_key_id']}\n"
        f"aws_secret_access_key = {s.options['secret_access_key']}\n"
    )
    (tmp_path / "config").write_text(f"[profile pg]\nregion = {s.options['region']}\n")
    env = {k: v for k, v in s.env.items() if not k.startswith("AWS_") or k == "AWS_ENDPOINT_URL"}
    env |= {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_PROFILE": "pg",
    }
    s.env.clear()
    s.env.update(env)
    model = make_model(tmp_path / "model")
    out = json.loads(cli(s, "push", "--model", str(model), "--to", s.base, "--json").stdout)
    assert out["pushed"], out
    versions_out = json.loads(cli(s, "versions", s.base, "--json").stdout)
    assert [v["version"] for v in versions_out["versions"]] == [out["version"]]
    s.env["AWS_PROFILE"] = "nosuchprofile"
    bad = cli(s, "versions", s.base, check=False)
    assert bad.returncode == 2 and "AWS profile 'nosuchprofile'" in bad.stderr, bad.stderr
    assert s.options["secret_access_key"] not in bad.stderr + bad.stdout


def test_files_too_big_to_copy_server_side_are_uploaded_into_the_version(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    """S3 copies at most 5 GiB per object; bigger files skip staging (the limit is lowered here
    so that a 3 MiB file takes that path) and a rollback streams them through."""
    s = store_url("s3")
    s.env["PUSHGATE_S3_COPY_LIMIT"] = str(1 << 20)
    first = make_model(tmp_path / "first", payload=b"one", big=3 << 20)
    out = json.loads(cli(s, "push", "--model", str(first), "--to", s.base, "--json").stdout)
    assert out["pushed"], out
    second = make_model(tmp_path / "second", payload=b"two", big=2 << 20)
    json.loads(cli(s, "push", "--model", str(second), "--to", s.base, "--json").stdout)
    back = json.loads(cli(s, "rollback", s.base, "--to", out["version"], "--json").stdout)
    assert back["digest"] == out["digest"], back
    assert_all_versions_complete(s)
    assert json.loads(cli(s, "verify", s.base, "--json").stdout)["ok"]
    dest = open_destination(s.base, s.options)
    assert dest.list_meta("staging/") == []
    with dest.open_version_file(back["version"], "variables/variables.data-00000-of-00001") as f:
        assert hash_stream(f) == hash_file(first / "variables/variables.data-00000-of-00001")


@pytest.mark.parametrize("when", ["request", "response"])
@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_dropped_connections_mid_upload_are_retried(kind: str, when: str, tmp_path: Path) -> None:
    """A proxy resets three upload connections, in the middle of the request or as the answer
    comes back; the push retries (GCS: asks the server what it kept and resumes there, or starts
    over when the session is gone) and publishes exactly the model's bytes."""
    server: Any
    if kind == "s3":
        server = start_moto()
        proxy = FlakyProxy(server.port)
        through = {**server.options(), "endpoint": proxy.endpoint}
    else:
        port = free_port()
        proxy = FlakyProxy(port)
        server = start_fake_gcs(port, external_url=proxy.endpoint)
        through = {**server.options(), "base_url": proxy.endpoint}
    try:
        bucket = server.make_bucket()
        base = f"{SCHEMES[kind]}://{bucket}/models/demo"
        model = make_model(tmp_path / "model", big=40 << 20)
        proxy.arm(times=3, after_bytes=3 << 20, when=when)
        result = pushgate.push(model=model, to=base, storage_options=through)
        assert result.pushed and proxy.cuts == 3, (result.reason, proxy.cuts)
        direct = server.options()
        report = verify(base, storage_options=direct)
        assert report.ok, report
        dest = open_destination(base, direct)
        rel = "variables/variables.data-00000-of-00001"
        with dest.open_version_file(str(result.version), rel) as f:
            assert hash_stream(f) == hash_file(model / rel)
    finally:
        proxy.close()
        server.stop()


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_server_dying_mid_push_leaves_no_complete_looking_version(
    kind: str, tmp_path: Path
) -> None:
    # fake-gcs-server keeps its objects on disk, so they outlive the crash and the next push
    # meets the dead push's debris; moto's state dies with it
    data = tmp_path / "gcs-data"
    start: Callable[[int], Any] = (
        start_moto if kind == "s3" else (lambda port=0: start_fake_gcs(port, data))
    )
    server = start(0)
    bucket = server.make_bucket()
    base = f"{SCHEMES[kind]}://{bucket}/models/demo"
    # short timeouts, so the failure is quick; the defaults retry for minutes
    opts = {**server.options(), "timeout": "5s", "connect_timeout": "1s", "max_retries": "2"}
    model = make_model(tmp_path / "big", big=128 << 20)
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            pushgate.push(model=model, to=base, storage_options=opts)
        except BaseException as e:
            errors.append(e)

    dest = open_destination(base, opts)
    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not dest.list_meta("staging/"):
        time.sleep(0.01)
    time.sleep(0.3)
    server.stop()
    t.join(600)
    assert errors, "the push should fail when its server is gone"
    message = str(errors[0])
    assert isinstance(errors[0], PushgateError)
    assert base in message
    assert "testing" not in message  # the S3 fixture's secret key
    # A new server on the same port: the store the next push sees holds no numeric version
    # without a record, and the push succeeds (finishing the dead push's debris if it is there).
    again = start(server.port)
    try:
        if kind == "s3":
            again.make_bucket(bucket)
        else:
            assert open_destination(base, opts).list_meta("staging/"), "debris should outlive"
        r = pushgate.push(model=make_model(tmp_path / "small"), to=base, storage_options=opts)
        assert r.pushed
        assert all(i.recorded for i in versions(base, opts) if i.exists)
    finally:
        again.stop()


def test_remote_inputs_materialize_and_upload(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    from pushgate.remote import materialize, upload_tree

    s = store_url("s3")
    model = make_model(tmp_path / "model")
    upload_tree(model, f"{s.base}/inputs/model", s.options)
    with materialize(f"{s.base}/inputs/model", s.options) as local:
        assert manifest_of(local) == manifest_of(model)
    with materialize(str(model)) as local:
        assert local == model


def test_gcs_emulator_host_is_honoured_for_reads(gcs_server, tmp_path: Path) -> None:
    import urllib.request

    bucket = gcs_server.make_bucket()
    body = b'{"schema": "pushgate.record/v1"}'
    url = (
        f"{gcs_server.endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=media"
        f"&name=models/demo/.pushgate/records/7.json"
    )
    urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST")).close()
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = gcs_server.endpoint
    try:
        dest = open_destination(f"gs://{bucket}/models/demo")
        assert dest.list_meta("records/") == ["records/7.json"]
    finally:
        if old is None:
            del os.environ["STORAGE_EMULATOR_HOST"]
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = old
