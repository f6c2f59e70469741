"""Helpers that both lifecycle modules use: :mod:`pushgate.lifecycle` and its rollback."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pushgate.destination import open_destination
from pushgate.destination.base import Destination, is_version_name
from pushgate.errors import UsageError
from pushgate.journal import VersionInfo


def check_version_arg(version: str) -> str:
    """``version`` as a string; :class:`UsageError` when it is not all digits."""
    version = str(version)
    if not is_version_name(version):
        raise UsageError(
            f"not a version number: {version!r} (a version is all digits, e.g. 1700000000)"
        )
    return version


def open_base(base: str | Path, storage_options: Mapping[str, str] | None) -> Destination:
    """The destination at ``base``, which must exist: every command but push refuses a BASE
    that is not there (a typo), before writing anything, rather than create it (see
    :func:`pushgate.location.require_existing_base`)."""
    return open_destination(str(base), storage_options, must_exist=True)


def published_versions(infos: list[VersionInfo]) -> list[VersionInfo]:
    """The versions both on the store and recorded by pushgate, oldest first, less any a prune
    is removing (an interrupted one: recovery finishes it)."""
    return sorted(
        (i for i in infos if i.exists and i.recorded and not i.removing),
        key=lambda i: int(i.version),
    )
