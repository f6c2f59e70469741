"""pushgate in TFX pipelines: ``from pushgate.tfx import Pusher, InfraValidator``.

Both are real TFX components (they go into ``tfx.dsl.Pipeline`` and run on any TFX orchestrator)
with the arguments of ``tfx.components.Pusher`` / ``tfx.components.InfraValidator`` plus
pushgate's own options as keyword arguments; see :mod:`pushgate.tfx.component`. TFX is imported
only when one of them is first used, so ``import pushgate`` (and this package) never loads it.

The plain-Python facade for scripts, ``pushgate.Pusher``, lives in :mod:`pushgate.tfx.facade`.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

_LAZY = {
    "Pusher": "pushgate.tfx.component",
    "InfraValidator": "pushgate.tfx.component",
    "PusherExecutor": "pushgate.tfx.executor",
    "InfraValidatorExecutor": "pushgate.tfx.executor",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pushgate.tfx' has no attribute {name!r}")
    if importlib.util.find_spec("tfx") is None:
        from pushgate.errors import MissingDependencyError

        raise MissingDependencyError(f"pushgate.tfx.{name} (a TFX component)", "tfx")
    return getattr(importlib.import_module(module), name)
