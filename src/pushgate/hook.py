"""The ``--on-publish`` hook: a user command run after a version is published.

It gets ``PUSHGATE_DESTINATION``, ``PUSHGATE_VERSION``, ``PUSHGATE_VERSION_PATH``,
``PUSHGATE_DIGEST`` and ``PUSHGATE_EVENT`` in its environment and the same as one JSON object on
stdin. Its failure is reported and recorded as an event; it never unpublishes anything.

pushgate waits for the hook's own process, not for its output pipe: a hook that starts a
background process (``reload-server &``) returns as soon as its shell does. It is given
``timeout`` seconds (``--hook-timeout``, default :data:`HOOK_TIMEOUT_S`), after which its
process group is killed and the run counts as failed. Its stdout and stderr, interleaved, are
kept as a bounded tail (the last :data:`OUTPUT_TAIL` bytes), scrubbed of secrets, returned and
recorded whether it succeeds or fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

from pushgate.errors import PushgateError
from pushgate.secrets import scrub

if TYPE_CHECKING:
    from pushgate.destination.base import Destination

HOOK_TIMEOUT_S = 300.0
#: how much of the hook's output is kept (its end)
OUTPUT_TAIL = 64 * 1024
_POLL_S = 0.05


class _Tail:
    """The last ``limit`` bytes written to it."""

    def __init__(self, limit: int = OUTPUT_TAIL) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.cut = False

    def add(self, chunk: bytes) -> None:
        self.buf += chunk
        if len(self.buf) > self.limit:
            del self.buf[: len(self.buf) - self.limit]
            self.cut = True

    def text(self) -> str:
        text = self.buf.decode("utf-8", errors="replace")
        if self.cut:
            text = "[... earlier output cut ...]\n" + text.split("\n", 1)[-1]
        return text


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _drain(fd: int, tail: _Tail) -> None:
    """Read what is in the pipe now, without waiting for writers that are still alive."""
    os.set_blocking(fd, False)
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(fd, 65536):
            tail.add(chunk)


def run_command(
    command: str, env: dict[str, str], stdin: bytes, timeout: float
) -> tuple[int | None, bool, str]:
    """Run ``command`` in a shell; ``(exit code or None, timed out, output tail)``.

    Returns when the shell exits, even if processes it started in the background still hold its
    output pipe; kills its process group when ``timeout`` passes or pushgate is interrupted.
    """
    proc = subprocess.Popen(
        command,
        shell=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group, killed as one on timeout
    )
    assert proc.stdin is not None and proc.stdout is not None
    tail = _Tail()
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        with contextlib.suppress(BrokenPipeError, OSError):  # a hook need not read its stdin
            proc.stdin.write(stdin)
        with contextlib.suppress(OSError):
            proc.stdin.close()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            open_pipe = True
            while proc.poll() is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    _kill_group(proc)
                    break
                if not open_pipe:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(min(left, 1.0))
                    continue
                if sel.select(min(left, _POLL_S)):
                    chunk = os.read(fd, 65536)
                    if chunk:
                        tail.add(chunk)
                    else:  # every writer closed the pipe
                        sel.unregister(fd)
                        open_pipe = False
        _drain(fd, tail)
    except BaseException:  # Ctrl-C: take the hook down with us
        _kill_group(proc)
        raise
    finally:
        proc.stdout.close()
    return (None if timed_out else proc.returncode), timed_out, tail.text()


def run_hook(
    command: str,
    dest: Destination,
    res: Any,
    digest: str | None,
    event: str,
    timeout: float = HOOK_TIMEOUT_S,
) -> dict[str, Any]:
    """Run the hook for one published version; returns ``{"ok", "exit_code", "error",
    "output"}`` (``output``: the scrubbed tail of what it printed) and records it."""
    payload = {
        "event": event,
        "destination": dest.url,
        "version": res.version,
        "version_path": res.destination,
        "digest": digest,
    }
    env = {
        **os.environ,
        "PUSHGATE_EVENT": event,
        "PUSHGATE_DESTINATION": dest.url,
        "PUSHGATE_VERSION": str(res.version),
        "PUSHGATE_VERSION_PATH": str(res.destination),
        "PUSHGATE_DIGEST": str(digest),
    }
    output = ""
    try:
        code, timed_out, output = run_command(command, env, json.dumps(payload).encode(), timeout)
        if timed_out:
            error: str | None = (
                f"timed out after {timeout:g} s (--hook-timeout) and was killed; a hook that "
                "starts a long-running process should start it in the background (cmd &)"
            )
        elif code == 0:
            error = None
        else:
            last = next((ln for ln in reversed(output.splitlines()) if ln.strip()), "")
            error = f"exit code {code}" + (f": {last.strip()[-500:]}" if last else "")
        out: dict[str, Any] = {"ok": error is None, "exit_code": code, "error": error}
    except OSError as e:
        out = {"ok": False, "exit_code": None, "error": f"cannot start the hook: {e}"}
    out["output"] = output
    out = {k: scrub(v) if isinstance(v, str) else v for k, v in out.items()}
    # here, not at the top: the CLI reads this module's defaults before it knows the command
    from pushgate.journal import Journal

    try:
        Journal(dest).event("hook", version=res.version, command=scrub(command), **out)
    except PushgateError as e:  # the version is published: a lost audit line fails nothing
        out["journal_error"] = scrub(str(e))
    return out
