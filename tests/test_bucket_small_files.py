# ruff: noqa: F811  (pytest fixtures imported from servers.py are parameters here)
"""Small files on a bucket: one request each (held back on disk by ``stage``, uploaded straight
into ``<v>/`` by ``publish``), not an upload into staging plus a server-side copy; and still
nothing numeric before the publish.

Against moto's S3 server with versioning on, so every object ever written under the staging
prefix stays visible as a version after its deletion.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

import pushgate
from pushgate.destination import open_destination
from pushgate.errors import PushgateError
from pushgate.journal import Journal
from pushgate.lifecycle import verify
from pushgate.progress import Progress
from servers import S3_KEY_ID, S3_REGION, S3_SECRET, S3Server, s3_server  # noqa: F401


def small_model(root: Path, n: int) -> Path:
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"graph")
    (root / "variables" / "variables.index").write_bytes(b"index")
    (root / "variables" / "variables.data-00000-of-00001").write_bytes(b"w" * 300_000)  # staged
    for i in range(n):
        sub = root / "assets" / f"d{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:04d}.txt").write_bytes(f"asset {i}\n".encode() * (i % 7 + 1))
    return root


def test_small_files_skip_staging_and_land_whole(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.make_bucket()
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name=S3_REGION,
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    base = f"s3://{bucket}/models/demo"
    model = small_model(tmp_path / "model", 120)

    r = pushgate.push(model=model, to=base, storage_options=s3_server.options())
    assert r.pushed

    written = s3.list_object_versions(Bucket=bucket, Prefix="models/demo/.pushgate/staging/")
    staged = sorted(
        v["Key"].split("/", 5)[-1]
        for v in written.get("Versions", [])
        if not v["Key"].endswith(".lease")
    )
    # only the file over the hold-back size went through staging (and was deleted after)
    assert staged == ["variables/variables.data-00000-of-00001"], staged
    dest = open_destination(base, s3_server.options())
    assert [k for k in dest.list_meta("staging/") if not k.endswith(".lease")] == []
    record = Journal(dest).record(r.version)
    assert record is not None
    assert dest.list_version_files(r.version) == {
        f["path"]: f["size"] for f in record["manifest"]["files"]
    }
    assert len(record["manifest"]["files"]) == 123
    assert verify(base, r.version, storage_options=s3_server.options()).ok


class ChangeAfterStaging(Progress):
    """Rewrites one model file when the push's upload phase ends, before its publish: what a
    process writing into the model directory meanwhile would do."""

    def __init__(self, victim: Path) -> None:
        self.victim = victim
        self.label = ""

    def start(self, label: str, total: int) -> None:
        self.label = label

    def finish(self) -> None:
        if self.label == "pushing":
            self.victim.write_bytes(b"changed after it was hashed\n")


def test_a_held_back_file_changed_before_publish_is_refused_not_published(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    base = f"s3://{bucket}/models/demo"
    model = small_model(tmp_path / "model", 20)
    victim = model / "assets" / "d1" / "f0005.txt"
    with pytest.raises(PushgateError) as e:
        pushgate.push(
            model=model,
            to=base,
            storage_options=s3_server.options(),
            progress=ChangeAfterStaging(victim),
        )
    assert str(victim) in str(e.value) and "changed" in str(e.value)
    dest = open_destination(base, s3_server.options())
    assert dest.numeric_children() == []  # nothing half-published
    assert [k for k in dest.list_meta("staging/") if not k.endswith(".lease")] == []
