"""``push --serve`` / ``rollback --serve`` against real ``tritonserver`` processes (CPU, Python
backend) over a local model repository, in poll and explicit control mode. A client thread sends
inferences the whole time; none may fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import cli, cli_json
from triton_server import RequestLoop, TritonServer, triton_model_dir, write_config

INFER = {"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
BAD_INFER = {"inputs": [{"name": "NOPE", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


def push(base: Path, model: Path, *extra: Any) -> tuple[int, dict[str, Any]]:
    return cli_json("push", "--model", model, "--to", base, "--versioning", "sequential", *extra)


def serve_args(server: TritonServer, smoke: Path | None = None, timeout: str = "60") -> list[Any]:
    args: list[Any] = ["--serve", server.serve_url("m"), "--serve-timeout", timeout]
    return args + (["--smoke-request", smoke] if smoke else [])


def answers(server: TritonServer, value: float) -> None:
    """Wait until an unversioned request is answered by the version multiplying by ``value``."""
    server.wait(lambda: server.infer("m") == value, 30, f"answers {value}")


def only_versions_and_config(base: Path) -> None:
    """Nothing pushgate leaves directly under BASE looks like a version to Triton."""
    for child in base.iterdir():
        assert child.name in ("config.pbtxt", ".pushgate") or child.name.isdigit(), child


def repository(tmp_path: Path) -> tuple[Path, Path]:
    repo = tmp_path / "repo"
    write_config(repo / "m", "m")
    return repo, repo / "m"


def test_poll_mode_confirm_withdraw_rollback_with_zero_failed_requests(
    tmp_path: Path, triton: Any
) -> None:
    repo, base = repository(tmp_path)
    smoke = tmp_path / "smoke.json"
    smoke.write_text(json.dumps(INFER))
    assert push(base, triton_model_dir(tmp_path / "m1", 2.0))[0] == 0
    server = triton(repo, mode="poll")
    server.wait(lambda: server.version_ready("m", "1"), 60, "version 1 ready")

    with RequestLoop(server, "m") as loop:
        # a good version: ready and answering within the timeout
        rc, doc = push(base, triton_model_dir(tmp_path / "m2", 3.0), *serve_args(server, smoke))
        assert rc == 0, doc
        (report,) = doc["serve"]
        assert report["healthy"] and not report["withdrawn"], report
        (check,) = report["checks"]
        assert check["mode"] == "poll" and check["ready"] and check["smoke"]["ok"], check
        answers(server, 3.0)

        # a version whose model.py raises in initialize: withdrawn, version 2 keeps serving
        broken = triton_model_dir(tmp_path / "m3", 5.0, broken="boom in initialize")
        rc, doc = push(base, broken, *serve_args(server, smoke))
        assert rc == 1, doc
        (report,) = doc["serve"]
        assert report["withdrawn"] and not report["healthy"], report
        assert "boom in initialize" in report["reason"], report
        assert report["previous"] == "2" and all(report["previous_ready"].values()), report
        assert not (base / "3").exists()
        (hidden,) = (base / ".pushgate" / "withdrawn").iterdir()
        assert hidden.name.startswith("3-") and (hidden / "model.py").exists()
        assert server.infer("m") == 3.0

        # a withdrawn version is no rollback target; the default target is version 1
        assert cli("rollback", base, "--to", "3").returncode == 2
        rc, doc = cli_json("rollback", base, *serve_args(server, smoke))
        assert rc == 0, doc
        assert doc["rollback_to"] == "1" and doc["version"] == "4", doc
        assert doc["serve"][0]["healthy"], doc
        answers(server, 2.0)
        only_versions_and_config(base)
    print(f"\npoll mode: {loop.sent} requests, {len(loop.failures)} failed")
    assert loop.failures == [], loop.failures[:5]
    assert loop.sent > 50 and loop.answers == {2.0, 3.0}

    # the journal tells the story; the Python backend's __pycache__ is no damage
    rc, doc = cli_json("versions", base)
    v3 = next(v for v in doc["versions"] if v["version"] == "3")
    assert not v3["exists"] and any("withdrawn" in n for n in v3["notes"]), v3
    events = [e["event"] for e in json.loads(cli("history", base, "--json").stdout)["events"]]
    assert "withdraw" in events
    assert any((base / v / "__pycache__").is_dir() for v in ("1", "2", "4"))
    proc = cli("verify", base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = {e.get("version") for e in server.index() if e.get("state") == "READY"}
    assert listed == {"4"}, server.index()

    # status: published and withdrawn next to what Triton reports; no drift
    rc, doc = cli_json("status", base, "--serve", server.serve_url("m"))
    assert rc == 0 and doc["ok"] and doc["drift"] == [], doc
    by_version = {v["version"]: v for v in doc["versions"]}
    assert by_version["3"]["withdrawn"] and "boom" in by_version["3"]["withdrawn_reason"]
    assert by_version["3"]["servers"][server.serve_url("m")]["state"] == "UNAVAILABLE"
    assert by_version["4"]["newest"] and by_version["4"]["servers"][server.serve_url("m")]["ready"]


def test_explicit_mode_loads_and_withdraws_with_zero_failed_requests(
    tmp_path: Path, triton: Any
) -> None:
    repo, base = repository(tmp_path)
    smoke, bad_smoke = tmp_path / "smoke.json", tmp_path / "bad.json"
    smoke.write_text(json.dumps(INFER))
    bad_smoke.write_text(json.dumps(BAD_INFER))
    assert push(base, triton_model_dir(tmp_path / "m1", 2.0))[0] == 0
    server = triton(repo, mode="explicit")
    assert not server.version_ready("m", "1")  # explicit mode: nothing loaded until asked

    rc, doc = push(base, triton_model_dir(tmp_path / "m2", 3.0), *serve_args(server, smoke))
    assert rc == 0, doc
    assert doc["serve"][0]["checks"][0]["mode"] == "explicit", doc
    answers(server, 3.0)

    with RequestLoop(server, "m") as loop:
        # the load fails: withdrawn, and version 2 (never unloaded) answers
        broken = triton_model_dir(tmp_path / "m3", 5.0, broken="explicit boom")
        rc, doc = push(base, broken, *serve_args(server, smoke))
        assert rc == 1, doc
        (report,) = doc["serve"]
        assert report["withdrawn"] and "explicit boom" in report["reason"], report
        assert report["previous_ready"] == {server.serve_url("m"): True}, report

        # loads and is ready, but fails the smoke request: withdrawn, version 2 loaded again
        rc, doc = push(base, triton_model_dir(tmp_path / "m4", 7.0), *serve_args(server, bad_smoke))
        assert rc == 1, doc
        (report,) = doc["serve"]
        assert report["withdrawn"] and "smoke request failed" in report["reason"], report
        assert report["checks"][0]["ready"] and not report["checks"][0]["smoke"]["ok"]
        assert all(report["previous_ready"].values()), report
        answers(server, 3.0)
        assert not server.version_ready("m", "4")

        rc, doc = cli_json("rollback", base, *serve_args(server, smoke))
        assert rc == 0 and doc["serve"][0]["healthy"], doc
        assert doc["rollback_to"] == "1" and doc["version"] == "5", doc
        answers(server, 2.0)
    print(f"\nexplicit mode: {loop.sent} requests, {len(loop.failures)} failed")
    assert loop.failures == [], loop.failures[:5]
    # the smoke-failing version served from its load to its withdrawal: it was ready
    assert loop.sent > 20 and loop.answers >= {2.0, 3.0}
    only_versions_and_config(base)
    assert sorted(p.name.split("-")[0] for p in (base / ".pushgate" / "withdrawn").iterdir()) == [
        "3",
        "4",
    ]


def test_keep_leaves_an_unhealthy_version_and_fails(tmp_path: Path, triton: Any) -> None:
    repo, base = repository(tmp_path)
    assert push(base, triton_model_dir(tmp_path / "m1", 2.0))[0] == 0
    server = triton(repo, mode="poll")
    server.wait(lambda: server.version_ready("m", "1"), 60, "version 1 ready")
    broken = triton_model_dir(tmp_path / "m2", 3.0, broken="kept")
    rc, doc = push(base, broken, *serve_args(server), "--on-unhealthy", "keep")
    assert rc == 1, doc
    (report,) = doc["serve"]
    assert not report["healthy"] and not report["withdrawn"] and "kept" in report["reason"]
    assert (base / "2" / "model.py").exists()
    assert server.infer("m") == 2.0
    rc, doc = cli_json("status", base, "--serve", server.serve_url("m"))
    assert rc == 1 and doc["drift"] == [
        f"{server.serve_url('m')}: the newest published version 2 is not ready"
    ], doc
    proc = cli("status", base, "--serve", server.serve_url("m"))
    assert proc.returncode == 1 and "DRIFT" in proc.stdout, proc.stdout
    # Triton's poll retries a failed version whenever the model directory changes, and the
    # journal's own writes under BASE/.pushgate/ are such changes: it may be loading again
    assert "UNAVAILABLE (" in proc.stdout or "LOADING" in proc.stdout, proc.stdout


def test_a_server_that_does_not_answer_fails_before_publishing(tmp_path: Path) -> None:
    from servers import free_port

    _, base = repository(tmp_path)
    model = triton_model_dir(tmp_path / "m1", 2.0)
    url = f"triton+http://user:s3cret-pw@127.0.0.1:{free_port()}/m"
    proc = cli("push", "--model", model, "--to", base, "--serve", url)
    assert proc.returncode == 1, proc.stderr
    assert "did not answer" in proc.stderr and "s3cret-pw" not in proc.stdout + proc.stderr
    assert not any(p.name.isdigit() for p in base.iterdir())  # nothing published


def test_malformed_serve_urls_are_usage_errors(tmp_path: Path) -> None:
    _, base = repository(tmp_path)
    model = triton_model_dir(tmp_path / "m1", 2.0)
    for url in (
        "triton+ftp://127.0.0.1:8000/m",
        "http://127.0.0.1:8000/m",
        "triton+http://127.0.0.1:8000",
        "triton+http://127.0.0.1:8000/m?mode=sometimes",
        "tfserving+http://127.0.0.1:8501/m?mode=explicit",
        "triton+http://u:topsecret@127.0.0.1:notaport/m",
    ):
        proc = cli("push", "--model", model, "--to", base, "--serve", url)
        assert proc.returncode == 2, (url, proc.stderr)
        assert "--serve" in proc.stderr and "Traceback" not in proc.stderr
        assert "topsecret" not in proc.stderr
    proc = cli("status", base, "--serve", "triton+gopher://h/m")
    assert proc.returncode == 2 and "--serve" in proc.stderr
    proc = cli("push", "--model", model, "--to", base, "--smoke-request", tmp_path / "x.json")
    assert proc.returncode == 2 and "--serve" in proc.stderr
    assert not any(p.name.isdigit() for p in base.iterdir())


def test_what_triton_writes_into_a_version_is_no_damage(tmp_path: Path, triton: Any) -> None:
    """Triton's Python backend writes ``__pycache__/`` into the versions it loads: verify must
    not call them damaged, and rollback must not refuse them (both did before)."""
    repo, base = repository(tmp_path)
    assert push(base, triton_model_dir(tmp_path / "m1", 2.0))[0] == 0
    server = triton(repo, mode="poll")
    server.wait(lambda: server.version_ready("m", "1"), 60, "version 1 ready")
    assert push(base, triton_model_dir(tmp_path / "m2", 3.0))[0] == 0
    server.wait(lambda: server.version_ready("m", "2"), 60, "version 2 ready")
    assert (base / "1" / "__pycache__").is_dir() and (base / "2" / "__pycache__").is_dir()
    proc = cli("verify", base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rc, doc = cli_json("rollback", base)
    assert rc == 0 and doc["version"] == "3", doc
    assert not (base / "3" / "__pycache__").exists() or server.version_ready("m", "3")
    server.wait(lambda: server.infer("m") == 2.0, 30, "version 3 (= 1) answers")
    # a model directory holding a __pycache__ of its own pushes without it
    m4 = triton_model_dir(tmp_path / "m4", 4.0)
    (m4 / "__pycache__").mkdir()
    (m4 / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"stale bytecode")
    rc, doc = push(base, m4)
    assert rc == 0 and doc["version"] == "4", doc
    assert cli("verify", base).returncode == 0


def test_explicit_load_failure_without_a_version_fails_at_once(tmp_path: Path, triton: Any) -> None:
    """A load that fails before any version exists (a broken config) names no version in the
    repository index: the load's own answer is the reason, and nobody waits for the timeout."""
    repo, base = repository(tmp_path)
    assert push(base, triton_model_dir(tmp_path / "m1", 2.0))[0] == 0
    server = triton(repo, mode="explicit")
    config = base / "config.pbtxt"
    config.write_text(config.read_text().replace('backend: "python"', 'backend: "no_such"'))
    rc, doc = push(base, triton_model_dir(tmp_path / "m2", 3.0), *serve_args(server))
    assert rc == 1, doc
    (report,) = doc["serve"]
    (check,) = report["checks"]
    assert report["withdrawn"] and "load failed" in report["reason"], report
    assert "no_such" in report["reason"] and check["seconds"] < 30, report
    assert report["previous_ready"] == {server.serve_url("m"): False}  # same broken config
    assert any("previous version 1 is not ready again" in e for e in report["errors"]), report
