"""A local push makes the staged tree durable before it publishes it.

A power loss cannot be staged in a test, but what it would lose can be seen: a page the kernel
has not written back yet. On filesystems with delayed allocation (ext4, XFS, Btrfs) such a file
has no blocks on disk, and ``FS_IOC_FIEMAP`` (without ``FIEMAP_FLAG_SYNC``, which would write
it back first) reports its extent as ``FIEMAP_EXTENT_DELALLOC``. The kernel writes dirty pages
back by itself only after about 30 s, so a file whose data is still pending when the push
reaches its publish step was not made durable by pushgate. Both ways are checked: the first
files of a tree, fsynced one by one, and the many after them, left to one ``syncfs``.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_every_version_complete, cli_json, numeric_dirs
from pushgate.destination.local import PER_FILE_FSYNCS

_FS_IOC_FIEMAP = 0xC020660B
_FIEMAP_HEADER = struct.Struct("=QQIIII")  # fm_start, fm_length, flags, mapped, count, reserved
_FIEMAP_EXTENT = struct.Struct("=QQQQQIIII")  # logical, physical, length, 2 reserved, flags, 3
_FIEMAP_EXTENT_DELALLOC = 0x4
_EXTENTS = 8


def _pending_writeback(path: Path) -> bool:
    """True when part of the file's data is still only in memory (a delayed-allocation
    extent). Raises OSError when the filesystem has no FIEMAP."""
    buf = bytearray(_FIEMAP_HEADER.size + _EXTENTS * _FIEMAP_EXTENT.size)
    _FIEMAP_HEADER.pack_into(buf, 0, 0, 2**64 - 1, 0, 0, _EXTENTS, 0)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, _FS_IOC_FIEMAP, buf, True)
    finally:
        os.close(fd)
    mapped = _FIEMAP_HEADER.unpack_from(buf, 0)[3]
    flags = (
        _FIEMAP_EXTENT.unpack_from(buf, _FIEMAP_HEADER.size + i * _FIEMAP_EXTENT.size)[5]
        for i in range(mapped)
    )
    return any(f & _FIEMAP_EXTENT_DELALLOC for f in flags)


def _control_is_visible(directory: Path) -> None:
    """Skip unless this filesystem shows a just-written, not-fsynced file as pending: else the
    check below could not fail (tmpfs, a filesystem without delayed allocation or FIEMAP)."""
    probe = directory / "control-not-fsynced"
    probe.write_bytes(os.urandom(4096))
    try:
        visible = _pending_writeback(probe)
    except OSError as e:
        pytest.skip(f"{directory}: no FIEMAP on this filesystem ({e.strerror})")
    if not visible:
        pytest.skip(f"{directory}: the filesystem does not delay allocation")


def _small_files_model(root: Path, n: int) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(os.urandom(1024))
    for i in range(n):
        sub = root / "assets" / f"d{i // 500:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:05d}.bin").write_bytes(os.urandom(1024))
    return root


def _not_durable(tree: Path) -> list[str]:
    return sorted(
        str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file() and _pending_writeback(p)
    )


@pytest.mark.parametrize("files", [PER_FILE_FSYNCS // 2, 20 * PER_FILE_FSYNCS])
def test_every_published_file_is_written_back_when_the_push_returns(
    tmp_path: Path, files: int
) -> None:
    model = _small_files_model(tmp_path / "model", files)
    base = tmp_path / "serving"
    code, out = cli_json("push", "--model", model, "--to", base, "--any-model")
    assert code == 0, out
    version = base / out["version"]
    assert _not_durable(version) == []
    assert len(list(version.rglob("*.bin"))) == files
    _control_is_visible(tmp_path)


def test_a_push_killed_as_it_publishes_has_its_whole_tree_written_back(tmp_path: Path) -> None:
    """Killed right after writing the record (the last step before the rename): the staged tree
    (or, when the rename won the race, the version) is already on disk, every byte right."""
    files = 20 * PER_FILE_FSYNCS
    model = _small_files_model(tmp_path / "model", files)
    base = tmp_path / "serving"
    records = base / ".pushgate" / "records"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushgate", "push", "--model", model, "--to", base, "--any-model"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t0 = time.monotonic()
    while not (records.is_dir() and any(records.glob("*.json"))):
        assert proc.poll() is None, "the push ended before it wrote its record"
        assert time.monotonic() - t0 < 120, "the push never wrote its record"
        time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    staging = base / ".pushgate" / "staging"
    trees = [p for p in staging.iterdir() if p.is_dir()] + [base / v for v in numeric_dirs(base)]
    assert len(trees) == 1, trees
    tree = trees[0]
    assert _not_durable(tree) == []
    for p in model.rglob("*"):
        if p.is_file():
            assert (tree / p.relative_to(model)).read_bytes() == p.read_bytes(), p
    _control_is_visible(tmp_path)

    # the next push cleans the debris and publishes a complete version
    code, out = cli_json("push", "--model", model, "--to", base, "--any-model")
    assert code == 0, out
    assert_every_version_complete(base)
    assert [p for p in staging.iterdir()] == []
