"""Version numbers: how the next one is chosen.

- ``auto`` (default, TFX-compatible): decimal Unix seconds, but never equal to or below an
  existing version: ``max(now, highest + 1)``. Clock skew between pushers can therefore never make
  a new push sort below the one serving now (TFX defect 3).
- ``sequential``: ``highest + 1``, starting at 1.

Never zero-padded (Triton ignores names starting with ``0``). ``highest`` counts every numeric
directory under BASE *and* every claimed number, so a number is never handed out twice, even when
the push that claimed it died.

No number at or above TF Serving's int64 limit (``2**63 - 1``) is ever produced: numeric names
that big are not versions (see :func:`pushgate.destination.base.is_version_name`), and when the
next number would reach the limit the push fails instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from pushgate.destination.base import MAX_VERSION
from pushgate.errors import DestinationError, UsageError

POLICIES = ("auto", "sequential")


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise UsageError(f"unknown versioning {policy!r}: use one of {', '.join(POLICIES)}")
    return policy


def next_version(policy: str, taken: Iterable[int], now: float | None = None) -> int:
    """The number a new push should try to claim (numbers at or past the int64 limit in
    ``taken`` are ignored: they are not versions)."""
    highest = max((t for t in taken if t < MAX_VERSION), default=0)
    if check_policy(policy) == "sequential":
        candidate = highest + 1
    else:
        candidate = max(int(time.time() if now is None else now), highest + 1)
    if candidate >= MAX_VERSION:
        raise DestinationError(
            f"no version number is left below TF Serving's limit {MAX_VERSION}: the highest "
            f"version is {highest}; remove or renumber the versions at the top"
        )
    return candidate
