"""pushgate push vs ``aws s3 cp --recursive`` vs ``s5cmd cp`` against one loopback moto S3 server.

    .venv/bin/python bench/bench_s3.py --size-mib 1024 --rounds 3

The synthetic model: 8 equal variable shards (``size/8`` each) + 500 small asset files, made once.
Rounds alternate the tools. Each run is a child process; its peak RSS comes from
``resource.getrusage(RUSAGE_CHILDREN)`` deltas (ru_maxrss is a max, so each tool runs in its own
wrapper child that reports its own children's peak). pushgate's upload phase (staging) is timed
inside its child by wrapping ``ObjectStoreDestination.stage``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_files import make_model as make_small_files

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

PUSH_CHILD = r"""
import json, sys, time, resource
from pushgate.destination import objectstore
phase = {}
def timed(name, key):
    orig = getattr(objectstore.ObjectStoreDestination, name)
    def run(self, *a, **k):
        t = time.perf_counter()
        try:
            return orig(self, *a, **k)
        finally:
            phase[key] = time.perf_counter() - t
    setattr(objectstore.ObjectStoreDestination, name, run)
timed("stage", "upload_s")
timed("publish", "publish_s")
import pushgate
t = time.perf_counter()
r = pushgate.push(model=sys.argv[1], to=sys.argv[2], allow_duplicate=True)
phase["total_s"] = time.perf_counter() - t
phase["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(phase))
"""

WRAP = r"""
import resource, subprocess, sys, time, json
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(json.dumps({"total_s": time.perf_counter() - t,
                  "rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def make_tree(root: Path, size_mib: int) -> None:
    shard = size_mib * (1 << 20) // 8
    (root / "variables").mkdir(parents=True)
    (root / "assets").mkdir()
    (root / "saved_model.pb").write_bytes(os.urandom(64 << 10))
    block = os.urandom(1 << 20)
    for i in range(8):
        with open(root / "variables" / f"variables.data-{i:05d}-of-00008", "wb") as f:
            left = shard
            while left:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n
    (root / "variables" / "variables.index").write_bytes(os.urandom(4096))
    for i in range(500):
        (root / "assets" / f"asset-{i:04d}.txt").write_bytes(os.urandom(2048))


def run(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--small-files",
        type=int,
        default=0,
        help="instead of the sized model: saved_model.pb + this many 1 KiB files",
    )
    ap.add_argument(
        "--direct",
        action="store_true",
        help="also time pushgate with every file but the entry files uploaded straight into "
        "<v>/ (PUSHGATE_S3_DIRECT=1: no staging copy; the entry files and the record last)",
    )
    ap.add_argument(
        "--baseline-src",
        help="also time pushgate from this source tree (its src/ folder), alternating: "
        "to compare a change against the code before it in one run",
    )
    args = ap.parse_args()
    from servers import S3_KEY_ID, S3_REGION, S3_SECRET, free_port

    # moto in its own process: a child forked from a parent holding moto's in-memory objects
    # would inherit that parent's ru_maxrss and report a false peak.
    port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    for _ in range(100):
        try:
            boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id=S3_KEY_ID,
                aws_secret_access_key=S3_SECRET,
                region_name=S3_REGION,
            ).create_bucket(Bucket="bench")
            break
        except Exception:
            time.sleep(0.1)
    bucket = "bench"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": S3_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_REGION": S3_REGION,
        "AWS_DEFAULT_REGION": S3_REGION,
    }
    bindir = Path(sys.executable).parent
    aws = shutil.which("aws", path=str(bindir)) or shutil.which("aws")
    s5 = shutil.which("s5cmd", path=str(bindir)) or shutil.which("s5cmd")
    tmp = Path(tempfile.mkdtemp(prefix="pushgate-bench-"))
    model = tmp / "model"
    if args.small_files:
        make_small_files(model, args.small_files, 1024)
    else:
        make_tree(model, args.size_mib)
    results: dict[str, list[dict[str, float]]] = {
        "pushgate": [],
        "pushgate_direct": [],
        "pushgate_baseline": [],
        "awscli": [],
        "s5cmd": [],
    }
    try:
        for _ in range(args.rounds):
            dest = f"s3://{bucket}/bench-{uuid.uuid4().hex[:8]}"
            results["pushgate"].append(
                run([sys.executable, "-c", PUSH_CHILD, str(model), dest], env)
            )
            if args.baseline_src:
                dest = f"s3://{bucket}/base-{uuid.uuid4().hex[:8]}"
                results["pushgate_baseline"].append(
                    run(
                        [sys.executable, "-c", PUSH_CHILD, str(model), dest],
                        {**env, "PYTHONPATH": args.baseline_src},
                    )
                )
            if args.direct:
                dest = f"s3://{bucket}/direct-{uuid.uuid4().hex[:8]}"
                results["pushgate_direct"].append(
                    run(
                        [sys.executable, "-c", PUSH_CHILD, str(model), dest],
                        {**env, "PUSHGATE_S3_DIRECT": "1"},
                    )
                )
            if aws:
                results["awscli"].append(
                    run(
                        [
                            sys.executable,
                            "-c",
                            WRAP,
                            aws,
                            "s3",
                            "cp",
                            "--recursive",
                            "--quiet",
                            "--endpoint-url",
                            endpoint,
                            str(model),
                            f"s3://{bucket}/aws-{uuid.uuid4().hex[:8]}/",
                        ],
                        env,
                    )
                )
            if s5:
                results["s5cmd"].append(
                    run(
                        [
                            sys.executable,
                            "-c",
                            WRAP,
                            s5,
                            "--endpoint-url",
                            endpoint,
                            "cp",
                            f"{model}/*",
                            f"s3://{bucket}/s5-{uuid.uuid4().hex[:8]}/",
                        ],
                        env,
                    )
                )
    finally:
        moto.terminate()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(tool: str, key: str) -> float | None:
        vals = [r[key] for r in results[tool] if key in r]
        return statistics.median(vals) if vals else None

    summary = {
        "size_mib": args.size_mib,
        "small_files": args.small_files,
        "pushgate_direct_total_s": med("pushgate_direct", "total_s"),
        "pushgate_direct_upload_s": med("pushgate_direct", "upload_s"),
        "pushgate_baseline_total_s": med("pushgate_baseline", "total_s"),
        "pushgate_baseline_publish_s": med("pushgate_baseline", "publish_s"),
        "rounds": args.rounds,
        "pushgate_publish_s": med("pushgate", "publish_s"),
        "pushgate_upload_s": med("pushgate", "upload_s"),
        "pushgate_total_s": med("pushgate", "total_s"),
        "pushgate_peak_rss_mib": max(r["rss_mib"] for r in results["pushgate"]),
        "awscli_s": med("awscli", "total_s"),
        "s5cmd_s": med("s5cmd", "total_s"),
        "awscli_peak_rss_mib": max((r["rss_mib"] for r in results["awscli"]), default=None),
        "s5cmd_peak_rss_mib": max((r["rss_mib"] for r in results["s5cmd"]), default=None),
    }
    fastest = (
        min(v for v in (summary["awscli_s"], summary["s5cmd_s"]) if v)
        if (summary["awscli_s"] or summary["s5cmd_s"])
        else None
    )
    if fastest:
        summary["upload_vs_fastest_cli"] = summary["pushgate_upload_s"] / fastest  # type: ignore[operator]
        summary["push_vs_fastest_cli"] = summary["pushgate_total_s"] / fastest  # type: ignore[operator]
    print(f"{'tool':<22}{'median s':>10}{'peak RSS MiB':>14}")
    print(f"{'pushgate upload phase':<22}{summary['pushgate_upload_s']:>10.2f}")
    print(
        f"{'pushgate whole push':<22}{summary['pushgate_total_s']:>10.2f}"
        f"{summary['pushgate_peak_rss_mib']:>14.0f}"
    )
    for tool in ("awscli", "s5cmd"):
        if summary[f"{tool}_s"]:
            print(
                f"{tool:<22}{summary[f'{tool}_s']:>10.2f}{summary[f'{tool}_peak_rss_mib']:>14.0f}"
            )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
