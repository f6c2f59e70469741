"""pushgate's GCS upload vs gcsfs ``put`` against one loopback fake-gcs-server (the GCS client
choice in the README).

    .venv/bin/python bench/bench_gcs.py --size-mib 1024 --rounds 2 [--gcsfs-python PATH]

The synthetic model is bench_s3's (8 shards + 500 small assets). Rounds alternate the two. Each
upload runs in its own child process, which reports its time and peak RSS. gcsfs pulls aiohttp
and google-cloud-storage, so it is best installed in a separate virtual environment
(``python3 -m venv /tmp/gcsvenv && /tmp/gcsvenv/bin/pip install gcsfs``) whose interpreter is given
with ``--gcsfs-python``; without gcsfs only pushgate is timed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

PUSHGATE_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from pushgate.destination.objectstore import ObjectStoreDestination
from pushgate.source import list_files
dest = ObjectStoreDestination(sys.argv[2], {"base_url": sys.argv[3], "skip_signature": "true"})
t = time.perf_counter()
dest.put_files(list_files(Path(sys.argv[1])), "")
print(json.dumps({"total_s": time.perf_counter() - t,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

GCSFS_CHILD = r"""
import json, os, resource, sys, time
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"  # else every call waits 60 s
import gcsfs
fs = gcsfs.GCSFileSystem(endpoint_url=sys.argv[3], token="anon")
t = time.perf_counter()
fs.put(sys.argv[1], sys.argv[2], recursive=True)
print(json.dumps({"total_s": time.perf_counter() - t,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(python: str, code: str, *args: str) -> dict[str, float]:
    out = subprocess.run([python, "-c", code, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{python} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--gcsfs-python", default=sys.executable, help="an interpreter with gcsfs")
    args = ap.parse_args()
    from bench_s3 import make_tree
    from servers import start_fake_gcs

    has_gcsfs = (
        subprocess.run([args.gcsfs_python, "-c", "import gcsfs"], capture_output=True).returncode
        == 0
    )
    server = start_fake_gcs()
    bucket = server.make_bucket("bench")
    tmp = Path(tempfile.mkdtemp(prefix="pushgate-bench-"))
    model = tmp / "model"
    make_tree(model, args.size_mib)
    results: dict[str, list[dict[str, float]]] = {"pushgate": [], "gcsfs": []}
    try:
        for _ in range(args.rounds):
            dest = f"gs://{bucket}/pg-{uuid.uuid4().hex[:8]}"
            results["pushgate"].append(
                child(sys.executable, PUSHGATE_CHILD, str(model), dest, server.endpoint)
            )
            if has_gcsfs:
                dest = f"{bucket}/fs-{uuid.uuid4().hex[:8]}"
                results["gcsfs"].append(
                    child(args.gcsfs_python, GCSFS_CHILD, str(model), dest, server.endpoint)
                )
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{'tool':<10}{'median s':>10}{'peak RSS MiB':>14}   all rounds (s)")
    summary: dict[str, object] = {"size_mib": args.size_mib, "rounds": args.rounds}
    for tool, runs in results.items():
        if not runs:
            print(f"{tool:<10}{'(not installed: pip install gcsfs)':>40}")
            continue
        med = statistics.median(r["total_s"] for r in runs)
        rss = max(r["rss_mib"] for r in runs)
        rounds = ", ".join(f"{r['total_s']:.2f}" for r in runs)
        print(f"{tool:<10}{med:>10.2f}{rss:>14.0f}   {rounds}")
        summary[f"{tool}_s"], summary[f"{tool}_peak_rss_mib"] = med, rss
    if results["gcsfs"]:
        summary["pushgate_vs_gcsfs"] = summary["pushgate_s"] / summary["gcsfs_s"]  # type: ignore[operator]
    print("BENCH " + json.dumps(summary))


if __name__ == "__main__":
    main()
