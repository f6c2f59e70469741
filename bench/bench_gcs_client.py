"""pushgate's hand-written GCS JSON client (``destination/stores/gcs.py``) against Google's
``google-cloud-storage``, doing the bucket protocol's work on one loopback fake-gcs-server.

Each client, in its own child process (time and peak RSS reported by the child), runs what a
push does: upload every file of a synthetic model to ``stage/`` (small files in one multipart
request each, create-only with ``ifGenerationMatch=0``; big files as resumable uploads in 8 MiB
chunks), then copy every object server-side to ``v/`` (``rewriteTo``), 16 threads. Rounds
alternate the two clients.

``--faults`` then runs both through :class:`servers.FlakyProxy` in front of the server, which
resets the first connections carrying more than 3 MiB (a big file's upload cut mid-chunk):
each client must finish with every object whole (checked by md5 against the source).

google-cloud-storage pulls requests, google-api-core and protobuf; install it in a separate
virtual environment and give its interpreter with ``--gcs-python`` (the pushgate child runs
there too, with this checkout's ``src`` on its path, so both use the same urllib3):

    python -m venv /tmp/gcsvenv && /tmp/gcsvenv/bin/pip install google-cloud-storage
    .venv/bin/python bench/bench_gcs_client.py --gcs-python /tmp/gcsvenv/bin/python \\
        --size-mib 256 --rounds 2 --faults
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
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

COMMON = r"""
import base64, hashlib, json, os, resource, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
model, bucket_name, endpoint, prefix = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
files = sorted(p for p in model.rglob("*") if p.is_file())
rel = lambda p: p.relative_to(model).as_posix()
SMALL = 8 * 1024 * 1024
def report(t):
    print(json.dumps({"total_s": time.perf_counter() - t,
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PUSHGATE_CHILD = (
    COMMON
    + r"""
from pushgate.destination.stores.gcs import GcsJsonStore
store = GcsJsonStore(bucket_name, {"base_url": endpoint, "skip_signature": True}, {})
def up(p):
    key = f"{prefix}/stage/{rel(p)}"
    size = p.stat().st_size
    if size <= SMALL:
        store.put(key, p.read_bytes(), create_only=True)
    else:
        def chunks():
            with open(p, "rb") as f:
                while block := f.read(store.part_size):
                    yield block
        store.put_stream(key, chunks, size)
def cp(p):
    store.copy(f"{prefix}/stage/{rel(p)}", f"{prefix}/v/{rel(p)}")
t = time.perf_counter()
with ThreadPoolExecutor(16) as pool:
    list(pool.map(up, files))
    list(pool.map(cp, files))
report(t)
"""
)

LIBRARY_CHILD = (
    COMMON
    + r"""
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
local = threading.local()  # a Client per thread: its requests session is not thread-safe
def bucket():
    if not hasattr(local, "b"):
        client = storage.Client(project="test", credentials=AnonymousCredentials(),
                                client_options={"api_endpoint": endpoint})
        local.b = client.bucket(bucket_name)
    return local.b
def up(p):
    blob = bucket().blob(f"{prefix}/stage/{rel(p)}", chunk_size=SMALL)
    if p.stat().st_size <= SMALL:
        blob.chunk_size = None  # one multipart request, as pushgate sends
    blob.upload_from_filename(str(p), if_generation_match=0)
def cp(p):
    b = bucket()
    src = b.blob(f"{prefix}/stage/{rel(p)}")
    dst = b.blob(f"{prefix}/v/{rel(p)}")
    token, _, _ = dst.rewrite(src)
    while token is not None:
        token, _, _ = dst.rewrite(src, token=token)
t = time.perf_counter()
with ThreadPoolExecutor(16) as pool:
    list(pool.map(up, files))
    list(pool.map(cp, files))
report(t)
"""
)


def child(python: str, code: str, *args: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1][:300]}  # type: ignore[dict-item]
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def check_whole(endpoint: str, bucket: str, prefix: str, model: Path) -> str:
    """``ok`` when every file landed under ``<prefix>/v/`` with the source's md5."""
    import base64
    import hashlib
    import urllib.parse
    import urllib.request

    bad = []
    for p in sorted(q for q in model.rglob("*") if q.is_file()):
        key = urllib.parse.quote(f"{prefix}/v/{p.relative_to(model).as_posix()}", safe="")
        try:
            with urllib.request.urlopen(f"{endpoint}/storage/v1/b/{bucket}/o/{key}") as r:
                meta = json.load(r)
        except OSError:
            bad.append(f"{p.name} missing")
            continue
        want = base64.b64encode(hashlib.md5(p.read_bytes()).digest()).decode()
        if meta.get("md5Hash") != want:
            bad.append(f"{p.name} differs")
    return "ok" if not bad else f"{len(bad)} bad: {', '.join(bad[:3])}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--gcs-python", required=True, help="an interpreter with google-cloud-storage")
    ap.add_argument("--faults", action="store_true", help="also run through a flaky proxy")
    args = ap.parse_args()
    from bench_s3 import make_tree
    from servers import FlakyProxy, start_fake_gcs

    clients = {"pushgate": PUSHGATE_CHILD, "google-cloud-storage": LIBRARY_CHILD}
    tmp = Path(tempfile.mkdtemp(prefix="pushgate-bench-"))
    model = tmp / "model"
    make_tree(model, args.size_mib)
    results: dict[str, list[dict[str, float]]] = {k: [] for k in clients}
    faults: dict[str, str] = {}
    server = start_fake_gcs()
    bucket = server.make_bucket("bench")
    try:
        for _ in range(args.rounds):
            for name, code in clients.items():
                prefix = f"{name[:2]}-{uuid.uuid4().hex[:8]}"
                res = child(args.gcs_python, code, str(model), bucket, server.endpoint, prefix)
                res["whole"] = check_whole(server.endpoint, bucket, prefix, model)  # type: ignore[assignment]
                results[name].append(res)
    finally:
        server.stop()
    if args.faults:
        # resumable chunks go where the server says: make it name the proxy
        port = __import__("servers").free_port()
        proxy = FlakyProxy(port)
        server = start_fake_gcs(port=port, external_url=proxy.endpoint)
        bucket = server.make_bucket("faults")
        try:
            for name, code in clients.items():
                proxy.arm(times=3, after_bytes=3 << 20)
                prefix = f"{name[:2]}-{uuid.uuid4().hex[:8]}"
                res = child(args.gcs_python, code, str(model), bucket, proxy.endpoint, prefix)
                whole = check_whole(server.endpoint, bucket, prefix, model)
                faults[name] = (
                    f"{res['error']}" if "error" in res else f"finished, {proxy.cuts} cuts so far"
                ) + f"; objects: {whole}"
        finally:
            proxy.close()
            server.stop()
    shutil.rmtree(tmp, ignore_errors=True)

    summary: dict[str, object] = {"size_mib": args.size_mib, "rounds": args.rounds}
    print(f"{'client':<22}{'median s':>10}{'peak RSS MiB':>14}   rounds")
    for name, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            print(f"{name:<22} failed: {runs[0].get('error')}")
            continue
        med = statistics.median(r["total_s"] for r in ok)
        rss = max(r["rss_mib"] for r in ok)
        print(f"{name:<22}{med:>10.2f}{rss:>14.0f}   {runs}")
        summary[f"{name}_s"], summary[f"{name}_peak_rss_mib"] = med, rss
    for name, text in faults.items():
        print(f"faults {name}: {text}")
    summary["faults"] = faults
    print("BENCH " + json.dumps(summary))


if __name__ == "__main__":
    main()
