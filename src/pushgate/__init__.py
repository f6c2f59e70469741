"""pushgate: the gated, crash-safe push of validated ML models (a standalone TFX Pusher).

Public names are imported lazily so ``import pushgate`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "push": "pushgate.api",
    "versions": "pushgate.api",
    "serving_version": "pushgate.api",
    "PushRequest": "pushgate.pushing",
    "PushResult": "pushgate.pushing",
    "ServeRequest": "pushgate.serving",
    "Pusher": "pushgate.tfx.facade",
    "PushDestination": "pushgate.tfx.facade",
    "Verdict": "pushgate.blessing",
    "PushgateError": "pushgate.errors",
    "evaluate": "pushgate.evaluator",
    "EvaluateRequest": "pushgate.evaluator",
    "infra_validate": "pushgate.infra_validator",
    "InfraValidateRequest": "pushgate.infra_validator",
    "verify": "pushgate.lifecycle",
    "rollback": "pushgate.lifecycle",
    "prune": "pushgate.lifecycle",
    "pin": "pushgate.lifecycle",
    "unpin": "pushgate.lifecycle",
    "history": "pushgate.lifecycle",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pushgate' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
