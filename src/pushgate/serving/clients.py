"""What pushgate asks a model server, per protocol: is version V ready (and if not, why), load
the model, answer one request, which versions are loaded.

- KServe v2 / Triton HTTP: ``GET /v2/models/M/versions/V/ready`` (200 = ready; ``/v2/health/ready``
  is useless here: Triton says 400 whenever any version is loading), the reason from
  ``POST /v2/repository/index``, ``POST /v2/repository/models/M/load`` in explicit mode,
  ``POST /v2/models/M/versions/V/infer``.
- TF Serving REST: ``GET /v1/models/M/versions/V`` (state ``AVAILABLE``; a failed load is
  ``END`` with a non-OK status), ``POST /v1/models/M/versions/V:predict``, ``GET /v1/models/M``.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

from pushgate.serving.http import Answer, call
from pushgate.serving.target import ServeTarget

#: Triton's answer to a load request when it polls its repository (or has model control off)
_LOAD_REFUSED = ("polling is enabled", "not allowed", "model control is disabled")


@dataclass(frozen=True)
class VersionState:
    """One version as the server reports it."""

    version: str
    state: str
    ready: bool = False
    reason: str | None = None
    #: a failed load that will not change by itself (Triton UNAVAILABLE, TF Serving END)
    failed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "state": self.state,
            "ready": self.ready,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class LoadAnswer:
    """What an explicit load request got: ``polls`` when the server refused because it polls."""

    ok: bool
    polls: bool = False
    message: str | None = None


class ServerClient:
    """A model server speaking one protocol about one model."""

    can_load = False

    def __init__(self, target: ServeTarget, timeout: float = 10.0) -> None:
        self.target = target
        self.timeout = timeout
        self.model = urllib.parse.quote(target.model, safe="")

    def _call(self, method: str, path: str, doc: Any = None) -> Answer:
        return call(self.target, method, path, doc, timeout=self.timeout)

    def state(self, version: str) -> VersionState:
        raise NotImplementedError

    def load(self) -> LoadAnswer:
        return LoadAnswer(ok=False, polls=True)

    def infer(self, version: str, doc: Any) -> Answer:
        raise NotImplementedError

    def versions(self) -> list[VersionState]:
        """Every version of the model the server knows about."""
        raise NotImplementedError


class TritonClient(ServerClient):
    """KServe v2 / Triton HTTP."""

    can_load = True

    def state(self, version: str) -> VersionState:
        ready = self._call("GET", f"/v2/models/{self.model}/versions/{version}/ready")
        if ready.ok:
            return VersionState(version, "READY", ready=True)
        for v in self.versions():
            if v.version == version:
                return v
        return VersionState(version, "ABSENT", reason=_reason(ready))

    def versions(self) -> list[VersionState]:
        answer = self._call("POST", "/v2/repository/index", {})
        if not answer.ok or not isinstance(answer.body, list):
            return []
        out = []
        for entry in answer.body:
            if not isinstance(entry, dict) or entry.get("name") != self.target.model:
                continue
            if "version" not in entry:  # known to the repository, not loaded
                continue
            state = str(entry.get("state") or "UNKNOWN")
            reason = str(entry.get("reason") or "").strip() or None
            out.append(
                VersionState(
                    str(entry["version"]),
                    state,
                    ready=state == "READY",
                    reason=reason,
                    # "unloaded": Triton took it out (a label moved off it), no failure: a
                    # version labelled again is loaded at the next poll
                    failed=state == "UNAVAILABLE" and reason not in (None, "unloaded"),
                )
            )
        return out

    def load(self) -> LoadAnswer:
        answer = self._call("POST", f"/v2/repository/models/{self.model}/load", {})
        if answer.ok:
            return LoadAnswer(ok=True)
        text = answer.error_text()
        if any(marker in text for marker in _LOAD_REFUSED):
            return LoadAnswer(ok=False, polls=True, message=text)
        return LoadAnswer(ok=False, message=text)

    def infer(self, version: str, doc: Any) -> Answer:
        return self._call("POST", f"/v2/models/{self.model}/versions/{version}/infer", doc)


class TFServingClient(ServerClient):
    """TF Serving REST (it has no load API: it polls its base path)."""

    def state(self, version: str) -> VersionState:
        answer = self._call("GET", f"/v1/models/{self.model}/versions/{version}")
        if answer.status == 404:
            return VersionState(version, "ABSENT", reason=_reason(answer))
        if not answer.ok:
            return VersionState(version, "ERROR", reason=_reason(answer))
        for v in _tfs_states(answer.body):
            if v.version == version:
                return v
        return VersionState(version, "ABSENT")

    def versions(self) -> list[VersionState]:
        answer = self._call("GET", f"/v1/models/{self.model}")
        return _tfs_states(answer.body) if answer.ok else []

    def infer(self, version: str, doc: Any) -> Answer:
        return self._call("POST", f"/v1/models/{self.model}/versions/{version}:predict", doc)


def _reason(answer: Answer) -> str | None:
    return answer.error_text() if answer.body else None


def _tfs_states(body: Any) -> list[VersionState]:
    """``model_version_status`` of TF Serving's GetModelStatus, as documented."""
    out = []
    entries = body.get("model_version_status", []) if isinstance(body, dict) else []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or "version" not in entry:
            continue
        state = str(entry.get("state") or "UNKNOWN")
        status = entry.get("status") or {}
        code = str(status.get("error_code") or "OK") if isinstance(status, dict) else "OK"
        message = str(status.get("error_message") or "") if isinstance(status, dict) else ""
        reason = f"{code}: {message}".strip(": ") if code != "OK" else None
        out.append(
            VersionState(
                str(entry["version"]),
                state,
                ready=state == "AVAILABLE" and reason is None,
                reason=reason,
                failed=state == "END" or (reason is not None and state != "LOADING"),
            )
        )
    return out


def client_for(target: ServeTarget, timeout: float = 10.0) -> ServerClient:
    return (TritonClient if target.kind == "triton" else TFServingClient)(target, timeout)
