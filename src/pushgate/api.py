"""pushgate's Python API: thin functions over the core, one request object each.

>>> import pushgate
>>> result = pushgate.push(pushgate.PushRequest(model="model/", destinations=("serving/m",)))
>>> result.pushed, result.version
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pushgate.destination import open_destination
from pushgate.errors import UsageError
from pushgate.journal import Journal, VersionInfo
from pushgate.progress import Progress
from pushgate.pushing import PushRequest, PushResult
from pushgate.pushing import push as _push

if TYPE_CHECKING:
    from pushgate.serving import ServeRequest

__all__ = ["PushRequest", "PushResult", "push", "serving_version", "versions"]


def push(
    request: PushRequest | None = None,
    progress: Progress | None = None,
    serve: ServeRequest | None = None,
    **kwargs: object,
) -> PushResult:
    """Push a model; takes a :class:`PushRequest` or its fields as keyword arguments.

    With ``serve`` (:class:`pushgate.serving.ServeRequest`), each server must answer before
    anything is published, and each newly published version must become ready there (see
    :func:`pushgate.serving.confirm`): ``result.serve`` holds the reports, ``result.failed`` is
    True when a version did not serve (and was withdrawn, unless ``on_unhealthy="keep"``).
    """
    if request is None:
        to = kwargs.pop("to", None)
        if to is not None and "destinations" not in kwargs:
            kwargs["destinations"] = (to,) if isinstance(to, (str, Path)) else tuple(to)  # type: ignore[arg-type]
        request = PushRequest(**kwargs)  # type: ignore[arg-type]
    if serve is None or not serve.servers:
        return _push(request, progress)
    from pushgate.serving import confirm, probe

    if len(request.destinations) != 1:
        raise UsageError(
            "--serve checks the version published at one --to BASE: push to one destination "
            "per command when servers are checked"
        )
    smoke = serve.smoke_doc()
    probe(serve)  # a server that does not answer fails the push before anything is published
    result = _push(request, progress)
    for d in result.destinations:
        if not d.pushed or d.version is None:
            continue
        dest = open_destination(d.url, request.storage_options)
        record = Journal(dest).record(d.version) or {}
        result.serve.append(
            confirm(
                dest,
                d.version,
                serve,
                previous=record.get("previous_newest"),
                action="push",
                withdrawable=not d.already_present,
                smoke=smoke,
            )
        )
    return result


def versions(
    base: str | Path, storage_options: Mapping[str, str] | None = None
) -> list[VersionInfo]:
    """Every version at ``base`` (published, unrecorded, missing), oldest first; a ``base`` that
    does not exist is a :class:`~pushgate.errors.DestinationInputError`."""
    from pushgate.lifecycle_common import open_base

    return Journal(open_base(base, storage_options)).versions()


def serving_version(
    base: str | Path,
    storage_options: Mapping[str, str] | None = None,
    into: Path | None = None,
) -> tuple[str, Path] | None:
    """The newest published version at ``base`` and a local directory holding it.

    Local destinations return the version directory itself; object stores download it into
    ``into`` (or a new temporary directory). ``None`` when nothing is published there.
    """
    dest = open_destination(str(base), storage_options)
    journal = Journal(dest)
    newest = journal.newest_published()
    if newest is None:
        return None
    local = getattr(dest, "local_version_dir", None)
    if local is not None:
        return newest.version, local(newest.version)
    target = Path(into or tempfile.mkdtemp(prefix="pushgate-version-")) / newest.version
    for rel in dest.list_version_files(newest.version):
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        with dest.open_version_file(newest.version, rel) as src, open(out, "wb") as f:
            shutil.copyfileobj(src, f, 4 * 2**20)
    if newest.record:  # the empty directories a bucket records but cannot hold
        with journal.manifest(newest.version, newest.record) as manifest:
            for d in manifest.dirs:
                (target / d).mkdir(parents=True, exist_ok=True)
    return newest.version, target
