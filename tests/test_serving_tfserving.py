"""``--serve tfserving+http://...``: TF Serving's REST status and predict handling.

No TF Serving binary installs here, so these run against a tiny local HTTP server that answers
with TF Serving's documented REST responses (GetModelStatus ``model_version_status`` with states
START / LOADING / AVAILABLE / UNLOADING / END and a ``status`` of ``error_code`` /
``error_message``; ``{"error": ...}`` bodies for errors; ``{"predictions": ...}`` for predict).
Nothing here ran against a real TF Serving.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import pushgate
from conftest import make_model_dir
from pushgate.errors import ServingError, UsageError
from pushgate.serving import ServeRequest

Reply = tuple[int, dict[str, Any]]


def available(version: str) -> Reply:
    return 200, {
        "model_version_status": [
            {"version": version, "state": "AVAILABLE", "status": {"error_code": "OK"}}
        ]
    }


def loading(version: str) -> Reply:
    return 200, {
        "model_version_status": [
            {
                "version": version,
                "state": "LOADING",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def failed(version: str) -> Reply:
    return 200, {
        "model_version_status": [
            {
                "version": version,
                "state": "END",
                "status": {
                    "error_code": "UNKNOWN",
                    "error_message": "Failed to load SavedModel: Op type not registered 'Boom'",
                },
            }
        ]
    }


def not_found(version: str) -> Reply:
    return 404, {"error": f"Could not find version {version} of model m"}


class FakeTFServing:
    """Answers GET /v1/models/m/versions/V and POST .../versions/V:predict by rules."""

    def __init__(self) -> None:
        self.status: Callable[[str, int], Reply] = lambda v, n: available(v)
        self.predict: Callable[[str, Any], Reply] = lambda v, doc: (200, {"predictions": [[1.0]]})
        self.asked: dict[str, int] = {}
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, status: int, doc: Any) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                fake.requests.append(f"GET {self.path}")
                parts = self.path.strip("/").split("/")
                if parts[:3] == ["v1", "models", "m"] and len(parts) == 5:
                    v = parts[4]
                    fake.asked[v] = fake.asked.get(v, 0) + 1
                    self.reply(*fake.status(v, fake.asked[v]))
                elif parts == ["v1", "models", "m"]:
                    self.reply(*available("1"))
                else:
                    self.reply(404, {"error": "Malformed request"})

            def do_POST(self) -> None:
                fake.requests.append(f"POST {self.path}")
                doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                version = self.path.split("/versions/")[1].split(":")[0]
                self.reply(*fake.predict(version, doc))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"tfserving+http://127.0.0.1:{self.httpd.server_address[1]}/m"


@pytest.fixture
def tfs() -> Iterator[FakeTFServing]:
    fake = FakeTFServing()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def push(tmp_path: Path, base: Path, seed: int, serve: ServeRequest | None) -> Any:
    model = make_model_dir(tmp_path / f"model-{seed}", seed=seed)
    return pushgate.push(
        model=model, destinations=(str(base),), versioning="sequential", serve=serve
    )


def test_ready_after_loading_and_a_smoke_request(tmp_path: Path, tfs: FakeTFServing) -> None:
    base = tmp_path / "base"
    assert push(tmp_path, base, 1, None).version == "1"
    tfs.status = lambda v, n: loading(v) if n < 3 else available(v)
    smoke = tmp_path / "predict.json"
    smoke.write_text(json.dumps({"instances": [[1.0, 2.0]]}))
    result = push(
        tmp_path, base, 2, ServeRequest((tfs.url,), timeout=10, smoke_request=smoke, interval=0.05)
    )
    (report,) = result.serve
    assert report.healthy and not result.failed and (base / "2").is_dir()
    assert report.checks[0].mode == "poll" and report.checks[0].smoke == {"ok": True, "status": 200}
    assert tfs.asked["2"] == 3
    assert "POST /v1/models/m/versions/2:predict" in tfs.requests


def test_a_failed_load_is_withdrawn_with_the_servers_reason(
    tmp_path: Path, tfs: FakeTFServing
) -> None:
    base = tmp_path / "base"
    push(tmp_path, base, 1, None)
    tfs.status = lambda v, n: failed(v) if v == "2" else available(v)
    result = push(tmp_path, base, 2, ServeRequest((tfs.url,), timeout=10, interval=0.05))
    (report,) = result.serve
    assert result.failed and report.withdrawn and report.previous == "1"
    assert "Op type not registered 'Boom'" in str(report.reason)
    assert report.previous_ready == {tfs.url: True}
    assert not (base / "2").exists() and (base / "1").is_dir()
    info = {i.version: i for i in pushgate.versions(base)}
    assert not info["2"].exists and any("withdrawn" in n for n in info["2"].notes)
    assert report.to_json()["checks"][0]["state"] == "END"


def test_a_version_that_never_appears_is_withdrawn_at_the_timeout(
    tmp_path: Path, tfs: FakeTFServing
) -> None:
    base = tmp_path / "base"
    push(tmp_path, base, 1, None)
    tfs.status = lambda v, n: not_found(v) if v == "2" else available(v)
    result = push(tmp_path, base, 2, ServeRequest((tfs.url,), timeout=0.5, interval=0.05))
    (report,) = result.serve
    assert report.withdrawn and "not ready after 0.5 s (state ABSENT)" in str(report.reason)


def test_a_failed_smoke_request_withdraws_and_keep_keeps(
    tmp_path: Path, tfs: FakeTFServing
) -> None:
    base = tmp_path / "base"
    push(tmp_path, base, 1, None)
    smoke = tmp_path / "predict.json"
    smoke.write_text(json.dumps({"instances": [[1.0]]}))
    tfs.predict = lambda v, doc: (400, {"error": "Expected input x, got instances of rank 1"})
    serve = ServeRequest((tfs.url,), timeout=5, smoke_request=smoke, interval=0.05)
    (report,) = push(tmp_path, base, 2, serve).serve
    assert report.withdrawn and "Expected input x" in str(report.reason)
    keep = ServeRequest((tfs.url,), timeout=5, smoke_request=smoke, on_unhealthy="keep")
    result = push(tmp_path, base, 3, keep)
    assert result.failed and not result.serve[0].withdrawn and (base / "3").is_dir()


def test_bad_requests_fail_before_publishing(tmp_path: Path, tfs: FakeTFServing) -> None:
    base = tmp_path / "base"
    with pytest.raises(UsageError):
        ServeRequest(("tfserving+http://127.0.0.1:1/m",), on_unhealthy="retry")
    with pytest.raises(UsageError):
        ServeRequest(("tfserving+http://127.0.0.1:1/m",), timeout=0)
    missing = ServeRequest((tfs.url,), smoke_request=tmp_path / "missing.json")
    with pytest.raises(UsageError, match=r"missing\.json"):
        push(tmp_path, base, 1, missing)
    tfs.httpd.shutdown()
    tfs.httpd.server_close()
    with pytest.raises(ServingError, match="did not answer"):
        push(tmp_path, base, 1, ServeRequest((tfs.url,)))
    assert not base.exists() or not [p for p in base.iterdir() if p.name.isdigit()]


def test_rollback_serve_withdraws_and_credentials_go_as_basic_auth(
    tmp_path: Path, tfs: FakeTFServing
) -> None:
    from conftest import cli, cli_json

    base = tmp_path / "base"
    for seed in (1, 2):
        push(tmp_path, base, seed, None)
    seen: list[str | None] = []
    answer = tfs.status

    def status(v: str, n: int) -> Reply:
        return failed(v) if v == "3" else answer(v, n)

    tfs.status = status
    handler = tfs.httpd.RequestHandlerClass
    original = handler.do_GET  # type: ignore[attr-defined]

    def do_get(self: Any) -> None:
        seen.append(self.headers.get("Authorization"))
        original(self)

    handler.do_GET = do_get  # type: ignore[attr-defined]
    url = tfs.url.replace("http://", "http://ops:pa%40ss@")
    rc, doc = cli_json("rollback", base, "--serve", url, "--serve-timeout", "10")
    assert rc == 1, doc
    assert doc["version"] == "3" and doc["rollback_to"] == "1", doc
    (report,) = doc["serve"]
    assert report["withdrawn"] and report["action"] == "rollback" and report["previous"] == "2"
    assert "pa@ss" not in json.dumps(doc) and "pa%40ss" not in json.dumps(doc)
    assert "Basic b3BzOnBhQHNz" in seen  # base64("ops:pa@ss")
    assert not (base / "3").exists() and (base / "2").is_dir()
    history = cli("history", base).stdout
    assert "withdrew version 3 (after rollback)" in history and "Op type not registered" in history
