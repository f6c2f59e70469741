"""``pushgate status``: what is published and withdrawn at BASE, next to what each server
reports loaded and ready, and where the two disagree (drift)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pushgate.errors import ServingError
from pushgate.serving.clients import VersionState, client_for
from pushgate.serving.target import parse_serve_url


@dataclass
class ServerView:
    """One server's versions of the model, or why it could not tell."""

    server: str
    versions: list[VersionState] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "answered": self.error is None,
            "error": self.error,
            "versions": [v.to_json() for v in self.versions],
        }


@dataclass
class StatusReport:
    """The result of :func:`status`."""

    base: str
    versions: list[dict[str, Any]] = field(default_factory=list)
    servers: list[ServerView] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.drift and all(s.error is None for s in self.servers)

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "ok": self.ok,
            "versions": self.versions,
            "servers": [s.to_json() for s in self.servers],
            "drift": self.drift,
        }


def status(
    base: str,
    servers: tuple[str, ...] = (),
    storage_options: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> StatusReport:
    """Published / withdrawn versions at ``base`` and what each ``--serve`` server reports."""
    from pushgate.destination import open_destination
    from pushgate.journal import Journal
    from pushgate.serving.withdraw import withdrawn_versions

    targets = [parse_serve_url(u) for u in servers]  # a malformed URL: exit 2 before any work
    dest = open_destination(base, storage_options, must_exist=True)
    infos = Journal(dest).versions()
    withdrawn = withdrawn_versions(dest)
    report = StatusReport(dest.url)
    for target in targets:
        view = ServerView(target.display)
        try:
            view.versions = client_for(target, timeout).versions()
        except ServingError as e:
            view.error = str(e)
        report.servers.append(view)

    published = {i.version for i in infos if i.exists and i.recorded}
    newest = max(published, key=int) if published else None
    from pushgate.labels import read_labels, remembered_configs

    labels = read_labels(dest)
    # labels in force: what must serve is what the labels name, not the newest version
    expected = set(labels.values()) if labels and remembered_configs(dest) else None
    for info in infos:
        doc: dict[str, Any] = {
            "version": info.version,
            "published": info.version in published,
            "exists": info.exists,
            "recorded": info.recorded,
            "newest": info.version == newest,
            "withdrawn": info.version in withdrawn and not info.exists,
            "withdrawn_reason": (withdrawn.get(info.version) or {}).get("reason"),
            "labels": sorted(n for n, v in labels.items() if v == info.version),
            "notes": info.notes,
            "servers": {},
        }
        for view in report.servers:
            seen = next((v for v in view.versions if v.version == info.version), None)
            doc["servers"][view.server] = seen.to_json() if seen else None
        report.versions.append(doc)

    for view in report.servers:
        if view.error is not None:
            continue
        ready = {v.version for v in view.versions if v.ready}
        if expected is not None:
            for v in sorted(expected - ready, key=int):
                names = ", ".join(sorted(n for n, x in labels.items() if x == v))
                report.drift.append(f"{view.server}: labelled version {v} ({names}) is not ready")
            for v in sorted((ready & published) - expected, key=int):
                report.drift.append(f"{view.server}: serves version {v}, which no label names")
        elif newest is not None and newest not in ready:
            report.drift.append(
                f"{view.server}: the newest published version {newest} is not ready"
            )
        for v in sorted(ready - published, key=int):
            why = "withdrawn" if v in withdrawn else "not published at BASE"
            report.drift.append(f"{view.server}: serves version {v}, which is {why}")
    return report
