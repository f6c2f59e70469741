"""Models of many small files: work queues stay bounded (memory flat in the number of files),
results keep their order, errors stop the work, and push/verify/re-push stay correct."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

import pushgate
from conftest import assert_every_version_complete, kill_when
from pushgate.api import versions
from pushgate.destination import open_destination
from pushgate.journal import Journal
from pushgate.lifecycle import verify
from pushgate.manifest import QUEUED_PER_WORKER, SMALL_FILE, bounded_map, hash_fd, hash_file
from pushgate.source import list_tree
from servers import StoreURL

MIB = 2**20


def test_bounded_map_keeps_order_and_bounds_the_work_ahead_of_the_consumer() -> None:
    threads, batch, n = 4, 3, 2000
    lock = threading.Lock()
    started = consumed = most_ahead = 0

    def fn(i: int) -> int:
        nonlocal started, most_ahead
        with lock:
            started += 1
            most_ahead = max(most_ahead, started - consumed)
        time.sleep((i * 7919 % 5) / 20000)  # uneven work: later items often finish first
        return i * i

    out = []
    for value in bounded_map(fn, range(n), threads, batch=batch):
        out.append(value)
        with lock:
            consumed += 1
    assert out == [i * i for i in range(n)]
    # the batches queued or running, plus the one being handed out: never the whole input
    assert most_ahead <= (threads * QUEUED_PER_WORKER + 1) * batch


def test_bounded_map_raises_the_first_error_and_cancels_work_not_started() -> None:
    ran: list[int] = []
    lock = threading.Lock()

    def fn(i: int) -> int:
        with lock:
            ran.append(i)
        if i == 50:
            raise ValueError("item 50 is bad")
        return i

    with pytest.raises(ValueError, match="item 50"):
        list(bounded_map(fn, range(100_000), 4, batch=8))
    assert len(ran) < 1000  # the rest of the 100,000 were never started


def test_bounded_map_stops_when_the_consumer_stops() -> None:
    ran: list[int] = []
    gen = bounded_map(lambda i: ran.append(i) or i, range(100_000), 4, batch=8)
    assert next(gen) == 0
    gen.close()
    assert len(ran) < 1000


def _many_files(root: Path, n: int) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"pb")
    for i in range(n):
        sub = root / "assets" / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir()
        (sub / f"f{i:06d}.txt").write_bytes(f"file {i}\n".encode())
    return root


def test_push_verify_and_repush_of_20000_files_keep_memory_flat(tmp_path: Path) -> None:
    """Before the bounded queues each file was a pending thread-pool task up front, on top of
    a file list of dataclasses holding ``Path`` objects."""
    n = 20_000
    model = _many_files(tmp_path / "model", n)
    base = tmp_path / "base"
    request = pushgate.PushRequest(destinations=(str(base),), model=model, any_model=True)

    tracemalloc.start()
    try:
        first = pushgate.push(request)
        _, push_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        report = verify(base)
        _, verify_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        again = pushgate.push(request)
        _, repush_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert first.pushed and first.version and not first.failed
    assert report.ok and report.versions[0].files == n + 1
    assert again.already_present and again.version == first.version
    assert_every_version_complete(base)
    # measured (Python heap): push 32 MiB (much of it the record's JSON of 20,000 entries),
    # verify 23, re-push 21; before the bounded queues: 46, 48 and 55 MiB
    for what, peak, most in (
        ("push", push_peak, 40),
        ("verify", verify_peak, 35),
        ("re-push", repush_peak, 35),
    ):
        assert peak < most * MIB, f"{what} peaked at {peak / MIB:.1f} MiB for {n} files"

    (base / first.version / "assets" / "d007" / "f007123.txt").write_bytes(b"file 7124\n")
    damaged = verify(base)
    assert not damaged.ok
    assert damaged.versions[0].changed == ["assets/d007/f007123.txt"]


@pytest.mark.parametrize("size", [0, 1, 4096, SMALL_FILE, SMALL_FILE + 1, 3 * MIB + 7])
def test_hash_fd_matches_hashlib_whatever_the_size_hint(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert hash_file(path) == want
    seen: list[int] = []
    # a stale hint (the file grew or shrank since it was listed) still hashes what is there
    for hint in (size, 0, max(0, size - 1), size + 10, -1):
        fd = os.open(path, os.O_RDONLY)
        try:
            assert hash_fd(fd, seen.append, hint) == want, hint
        finally:
            os.close(fd)
    assert sum(seen) == 5 * size  # progress counts every byte once per hash


S3_PUSH = """
import json, sys, pushgate
r = pushgate.push(model=sys.argv[1], to=sys.argv[2], storage_options=json.loads(sys.argv[3]),
                  versioning="sequential", any_model=True)
print(json.dumps({"version": r.version}))
"""


def test_s3_push_killed_while_files_land_in_the_version_is_never_published(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    """With PUSHGATE_S3_DIRECT=1 a push uploads straight into ``<v>/`` (no staging copy):
    killed with SIGKILL while ``<v>/`` fills, the version is there but unrecorded, so not
    published (``versions`` says so, and it lacks its entry file); the next push's recovery
    deletes every object of it."""
    s = store_url("s3")
    model = _many_files(tmp_path / "model", 3000)
    dest = open_destination(s.base, s.options)
    proc = subprocess.Popen(
        [sys.executable, "-c", S3_PUSH, str(model), s.base, json.dumps(s.options)],
        env={**s.subprocess_env(), "PUSHGATE_S3_DIRECT": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    landed: dict[str, int] = {}

    def landing() -> bool:
        numeric = dest.numeric_children()
        if numeric:
            landed.clear()
            landed.update(dest.list_version_files(numeric[0]))
        return len(landed) > 20

    kill_when(proc, landing, limit=120, every=0.05)
    assert len(landed) > 20, "the push never wrote into <v>/ before it ended"
    assert "saved_model.pb" not in landed  # the entry file lands last, after every other file
    (version,) = dest.numeric_children()
    (info,) = [i for i in versions(s.base, s.options) if i.version == version]
    assert info.exists and not info.recorded  # there, but never published
    assert Journal(dest).record(version) is None

    after = pushgate.push(
        model=model, to=s.base, storage_options=s.options, versioning="sequential", any_model=True
    )
    assert after.pushed and after.version != version
    assert any(version in line for line in after.destinations[0].recovered)
    assert dest.list_version_files(version) == {}  # every object of the dead push is gone
    assert dest.list_meta("staging/") == []
    assert sorted(dest.list_version_files(after.version)) == sorted(
        f.rel for f in list_tree(model).files
    )
    assert verify(s.base, storage_options=s.options).ok


def test_cli_verify_of_many_files_hashes_them_in_worker_processes_and_finds_every_change(
    tmp_path: Path,
) -> None:
    """From 4,000 files a local verify hashes in one process per core (the GIL made threads
    barely faster than one); what it finds must not change: a changed byte, a file gone, a file
    added, a size change."""
    n = 5_000
    model = _many_files(tmp_path / "model", n)
    base = tmp_path / "base"
    first = pushgate.push(
        pushgate.PushRequest(destinations=(str(base),), model=model, any_model=True)
    )
    v = base / first.version
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # the CLI process has no other thread: the worker processes are used (2+ cores)
    probe = "from pushgate.destination.local import _hash_processes as p; print(p(5000))"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert int(out.stdout) >= min(2, os.cpu_count() or 1) or (os.cpu_count() or 1) < 2

    def cli_verify() -> dict[str, object]:
        cmd = [sys.executable, "-m", "pushgate", "verify", str(base), "--json", "--no-progress"]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode in (0, 3), res.stderr
        doc = json.loads(res.stdout)
        assert isinstance(doc, dict)
        return doc

    clean = cli_verify()
    assert clean["ok"] is True and clean["files"] == n + 1

    (v / "assets" / "d001" / "f001234.txt").write_bytes(b"file 1235\n")  # same size
    (v / "assets" / "d003" / "f003000.txt").write_bytes(b"longer content\n")
    (v / "assets" / "d004" / "f004999.txt").unlink()
    (v / "assets" / "d002" / "stray.txt").write_bytes(b"x")
    damaged = cli_verify()
    assert damaged["ok"] is False
    (check,) = damaged["versions"]  # type: ignore[misc]
    assert check["changed"] == ["assets/d001/f001234.txt", "assets/d003/f003000.txt"]
    assert check["missing"] == ["assets/d004/f004999.txt"]
    assert check["extra"] == ["assets/d002/stray.txt"]
