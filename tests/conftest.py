"""Shared test helpers: real model directories, real marker-file blessings, the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from servers import *  # noqa: F403  (real S3 / GCS / Azure servers, session fixtures)
from triton_server import triton  # noqa: F401  (real tritonserver processes, per test)

REPO = Path(__file__).resolve().parents[1]

# tests/tfx_pipeline/ needs TFX (Python 3.9/3.10): scripts/test.sh runs it as its own pytest
# run in .venv-tfx with PUSHGATE_TFX_TESTS=1; the main suite never collects it
collect_ignore = [] if os.environ.get("PUSHGATE_TFX_TESTS") == "1" else ["tfx_pipeline"]


def make_model_dir(
    path: Path, *, seed: int = 0, shards: int = 2, shard_bytes: int = 64 * 1024
) -> Path:
    """A SavedModel-shaped directory with deterministic, seed-dependent bytes (no TensorFlow)."""
    import random

    rnd = random.Random(seed)
    (path / "variables").mkdir(parents=True, exist_ok=True)
    (path / "assets").mkdir(exist_ok=True)
    (path / "saved_model.pb").write_bytes(b"pb-" + str(seed).encode() + rnd.randbytes(100))
    (path / "saved_model.pbtxt").write_text(f"# text form {seed}\n")
    (path / "variables" / "variables.index").write_bytes(rnd.randbytes(50))
    for i in range(shards):
        name = f"variables.data-{i:05d}-of-{shards:05d}"
        (path / "variables" / name).write_bytes(rnd.randbytes(shard_bytes))
    (path / "assets" / "vocab.txt").write_text("a\nb\nc\n")
    (path / "assets" / "nested").mkdir(exist_ok=True)
    (path / "assets" / "nested" / "saved_model.pb").write_bytes(b"nested file with the entry name")
    return path


def tfx_model(root: Path, *, seed: int = 0, **kw: Any) -> Path:
    """A TFX Model artifact: ``<root>/Format-Serving/`` holding the model."""
    make_model_dir(root / "Format-Serving", seed=seed, **kw)
    return root


def blessing(path: Path, kind: str, verdict: str) -> Path | None:
    """A real marker-file blessing directory as TFX writes it; ``absent`` returns None."""
    if verdict == "absent":
        return None
    path.mkdir(parents=True, exist_ok=True)
    yes, no = (
        ("BLESSED", "NOT_BLESSED") if kind == "model" else ("INFRA_BLESSED", "INFRA_NOT_BLESSED")
    )
    if verdict == "blessed":
        (path / yes).touch()
    elif verdict == "not_blessed":
        (path / no).touch()
    return path


def cli(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "pushgate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def cli_json(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    proc = cli(*args, "--json", env=env)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def numeric_dirs(base: Path) -> list[str]:
    return (
        sorted((p.name for p in base.iterdir() if p.name.isdigit()), key=int)
        if base.exists()
        else []
    )


def kill_when(
    proc: subprocess.Popen[bytes], condition: Any, limit: float = 300.0, every: float = 0.0005
) -> bool:
    """SIGKILL ``proc`` as soon as ``condition()`` holds (polled ``every`` seconds), or when it
    ends or ``limit`` seconds pass; True when the condition was reached while it ran."""
    deadline = time.monotonic() + limit
    reached = False
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if condition():
                reached = True
                break
            time.sleep(every)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    return reached


def recorded_files(base: Path, name: str, record: dict[str, Any]) -> list[dict[str, Any]]:
    """A local version's recorded files, from its record or, for a big model, from the lines
    stored apart (``.pushgate/manifests/<v>.txt``), read here without pushgate's code and
    checked against the record's digest and counts."""
    import hashlib

    manifest = record["manifest"]
    if "files" in manifest:
        return list(manifest["files"])
    assert manifest["lines"] == f"manifests/{name}.txt"
    raw = (base / ".pushgate" / "manifests" / f"{name}.txt").read_bytes()
    text = raw + b"".join(f"dir {d}/\n".encode() for d in manifest["dirs"])
    assert f"sha256:{hashlib.sha256(text).hexdigest()}" == record["digest"] == manifest["digest"]
    out = []
    for line in raw.decode().splitlines():
        sha, size, path = line.split(" ", 2)
        out.append({"path": path, "size": int(size), "sha256": sha})
    assert len(out) == manifest["file_count"]
    assert sum(f["size"] for f in out) == manifest["total_bytes"]
    assert [f["path"] for f in out] == sorted(f["path"] for f in out)
    return out


def assert_every_version_complete(base: Path) -> None:
    """Every numeric directory under BASE has a record and exactly its manifest's bytes."""
    import hashlib

    for name in numeric_dirs(base):
        rec_path = base / ".pushgate" / "records" / f"{name}.json"
        assert rec_path.exists(), f"version {name} has no journal record"
        record = json.loads(rec_path.read_text())
        files = {
            p.relative_to(base / name).as_posix(): p
            for p in (base / name).rglob("*")
            if p.is_file()
        }
        want = {f["path"]: f for f in recorded_files(base, name, record)}
        assert set(files) == set(want), f"version {name}: files differ from its manifest"
        for rel, f in want.items():
            assert hashlib.sha256(files[rel].read_bytes()).hexdigest() == f["sha256"], rel


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return tfx_model(tmp_path / "model")
