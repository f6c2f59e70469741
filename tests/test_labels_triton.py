"""Labels against a real ``tritonserver`` (poll mode, local repository): after each label move,
``push --label`` and ``promote``, Triton loads exactly the labelled versions (its repository
index), and a client thread sees zero failed requests the whole time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import cli, cli_json
from triton_server import RequestLoop, TritonServer, triton_model_dir, write_config


def loaded(server: TritonServer) -> set[str]:
    """Versions of model m that Triton has loaded or is loading (its repository index)."""
    return {
        e["version"]
        for e in server.index()
        if e.get("name") == "m" and e.get("version") and e.get("state") in ("READY", "LOADING")
    }


def exactly(server: TritonServer, versions: set[str]) -> None:
    server.wait(lambda: loaded(server) == versions, 60, f"Triton loads exactly {versions}")
    assert all(server.version_ready("m", v) for v in versions)


def test_triton_loads_exactly_the_labelled_versions_with_zero_failed_requests(
    tmp_path: Path, triton: Any
) -> None:
    repo = tmp_path / "repo"
    write_config(repo / "m", "m")
    base = repo / "m"
    config = (base / "config.pbtxt").read_text()

    def push(n: int, *extra: Any, broken: str | None = None) -> tuple[int, dict[str, Any]]:
        model = triton_model_dir(tmp_path / f"m{n}", float(n), broken=broken)
        args = ["--to", base, "--versioning", "sequential", *extra]
        return cli_json("push", "--model", model, *args)

    assert push(1)[0] == 0
    server = triton(repo, mode="poll")
    serve = ["--serve", server.serve_url("m"), "--serve-timeout", "60"]
    exactly(server, {"1"})

    with RequestLoop(server, "m") as loop:
        rc, doc = cli_json("label", base, "stable", "1", "--server-config", "triton", *serve)
        assert rc == 0 and doc["ok"], doc
        exactly(server, {"1"})

        # a push with --label: loaded next to stable, ready, then labelled
        rc, doc = push(2, "--label", "canary", *serve)
        assert rc == 0 and doc["labels"][0]["labels"] == {"stable": "1", "canary": "2"}, doc
        assert doc["serve"][0]["healthy"], doc
        exactly(server, {"1", "2"})
        assert server.infer("m", 1.0, version="1") == 1.0
        assert server.infer("m", 1.0, version="2") == 2.0

        # promote: stable moves to canary's version; version 1 unloads
        rc, doc = cli_json("promote", base, "canary", "stable", *serve)
        assert rc == 0 and doc["labels"] == {"stable": "2", "canary": "2"}, doc
        exactly(server, {"2"})

        # a canary that does not serve: withdrawn, no label moves, stable keeps serving
        rc, doc = push(3, "--label", "canary", *serve, broken="boom in initialize")
        assert rc == 1, doc
        (report,) = doc["serve"]
        assert report["withdrawn"] and "boom in initialize" in report["reason"], report
        assert doc["labels"][0]["labels"] == {"stable": "2", "canary": "2"}, doc
        assert not (base / "3").exists()
        exactly(server, {"2"})

        # labels decide what loads: a push without --label but with --serve is refused
        proc = cli("push", "--model", triton_model_dir(tmp_path / "m4", 4.0), "--to", base, *serve)
        assert proc.returncode == 2 and "--label" in proc.stderr, proc.stderr

        # a label moved back to an older version: loaded, ready, then the policy follows
        rc, doc = cli_json("label", base, "canary", "1", *serve)
        assert rc == 0, str(doc["serve"][0]["checks"])
        exactly(server, {"1", "2"})
        rc, doc = cli_json("label", base, "canary", "--remove")
        assert rc == 0 and doc["labels"] == {"stable": "2"}, doc
        exactly(server, {"2"})
    print(f"\nlabels with Triton: {loop.sent} requests, {len(loop.failures)} failed")
    assert loop.failures == [], loop.failures[:5]
    assert loop.sent > 50 and loop.answers == {1.0, 2.0}

    # only the version_policy line of config.pbtxt changed
    assert (base / "config.pbtxt").read_text() == (
        config + "version_policy: { specific: { versions: [ 2 ] } }\n"
    )
    assert cli("verify", base).returncode == 0

    # a push without --label once labels are in force: published, not loaded, and no drift
    model = triton_model_dir(tmp_path / "m5", 5.0)
    rc, doc = cli_json("push", "--model", model, "--to", base, "--versioning", "sequential")
    assert rc == 0 and doc["destinations"][0]["version"] == "4", doc  # 3 stays burned
    rc, doc = cli_json("status", base, "--serve", server.serve_url("m"))
    assert rc == 0 and doc["drift"] == [], doc
    by_version = {v["version"]: v for v in doc["versions"]}
    assert by_version["2"]["labels"] == ["stable"] and by_version["4"]["labels"] == []
    assert by_version["4"]["newest"] and by_version["4"]["servers"][server.serve_url("m")] is None
    assert loaded(server) == {"2"}
    # a label Triton does not serve is drift
    (base / "config.pbtxt").write_text(config)  # someone put the default policy back by hand
    server.wait(lambda: server.version_ready("m", "4"), 60, "version 4 ready")
    server.wait(lambda: not server.version_ready("m", "2"), 60, "version 2 unloaded")
    rc, doc = cli_json("status", base, "--serve", server.serve_url("m"))
    assert rc == 1, doc
    assert any("labelled version 2 (stable) is not ready" in d for d in doc["drift"]), doc
    assert any("serves version 4, which no label names" in d for d in doc["drift"]), doc
