"""The journal's index and history layout (issue 12 items 1, 2 and 5): a BASE written by pushgate
0.x is read the same and migrated; a stale, missing or damaged index is repaired; history pages
from the newest; a prune of k versions costs O(k) store operations whatever the history (counted
on a real moto server and as real file operations); ``--expire-history`` keeps numbers burned."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pushgate
import servers
from conftest import cli_json, make_model_dir
from pushgate.destination import open_destination
from pushgate.journal import Journal, event_key
from servers import StoreURL

s3_server = servers.s3_server
store_url = servers.store_url


def _push(base: str, model: Path, options: dict[str, str] | None = None) -> str:
    res = pushgate.push(
        model=model, destinations=(base,), storage_options=options or {}, versioning="sequential"
    )
    assert res.pushed and not res.failed, res.to_json()
    version = res.destinations[0].version
    assert version is not None
    return version


def _old_dumps(doc: dict[str, Any]) -> bytes:
    """How pushgate 0.x wrote every journal document (records included, manifest and all)."""
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def _to_old_layout(base: Path) -> None:
    """Rewrite a local BASE's journal as pushgate 0.x wrote it: records indented with their
    manifest, events under ``events/<stamp>-<id>.json``, no index, no tombstones."""
    meta = base / ".pushgate"
    for rec in (meta / "records").glob("*.json"):
        rec.write_bytes(_old_dumps(json.loads(rec.read_bytes())))
    (meta / "events").mkdir()
    for ev in sorted((meta / "log").rglob("*.json")):
        doc = json.loads(ev.read_bytes())
        stamp = doc["at"].replace(":", "").replace("-", "").replace(".", "")
        suffix = ev.name.rsplit("-", 1)[1]
        (meta / "events" / f"{stamp}-{suffix}").write_bytes(_old_dumps(doc))
    shutil.rmtree(meta / "log")
    shutil.rmtree(meta / "gone", ignore_errors=True)
    (meta / "index.json").unlink()


def _views(base: str) -> tuple[Any, ...]:
    out = []
    for cmd in (["versions", base], ["history", base], ["verify", base]):
        code, doc = cli_json(*cmd)
        assert code == 0, doc
        out.append(doc)
    return tuple(out)


# -- migration of a 0.x BASE ------------------------------------------------------------------
def test_a_base_in_the_old_layout_reads_the_same_and_the_first_writer_migrates_it(
    tmp_path: Path,
) -> None:
    base = tmp_path / "serving"
    versions = [_push(str(base), make_model_dir(tmp_path / f"m{i}", seed=i)) for i in range(5)]
    pushgate.pin(base, versions[1], reason="golden")
    pushgate.prune(base, 2)  # removes 1st and 3rd (2nd is pinned)
    before = _views(str(base))
    assert [v["version"] for v in before[0]["versions"]] == [versions[1], *versions[3:]]

    _to_old_layout(base)
    assert not (base / ".pushgate" / "index.json").exists()
    after = _views(str(base))
    assert after == before  # readers work without the index, and see the same
    assert not (base / ".pushgate" / "index.json").exists()  # and write nothing

    # the first writer builds the index: every published version, none of the pruned ones
    new = _push(str(base), make_model_dir(tmp_path / "m5", seed=5))
    assert int(new) == int(versions[-1]) + 1
    index = json.loads((base / ".pushgate" / "index.json").read_bytes())
    assert sorted(index["versions"], key=int) == [versions[1], versions[3], versions[4], new]
    assert index["high_water"] == int(new)
    old_record = json.loads((base / ".pushgate" / "records" / f"{versions[3]}.json").read_bytes())
    assert index["versions"][versions[3]]["digest"] == old_record["digest"]
    # the old events are still the tail of the history, after today's
    code, trail = cli_json("history", str(base))
    assert code == 0 and trail["events"][1:] == before[1]["events"]
    # a rollback to a version recorded by 0.x reads its indented record and manifest
    res = pushgate.rollback(base, to=versions[3])
    assert res.pushed and res.digest == old_record["digest"]
    assert pushgate.verify(base).ok


# -- index repair ---------------------------------------------------------------------------------
def test_a_stale_missing_or_damaged_index_is_repaired_from_the_records(tmp_path: Path) -> None:
    base = tmp_path / "serving"
    v1 = _push(str(base), make_model_dir(tmp_path / "a", seed=1))
    index_path = base / ".pushgate" / "index.json"
    stale = index_path.read_bytes()
    v2 = _push(str(base), make_model_dir(tmp_path / "b", seed=2))
    good = _views(str(base))[0]

    # a push killed between its publish and its index update leaves exactly this: v2 published
    # and recorded, the index without it
    index_path.write_bytes(stale)
    assert _views(str(base))[0] == good
    assert v2 not in json.loads(index_path.read_bytes())["versions"]  # readers write nothing
    # damaged and missing: the same answer
    index_path.write_bytes(b'{"schema": "pushgate.index/v1", "versions": [')
    assert _views(str(base))[0] == good
    index_path.unlink()
    assert _views(str(base))[0] == good
    # the next writer stores the repaired index
    v3 = _push(str(base), make_model_dir(tmp_path / "c", seed=3))
    assert sorted(json.loads(index_path.read_bytes())["versions"], key=int) == [v1, v2, v3]


def test_a_pruned_version_left_in_a_stale_index_is_not_reported_missing(tmp_path: Path) -> None:
    base = tmp_path / "serving"
    v1 = _push(str(base), make_model_dir(tmp_path / "a", seed=1))
    _push(str(base), make_model_dir(tmp_path / "b", seed=2))
    index_path = base / ".pushgate" / "index.json"
    stale = index_path.read_bytes()
    pushgate.prune(base, 1)
    index_path.write_bytes(stale)  # the prune's index write lost (a kill, a racing writer)
    infos = pushgate.versions(base)
    assert v1 not in [i.version for i in infos]  # its tombstone says it was pruned
    assert not any("missing" in n for i in infos for n in i.notes)
    assert pushgate.verify(base).ok


# -- history paging -------------------------------------------------------------------------------
def test_history_pages_from_the_newest_across_day_shards_and_old_events(tmp_path: Path) -> None:
    base = tmp_path / "serving"
    _push(str(base), make_model_dir(tmp_path / "a", seed=1))
    dest = open_destination(str(base))
    journal = Journal(dest)
    # events of other days (a long-lived BASE), and one in 0.x's layout (oldest of all)
    for i, at in enumerate(["2021-03-04T05:06:07.000001Z", "2024-12-31T23:59:59.999999Z"]):
        doc = {"schema": "pushgate.event/v1", "event": "pin", "version": str(i), "at": at}
        dest.write_meta(event_key(at, f"{i:012x}"), _old_dumps(doc))
    old = {"schema": "pushgate.event/v1", "event": "pin", "at": "2019-01-01T00:00:00.000000Z"}
    dest.write_meta("events/20190101T000000000000Z-0123456789ab.json", _old_dumps(old))
    everything = pushgate.history(base)
    times = [e["at"] for e in everything]
    assert times == sorted(times, reverse=True) and len(everything) == 4
    for k in range(1, 5):
        assert pushgate.history(base, limit=k) == everything[:k]
    assert journal.events() == list(reversed(everything))


# -- prune is linear ----------------------------------------------------------------------------
def _grow(base: str, tmp_path: Path, pushed: int, options: dict[str, str]) -> None:
    """A BASE with ``pushed`` versions of history, pruned down to one."""
    for i in range(pushed):
        _push(base, make_model_dir(tmp_path / f"h{i}", seed=100 + i), options)
    if pushed > 1:
        assert pushgate.prune(base, 1, storage_options=options).ok


def _prune_cost(
    base: str, tmp_path: Path, history: int, k: int, options: dict[str, str], count: Any
) -> int:
    _grow(base, tmp_path / "grow", history, options)
    for i in range(k + 1):
        _push(base, make_model_dir(tmp_path / f"p{i}", seed=900 + i), options)
    with count() as seen:
        res = pushgate.prune(base, 1, storage_options=options)
    assert len(res.removed) == k + (1 if history else 0), res.to_json()
    return len(seen)


class _FileOps:
    """Counts this process's real file-system calls (Python's audit events), not pushgate's."""

    EVENTS = ("open", "os.rename", "os.remove", "os.rmdir", "os.listdir", "os.scandir", "os.mkdir")

    def __init__(self) -> None:
        self.log: list[str] | None = None
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.log is not None and event in self.EVENTS:
            self.log.append(f"{event} {args[0] if args else ''}")

    def __call__(self) -> Any:
        import contextlib

        @contextlib.contextmanager
        def counting() -> Iterator[list[str]]:
            self.log = []
            try:
                yield self.log
            finally:
                self.log = None

        return counting()


_ops: _FileOps | None = None


def test_a_local_prune_of_k_versions_costs_o_k_file_operations(tmp_path: Path) -> None:
    global _ops
    _ops = _ops or _FileOps()
    costs = {}
    for history, k in [(0, 2), (0, 4), (12, 2)]:
        base = str(tmp_path / f"b-{history}-{k}")
        costs[history, k] = _prune_cost(base, tmp_path / f"w-{history}-{k}", history, k, {}, _ops)
    # with 12 versions of history (one more removal: the version kept by the last prune)
    per_removal = (costs[0, 4] - costs[0, 2]) / 2
    assert per_removal > 0
    assert costs[12, 2] <= costs[0, 2] + per_removal * 1.5, costs  # not O(history)


@pytest.fixture
def counted_s3() -> Iterator[tuple[Any, list[str]]]:
    """A moto server of this test's own whose WSGI app counts the requests it serves."""
    server = servers.start_moto()
    seen: list[str] = []
    wsgi = server._server._server  # type: ignore[attr-defined]
    app = wsgi.app

    def counting(environ: dict[str, Any], start: Callable[..., Any]) -> Any:
        seen.append(f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO')}")
        return app(environ, start)

    wsgi.app = counting
    yield server, seen
    server.stop()


def test_an_s3_prune_of_k_versions_costs_o_k_requests(
    tmp_path: Path, counted_s3: tuple[Any, list[str]]
) -> None:
    import contextlib

    server, seen = counted_s3

    @contextlib.contextmanager
    def counting() -> Iterator[list[str]]:
        start = len(seen)
        out: list[str] = []
        yield out
        out.extend(seen[start:])

    costs = {}
    for history, k in [(0, 2), (0, 4), (10, 2)]:
        base = f"s3://{server.make_bucket()}/models/m"
        w = tmp_path / f"w-{history}-{k}"
        costs[history, k] = _prune_cost(base, w, history, k, server.options(), counting)
    per_removal = (costs[0, 4] - costs[0, 2]) / 2
    assert per_removal > 0
    assert costs[10, 2] <= costs[0, 2] + per_removal * 1.5, costs


# -- retention ------------------------------------------------------------------------------------
def test_expire_history_shrinks_the_journal_and_never_reuses_a_number(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    url = store_url("local")
    base = Path(url.base)
    versions = [_push(url.base, make_model_dir(tmp_path / f"m{i}", seed=i)) for i in range(4)]
    journal = Journal(open_destination(url.base))
    burned = int(versions[-1]) + 1
    assert journal.claim(burned, f"{burned}-deadpush")  # a push that died after its claim
    pushgate.prune(base, 1)
    meta = base / ".pushgate"
    assert len(list((meta / "records").iterdir())) == 4  # kept by default

    code, out = cli_json("prune", url.base, "--keep", "1", "--expire-history", "0")
    assert code == 0, out
    assert out["expired"]["records"] == 3 and out["expired"]["claims"] == 4, out
    assert sorted(os.listdir(meta / "records")) == [f"{versions[-1]}.json"]
    assert sorted(os.listdir(meta / "claims")) == [f"{versions[-1]}.json"]
    trail = pushgate.history(base)
    assert {e.get("version") for e in trail} <= {versions[-1], None}, trail
    assert json.loads((meta / "high_water.json").read_bytes())["high_water"] == burned
    # the numbers of the expired claims stay used: the next push is above the burned one
    assert _push(url.base, make_model_dir(tmp_path / "next", seed=9)) == str(burned + 1)
    assert [i.version for i in pushgate.versions(base)] == [versions[-1], str(burned + 1)]
    assert pushgate.verify(base).ok
