"""Benchmark of ``pushgate evaluate`` at growing sizes: streaming (this checkout) vs the old path.

For each size (``--sizes``, default 10k, 100k, 1M examples) and format (a TFX Examples artifact of
gzip TFRecord ``tf.Example`` shards, and CSV), the same logistic-regression SavedModel (the one
``tests/models.py`` makes) is evaluated by

- ``new``: ``pushgate evaluate`` from this checkout (batches streamed through one runtime process);
- ``old``: ``pushgate evaluate`` from ``--old-src`` (e.g. a checkout of the commit before the
  streaming change: every example in memory, one JSON job file), when given;
- ``beam``: ``pushgate evaluate --runner beam`` on DirectRunner with ``--beam-workers`` worker
  processes (multi-process), when given;
- ``tfma``: ``tfma.run_model_analysis`` on DirectRunner, multi-process (``bench/tfma_run.py``)
  in ``--tfma-python`` (a Python 3.10 environment with TFX's TFMA 0.47), on the TFRecord data.
  With it every contestant runs TFX's kind of model (serialized ``tf.Example`` in), made by
  that environment's TensorFlow.

Each run is a real subprocess; wall time, examples per second and the peak resident memory of the
whole process tree (pushgate and its runtime worker together, sampled from ``/proc`` every 50 ms)
are reported, with the metrics of each to show they agree. Prints a table and one JSON line
(``BENCH {...}``).

    git worktree add /tmp/pushgate-old <old-commit>
    python bench/bench_evaluate.py --sizes 10000,100000,1000000 --old-src /tmp/pushgate-old/src \
        --tfma-python /path/to/tfx-venv/bin/python [--workdir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]


def _masked_crc(data: bytes) -> int:
    from crc32c import crc32c

    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_data(root: Path, n: int, seed: int = 7) -> tuple[Path, Path]:
    """``n`` labelled examples as a TFX Examples artifact (2 gzip shards) and as a CSV."""
    import numpy as np

    from models import reference_predict
    from pushgate.protos.example_pb2 import Example

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = ((reference_predict(x) + rng.normal(scale=0.25, size=n)) > 0.5).astype(np.int64)
    split = root / "Examples" / "Split-eval"
    split.mkdir(parents=True)
    half = n // 2
    for shard, (lo, hi) in enumerate(((0, half), (half, n))):
        path = split / f"data_tfrecord-{shard:05d}-of-00002.gz"
        with gzip.open(path, "wb", compresslevel=6) as f:
            for i in range(lo, hi):
                ex = Example()
                ex.features.feature["a"].float_list.value.append(float(x[i, 0]))
                ex.features.feature["b"].float_list.value.append(float(x[i, 1]))
                ex.features.feature["label"].int64_list.value.append(int(y[i]))
                data = ex.SerializeToString()
                length = struct.pack("<Q", len(data))
                f.write(length + struct.pack("<I", _masked_crc(length)))
                f.write(data + struct.pack("<I", _masked_crc(data)))
    csv_path = root / "eval.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "label"])
        for (a, b), label in zip(x.tolist(), y.tolist(), strict=True):
            w.writerow([repr(a), repr(b), label])
    return root / "Examples", csv_path


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every descendant (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        p = int(entry)
        children.setdefault(int(fields[1]), []).append(p)
        rss[p] = int(fields[21]) * page
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, int, bytes]:
    """Run ``cmd``: wall seconds, peak RSS of its whole process tree, its stdout."""
    peak = 0
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr.decode()[-2000:]}")
    return seconds, peak, stdout


def run_evaluate(
    src: Path, model: Path, examples: Path, out: Path, extra: tuple[str, ...] = ()
) -> dict[str, object]:
    """One ``pushgate evaluate`` subprocess: wall seconds, peak tree RSS, its metrics."""
    thresholds = out.parent / "thresholds.json"
    thresholds.write_text('{"metrics": {"auc": {"value": {"lower": 0.5}}}}')
    path = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "pushgate", "evaluate", "--model", str(model)]
    cmd += ["--examples", str(examples), "--thresholds", str(thresholds), "--output", str(out)]
    cmd += ["--json", *extra]
    seconds, peak, stdout = measure(cmd, env)
    doc = json.loads(stdout)
    return {"seconds": seconds, "peak_rss": peak, "metrics": doc.get("candidate_metrics")}


def _tfma_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HTTPLIB2_CA_CERTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run_tfma(
    python: str, model: Path, artifact: Path, out: Path, workers: int
) -> dict[str, object]:
    """``tfma.run_model_analysis`` (bench/tfma_run.py) on DirectRunner, multi-process."""
    cmd = [python, str(Path(__file__).with_name("tfma_run.py")), "--model", str(model)]
    cmd += ["--examples", str(artifact / "Split-eval" / "*"), "--out", str(out)]
    cmd += ["--workers", str(workers)]
    seconds, peak, stdout = measure(cmd, _tfma_env())
    line = [ln for ln in stdout.decode().splitlines() if ln.startswith("{")][-1]
    return {"seconds": seconds, "peak_rss": peak, "metrics": json.loads(line)["metrics"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--formats", default="tfrecord,csv")
    ap.add_argument("--old-src", type=Path, help="src/ of the pushgate to compare with")
    ap.add_argument("--tfma-python", help="a Python with TFX's TFMA: run it side by side")
    ap.add_argument("--tfma-workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument(
        "--beam-workers",
        type=int,
        default=0,
        help="also run `evaluate --runner beam` on DirectRunner with this many worker processes",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        help="keep the model and the generated data here and reuse them on the next run "
        "(10M examples take minutes to write); default: a temporary directory",
    )
    args = ap.parse_args()
    from models import make_saved_model

    sizes = [int(s) for s in args.sizes.split(",")]
    formats = args.formats.split(",")
    rows: list[dict[str, object]] = []
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-evaluate-"))
        else:
            args.workdir.mkdir(parents=True, exist_ok=True)
            tmp = str(args.workdir)
        model = Path(tmp) / "model"
        if (model / "saved_model.pb").exists():
            pass  # reused from an earlier run in --workdir
        elif args.tfma_python:  # one model both can run: TFX's (serialized tf.Example in)
            script = str(Path(__file__).with_name("tfma_run.py"))
            cmd = [args.tfma_python, script, "--make-model", str(model)]
            subprocess.run(cmd, env=_tfma_env(), check=True, capture_output=True)
        else:
            make_saved_model(model)
        for n in sizes:
            data = Path(tmp) / f"data-{n}"
            shards = sorted((data / "Examples" / "Split-eval").glob("*.gz"))
            if args.workdir is not None and (data / "eval.csv").exists() and len(shards) == 2:
                artifact, csv_path = data / "Examples", data / "eval.csv"
            else:
                artifact, csv_path = write_data(data, n)
            for fmt in formats:
                examples = artifact if fmt == "tfrecord" else csv_path
                contestants = [("new", ROOT / "src")]
                if args.old_src is not None:
                    contestants.append(("old", args.old_src))
                if args.beam_workers:
                    contestants.append(("beam", ROOT / "src"))
                if args.tfma_python and fmt == "tfrecord":
                    contestants.append(("tfma", Path("-")))
                for name, src in contestants:
                    if name == "tfma":
                        r = run_tfma(
                            args.tfma_python, model, artifact, data / "tfma", args.tfma_workers
                        )
                    else:
                        beam = (
                            "--runner",
                            "beam",
                            "--beam-option",
                            f"direct_num_workers={args.beam_workers}",
                            "--beam-option",
                            "direct_running_mode=multi_processing",
                        )
                        r = run_evaluate(
                            src,
                            model,
                            examples,
                            data / f"blessing-{name}-{fmt}",
                            beam if name == "beam" else (),
                        )
                    row = {"examples": n, "format": fmt, "pushgate": name, **r}
                    row["examples_per_s"] = n / float(r["seconds"])  # type: ignore[arg-type]
                    rows.append(row)
                    print(
                        f"{n:>9} {fmt:<8} {name:<4} {r['seconds']:8.1f} s "
                        f"{row['examples_per_s']:>10.0f} ex/s "
                        f"{int(r['peak_rss']) / 2**30:6.2f} GiB  auc={r['metrics']['auc']:.6f}",  # type: ignore[index]
                        flush=True,
                    )
            if args.workdir is None:
                for f in artifact.rglob("*"):
                    if f.is_file():
                        f.unlink()
    print("BENCH " + json.dumps({"cpus": os.cpu_count(), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
