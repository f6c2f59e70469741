"""Crash safety on a local BASE: SIGKILL at several moments, eight pushers at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (
    assert_every_version_complete,
    cli,
    cli_json,
    make_model_dir,
    numeric_dirs,
    tfx_model,
)


def _staged_bytes(base: Path) -> int:
    total = 0
    for p in (base / ".pushgate" / "staging").rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def _wait_for(cond: object, proc: subprocess.Popen[bytes], limit: float = 60.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if cond():  # type: ignore[operator]
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.0005)
    return False


@pytest.mark.parametrize("moment", ["early", "mid-copy", "before-publish"])
def test_sigkill_at_any_moment_leaves_no_partial_version_and_next_push_succeeds(
    tmp_path: Path, moment: str
) -> None:
    big = make_model_dir(tmp_path / "big", shards=8, shard_bytes=24 * 1024 * 1024)  # 192 MiB
    total = sum(p.stat().st_size for p in big.rglob("*") if p.is_file())
    base = tmp_path / "serving"
    # one complete version before the crash
    code, first = cli_json("push", "--model", tfx_model(tmp_path / "m0"), "--to", base)
    assert code == 0
    records = base / ".pushgate" / "records"
    conditions = {
        "early": lambda: len(list((base / ".pushgate" / "claims").iterdir())) >= 2,
        "mid-copy": lambda: _staged_bytes(base) > total // 3,
        "before-publish": lambda: len(list(records.iterdir())) >= 2,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushgate", "push", "--model", big, "--to", base],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    reached = _wait_for(conditions[moment], proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reached, f"the push ended before reaching {moment}"

    # Whatever instant the kill hit: every numeric directory is complete and recorded.
    assert_every_version_complete(base)
    assert first["version"] in numeric_dirs(base)

    # The next push succeeds, cleans the debris, and lands above everything.
    code, after = cli_json("push", "--model", tfx_model(tmp_path / "m1", seed=1), "--to", base)
    assert code == 0 and after["pushed"]
    assert int(after["version"]) > max(int(v) for v in numeric_dirs(base) if v != after["version"])
    assert list((base / ".pushgate" / "staging").iterdir()) == []
    if moment != "early":
        assert after["destinations"][0]["recovered"], "the dead push's staging copy was not cleaned"
    assert_every_version_complete(base)
    # a record never outlives a version that was not published
    assert sorted(p.stem for p in records.iterdir()) == numeric_dirs(base)


@pytest.mark.parametrize("versioning", ["auto", "sequential"])
def test_eight_pushers_at_once_get_eight_distinct_complete_versions(
    tmp_path: Path, versioning: str
) -> None:
    base = tmp_path / "serving"
    models = [
        make_model_dir(tmp_path / f"m{i}", seed=i, shards=2, shard_bytes=2 * 1024 * 1024)
        for i in range(8)
    ]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pushgate",
                "push",
                "--model",
                m,
                "--to",
                base,
                "--versioning",
                versioning,
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in models
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        outs.append(json.loads(stdout))
    versions = [o["version"] for o in outs]
    assert len(set(versions)) == 8
    assert sorted(numeric_dirs(base)) == sorted(versions)
    assert_every_version_complete(base)
    for model, out in zip(models, outs, strict=True):
        # the version each pusher reports holds that pusher's bytes
        pushed = base / out["version"] / "saved_model.pb"
        assert pushed.read_bytes() == (model / "saved_model.pb").read_bytes()
    if versioning == "sequential":
        assert sorted(int(v) for v in versions) == list(range(1, 9))
    assert os.listdir(base / ".pushgate" / "staging") == []


def test_recovery_removes_old_temporary_locks_and_leaves_young_ones(tmp_path: Path) -> None:
    """A pusher killed between creating its lock file and renaming it leaves ``.tmp-*.lock``;
    a young one may be a live pusher's, not locked yet, which recovery must not take."""
    model = make_model_dir(tmp_path / "m")
    base = tmp_path / "serving"
    assert cli("push", "--model", model, "--to", base).returncode == 0
    staging = base / ".pushgate" / "staging"
    old, young = staging / ".tmp-7-deadpusher.lock", staging / ".tmp-8-livepusher.lock"
    old.write_text("123\n")
    young.write_text("456\n")
    two_minutes_ago = time.time() - 120
    os.utime(old, (two_minutes_ago, two_minutes_ago))
    assert cli("push", "--model", model, "--to", base, "--allow-duplicate").returncode == 0
    assert not old.exists() and young.exists()
