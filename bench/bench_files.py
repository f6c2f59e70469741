"""Models of many small files: pushgate against a parallel copy-and-fsync and ``sha256sum``.

For each ``--files`` count, one synthetic model (``saved_model.pb`` + N files of ``--file-bytes``
random bytes, 1,000 per directory), then ``--rounds`` rounds, alternating in each round:

(a) ``pushgate push`` to a fresh BASE  vs  a parallel durable copy: ``cp --parents`` by
    ``xargs -P <2 x cores>`` then ``sync`` (fsync) of every file and directory, also by
    ``xargs -P``.                                            target: <= 1.0x, peak RSS < 150 MiB
(b) re-push of the unchanged model  vs  its first push.      (reported)
(c) ``pushgate verify BASE``  vs  ``sha256sum`` over the version's files (``xargs``, one
    process at a time, as a user would run it); a parallel ``sha256sum`` (``xargs -P <cores>``)
    is reported too.                                         target: <= 1.0x

Every command is a real subprocess; peak RSS is read with ``wait4``. Caches are warm for every
contestant alike. Prints a table per size and one JSON line (``BENCH {...}``).

    python bench/bench_files.py --files 10000 100000 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_local import MIB, pushgate, time_repush_and_verify, timed, timed_rss


def make_model(root: Path, n: int, size: int) -> None:
    root.mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(os.urandom(1024))
    for i in range(n):
        sub = root / "assets" / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        with open(sub / f"f{i:07d}.bin", "wb") as f:
            f.write(os.urandom(size))


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def run_size(work: Path, n: int, size: int, rounds: int) -> dict[str, object]:
    model = work / f"model-{n}"
    t0 = time.perf_counter()
    make_model(model, n, size)
    print(f"{n} files of {size} B written in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    cores = os.cpu_count() or 2
    t: dict[str, list[float]] = {
        k: [] for k in ("push", "par_cp_fsync", "repush", "verify", "sha256sum", "par_sha256sum")
    }
    rss: dict[str, list[int]] = {"push": [], "repush": [], "verify": []}
    for r in range(rounds):
        base = work / f"base-{n}-{r}"
        push = pushgate(
            "push", "--model", str(model), "--to", str(base), "--any-model", "--no-progress"
        )
        dt, peak, out = timed_rss([*push, "--json"])
        version = json.loads(out)["version"]
        t["push"].append(dt)
        rss["push"].append(peak)

        dst = work / f"cp-{n}-{r}"
        p = 2 * cores
        t["par_cp_fsync"].append(
            timed(
                sh(
                    f"mkdir -p '{dst}' && cd '{model}' && find . -type d -print0 | "
                    f"xargs -0 -P {p} -n 1000 sh -c 'cd \"$0\" && mkdir -p \"$@\"' '{dst}' && "
                    f"find . -type f -print0 | xargs -0 -P {p} -n 1000 cp --parents -t '{dst}' && "
                    f"cd '{dst}' && find . -print0 | xargs -0 -P {p} -n 1000 sync"
                )
            )
        )
        shutil.rmtree(dst)

        time_repush_and_verify(push, base, t, rss)
        v = base / version
        t["sha256sum"].append(
            timed(sh(f"cd '{v}' && find . -type f -print0 | xargs -0 sha256sum > /dev/null"))
        )
        t["par_sha256sum"].append(
            timed(
                sh(
                    f"cd '{v}' && find . -type f -print0 | "
                    f"xargs -0 -P {cores} -n 2000 sha256sum > /dev/null"
                )
            )
        )
        shutil.rmtree(base)
    shutil.rmtree(model)
    med = {k: statistics.median(v) for k, v in t.items()}
    return {
        "files": n,
        "file_bytes": size,
        "rounds": rounds,
        "median_s": med,
        "ratios": {
            "push_vs_par_cp_fsync": med["push"] / med["par_cp_fsync"],
            "repush_vs_push": med["repush"] / med["push"],
            "verify_vs_sha256sum": med["verify"] / med["sha256sum"],
            "verify_vs_par_sha256sum": med["verify"] / med["par_sha256sum"],
        },
        "peak_rss_mib": {k: max(v) / MIB for k, v in rss.items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--file-bytes", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workdir", type=Path, help="where to work (default: a temporary directory)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pushgate-bench-files-", dir=args.workdir))
    try:
        for n in args.files:
            res = run_size(work, n, args.file_bytes, args.rounds)
            print(f"\n{n} files: median s " + json.dumps(res["median_s"]))
            print(f"{n} files: ratios " + json.dumps(res["ratios"]))
            print(f"{n} files: peak RSS MiB " + json.dumps(res["peak_rss_mib"]))
            print("BENCH " + json.dumps(res, sort_keys=True), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
