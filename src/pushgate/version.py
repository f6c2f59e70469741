"""Version numbers: how the next one is chosen.

- ``auto`` (default, TFX-compatible): decimal Unix seconds, but never equal to or below an
  existing version: ``max(now, highest + 1)``. Clock skew between pushers can therefore never make
  a new push sort below the one serving now (TFX defect 3).
- ``sequential``: ``highest + 1``, starting at 1.

Never zero-padded (Triton ignores names starting with ``0``). ``highest`` counts every numeric
directory under BASE *and* every claimed number, so a number is never handed out twice, even when
the push that claimed it died.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from pushgate.errors import UsageError

POLICIES = ("auto", "sequential")


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise UsageError(f"unknown versioning {policy!r}: use one of {', '.join(POLICIES)}")
    return policy


def next_version(policy: str, taken: Iterable[int], now: float | None = None) -> int:
    """The number a new push should try to claim."""
    highest = max(taken, default=0)
    if check_policy(policy) == "sequential":
        return highest + 1
    return max(int(time.time() if now is None else now), highest + 1)
