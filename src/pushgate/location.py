"""The one place that checks the locations a user gives: paths and URLs.

- An empty location (``--model ""``, ``--to ""``) is a usage error: it would mean "here".
- The model and a BASE are never nested in each other (each push would copy BASE, with its
  journal and earlier versions, into the new version); two BASEs are never nested either.
- ``--pushed-model`` is never ``.``, a filesystem root or a bucket root, and never equals,
  contains or lies inside the model, a blessing or a BASE (it is replaced on every push).
- Every command but ``push`` needs a BASE that exists (:func:`require_existing_base`): a typo
  must not create a BASE or read as "no versions".

(Paths read from records are checked by :func:`pushgate.manifest.checked_rel`.)

Local paths are compared as resolved real paths (links followed), URLs as ``scheme``, bucket and
key parts (query strings and user info dropped). All of it runs before any destination is
touched, and needs no network.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushgate.artifact import artifact_uri
from pushgate.destination import scheme_of
from pushgate.destination.base import Destination
from pushgate.errors import DestinationInputError, InputError, UsageError


@dataclass(frozen=True)
class Location:
    """A path or URL as given (``text``) and in comparable form (``scheme``, ``parts``)."""

    what: str
    text: str
    scheme: str
    parts: tuple[str, ...]

    def nested_with(self, other: Location) -> bool:
        """True when the two are the same location or one lies inside the other."""
        if self.scheme != other.scheme:
            return False
        n = min(len(self.parts), len(other.parts))
        return self.parts[:n] == other.parts[:n]

    @property
    def is_root(self) -> bool:
        """A filesystem root or a bucket (container) root."""
        return len(self.parts) <= 1


def location(value: Any, what: str) -> Location:
    """``value`` (a path, URL or TFX-style artifact) as a :class:`Location`; an empty one is a
    :class:`UsageError` naming the option."""
    text = artifact_uri(value)
    if not text.strip():
        raise UsageError(f"{what} is empty: give a path or URL (an empty path would mean here)")
    scheme = scheme_of(text)
    if scheme == "file":
        local = text[len("file://") :] if text.startswith("file://") else text
        if not local:
            raise UsageError(f"{what} {text} has no path")
        real = os.path.realpath(os.path.expanduser(local))
        return Location(what, text, "file", Path(real).parts)
    rest = text.partition("://")[2].split("?", 1)[0]
    host, _, key = rest.partition("/")
    host = host.rsplit("@", 1)[-1] if scheme not in ("abfs", "abfss") else host.split("@", 1)[0]
    parts = [p for p in key.split("/") if p and p != "."]
    return Location(what, text, scheme, (host, *parts))


def _refuse_nested(a: Location, b: Location, why: str) -> None:
    if a.nested_with(b):
        same = a.parts == b.parts
        relation = "is the same location as" if same else "is nested with"
        raise InputError(f"{a.what} {a.text} {relation} {b.what} {b.text}: {why}")


def check_push_locations(
    *,
    model: Any,
    infra_blessing: Any,
    model_blessing: Any,
    bases: Iterable[str],
    pushed_model: Any,
) -> None:
    """Refuse the locations of a push that would make it destroy or copy into itself (see the
    module docstring). Reads nothing but the resolved local paths."""
    inputs = [
        location(v, w)
        for v, w in (
            (model, "--model"),
            (infra_blessing, "--infra-blessing"),
            (model_blessing, "--model-blessing"),
        )
        if v is not None
    ]
    destinations = [location(b, "--to") for b in bases]
    model_loc = next((i for i in inputs if i.what != "--model-blessing"), None)
    for i, base in enumerate(destinations):
        if model_loc is not None:
            _refuse_nested(
                model_loc,
                base,
                "every push would copy BASE (its journal and earlier versions) into the new "
                "version; keep the model outside BASE and BASE outside the model",
            )
        for other in destinations[i + 1 :]:
            _refuse_nested(base, other, "give each BASE once, and no BASE inside another")
    if pushed_model is None:
        return
    pm = location(pushed_model, "--pushed-model")
    if pm.is_root or (pm.scheme == "file" and Path(*pm.parts) == Path.cwd()):
        raise InputError(
            f"--pushed-model {pm.text} is the current directory or a filesystem or bucket root; "
            "pushgate replaces the PushedModel directory on every push: give a directory of its "
            "own, such as ./pushed_model"
        )
    for other in (*inputs, *destinations):
        _refuse_nested(
            pm,
            other,
            "pushgate replaces the PushedModel directory on every push; give it a directory of "
            "its own",
        )


def require_existing_base(dest: Destination) -> Destination:
    """``dest`` when its BASE exists; else :class:`DestinationInputError` naming it. Every
    command but ``push`` calls this, so a mistyped BASE is never created nor read as empty."""
    if not dest.exists():
        what = "no such directory" if dest.local else "no object under that prefix"
        raise DestinationInputError(
            f"there is no BASE at {dest.url} ({what}); check the path or URL. Nothing was "
            "created there: only 'pushgate push' creates a BASE"
        )
    return dest
