"""A Triton model repository on S3 (moto) and on GCS (fake-gcs-server), on 127.0.0.1, watched
by a real ``tritonserver`` in poll mode. A Triton version prefix that exists without its model
file hangs Triton for good, so pushgate copies the model file first: a watcher listing the bucket
the whole time must never see a version without ``model.py``, and Triton's poll loop must pick up
every version."""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

import pushgate
import servers
from pushgate.serving import ServeRequest
from triton_server import CONFIG_PBTXT, RequestLoop, triton_model_dir

s3_server = servers.s3_server
gcs_server = servers.gcs_server

PARTS = 20


@dataclass
class Bucket:
    """One fresh bucket: how pushgate, Triton and the test's own raw calls reach it."""

    base: str  # pushgate's BASE (the model's prefix)
    options: dict[str, str]
    triton_repo: str
    triton_env: dict[str, str]
    put: Callable[[str, bytes], None]
    keys: Callable[[str], list[str]]


def s3_bucket(server: servers.S3Server) -> Bucket:
    bucket = server.make_bucket()
    opts = server.options()
    client = boto3.client(
        "s3",
        endpoint_url=opts["endpoint"],
        aws_access_key_id=opts["access_key_id"],
        aws_secret_access_key=opts["secret_access_key"],
        region_name=opts["region"],
    )

    def keys(prefix: str) -> list[str]:
        resp = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for o in resp.get("Contents", [])]

    return Bucket(
        f"s3://{bucket}/repo/m",
        opts,
        f"s3://{opts['endpoint'].removeprefix('http://')}/{bucket}/repo",
        {
            "AWS_ACCESS_KEY_ID": opts["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": opts["secret_access_key"],
            "AWS_DEFAULT_REGION": opts["region"],
            "AWS_REGION": opts["region"],
        },
        lambda key, body: client.put_object(Bucket=bucket, Key=key, Body=body),
        keys,
    )


def gcs_bucket(server: Any) -> Bucket:
    bucket = server.make_bucket()
    api = f"{server.endpoint}/storage/v1/b/{bucket}/o"

    def put(key: str, body: bytes) -> None:
        name = urllib.parse.quote(key, safe="")
        req = urllib.request.Request(
            f"{server.endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}",
            data=body,
            method="POST",
        )
        urllib.request.urlopen(req, timeout=10).close()

    def keys(prefix: str) -> list[str]:
        url = f"{api}?prefix={urllib.parse.quote(prefix)}&maxResults=1000"
        with urllib.request.urlopen(url, timeout=10) as r:
            return [o["name"] for o in json.load(r).get("items", [])]

    return Bucket(
        f"gs://{bucket}/repo/m",
        server.options(),
        f"gs://{bucket}/repo",
        {"CLOUD_STORAGE_EMULATOR_ENDPOINT": server.endpoint},
        put,
        keys,
    )


class Watcher:
    """Lists the model's prefix as fast as it can; remembers every listing in which a numeric
    version held objects but no ``model.py``."""

    def __init__(self, keys: Callable[[str], list[str]], prefix: str) -> None:
        self.list, self.prefix = keys, prefix
        self.listings = 0
        self.bad: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            found = self.list(self.prefix)
            self.listings += 1
            seen: dict[str, set[str]] = {}
            for key in found:
                version, _, rel = key[len(self.prefix) :].partition("/")
                if version.isdigit():
                    seen.setdefault(version, set()).add(rel)
            for version, rels in seen.items():
                if "model.py" not in rels:
                    self.bad.append({version: len(rels)})

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_bucket_pushes_never_show_triton_a_version_without_its_model_file(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest, triton: Any
) -> None:
    make = {"s3": s3_bucket, "gcs": gcs_bucket}[kind]
    store = make(request.getfixturevalue(f"{kind}_server"))
    store.put("repo/m/config.pbtxt", CONFIG_PBTXT.format(name="m").encode())

    def push(seed: float, serve: ServeRequest | None = None) -> Any:
        model = triton_model_dir(tmp_path / f"m{seed}", seed, parts=PARTS)
        return pushgate.push(
            model=model,
            destinations=(store.base,),
            storage_options=store.options,
            versioning="sequential",
            serve=serve,
        )

    assert push(2.0).version == "1"
    server = triton(store.triton_repo, mode="poll", env=store.triton_env)
    server.wait(lambda: server.version_ready("m", "1"), 60, "version 1 ready")
    serve = ServeRequest((server.serve_url("m"),), timeout=60)

    waits: list[float] = []
    with Watcher(store.keys, "repo/m/") as watcher, RequestLoop(server, "m") as loop:
        for n, factor in enumerate((3.0, 4.0, 5.0), start=2):
            result = push(factor, serve)
            assert result.version == str(n) and not result.failed, result.to_json()
            waits.append(result.serve[0].checks[0].seconds)
            server.wait(lambda f=factor: server.infer("m") == f, 30, f"answers {factor}")
    print(
        f"\n{kind}: {watcher.listings} listings, {len(watcher.bad)} without model.py; "
        f"{loop.sent} requests, {len(loop.failures)} failed; ready after {waits} s"
    )
    assert watcher.listings > 20
    assert watcher.bad == []
    assert loop.failures == [], loop.failures[:5]
