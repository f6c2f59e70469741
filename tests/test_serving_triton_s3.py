"""A Triton model repository on S3 (moto on 127.0.0.1), watched by a real ``tritonserver`` in
poll mode. A Triton version prefix that exists without its model file hangs Triton for good, so
pushgate copies the model file first: a watcher listing the bucket the whole time must never
see a version without ``model.py``, and Triton's poll loop must pick up every version."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

import pushgate
import servers
from pushgate.serving import ServeRequest
from triton_server import CONFIG_PBTXT, RequestLoop, triton_model_dir

s3_server = servers.s3_server

PARTS = 20


class Watcher:
    """Lists the model's prefix as fast as it can; remembers every listing in which a numeric
    version held objects but no ``model.py``."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.listings = 0
        self.bad: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix)
            self.listings += 1
            seen: dict[str, set[str]] = {}
            for obj in resp.get("Contents", []):
                version, _, rel = obj["Key"][len(self.prefix) :].partition("/")
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
def test_s3_pushes_never_show_triton_a_version_without_its_model_file(
    tmp_path: Path, s3_server: servers.S3Server, triton: Any
) -> None:
    bucket = s3_server.make_bucket()
    opts = s3_server.options()
    client = boto3.client(
        "s3",
        endpoint_url=opts["endpoint"],
        aws_access_key_id=opts["access_key_id"],
        aws_secret_access_key=opts["secret_access_key"],
        region_name=opts["region"],
    )
    client.put_object(Bucket=bucket, Key="repo/m/config.pbtxt", Body=CONFIG_PBTXT.format(name="m"))
    base = f"s3://{bucket}/repo/m"

    def push(seed: float, serve: ServeRequest | None = None) -> Any:
        model = triton_model_dir(tmp_path / f"m{seed}", seed, parts=PARTS)
        return pushgate.push(
            model=model,
            destinations=(base,),
            storage_options=opts,
            versioning="sequential",
            serve=serve,
        )

    assert push(2.0).version == "1"
    host = opts["endpoint"].removeprefix("http://")
    env = {
        "AWS_ACCESS_KEY_ID": opts["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": opts["secret_access_key"],
        "AWS_DEFAULT_REGION": opts["region"],
        "AWS_REGION": opts["region"],
    }
    server = triton(f"s3://{host}/{bucket}/repo", mode="poll", env=env)
    server.wait(lambda: server.version_ready("m", "1"), 60, "version 1 ready")
    serve = ServeRequest((server.serve_url("m"),), timeout=60)

    waits: list[float] = []
    with Watcher(client, bucket, "repo/m/") as watcher, RequestLoop(server, "m") as loop:
        for n, factor in enumerate((3.0, 4.0, 5.0), start=2):
            result = push(factor, serve)
            assert result.version == str(n) and not result.failed, result.to_json()
            waits.append(result.serve[0].checks[0].seconds)
            server.wait(lambda f=factor: server.infer("m") == f, 30, f"answers {factor}")
    print(
        f"\nS3: {watcher.listings} listings, {len(watcher.bad)} without model.py; "
        f"{loop.sent} requests, {len(loop.failures)} failed; ready after {waits} s"
    )
    assert watcher.listings > 20
    assert watcher.bad == []
    assert loop.failures == [], loop.failures[:5]
