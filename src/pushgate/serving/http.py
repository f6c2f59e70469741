"""The one HTTP call the serving clients make (urllib: no new dependency)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from pushgate.errors import ServingError
from pushgate.serving.target import ServeTarget


@dataclass(frozen=True)
class Answer:
    """A server's answer: status and body (parsed JSON when it is JSON)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_text(self) -> str:
        """The server's own error message (``{"error": ...}`` in both protocols)."""
        if isinstance(self.body, dict) and "error" in self.body:
            return str(self.body["error"])
        text = self.body if isinstance(self.body, str) else json.dumps(self.body)
        return f"HTTP {self.status}" + (f": {text[:500]}" if text else "")


def call(
    target: ServeTarget, method: str, path: str, doc: Any = None, *, timeout: float = 10.0
) -> Answer:
    """``method`` ``target.root + path``; :class:`ServingError` when the server does not answer
    (an HTTP error status is an :class:`Answer`, for the caller to judge)."""
    url = target.root + path
    data = None if doc is None else json.dumps(doc).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if target.authorization:
        headers["Authorization"] = target.authorization
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=max(timeout, 0.1)) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (TimeoutError, urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ServingError(
            f"{target.kind} server at {target.root} did not answer {method} {path}: {reason}; "
            "check the --serve URL and that the server runs"
        ) from None
    text = raw.decode("utf-8", "replace")
    try:
        body: Any = json.loads(text) if text.strip() else None
    except ValueError:
        body = text
    return Answer(status, body)
