# ruff: noqa: F811  (pytest fixtures imported from servers.py are parameters here)
"""The journal index on buckets: two writers at once never lose an update (``index.json`` is
replaced with If-Match on S3 and Azure, ifGenerationMatch on GCS, and re-applied on a lost race).

Each writer is its own process against a real server on 127.0.0.1 (moto, fake-gcs-server,
Azurite). The versions they add are recorded but not on the store, so no later reader's
reconcile can put back an entry a lost update dropped: the stored document shows the loss.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pushgate.destination import open_destination
from pushgate.journal import Journal
from pushgate.journal_index import INDEX_KEY, parse
from servers import (  # noqa: F401  (fixtures)
    StoreURL,
    azurite_server,
    gcs_server,
    s3_server,
    store_url,
)

PER_WRITER = 12

#: one writer: waits for the other at a file barrier, then adds its versions one save at a time
WRITER = r"""
import json, sys, time
from pathlib import Path
from pushgate.destination import open_destination
from pushgate.journal import Journal
base, options, first, count, ready, go = sys.argv[1:7]
journal = Journal(open_destination(base, json.loads(options)))
Path(ready).write_text("")
while not Path(go).exists():
    time.sleep(0.005)
for v in range(int(first), int(first) + int(count)):
    record = {"digest": f"sha256:{v:064d}", "kind": "push", "pushed_at": "2026-01-01T00:00:00Z"}
    journal.save_index({str(v): record})
"""


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_two_concurrent_index_writers_lose_no_update(
    backend: str, store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url(backend)
    starts = (1, 1001)
    procs = []
    for n, first in enumerate(starts):
        ready, go = tmp_path / f"ready-{n}", tmp_path / "go"
        argv = [s.base, json.dumps(s.options), str(first), str(PER_WRITER), str(ready), str(go)]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WRITER, *argv],
                env=s.subprocess_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    while not all((tmp_path / f"ready-{n}").exists() for n in range(len(starts))):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    (tmp_path / "go").write_text("")
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]

    dest = open_destination(s.base, s.options)
    index, why = parse(dest.read_meta(INDEX_KEY))
    assert index is not None, why
    wanted = {str(v) for first in starts for v in range(first, first + PER_WRITER)}
    lost = sorted(wanted - set(index.versions), key=int)
    assert not lost, f"updates lost by a concurrent writer: {lost}"
    assert index.high_water == max(int(v) for v in wanted)
    # and a reader sees them all (not repaired from the listing: none is on the store)
    assert wanted <= set(Journal(dest).index().versions)


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_a_stale_tag_is_refused_and_nothing_is_written(
    backend: str, store_url: Callable[[str], StoreURL]
) -> None:
    s = store_url(backend)
    dest = open_destination(s.base, s.options)
    assert dest.read_meta_tagged(INDEX_KEY) == (None, None)
    assert dest.write_meta_if(INDEX_KEY, b"one", None)
    assert not dest.write_meta_if(INDEX_KEY, b"two", None)  # exists now
    raw, tag = dest.read_meta_tagged(INDEX_KEY)
    assert raw == b"one" and tag
    assert dest.write_meta_if(INDEX_KEY, b"two", tag)
    assert not dest.write_meta_if(INDEX_KEY, b"three", tag)  # stale tag
    assert dest.read_meta(INDEX_KEY) == b"two"
