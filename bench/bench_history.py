"""History benchmark: does each command cost the same at 100 and at 100,000 recorded versions?

One BASE is grown to each size in turn (default 100, 1,000, 10,000, 100,000 versions recorded).
The first ``--real`` versions (default 100) are pushed by pushgate itself (its Python API, the
code the CLI runs) and pruned every 10 pushes down to 10 published; beyond that a generator
writes the journal the way pushgate writes it (same functions: compact records with their
manifest, claims, push and prune events under ``log/``, tombstones, and the index of what is
published), so that the BASE always holds 10 published versions and a history of N. At each size
every command is run as a real ``pushgate`` subprocess, ``--rounds`` times (median):

  push (a new model), versions, versions --json, history --limit 10, verify BASE V, rollback,
  pin, and prune of one version (after one more push, ``--keep`` = published - 1),

and printed with its ratio to the figure at the first size. The peak RSS of ``versions`` (from
``wait4``) is printed at each size. ``--s3`` runs the same on a moto S3 server on 127.0.0.1 (its
sizes capped by ``--s3-max``, default 10,000). Prints a table and one JSON line (``BENCH {...}``).

    python bench/bench_history.py --sizes 100,1000,10000,100000 --rounds 3 --s3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

PUBLISHED = 10


def make_model(root: Path, seed: int) -> Path:
    """A tiny SavedModel-shaped directory (pushgate refuses a directory without a model)."""
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"pb-%d" % seed * 64)
    (root / "variables" / "variables.index").write_bytes(b"ix-%d" % seed * 16)
    (root / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(4096))
    return root


class Bench:
    def __init__(self, base: str, options: dict[str, str], env: dict[str, str], work: Path):
        self.base, self.options, self.work = base, options, work
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT / "src")}
        self.seed = 0
        self.count = 0  # versions recorded so far

    def args(self) -> list[str]:
        out: list[str] = []
        for k, v in self.options.items():
            out += ["--storage-option", f"{k}={v}"]
        return out

    def model(self) -> Path:
        self.seed += 1
        return make_model(self.work / f"model-{self.seed}", self.seed)

    def cli(self, *argv: str) -> tuple[float, int, str]:
        """Run pushgate; ``(seconds, peak RSS in KiB, stdout)``. The RSS comes from GNU time
        around the command: ``wait4`` on a child of this (large) process would count the
        pages the child shared with it before its exec."""
        cmd = [sys.executable, "-m", "pushgate", *argv]
        if os.path.exists("/usr/bin/time"):
            cmd = ["/usr/bin/time", "-f", "PEAK-RSS-KIB %M", *cmd]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=self.env)
            _, status, usage = os.wait4(proc.pid, 0)
            took = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            text, errors = out.read().decode(), err.read().decode()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {errors.strip()}")
        peak = [ln for ln in errors.splitlines() if ln.startswith("PEAK-RSS-KIB ")]
        return took, int(peak[-1].split()[1]) if peak else usage.ru_maxrss, text

    # -- growing -------------------------------------------------------------------------------
    def grow_real(self, n: int) -> None:
        """Push ``n`` versions with pushgate, pruning to PUBLISHED every 10 pushes."""
        import pushgate

        for i in range(n):
            res = pushgate.push(
                model=self.model(),
                destinations=(self.base,),
                storage_options=self.options,
                versioning="sequential",
            )
            assert res.pushed
            self.count += 1
            if (i + 1) % 10 == 0:
                pushgate.prune(self.base, PUBLISHED, storage_options=self.options)

    def grow_generated(self, target: int) -> None:
        """Write versions up to ``target`` as pushgate would, keeping PUBLISHED published."""
        from pushgate.destination import open_destination
        from pushgate.journal import TOMBSTONE_SCHEMA, Journal, dumps, dumps_compact, event_key

        dest = open_destination(self.base, self.options)
        journal = Journal(dest)
        newest = journal.newest_published()
        assert newest is not None and newest.record is not None
        template = journal.record(newest.version)
        assert template is not None
        start = int(max(dest.numeric_children(), key=int))
        # the generated versions sit below the real ones in time: an hour apart, ending before
        # the oldest real event, so the real ones stay the newest (as if pushed first)
        first = datetime.now(timezone.utc) - timedelta(hours=target - self.count + 10)
        durable = not dest.local

        def at(i: int) -> str:
            return (first + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

        def one(job: tuple[int, int]) -> None:
            i, v = job
            name, when = str(v), at(i)
            record = {**template, "version": name, "pushed_at": when, "previous_newest": str(v - 1)}
            record["destination"] = dest.version_url(name)
            claim = {
                "schema": "pushgate.claim/v1",
                "version": name,
                "token": f"{v}-gen",
                "at": when,
            }
            push = {"schema": "pushgate.event/v1", "event": "push", "version": name, "at": when}
            push["digest"] = record["digest"]
            pruned = (first + timedelta(hours=i, minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            prune = {"schema": "pushgate.event/v1", "event": "prune", "version": name}
            prune |= {"removed": [name], "keep": PUBLISHED, "at": pruned}
            pkey = event_key(pruned, f"{v:012x}")
            tomb = {"schema": TOMBSTONE_SCHEMA, "version": name, "why": "prune", "event": pkey}
            tomb["at"] = pruned
            writes = [
                (f"claims/{name}.json", dumps(claim)),
                (f"records/{name}.json", dumps_compact(record)),
                (event_key(when, f"{v:012x}"), dumps(push)),
                (pkey, dumps(prune)),
                (f"gone/{name}.json", dumps(tomb)),
            ]
            for key, data in writes:
                dest.write_meta(key, data, durable=durable)

        # Generated versions take the numbers above the newest real one, all pruned; then
        # PUBLISHED real pushes land above them and the older real ones are pruned, so that, as
        # in a real BASE, the published versions are the newest and the history lies below.
        todo = list(range(start + 1, start + 1 + (target - self.count)))
        with ThreadPoolExecutor(max_workers=8 if dest.local else 32) as pool:
            list(pool.map(one, enumerate(todo)))
        self.count = target
        journal.save_index()
        hw = {"schema": "pushgate.high_water/v1", "high_water": todo[-1] if todo else start}
        dest.write_meta("high_water.json", dumps(hw))
        self.grow_real(PUBLISHED)
        self.count = target


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def measure(b: Bench, rounds: int) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    rss: list[int] = []

    def add(name: str, took: float) -> None:
        out.setdefault(name, []).append(took)

    for _ in range(rounds):
        add(
            "push",
            b.cli("push", "--model", str(b.model()), "--to", b.base, *b.args(), "--no-progress")[0],
        )
        took, peak, text = b.cli("versions", b.base, *b.args())
        add("versions", took)
        rss.append(peak)
        add("versions --json", b.cli("versions", b.base, *b.args(), "--json")[0])
        add("history --limit 10", b.cli("history", b.base, "--limit", "10", *b.args())[0])
        _, _, text = b.cli("versions", b.base, *b.args(), "--json")
        listed = json.loads(text)["versions"]
        published = [v["version"] for v in listed if v["exists"] and v["recorded"]]
        newest = published[-1]
        add("verify BASE V", b.cli("verify", b.base, newest, *b.args(), "--no-progress")[0])
        add("rollback", b.cli("rollback", b.base, *b.args(), "--no-progress")[0])
        add("pin", b.cli("pin", b.base, published[-2], *b.args())[0])
        b.cli("unpin", b.base, published[-2], *b.args())
        b.cli("push", "--model", str(b.model()), "--to", b.base, *b.args(), "--no-progress")
        _, _, text = b.cli("versions", b.base, *b.args(), "--json")
        n = sum(1 for v in json.loads(text)["versions"] if v["exists"] and v["recorded"])
        add("prune (1 removal)", b.cli("prune", b.base, "--keep", str(n - 1), *b.args())[0])
        # back to PUBLISHED published versions (not timed)
        b.cli("prune", b.base, "--keep", str(PUBLISHED), *b.args())
    res = {k: median(v) for k, v in out.items()}
    res["versions peak RSS MiB"] = max(rss) / 1024
    print(f"  versions peak RSS per round (MiB): {[round(r / 1024) for r in rss]}", flush=True)
    return res


def run(kind: str, sizes: list[int], rounds: int, real: int) -> dict[int, dict[str, float]]:
    work = Path(tempfile.mkdtemp(prefix=f"pushgate-bench-history-{kind}-"))
    server = None
    if kind == "s3":
        sys.path.insert(0, str(ROOT / "tests"))
        import servers  # the tests' moto fixture

        server = servers.start_moto()
        bucket = server.make_bucket()
        b = Bench(f"s3://{bucket}/models/m", server.options(), {}, work)
    else:
        b = Bench(str(work / "serving"), {}, {}, work)
    table: dict[int, dict[str, float]] = {}
    try:
        for size in sizes:
            t0 = time.perf_counter()
            if b.count < min(size, real):
                b.grow_real(min(size, real) - b.count)
            if b.count < size:
                b.grow_generated(size)
            grown = time.perf_counter() - t0
            table[size] = measure(b, rounds)
            print(f"[{kind}] {size} versions (grown in {grown:.0f} s): {table[size]}", flush=True)
    finally:
        if server is not None:
            server.stop()
    return table


def show(kind: str, table: dict[int, dict[str, float]]) -> None:
    sizes = sorted(table)
    first = sizes[0]
    print(f"\n{kind}: seconds (ratio to {first:,} versions)")
    head = "| command | " + " | ".join(f"{s:,}" for s in sizes) + " |"
    print(head)
    print("|---" * (len(sizes) + 1) + "|")
    for cmd in table[first]:
        cells = []
        for s in sizes:
            v, base = table[s][cmd], table[first][cmd]
            if cmd.endswith("MiB"):
                cells.append(f"{v:.0f}")
            else:
                cells.append(f"{v:.2f} ({v / base:.2f}x)")
        print(f"| {cmd} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,1000,10000,100000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--real", type=int, default=100, help="versions pushed by pushgate itself")
    ap.add_argument("--s3", action="store_true", help="also on moto S3")
    ap.add_argument("--s3-max", type=int, default=10000)
    ap.add_argument("--no-local", action="store_true")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    result: dict[str, Any] = {}
    if not a.no_local:
        result["local"] = run("local", sizes, a.rounds, a.real)
        show("local", result["local"])
    if a.s3:
        result["s3"] = run("s3", [s for s in sizes if s <= a.s3_max], a.rounds, a.real)
        show("s3", result["s3"])
    print("BENCH " + json.dumps(result))


if __name__ == "__main__":
    main()
