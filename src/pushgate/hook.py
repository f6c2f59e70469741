"""The ``--on-publish`` hook: a user command run after a version is published.

It gets ``PUSHGATE_DESTINATION``, ``PUSHGATE_VERSION``, ``PUSHGATE_VERSION_PATH``,
``PUSHGATE_DIGEST`` and ``PUSHGATE_EVENT`` in its environment and the same as one JSON object on
stdin. Its failure is reported and recorded as an event; it never unpublishes anything.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from pushgate.destination.base import Destination
from pushgate.journal import Journal

HOOK_TIMEOUT_S = 300


def run_hook(
    command: str, dest: Destination, res: Any, digest: str | None, event: str
) -> dict[str, Any]:
    """Run the hook for one published version; returns ``{"ok", "exit_code", "error"}``."""
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
    try:
        proc = subprocess.run(
            command,
            shell=True,
            input=json.dumps(payload),
            text=True,
            env=env,
            capture_output=True,
            timeout=HOOK_TIMEOUT_S,
            check=False,
        )
        ok = proc.returncode == 0
        out: dict[str, Any] = {
            "ok": ok,
            "exit_code": proc.returncode,
            "error": None if ok else (proc.stderr.strip()[-500:] or f"exit code {proc.returncode}"),
        }
    except (OSError, subprocess.TimeoutExpired) as e:
        out = {"ok": False, "exit_code": None, "error": str(e)}
    Journal(dest).event("hook", version=res.version, command=command, **out)
    return out
