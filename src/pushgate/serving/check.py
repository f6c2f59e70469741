"""After a publish: make the servers load the new version, require it to be ready (and to answer
a smoke request) within the timeout, and withdraw it when it is not, so the previous version
serves again.

Per server: in explicit control mode pushgate asks it to load the model (Triton loads the newest
version its version policy names, and unloads the one it replaces only once the new one is
ready); in poll mode it waits for the server to find the version. ``auto`` asks, and waits when
the server refuses because it polls. Readiness is per version (never the server's overall
health, which Triton reports as not ready whenever anything is loading).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushgate.destination.base import Destination
from pushgate.errors import InputError, ServingError, UsageError
from pushgate.serving.clients import ServerClient, VersionState, client_for
from pushgate.serving.target import ServeTarget, parse_serve_url

ON_UNHEALTHY = ("withdraw", "keep")


@dataclass(frozen=True)
class ServeRequest:
    """What ``--serve`` and its options ask for."""

    servers: tuple[str, ...] = ()
    timeout: float = 60.0
    smoke_request: str | Path | None = None
    on_unhealthy: str = "withdraw"
    #: seconds between two readiness questions
    interval: float = 0.2

    def __post_init__(self) -> None:
        if isinstance(self.servers, str):
            object.__setattr__(self, "servers", (self.servers,))
        object.__setattr__(self, "servers", tuple(str(s) for s in self.servers))
        if self.on_unhealthy not in ON_UNHEALTHY:
            raise UsageError(
                f"--on-unhealthy must be one of {', '.join(ON_UNHEALTHY)}, "
                f"not {self.on_unhealthy!r}"
            )
        if not self.timeout > 0:
            raise UsageError(f"--serve-timeout must be above 0 seconds, not {self.timeout}")
        if self.smoke_request is not None and not self.servers:
            raise UsageError("--smoke-request needs --serve URL (the server to send it to)")
        for url in self.servers:
            parse_serve_url(url)

    @property
    def targets(self) -> list[ServeTarget]:
        return [parse_serve_url(u) for u in self.servers]

    def smoke_doc(self) -> Any:
        """The smoke request's JSON body, or None; :class:`InputError` names a bad file."""
        if self.smoke_request is None:
            return None
        path = Path(self.smoke_request)
        try:
            return json.loads(path.read_text())
        except OSError as e:
            raise InputError(f"--smoke-request {path}: cannot read it ({e.strerror})") from None
        except ValueError as e:
            raise InputError(
                f"--smoke-request {path}: not JSON ({e}); give a KServe v2 inference request "
                '({"inputs": [...]}) or a TF Serving predict request ({"instances": [...]})'
            ) from None


@dataclass
class ServerCheck:
    """One server's verdict on one version."""

    server: str
    version: str
    mode: str
    ready: bool = False
    state: str | None = None
    reason: str | None = None
    smoke: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.ready and (self.smoke is None or bool(self.smoke.get("ok")))

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "version": self.version,
            "mode": self.mode,
            "ok": self.ok,
            "ready": self.ready,
            "state": self.state,
            "reason": self.reason,
            "smoke": self.smoke,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ServeReport:
    """Did the version published at ``base`` serve; what was done when it did not."""

    base: str
    version: str
    action: str
    checks: list[ServerCheck] = field(default_factory=list)
    on_unhealthy: str = "withdraw"
    withdrawn: bool = False
    previous: str | None = None
    #: per server, after a withdrawal: is the previous version ready again
    previous_ready: dict[str, bool] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks) and not self.errors

    @property
    def reason(self) -> str | None:
        bad = [f"{c.server}: {c.reason or c.state}" for c in self.checks if not c.ok]
        return "; ".join(bad + self.errors) or None

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "version": self.version,
            "action": self.action,
            "healthy": self.healthy,
            "reason": self.reason,
            "on_unhealthy": self.on_unhealthy,
            "withdrawn": self.withdrawn,
            "previous": self.previous,
            "previous_ready": self.previous_ready,
            "checks": [c.to_json() for c in self.checks],
            "errors": self.errors,
        }

    def lines(self) -> list[str]:
        """Human-readable summary, one line per fact."""
        out = []
        for c in self.checks:
            what = "READY" if c.ok else "NOT SERVING"
            why = " ".join(str(c.reason or c.state).split())  # Triton's reasons span lines
            extra = f" ({why})" if not c.ok else f" in {c.seconds:.1f} s"
            smoke = ""
            if c.smoke is not None:
                smoke = ", smoke request ok" if c.smoke.get("ok") else ", smoke request FAILED"
            out.append(f"{what:<11} version {c.version} at {c.server} [{c.mode}]{extra}{smoke}")
        out += [f"ERROR       {e}" for e in self.errors]
        if self.withdrawn:
            back = ", ".join(
                f"{s}: {'ready' if r else 'NOT ready'}" for s, r in self.previous_ready.items()
            )
            out.append(
                f"WITHDRAWN   version {self.version} at {self.base}"
                + (f"; previous version {self.previous} {back}" if self.previous else "")
            )
        elif not self.healthy and self.on_unhealthy == "keep":
            out.append(f"KEPT        version {self.version} at {self.base} (--on-unhealthy keep)")
        return out


def probe(serve: ServeRequest, timeout: float = 10.0) -> None:
    """Fail (exit 1) before anything is published when a server does not answer at all."""
    for target in serve.targets:
        client = client_for(target, timeout)
        path = "/v2/health/live" if target.kind == "triton" else f"/v1/models/{client.model}"
        client._call("GET", path)


def _check_one(
    client: ServerClient, version: str, serve: ServeRequest, smoke: Any, settled: bool = True
) -> ServerCheck:
    """``settled`` False: a failed load seen in poll mode is not final before the timeout (on
    an object store a polling server may have met the version before its last file landed,
    and loads it again at its next poll)."""
    target = client.target
    start = time.monotonic()
    deadline = start + serve.timeout
    check = ServerCheck(target.display, version, "poll")
    load_failed = False
    try:
        if target.mode != "poll" and client.can_load:
            answer = client.load()  # returns once the load is done (or failed)
            if answer.ok:
                check.mode = "explicit"
            elif not answer.polls:
                check.mode, load_failed = "explicit", True
                check.reason = f"load failed: {answer.message}"
            elif target.mode == "explicit":
                check.mode = "explicit"
                check.reason = f"the server refuses explicit loads: {answer.message}"
                check.seconds = time.monotonic() - start
                return check
        state: VersionState | None = None
        while True:
            state = client.state(version)
            final = load_failed or (state.failed and (settled or check.mode == "explicit"))
            if state.ready or final or time.monotonic() >= deadline:
                break
            time.sleep(serve.interval)
        check.ready, check.state = state.ready, state.state
        if load_failed and not state.ready:
            pass  # the load's own answer says why (a broken config names no version)
        elif state.failed and (settled or check.mode == "explicit"):
            check.reason = state.reason or check.reason
        elif not state.ready:
            last = state.reason or check.reason
            check.reason = (
                f"version {version} not ready after {serve.timeout:g} s (state {state.state})"
                + (f": {last}" if last else "")
            )
        elif smoke is not None:
            reply = client.infer(version, smoke)
            ok = reply.ok and not (isinstance(reply.body, dict) and "error" in reply.body)
            check.smoke = {"ok": ok, "status": reply.status}
            if not ok:
                check.smoke["error"] = reply.error_text()
                check.reason = f"smoke request failed: {reply.error_text()}"
    except ServingError as e:
        check.reason = str(e)
    check.seconds = time.monotonic() - start
    return check


def _each(clients: list[ServerClient], fn: Any) -> list[Any]:
    if len(clients) == 1:
        return [fn(clients[0])]
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        return list(pool.map(fn, clients))


def confirm(
    dest: Destination,
    version: str,
    serve: ServeRequest,
    *,
    previous: str | None,
    action: str = "push",
    withdrawable: bool = True,
    smoke: Any = None,
) -> ServeReport:
    """Check ``version`` at every server of ``serve``; withdraw it when one says no (unless
    ``on_unhealthy`` is ``keep`` or ``withdrawable`` is False: a version this run did not
    publish is only reported)."""
    # a load request returns when the load is over: it may take the whole timeout
    clients = [client_for(t, serve.timeout) for t in serve.targets]
    report = ServeReport(
        dest.url, version, action, on_unhealthy=serve.on_unhealthy, previous=previous
    )
    settled = dest.local  # a local version appears whole, in one rename
    report.checks = _each(clients, lambda c: _check_one(c, version, serve, smoke, settled))
    if report.healthy or serve.on_unhealthy != "withdraw" or not withdrawable:
        return report
    from pushgate.serving.withdraw import withdraw_version

    withdraw_version(
        dest,
        version,
        report.reason or "not serving",
        servers=[c.target.display for c in clients],
        action=action,
    )
    report.withdrawn = True
    if previous is not None:

        def back(client: ServerClient) -> bool:
            check = _check_one(client, previous, serve, None)  # explicit: loads it again
            if not check.ready:
                report.errors.append(
                    f"previous version {previous} is not ready again at {check.server}: "
                    f"{check.reason or check.state}"
                )
            return check.ready

        for client, ok in zip(clients, _each(clients, back)):  # one answer per client
            report.previous_ready[client.target.display] = ok
    return report


def confirm_published(
    base: str,
    version: str,
    serve: ServeRequest,
    *,
    previous: str | None,
    action: str,
    storage_options: Any = None,
    smoke: Any = None,
) -> ServeReport:
    """:func:`confirm` for a version just published at ``base`` (by a rollback, say)."""
    from pushgate.destination import open_destination

    dest = open_destination(base, storage_options)
    return confirm(dest, version, serve, previous=previous, action=action, smoke=smoke)
