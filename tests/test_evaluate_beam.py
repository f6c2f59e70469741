"""``pushgate evaluate --runner beam``: a real Apache Beam pipeline (DirectRunner, several worker
processes) over real models gives the in-process path's metrics, verdict and ModelBlessing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import cli
from models import (
    labelled_data,
    make_onnx_model,
    make_saved_model,
    make_tfx_style_saved_model,
    reference_metrics,
    reference_predict,
    tfma_thresholded_auc,
    write_examples_artifact,
    write_examples_csv,
)
from pushgate import metrics
from pushgate.errors import UsageError, ValidationError
from pushgate.evaluator import EvaluateRequest, EvaluationResult, evaluate
from pushgate.remote import upload_tree
from servers import StoreURL  # the s3_server and store_url fixtures come through conftest

ROOT = Path(__file__).resolve().parent.parent
MULTI = ("direct_num_workers=2", "direct_running_mode=multi_processing")
# A portable runner that runs here offline: Beam's job service in the launcher, the SDK harness in
# its process (LOOPBACK). The pipeline goes through the Runner API and the Fn API as on Flink or
# Spark (whose job servers are jars from Maven, and Prism a binary from GitHub: not reachable).
PORTABLE = ("runner=PortableRunner", "job_endpoint=embed", "environment_type=LOOPBACK")

try:
    import apache_beam  # noqa: F401

    HAVE_BEAM = True
except ImportError:
    HAVE_BEAM = False
# The test extra has apache-beam: without it these tests fail (never skip), saying so.
needs_beam = pytest.mark.usefixtures("beam_installed")


@pytest.fixture
def beam_installed() -> None:
    assert HAVE_BEAM, "apache-beam is missing: install the test extra (pip install -e '.[test]')"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("beam")
    x, y = labelled_data(300, seed=11)
    jsonl = root / "eval.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps({"a": float(a), "b": float(b), "label": int(v)}) + "\n"
            for (a, b), v in zip(x.tolist(), y.tolist(), strict=True)
        )
    )
    return {
        "x": x,
        "y": y,
        "csv": write_examples_csv(root / "eval.csv", x, y),
        "jsonl": jsonl,
        "artifact": write_examples_artifact(root / "Examples", x, y),
        "saved_model": make_saved_model(root / "saved_model"),
        "tfx_model": make_tfx_style_saved_model(root / "tfx_model"),
        "onnx0": make_onnx_model(root / "onnx0" / "model.onnx", seed=0),
        "onnx1": make_onnx_model(root / "onnx1" / "model.onnx", seed=1),
    }


THRESHOLDS = {
    "metrics": {
        "auc": {"value": {"lower": 0.8}, "change": {"direction": "higher_is_better"}},
        "accuracy": {"value": {"lower": 0.99}},  # the data is noisy: fails
        "log_loss": {"value": {"upper": 1.0}},
    }
}


def run_both(
    tmp_path: Path, beam_options: tuple[str, ...] = MULTI, **request: Any
) -> tuple[EvaluationResult, EvaluationResult]:
    th = tmp_path / "t.json"
    th.write_text(json.dumps(THRESHOLDS))
    local = evaluate(
        EvaluateRequest(output=tmp_path / "local", thresholds=th, batch_size=32, **request)
    )
    on_beam = evaluate(
        EvaluateRequest(
            output=tmp_path / "beam",
            thresholds=th,
            batch_size=32,
            runner="beam",
            beam_options=beam_options,
            **request,
        )
    )
    return local, on_beam


def assert_same(local: EvaluationResult, on_beam: EvaluationResult) -> None:
    for got, want in (
        (on_beam.candidate_metrics, local.candidate_metrics),
        (on_beam.baseline_metrics or {}, local.baseline_metrics or {}),
    ):
        assert set(got) == set(want)
        for k, v in want.items():
            assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-15), k
    assert on_beam.blessed == local.blessed
    assert [(c.metric, c.kind, c.outcome) for c in on_beam.checks] == [
        (c.metric, c.kind, c.outcome) for c in local.checks
    ]
    assert on_beam.notes == local.notes
    for name in ("BLESSED", "NOT_BLESSED"):
        assert (local.blessing / name).exists() == (on_beam.blessing / name).exists()
    want_doc = json.loads((local.blessing / "evaluation.json").read_text())
    got_doc = json.loads((on_beam.blessing / "evaluation.json").read_text())
    for key in ("verdict", "blessed", "candidate_model", "baseline_model"):
        assert got_doc[key] == want_doc[key], key
    assert [(t["metric"], t["kind"], t["outcome"]) for t in got_doc["thresholds"]] == [
        (t["metric"], t["kind"], t["outcome"]) for t in want_doc["thresholds"]
    ]


@needs_beam
@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "examples", "baseline"),
    [
        ("saved_model", "csv", "onnx1"),
        ("tfx_model", "artifact", None),
        ("onnx0", "jsonl", None),
        ("onnx0", "artifact", "saved_model"),
    ],
)
def test_beam_multi_process_equals_the_in_process_path(
    data: dict, tmp_path: Path, model: str, examples: str, baseline: str | None
) -> None:
    local, on_beam = run_both(
        tmp_path,
        model=data[model],
        examples=data[examples],
        baseline_model=None if baseline is None else data[baseline],
    )
    assert_same(local, on_beam)
    # and both are the metrics computed independently (numpy) for the seed-0 model
    want = reference_metrics(data["y"], reference_predict(data["x"]), "classification")
    assert set(on_beam.candidate_metrics) == set(want)
    for k, v in want.items():
        assert on_beam.candidate_metrics[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    assert on_beam.candidate_metrics["example_count"] == 300
    assert not on_beam.blessed  # accuracy >= 0.99 fails on this noisy data
    assert (on_beam.blessing / "NOT_BLESSED").exists()


@needs_beam
@pytest.mark.slow
def test_past_the_exact_budget_both_paths_report_tfmas_thresholded_auc(
    data: dict, tmp_path: Path
) -> None:
    """The same rule on both paths: 300 examples over a budget of 100 give TFMA's AUC."""
    local, on_beam = run_both(
        tmp_path, model=data["onnx0"], examples=data["artifact"], auc_exact_budget=100
    )
    assert_same(local, on_beam)
    scores = reference_predict(data["x"]).astype(np.float64)
    want = tfma_thresholded_auc(data["y"], scores)
    assert on_beam.candidate_metrics["auc"] == pytest.approx(want, abs=1e-6)
    assert any("thresholded ROC AUC" in n and "300 examples" in n for n in on_beam.notes)


def test_merged_accumulators_equal_one_stream_on_either_side_of_the_budget() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, size=500)
    s = rng.uniform(size=500)
    s[:3] = [0.0, 0.5, 1.0]
    for budget in (1000, 499, 100):
        whole = metrics.Accumulator("auto", budget)
        whole.add(y.tolist(), s.tolist())
        parts = [metrics.Accumulator("auto", budget) for _ in range(4)]
        for i, start in enumerate(range(0, 500, 37)):
            parts[i % 4].add(y[start : start + 37].tolist(), s[start : start + 37].tolist())
        import pickle

        merged = pickle.loads(pickle.dumps(parts[3]))  # Beam ships accumulators pickled
        for p in parts[:3]:
            merged.merge(p)
        assert (
            merged.auc_method == whole.auc_method == ("exact" if budget >= 500 else "thresholded")
        )
        got, want = merged.result(), whole.result()
        assert set(got) == set(want)
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-12, abs=1e-15), (budget, k)


@needs_beam
def test_cli_beam_multi_process_reports_a_corrupt_tfrecord_with_exit_2_naming_file_and_record(
    data: dict, tmp_path: Path
) -> None:
    import gzip

    x, y = labelled_data(60, seed=5)
    root = write_examples_artifact(tmp_path / "Examples", x, y)
    shard = sorted((root / "Split-eval").iterdir())[1]
    raw = bytearray(gzip.decompress(shard.read_bytes()))
    raw[len(raw) // 2] ^= 0x08
    shard.write_bytes(gzip.compress(bytes(raw)))
    th = tmp_path / "t.json"
    th.write_text(json.dumps({"metrics": {"accuracy": {"value": {"lower": 0}}}}))
    options = [a for o in MULTI for a in ("--beam-option", o)]
    proc = cli(
        "evaluate", "--model", data["onnx0"], "--examples", root, "--thresholds", th,
        "--output", tmp_path / "blessing", "--runner", "beam", *options,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert re.search(rf"{re.escape(str(shard))}: record \d+ is corrupt", proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "blessing").exists()


@needs_beam
def test_a_model_failing_in_a_beam_worker_names_the_examples_it_failed_on(
    data: dict, tmp_path: Path
) -> None:
    lines = data["csv"].read_text().splitlines()
    lines[101] = "oops," + lines[101].split(",", 1)[1]  # example 100: a feature that is no number
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    th = tmp_path / "t.json"
    th.write_text(json.dumps({"metrics": {"accuracy": {"value": {"lower": 0}}}}))
    with pytest.raises(ValidationError, match=r"e\.csv: examples 96\.\.111 .*not a number"):
        evaluate(
            EvaluateRequest(
                output=tmp_path / "blessing",
                thresholds=th,
                model=data["onnx0"],
                examples=tmp_path / "e.csv",
                batch_size=16,
                runner="beam",
            )
        )
    assert not (tmp_path / "blessing").exists()


@needs_beam
def test_a_malformed_beam_option_or_one_without_the_beam_runner_is_a_usage_error(
    data: dict, tmp_path: Path
) -> None:
    th = tmp_path / "t.json"
    th.write_text(json.dumps({"metrics": {"accuracy": {"value": {"lower": 0}}}}))
    common = {"output": tmp_path / "b", "thresholds": th, "model": data["onnx0"]}
    with pytest.raises(UsageError, match="not KEY=VALUE"):
        evaluate(
            EvaluateRequest(examples=data["csv"], runner="beam", beam_options=("=x",), **common)
        )
    with pytest.raises(UsageError, match="no pipeline option direct_num_worker"):
        evaluate(
            EvaluateRequest(
                examples=data["csv"], runner="beam", beam_options=("direct_num_worker=2",), **common
            )
        )
    with pytest.raises(UsageError, match="needs --runner beam"):
        evaluate(EvaluateRequest(examples=data["csv"], beam_options=("runner=X",), **common))
    assert not (tmp_path / "b").exists()


def test_cli_runner_beam_without_the_beam_extra_is_exit_2_with_the_install_hint(
    data: dict, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'apache_beam':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(site), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    probe = subprocess.run([sys.executable, "-c", "import apache_beam"], env=env, check=False)
    assert probe.returncode != 0  # Beam really is hidden
    th = tmp_path / "t.json"
    th.write_text(json.dumps({"metrics": {"accuracy": {"value": {"lower": 0}}}}))
    out = tmp_path / "blessing"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pushgate",
            "evaluate",
            "--model",
            str(data["onnx0"]),
            "--examples",
            str(data["csv"]),
            "--thresholds",
            str(th),
            "--output",
            str(out),
            "--runner",
            "beam",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'pushgate[beam]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    # and pushgate itself never imports Beam
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pushgate, pushgate.evaluator, pushgate.cli; "
            "assert 'apache_beam' not in sys.modules",
        ],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        },
        check=False,
    )
    assert probe.returncode == 0


def processes_with_env(entry: str) -> list[int]:
    """The processes whose environment holds ``entry`` (``KEY=VALUE``)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                env = (d / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if entry.encode() in env:
                found.append(int(d.name))
    return found


@needs_beam
def test_cli_beam_deadline_ends_the_pipeline_with_exit_1_and_writes_no_verdict(
    data: dict, tmp_path: Path
) -> None:
    """--deadline holds on Beam as in-process: the run is ended (DirectRunner's worker
    processes too), exit 1, and no verdict, not even an earlier one, is left."""
    import time

    out = tmp_path / "blessing"
    out.mkdir()
    (out / "BLESSED").touch()  # an earlier run's verdict must not survive
    th = tmp_path / "t.json"
    th.write_text(json.dumps({"metrics": {"accuracy": {"value": {"lower": 0}}}}))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    options = [a for o in MULTI for a in ("--beam-option", o)]
    start = time.monotonic()
    proc = cli(
        "evaluate", "--model", data["saved_model"], "--examples", data["artifact"],
        "--thresholds", th, "--output", out, "--runner", "beam", *options, "--deadline", "1.5",
        env={"TMPDIR": str(tmp)},
    )  # fmt: skip
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    assert "did not finish within the deadline of 1.5 s" in proc.stderr, proc.stderr
    assert "raise --deadline" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == []  # no marker, no evaluation.json
    assert took < 30, took
    time.sleep(0.5)
    assert processes_with_env(f"TMPDIR={tmp}") == []  # launcher and workers ended
    assert list(tmp.iterdir()) == []


@needs_beam
def test_cli_beam_leaves_nothing_in_the_temporary_directory(data: dict, tmp_path: Path) -> None:
    """Beam's launcher leaves folders in TMPDIR on every run (beam-temp* of its Prism attempt,
    python_sdk_dependencies' folders): pushgate runs it inside its own, removed, folder."""
    th = tmp_path / "t.json"
    th.write_text(json.dumps({"metrics": {"accuracy": {"value": {"lower": 0}}}}))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = cli(
        "evaluate", "--model", data["onnx0"], "--examples", data["csv"], "--thresholds", th,
        "--output", tmp_path / "blessing", "--runner", "beam", env={"TMPDIR": str(tmp)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "blessing" / "BLESSED").exists()
    assert list(tmp.iterdir()) == []


@needs_beam
@pytest.mark.slow
@pytest.mark.parametrize("examples", ["artifact", "csv"])
def test_beam_workers_read_examples_from_s3_and_equal_the_in_process_path_on_local_data(
    data: dict, tmp_path: Path, store_url: Any, examples: str
) -> None:
    """--examples s3://...: every Beam worker streams its own shards from the bucket (moto S3 on
    127.0.0.1); metrics, verdict and blessing equal the in-process evaluation of the local copy,
    and the in-process path reads the same URL too."""
    s: StoreURL = store_url("s3")
    local_data = data[examples]
    if examples == "csv":
        folder = tmp_path / "csv"
        folder.mkdir()
        (folder / "eval.csv").write_bytes(local_data.read_bytes())
        upload_tree(folder, f"{s.base}/csv", s.options)
        url = f"{s.base}/csv/eval.csv"
    else:
        upload_tree(local_data, f"{s.base}/Examples", s.options)
        url = f"{s.base}/Examples"
    th = tmp_path / "t.json"
    th.write_text(json.dumps(THRESHOLDS))
    common: dict[str, Any] = {"thresholds": th, "batch_size": 32, "model": data["saved_model"]}
    local = evaluate(EvaluateRequest(output=tmp_path / "local", examples=local_data, **common))
    on_beam = evaluate(
        EvaluateRequest(
            output=tmp_path / "beam",
            examples=url,
            storage_options=s.options,
            runner="beam",
            beam_options=MULTI,
            **common,
        )
    )
    assert_same(local, on_beam)
    assert on_beam.candidate_metrics["example_count"] == 300
    in_process_url = evaluate(
        EvaluateRequest(
            output=tmp_path / "url",
            examples=url,
            storage_options=s.options,
            **common,
        )
    )
    assert_same(local, in_process_url)


@needs_beam
def test_cli_beam_examples_url_errors_name_the_url_and_a_model_url_is_refused(
    data: dict, tmp_path: Path, store_url: Any
) -> None:
    s: StoreURL = store_url("s3")
    upload_tree(data["artifact"], f"{s.base}/Examples", s.options)
    th = tmp_path / "t.json"
    th.write_text(json.dumps({"metrics": {"accuracy": {"value": {"lower": 0}}}}))
    out = tmp_path / "blessing"
    env = s.subprocess_env()
    proc = cli(
        "evaluate", "--model", data["onnx0"], "--examples", f"{s.base}/Exampls",
        "--thresholds", th, "--output", out, "--runner", "beam", env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"--examples {s.base}/Exampls: nothing is stored under this URL" in proc.stderr
    proc = cli(
        "evaluate", "--model", f"{s.base}/Model", "--examples", f"{s.base}/Examples",
        "--thresholds", th, "--output", out, "--runner", "beam", env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"--model {s.base}/Model is an object-store URL" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    # a corrupt shard in the bucket: the worker that reads it names its URL and the record
    import gzip

    bad = tmp_path / "Bad"
    shutil.copytree(data["artifact"], bad)
    shard = sorted((bad / "Split-eval").iterdir())[1]
    raw = bytearray(gzip.decompress(shard.read_bytes()))
    raw[len(raw) // 2] ^= 0x08
    shard.write_bytes(gzip.compress(bytes(raw)))
    upload_tree(bad, f"{s.base}/Bad", s.options)
    proc = cli(
        "evaluate", "--model", data["onnx0"], "--examples", f"{s.base}/Bad", "--thresholds", th,
        "--output", out, "--runner", "beam", env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    url = re.escape(f"{s.base}/Bad/Split-eval/{shard.name}")
    assert re.search(rf"{url}: record \d+ is corrupt", proc.stderr), proc.stderr
    assert not out.exists()
    # and through the CLI with the cloud's standard environment, the verdict is reached
    proc = cli(
        "evaluate", "--model", data["onnx0"], "--examples", f"{s.base}/Examples",
        "--thresholds", th, "--output", out, "--runner", "beam", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (out / "BLESSED").exists()


@needs_beam
@pytest.mark.slow
def test_beam_on_the_portable_runner_equals_the_in_process_path(data: dict, tmp_path: Path) -> None:
    """The same pipeline on PortableRunner (Runner API + Fn API, as Flink, Spark, Dataflow run
    it): only portable constructs, same metrics and verdict."""
    local, on_beam = run_both(
        tmp_path,
        PORTABLE,
        model=data["saved_model"],
        examples=data["artifact"],
        baseline_model=data["onnx1"],
    )
    assert_same(local, on_beam)
    assert on_beam.candidate_metrics["example_count"] == 300


@needs_beam
def test_beam_deadline_cancels_a_pipeline_the_runner_runs_on_its_own(
    data: dict, tmp_path: Path
) -> None:
    """A runner that runs the job apart from the launcher (the portable one here; Dataflow,
    Flink, Spark) is cancelled at the deadline; a model that hangs while loading keeps it from
    ever finishing. Nothing of the run is left: no verdict, no process, no temporary folder."""
    import time

    from models import make_hanging_onnx_model

    th = tmp_path / "t.json"
    th.write_text(json.dumps({"metrics": {"accuracy": {"value": {"lower": 0}}}}))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "blessing"
    options = [a for o in PORTABLE for a in ("--beam-option", o)]
    start = time.monotonic()
    proc = cli(
        "evaluate", "--model", make_hanging_onnx_model(tmp_path / "hang"), "--examples",
        data["csv"], "--thresholds", th, "--output", out, "--runner", "beam", *options,
        "--deadline", "15", env={"TMPDIR": str(tmp)},
    )  # fmt: skip
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    assert (
        "did not finish within the deadline of 15 s (the pipeline was cancelled)" in proc.stderr
    ), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert took < 45, took
    time.sleep(0.5)
    assert processes_with_env(f"TMPDIR={tmp}") == []
    assert list(tmp.iterdir()) == []


@needs_beam
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gcs", "azure"])
def test_examples_on_gcs_and_azure_are_read_by_both_paths(
    data: dict, tmp_path: Path, store_url: Any, kind: str
) -> None:
    """The same store layer on fake-gcs-server and Azurite: both paths equal the local run."""
    s: StoreURL = store_url(kind)
    upload_tree(data["artifact"], f"{s.base}/Examples", s.options)
    th = tmp_path / "t.json"
    th.write_text(json.dumps(THRESHOLDS))
    common: dict[str, Any] = {"thresholds": th, "batch_size": 64, "model": data["onnx0"]}
    local = evaluate(
        EvaluateRequest(output=tmp_path / "local", examples=data["artifact"], **common)
    )
    for runner in ("local", "beam"):
        remote = evaluate(
            EvaluateRequest(
                output=tmp_path / runner,
                examples=f"{s.base}/Examples",
                storage_options=s.options,
                runner=runner,
                **common,
            )
        )
        assert_same(local, remote)
