"""The CLI's fixed cost: this checkout's pushgate against another's (``--baseline-src``).

Runs, alternating the two sources in each round (``--runs`` rounds): ``pushgate --version``,
``--help``, ``verify --help``, ``verify`` of a tiny pushed model and, with ``--files N``,
``verify`` of one version of N files of 1 KiB (1,000 per directory, as ``bench_files.py``
writes them) against ``sha256sum`` over the same files. Prints medians of wall
time and CPU (user + system, from ``wait4``) and the 1-minute load average before and after.

By default each interpreter compiles pushgate's modules as this environment asks
(``PYTHONDONTWRITEBYTECODE``); ``--cached`` runs with bytecode cached in a temporary
``PYTHONPYCACHEPREFIX``, as an installed pushgate runs.

    python bench/bench_cli_start.py --baseline-src OLD/src --runs 10 --files 100000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_files import make_model

HERE = str(Path(__file__).resolve().parents[1] / "src")


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds of ``cmd``, which must succeed."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    err = proc.stderr.read() if proc.stderr else b""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err[-2000:]!r}")
    return dt, usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline-src", required=True, help="the src/ directory to compare with")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--files", type=int, default=0, help="also verify a version of N files")
    ap.add_argument("--cached", action="store_true", help="bytecode cached, as when installed")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cli-start-"))
    srcs = {"baseline": str(Path(args.baseline_src).resolve()), "this": HERE}

    def env(which: str) -> dict[str, str]:
        e = {**os.environ, "PYTHONPATH": srcs[which]}
        if args.cached:
            e.pop("PYTHONDONTWRITEBYTECODE", None)
            e["PYTHONPYCACHEPREFIX"] = str(work / "pycache" / which)
        return e

    def pushgate(*a: str) -> list[str]:
        return [sys.executable, "-m", "pushgate", *a]

    try:
        tiny = work / "tiny"
        (tiny / "sub").mkdir(parents=True)
        (tiny / "a.txt").write_text("a\n")
        (tiny / "sub" / "b.bin").write_bytes(os.urandom(64))
        run(pushgate("push", "--model", str(tiny), "--to", str(work / "tiny-base"), "--any-model"))
        cases: dict[str, list[str]] = {
            "--version": ["--version"],
            "--help": ["--help"],
            "verify --help": ["verify", "--help"],
            "verify (2 files)": ["verify", str(work / "tiny-base"), "--no-progress"],
        }
        sha: list[str] = []
        big_case = ""
        if args.files:
            model = work / "model"
            make_model(model, args.files, 1024)
            big = work / "base"
            run(pushgate("push", "--model", str(model), "--to", str(big), "--any-model"))
            version = next(p.name for p in big.iterdir() if p.name.isdigit())
            big_case = f"verify ({args.files} files)"
            cases[big_case] = ["verify", str(big), version, "--no-progress"]
            sha = [
                "sh",
                "-c",
                f"cd '{big / version}' && find . -type f -print0 | xargs -0 sha256sum > /dev/null",
            ]
            run(sha)  # warm caches for every contestant alike
        for which in srcs:  # and the bytecode cache, with --cached
            run(pushgate("--version"), env(which))
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        load_before = os.getloadavg()[0]
        for r in range(args.runs):
            for name, argv in cases.items():
                order = list(srcs) if r % 2 == 0 else list(reversed(srcs))
                for which in order:
                    times.setdefault((name, which), []).append(run(pushgate(*argv), env(which)))
                if name == big_case:
                    times.setdefault((name, "sha256sum"), []).append(run(sha))
        mode = "bytecode cached" if args.cached else "as the environment compiles"
        print(f"{args.runs} runs each, {mode}; load {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
        for name in cases:
            cells = []
            med: dict[str, float] = {}
            for which in (*srcs, "sha256sum"):
                got = times.get((name, which))
                if not got:
                    continue
                med[which] = statistics.median(t for t, _ in got)
                cpu = statistics.median(c for _, c in got)
                cells.append(f"{which} {med[which] * 1000:7.1f} ms (cpu {cpu * 1000:6.1f})")
            ratio = f"this/baseline {med['this'] / med['baseline']:.2f}"
            if "sha256sum" in med:
                ratio += f", this/sha256sum {med['this'] / med['sha256sum']:.2f}"
            print(f"{name:24} " + " | ".join(cells) + f" | {ratio}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
