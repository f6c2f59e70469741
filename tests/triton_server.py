"""Real ``tritonserver`` processes on 127.0.0.1 for the serving tests (CPU only).

The binary, its Python backend and the backend stubs come from the ``nvidia-pytriton`` wheel,
installed by ``scripts/test.sh`` into its own virtualenv ``.venv-triton`` (it pins numpy and
protobuf versions the main venv must not get). ``PUSHGATE_TRITON_VENV`` points elsewhere. The
fixtures fail, never skip, when it is missing.

Models are Python-backend models: ``config.pbtxt`` in the model's directory (BASE), and per
version ``<v>/model.py`` (:func:`model_py`) that multiplies its input by a factor, so a test
knows which version answered. ``--disable-auto-complete-config`` keeps startup under a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PYVER = f"{sys.version_info.major}.{sys.version_info.minor}"

__all__ = [
    "CONFIG_PBTXT",
    "RequestLoop",
    "TritonServer",
    "model_py",
    "start_triton",
    "triton",
    "triton_model_dir",
    "triton_venv",
    "write_config",
]

CONFIG_PBTXT = """\
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""


def model_py(factor: float, *, broken: str | None = None, parts: int = 0) -> str:
    """A Python-backend ``model.py`` answering ``INPUT0 * factor``; ``broken`` is raised from
    ``initialize`` (the model then never becomes ready); with ``parts``, ``initialize`` fails
    unless ``assets/part-0.bin`` ... are all there (a model that needs all its files)."""
    if broken:
        init = f"        raise RuntimeError({broken!r})\n"
    elif parts:
        init = (
            "        import os\n"
            "        d = os.path.join(args['model_repository'], args['model_version'])\n"
            f"        for i in range({parts}):\n"
            "            open(os.path.join(d, 'assets', f'part-{i}.bin'), 'rb').close()\n"
        )
    else:
        init = "        pass\n"
    return (
        "import numpy as np\n"
        "import triton_python_backend_utils as pb_utils\n\n\n"
        "class TritonPythonModel:\n"
        "    def initialize(self, args):\n"
        f"{init}\n"
        "    def execute(self, requests):\n"
        "        out = []\n"
        "        for request in requests:\n"
        '            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()\n'
        f"            y = (x * np.float32({factor!r})).astype(np.float32)\n"
        '            t = pb_utils.Tensor("OUTPUT0", y)\n'
        "            out.append(pb_utils.InferenceResponse(output_tensors=[t]))\n"
        "        return out\n"
    )


def triton_model_dir(
    path: Path, factor: float, *, broken: str | None = None, parts: int = 0
) -> Path:
    """A model directory as pushgate pushes it for Triton: ``model.py`` plus data files."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.py").write_text(model_py(factor, broken=broken, parts=parts))
    (path / "weights.bin").write_bytes(str(factor).encode() * 100)
    if parts:
        (path / "assets").mkdir(exist_ok=True)
    for i in range(parts):  # assets/ sorts before model.py: an old order copied it first
        (path / "assets" / f"part-{i}.bin").write_bytes(f"{factor}-{i}".encode() * 1000)
    return path


def write_config(base: Path, name: str) -> None:
    base.mkdir(parents=True, exist_ok=True)
    (base / "config.pbtxt").write_text(CONFIG_PBTXT.format(name=name))


def triton_venv() -> Path:
    """The virtualenv holding ``nvidia-pytriton`` (fails with what to do when it is missing)."""
    venv = Path(os.environ.get("PUSHGATE_TRITON_VENV") or ROOT / ".venv-triton")
    if not (_pkg(venv) / "tritonserver" / "bin" / "tritonserver").exists():
        pytest.fail(
            f"no tritonserver in {venv}: run scripts/test.sh (it installs nvidia-pytriton there)"
        )
    return venv


def _pkg(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3.*/site-packages/pytriton"))
    return found[0] if found else venv / "lib" / f"python{PYVER}" / "site-packages" / "pytriton"


def _backend_dir(venv: Path, into: Path) -> Path:
    """A backend directory: the wheel's python backend plus the stub for this Python."""
    src = _pkg(venv) / "tritonserver"
    python = into / "python"
    python.mkdir(parents=True, exist_ok=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(src / "backends" / "python" / name, python / name)
    pyver = src.parents[2].name.removeprefix("python")  # the stub for the venv's Python
    stub = src / "python_backend_stubs" / pyver / "triton_python_backend_stub"
    shutil.copy2(stub, python / "triton_python_backend_stub")
    return into


@dataclass
class TritonServer:
    """One running ``tritonserver``; ``url`` is ``http://127.0.0.1:PORT``."""

    proc: subprocess.Popen[bytes]
    port: int
    repo: str
    mode: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve_url(self, model: str) -> str:
        return f"triton+http://127.0.0.1:{self.port}/{model}"

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def post(self, path: str, doc: object) -> tuple[int, bytes]:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(doc).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def infer(self, model: str, value: float = 1.0, version: str | None = None) -> float:
        """One inference; raises AssertionError unless it succeeded."""
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        doc = {"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [value]}]}
        status, body = self.post(path, doc)
        assert status == 200, (status, body)
        return float(json.loads(body)["outputs"][0]["data"][0])

    def version_ready(self, model: str, version: str) -> bool:
        return self.get(f"/v2/models/{model}/versions/{version}/ready")[0] == 200

    def index(self) -> list[dict[str, str]]:
        status, body = self.post("/v2/repository/index", {})
        assert status == 200, body
        return list(json.loads(body))

    def wait(self, check: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"tritonserver exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if check():
                    return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:  # a hung Triton ignores SIGTERM (see issue 11)
                self.proc.kill()
                self.proc.wait(10)


def start_triton(
    repo: str | Path,
    work: Path,
    *,
    mode: str = "poll",
    poll_secs: int = 1,
    load: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> TritonServer:
    """Start ``tritonserver`` over ``repo`` (a local directory or s3:// / gs:// URL)."""
    venv = triton_venv()
    pkg = _pkg(venv)
    work.mkdir(parents=True, exist_ok=True)
    backends = _backend_dir(venv, work / "backends")
    (work / "cache").mkdir(exist_ok=True)
    log = work / "tritonserver.log"
    for _ in range(5):  # a free port may be taken before Triton binds it: try another
        port, grpc, metrics = free_port(), free_port(), free_port()
        cmd = [
            str(pkg / "tritonserver" / "bin" / "tritonserver"),
            f"--model-repository={repo}",
            f"--backend-directory={backends}",
            f"--cache-directory={work / 'cache'}",
            "--http-address=127.0.0.1",
            f"--http-port={port}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={grpc}",
            "--allow-metrics=false",
            f"--metrics-port={metrics}",
            "--disable-auto-complete-config",
            "--strict-readiness=false",
            f"--model-control-mode={mode}",
            "--exit-on-error=false",
            "--log-verbose=0",
        ]
        if mode == "poll":
            cmd.append(f"--repository-poll-secs={poll_secs}")
        cmd += [f"--load-model={m}" for m in load]
        run_env = {
            **os.environ,
            **(env or {}),
            "LD_LIBRARY_PATH": ":".join(
                p
                for p in (
                    str(pkg.parent / "nvidia_pytriton.libs"),
                    os.environ.get("LD_LIBRARY_PATH", ""),
                )
                if p
            ),
            # the backend stub finds its Python (and numpy) through python3 on PATH
            "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
        }
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=run_env)
        server = TritonServer(proc, port, str(repo), mode, log)
        try:
            server.wait(partial(_is_live, server), 60, "tritonserver live")
            return server
        except AssertionError:
            server.stop()
            if "address already in use" not in log.read_text().lower():
                raise
    raise AssertionError(f"tritonserver could not bind a port: {log.read_text()[-2000:]}")


def _is_live(server: TritonServer) -> bool:
    return server.get("/v2/health/live")[0] == 200


@pytest.fixture
def triton(tmp_path: Path) -> Iterator[Callable[..., TritonServer]]:
    """``triton(repo, mode="poll"|"explicit", ...)`` starts a server, stopped after the test."""
    started: list[TritonServer] = []

    def start(repo: str | Path, **kw: object) -> TritonServer:
        server = start_triton(repo, tmp_path / f"triton-{len(started)}", **kw)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@dataclass
class RequestLoop:
    """A client thread that sends inferences to ``model`` (no version: what Triton serves)
    the whole time; ``failures`` holds every failed one."""

    server: TritonServer
    model: str
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    answers: set[float] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RequestLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            try:
                self.answers.add(self.server.infer(self.model, 1.0))
            except (AssertionError, OSError, ValueError, KeyError) as e:
                self.failures.append(repr(e)[:300])
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(30)
