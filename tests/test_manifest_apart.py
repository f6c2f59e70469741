"""Models of more files than a record holds inline (``INLINE_FILES``): the manifest is stored
apart as lines, streamed by push, re-push, verify and rollback, checked against the record's
digest as it is read, cleaned up after a kill, and never a way out of ``.pushgate/``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import pushgate
from conftest import assert_every_version_complete, kill_when, numeric_dirs, recorded_files
from pushgate.api import versions
from pushgate.lifecycle import verify
from pushgate.manifest import INLINE_FILES
from servers import StoreURL

N = INLINE_FILES + 7


def _model(root: Path, n: int = N) -> Path:
    """``n`` small files (plus ``saved_model.pb``) in 1,000-file directories, names chosen so
    that a plain sort of the paths differs from a sort of each directory's names (``a.txt``
    sorts before ``a/``), and an empty directory."""
    (root / "assets" / "empty").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"pb")
    (root / "a").mkdir()
    (root / "a" / "inner").write_bytes(b"inner")
    (root / "a.txt").write_bytes(b"sibling of a/")
    (root / "a-b").write_bytes(b"dash sorts before slash")
    for i in range(n - 4):
        sub = root / "assets" / f"d{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:06d}.txt").write_bytes(f"file {i}\n".encode())
    return root


def _record(base: Path, version: str) -> dict[str, object]:
    doc = json.loads((base / ".pushgate" / "records" / f"{version}.json").read_text())
    assert isinstance(doc, dict)
    return doc


def _push(model: Path, base: Path) -> pushgate.PushResult:
    return pushgate.push(
        pushgate.PushRequest(destinations=(str(base),), model=model, any_model=True)
    )


def test_a_manifest_of_many_files_is_stored_apart_and_every_command_reads_it(
    tmp_path: Path,
) -> None:
    model = _model(tmp_path / "model")
    base = tmp_path / "base"
    first = _push(model, base)
    assert first.pushed and first.version and not first.failed
    v1 = first.version

    record = _record(base, v1)
    manifest = record["manifest"]
    assert isinstance(manifest, dict)
    assert "files" not in manifest and manifest["lines"] == f"manifests/{v1}.txt"
    assert manifest["file_count"] == N and manifest["dirs"] == ["assets/empty"]
    # the record stays small; the lines are the digest's own text, checked independently
    assert (base / ".pushgate" / "records" / f"{v1}.json").stat().st_size < 4096
    paths = [f["path"] for f in recorded_files(base, v1, record)]
    assert paths[:4] == ["a-b", "a.txt", "a/inner", "assets/d000/f000000.txt"]
    assert_every_version_complete(base)
    assert (base / v1 / "assets" / "empty").is_dir()
    assert list((base / ".pushgate" / "staging").iterdir()) == []

    again = _push(model, base)
    assert again.already_present and again.version == v1

    clean = verify(base, v1)
    assert clean.ok and clean.versions[0].files == N

    v = base / v1
    (v / "assets" / "d003" / "f003333.txt").write_bytes(b"file 3334\n")  # same size
    (v / "assets" / "d009" / "f009999.txt").unlink()
    (v / "assets" / "d005" / "stray").write_bytes(b"x")
    (v / "a.txt").write_bytes(b"a longer sibling of a/")
    damaged = verify(base, v1)
    (check,) = damaged.versions
    assert not damaged.ok
    assert check.changed == ["a.txt", "assets/d003/f003333.txt"]
    assert check.missing == ["assets/d009/f009999.txt"]
    assert check.extra == ["assets/d005/stray"]
    assert check.errors == []

    # a changed model is a new version; rolling back to the first copies it from the store,
    # its manifest read from the lines, the new record's lines written apart again
    (model / "assets" / "d001" / "f001000.txt").write_bytes(b"changed")
    second = _push(model, base)
    assert second.pushed and not second.already_present and second.version != v1
    (v / "assets" / "d003" / "f003333.txt").write_bytes(b"file 3333\n")
    (v / "assets" / "d009" / "f009999.txt").write_bytes(b"file 9999\n")
    (v / "assets" / "d005" / "stray").unlink()
    (v / "a.txt").write_bytes(b"sibling of a/")
    assert verify(base).ok
    back = pushgate.rollback(str(base), to=v1)
    assert back.version and back.digest == first.digest
    rolled = _record(base, back.version)
    assert rolled["manifest"]["lines"] == f"manifests/{back.version}.txt"  # type: ignore[index]
    assert_every_version_complete(base)
    assert verify(base).ok
    assert [i.version for i in versions(str(base)) if i.serving] == [back.version]


def test_verify_finds_the_same_damage_in_worker_processes_and_walking_side_by_side(
    tmp_path: Path,
) -> None:
    """A CLI process (no other thread) compares in worker processes that parse and hash whole
    blocks of lines; a process with another thread running cannot fork safely and walks the
    manifest and the listing side by side. Both must find exactly the same things."""
    import threading

    model = _model(tmp_path / "model")
    base = tmp_path / "base"
    v1 = _push(model, base).version
    assert v1
    v = base / v1
    (v / "assets" / "d002" / "f002222.txt").write_bytes(b"file 2223\n")  # same size
    (v / "a.txt").write_bytes(b"longer than it was")
    (v / "assets" / "d008" / "f008888.txt").unlink()
    (v / "assets" / "d000" / "zz-stray").write_bytes(b"x")
    (v / "a-a").write_bytes(b"y")
    (v / "assets" / "d004" / "f004444.txt").chmod(0)
    unreadable = os.geteuid() != 0  # root reads a file whatever its mode

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "pushgate", "verify", str(base), v1, "--json", "--no-progress"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 3, res.stderr
    (by_workers,) = json.loads(res.stdout)["versions"]

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        (side_by_side,) = verify(base, v1).versions
    finally:
        stop.set()
        other.join()

    for check in (by_workers, side_by_side.to_json()):
        assert check["changed"] == ["a.txt", "assets/d002/f002222.txt"]
        assert check["missing"] == ["assets/d008/f008888.txt"]
        assert check["extra"] == ["a-a", "assets/d000/zz-stray"]
        assert check["files"] == N - 1
        assert len(check["errors"]) == (1 if unreadable else 0)


def test_a_damaged_or_planted_stored_manifest_fails_closed(tmp_path: Path) -> None:
    model = _model(tmp_path / "model")
    base = tmp_path / "base"
    v1 = _push(model, base).version
    assert v1
    lines = base / ".pushgate" / "manifests" / f"{v1}.txt"
    good = lines.read_bytes()

    # one recorded digest swapped for another well-formed one: the lines no longer give the
    # record's digest; verify says so, and a re-push does not take the version as identical
    rows = good.split(b"\n")
    rows[5] = b"0" * 64 + rows[5][64:]
    lines.write_bytes(b"\n".join(rows))
    report = verify(base, v1)
    assert not report.ok
    assert any("does not give its record's digest" in e for e in report.versions[0].errors)
    again = _push(model, base)
    assert again.pushed and not again.already_present and again.version != v1
    v2 = again.version
    assert v2 and verify(base, v2).ok

    # a line that is not a manifest line, an unsafe path, a missing file, a planted link
    lines.write_bytes(good + b"not a line\n")
    assert "is not '<sha256> <size> <path>'" in " ".join(verify(base, v1).versions[0].errors)
    lines.write_bytes(good.replace(b" a.txt\n", b" ../a.txt\n"))
    assert "unsafe path" in " ".join(verify(base, v1).versions[0].errors)
    lines.unlink()
    assert "missing" in " ".join(verify(base, v1).versions[0].errors)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(good)
    lines.symlink_to(outside)
    errors = " ".join(verify(base, v1).versions[0].errors)
    assert "not pushgate's" in errors and str(lines) in errors
    lines.unlink()
    lines.write_bytes(good)
    assert verify(base, v1).ok

    # a record that names another file as its manifest is refused, never followed
    path = base / ".pushgate" / "records" / f"{v1}.json"
    doc = json.loads(path.read_text())
    doc["manifest"]["lines"] = f"../records/{v2}.json"
    path.write_text(json.dumps(doc))
    assert "no readable manifest" in " ".join(verify(base, v1).versions[0].errors)


def _staging_lines(base: Path) -> bool:
    staging = base / ".pushgate" / "staging"
    try:
        return any(p.name.endswith(".lines") and p.stat().st_size > 0 for p in staging.iterdir())
    except FileNotFoundError:
        return False


def _stored_lines(base: Path) -> bool:
    try:
        return any((base / ".pushgate" / "manifests").iterdir())
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("moment", ["mid-copy", "manifest-stored"])
def test_a_push_killed_with_its_manifest_half_written_or_stored_leaves_nothing_behind(
    tmp_path: Path, moment: str
) -> None:
    model = _model(tmp_path / "model", 3 * INLINE_FILES)
    base = tmp_path / "base"
    condition: Callable[[], bool] = {
        "mid-copy": lambda: _staging_lines(base),
        "manifest-stored": lambda: _stored_lines(base),
    }[moment]
    cmd = [sys.executable, "-m", "pushgate", "push", "--model", str(model), "--to", str(base)]
    proc = subprocess.Popen(
        [*cmd, "--any-model", "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    reached = kill_when(proc, condition)
    assert reached, f"the push ended before {moment}"
    assert_every_version_complete(base)  # published whole with its manifest, or not at all

    after = _push(model, base)
    assert after.pushed and not after.failed
    staging = base / ".pushgate" / "staging"
    assert list(staging.iterdir()) == []
    stored = sorted(p.name for p in (base / ".pushgate" / "manifests").iterdir())
    assert stored == [f"{v}.txt" for v in numeric_dirs(base)]  # none outlives its push
    assert_every_version_complete(base)
    assert verify(base).ok


def test_a_bucket_push_of_many_files_stores_its_manifest_apart(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url("s3")
    model = _model(tmp_path / "model")
    first = pushgate.push(model=model, to=s.base, storage_options=s.options, any_model=True)
    assert first.pushed and first.version and not first.failed
    from pushgate.destination import open_destination
    from pushgate.journal import Journal

    dest = open_destination(s.base, s.options)
    record = Journal(dest).record(first.version)
    assert record is not None and record["manifest"]["lines"] == f"manifests/{first.version}.txt"
    raw = dest.read_meta(f"manifests/{first.version}.txt")
    assert raw is not None and raw.count(b"\n") == N
    again = pushgate.push(model=model, to=s.base, storage_options=s.options, any_model=True)
    assert again.already_present and again.version == first.version
    report = verify(s.base, first.version, storage_options=s.options)
    assert report.ok and report.versions[0].files == N


def test_adopting_a_version_of_many_files_stores_its_manifest_apart(tmp_path: Path) -> None:
    import shutil

    from pushgate.adopt import AdoptRequest, adopt

    model = _model(tmp_path / "model")
    base = tmp_path / "base"
    base.mkdir()
    shutil.copytree(model, base / "7")  # published by hand, not by pushgate
    result = adopt(AdoptRequest(base=str(base), any_model=True))
    assert [v.version for v in result.versions if v.adopted] == ["7"]
    record = _record(base, "7")
    assert record["manifest"]["lines"] == "manifests/7.txt"  # type: ignore[index]
    assert len(recorded_files(base, "7", record)) == N
    assert verify(base, "7").ok
    again = _push(model, base)  # the same bytes: already there
    assert again.already_present and again.version == "7"


def test_pruning_with_expire_history_deletes_a_stored_manifest_with_its_record(
    tmp_path: Path,
) -> None:
    model = _model(tmp_path / "model")
    base = tmp_path / "base"
    v1 = _push(model, base).version
    (model / "assets" / "d001" / "f001001.txt").write_bytes(b"changed")
    v2 = _push(model, base).version
    assert v1 and v2 and v1 != v2
    stored = base / ".pushgate" / "manifests"
    assert sorted(p.name for p in stored.iterdir()) == sorted([f"{v1}.txt", f"{v2}.txt"])
    pushgate.prune(str(base), 1)
    assert (stored / f"{v1}.txt").exists()  # kept by default, with the record
    result = pushgate.prune(str(base), 1, expire_history=0)
    assert result.expired and result.expired["records"] == 1
    assert [p.name for p in stored.iterdir()] == [f"{v2}.txt"]
    assert verify(base).ok


def test_paths_with_a_newline_or_a_leading_quote_are_stored_quoted_and_hash_as_they_are(
    tmp_path: Path,
) -> None:
    from pushgate.manifest import FileEntry, Manifest, ManifestWriter

    sha = "ab" * 32
    paths = ['"quoted', "a\nb", "plain", "z/with space"]
    manifest = Manifest.of(FileEntry(p, i, sha) for i, p in enumerate(paths))
    lines = tmp_path / "m.txt"
    with open(lines, "xb") as out:
        writer = ManifestWriter(out)
        for e in manifest.files:
            writer.add(e)
        stored = writer.finish(lines, ["empty"])
    assert lines.read_bytes().count(b"\n") == len(paths)  # one line each, newline quoted
    assert b' "\\"quoted"\n' in lines.read_bytes() and b' "a\\nb"\n' in lines.read_bytes()
    assert stored.digest == Manifest(manifest.files, ("empty",)).digest
    assert stored.load() == Manifest(manifest.files, ("empty",))
