"""Local benchmarks of pushgate against the tools a user would otherwise run.

One synthetic model (8 variable shards + 500 small asset files + saved_model.pb; 1 GiB by default,
``--size-mib`` to scale), then ``--rounds`` rounds, alternating in each round:

(a) ``pushgate push`` to a fresh BASE   vs  ``cp -r`` + ``sync`` of every copied file (the durable
    copy a careful script would do)    and  plain ``cp -r`` (not durable);
    pushgate's peak RSS (from ``wait4`` on its process).          targets: <= 1.2x, < 150 MiB
(b) re-push of the unchanged model to that BASE  vs  its first push.          target: <= 0.3x
(c) ``pushgate verify BASE``  vs  ``sha256sum`` over the same files.           target: <= 0.3x

Every command is a real subprocess. Caches are warm: the model was just written, so reads come
from the page cache for every contestant alike (dropping caches needs root and would mostly time
the disk). Writes are timed to durability only where the tool makes them durable (pushgate and
the ``sync`` baseline). Prints a table and one JSON line (``BENCH {...}``).

    python bench/bench_local.py --size-mib 256 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 2**20


def make_model(root: Path, size_mib: int, assets: int = 500) -> int:
    """Write the synthetic model; returns its size in bytes."""
    (root / "variables").mkdir(parents=True)
    (root / "assets").mkdir()
    shard = size_mib * MIB // 8
    chunk = 8 * MIB
    for i in range(8):
        with open(root / "variables" / f"variables.data-{i:05d}-of-00008", "wb") as f:
            left = shard
            while left:
                n = min(chunk, left)
                f.write(os.urandom(n))
                left -= n
    (root / "variables" / "variables.index").write_bytes(os.urandom(64 * 1024))
    for i in range(assets):
        (root / "assets" / f"asset-{i:04d}.txt").write_bytes(os.urandom(4096))
    (root / "saved_model.pb").write_bytes(os.urandom(MIB))
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def timed(cmd: list[str]) -> float:
    """Run ``cmd``; return its wall-clock seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, check=False)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]!r}")
    return dt


def timed_rss(cmd: list[str]) -> tuple[float, int, str]:
    """Like :func:`timed`, but reaps with ``wait4`` to read the process's own peak RSS."""
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_file, stderr=err_file)
        _pid, status, usage = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        err_file.seek(0)
        if proc.returncode != 0:
            err = err_file.read().decode()[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err}")
        return dt, usage.ru_maxrss * 1024, out_file.read().decode()


def pushgate(*args: str) -> list[str]:
    return [sys.executable, "-m", "pushgate", *args]


def time_repush_and_verify(
    push: list[str], base: Path, t: dict[str, list[float]], rss: dict[str, list[int]]
) -> None:
    """Time (and peak RSS of) a re-push of the unchanged model by ``push`` (which must find it
    already there) and ``pushgate verify BASE`` (which must pass), into ``t`` and ``rss``."""
    for what, cmd, check in (
        ("repush", [*push, "--json"], "already_present"),
        ("verify", pushgate("verify", str(base), "--no-progress", "--json"), "ok"),
    ):
        dt, peak, out = timed_rss(cmd)
        assert json.loads(out)[check] is True, out
        t[what].append(dt)
        rss[what].append(peak)


def files_under(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="model size in MiB (default 1024)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per measurement (default 3)")
    ap.add_argument("--workdir", type=Path, help="where to work (default: a temporary directory)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pushgate-bench-", dir=args.workdir))
    try:
        return run(work, args.size_mib, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, size_mib: int, rounds: int) -> int:
    model = work / "model"
    total = make_model(model, size_mib)
    print(
        f"model: {total / MIB:.0f} MiB in {len(files_under(model))} files at {model}; "
        f"{os.cpu_count()} cores; python {platform.python_version()}",
        file=sys.stderr,
    )
    t: dict[str, list[float]] = {
        k: [] for k in ("push", "durable_cp", "cp", "repush", "verify", "sha256sum")
    }
    rss: dict[str, list[int]] = {"push": [], "repush": [], "verify": []}
    for r in range(rounds):
        base = work / f"base-{r}"
        # (a) first push vs the durable copy vs plain cp, alternating in one round
        dt, peak, out = timed_rss(
            pushgate("push", "--model", str(model), "--to", str(base), "--no-progress", "--json")
        )
        version = json.loads(out)["version"]
        t["push"].append(dt)
        rss["push"].append(peak)
        dst = work / f"durable-{r}"
        dt = timed(
            ["sh", "-c", f"cp -r '{model}' '{dst}' && find '{dst}' -type f -exec sync {{}} +"]
        )
        t["durable_cp"].append(dt)
        shutil.rmtree(dst)
        dst = work / f"cp-{r}"
        dt = timed(["cp", "-r", str(model), str(dst)])
        t["cp"].append(dt)
        shutil.rmtree(dst)
        # (b) re-push of the unchanged model, (c) verify vs sha256sum over the same files
        push = pushgate("push", "--model", str(model), "--to", str(base), "--no-progress")
        time_repush_and_verify(push, base, t, rss)
        dt = timed(["sha256sum", *files_under(base / version)])
        t["sha256sum"].append(dt)
        shutil.rmtree(base)

    med = {k: statistics.median(v) for k, v in t.items()}
    ratios = {
        "push_vs_durable_cp": med["push"] / med["durable_cp"],
        "push_vs_cp": med["push"] / med["cp"],
        "repush_vs_push": med["repush"] / med["push"],
        "verify_vs_sha256sum": med["verify"] / med["sha256sum"],
    }
    targets = {"push_vs_durable_cp": 1.2, "repush_vs_push": 0.3, "verify_vs_sha256sum": 0.3}
    peak_mib = {k: max(v) / MIB for k, v in rss.items()}

    print(f"\n{'measurement':<14} {'median s':>9} {'MiB/s':>8}   all rounds (s)")
    for k, v in t.items():
        rate = total / MIB / med[k]
        print(f"{k:<14} {med[k]:9.3f} {rate:8.0f}   {', '.join(f'{x:.3f}' for x in v)}")
    print(f"\n{'ratio':<22} {'value':>7}  target")
    for k, v in ratios.items():
        goal = targets.get(k)
        verdict = "" if goal is None else ("ok" if v <= goal else "MISSED")
        print(f"{k:<22} {v:7.3f}  {'<= ' + str(goal) if goal else '-':<8} {verdict}")
    for k, v in peak_mib.items():
        print(f"peak RSS {k:<13} {v:7.1f} MiB" + ("  (target < 150)" if k == "push" else ""))
    print(
        "BENCH "
        + json.dumps(
            {
                "size_mib": round(total / MIB),
                "rounds": rounds,
                "cores": os.cpu_count(),
                "median_s": med,
                "ratios": ratios,
                "peak_rss_mib": peak_mib,
                "cache": "warm",
            },
            sort_keys=True,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
