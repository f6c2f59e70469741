"""A TFX-shaped facade, so the Pusher code from TFX's guide runs with only its imports changed::

from pushgate import Pusher, PushDestination

pusher = Pusher(
    model=trainer_model_dir,                 # a path or any object with ``.uri``
    model_blessing=evaluator_blessing_dir,
    infra_blessing=infra_blessing_dir,
    push_destination=PushDestination(
        filesystem=PushDestination.Filesystem(base_directory=serving_model_dir)),
)
result = pusher.run()          # a PushResult; pusher.outputs["pushed_model"] too

This runs a push now, from a script. Inside a TFX pipeline (inputs are Channels) use the TFX
component ``from pushgate.tfx import Pusher`` instead; given a Channel, this facade says so at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pushgate.errors import UsageError
from pushgate.pushing import PushRequest, PushResult, push


@dataclass(frozen=True)
class _Filesystem:
    base_directory: str
    versioning: str = "AUTO"


@dataclass(frozen=True)
class PushDestination:
    """TFX's ``PushDestination`` proto, as a dataclass: ``filesystem`` is the one kind."""

    filesystem: _Filesystem | None = None
    Filesystem = _Filesystem

    class Versioning:  # TFX's enum names
        AUTO = "AUTO"
        UNIX_TIMESTAMP = "UNIX_TIMESTAMP"
        SEQUENTIAL = "SEQUENTIAL"  # pushgate's extra


_VERSIONING = {
    "AUTO": "auto",
    "UNIX_TIMESTAMP": "auto",
    "SEQUENTIAL": "sequential",
    0: "auto",
    1: "auto",
}


def _is_channel(value: Any) -> bool:
    """True for a TFX Channel (or a list of them), told by its class, without importing TFX."""
    if isinstance(value, (list, tuple)):
        return any(_is_channel(v) for v in value)
    return any(
        c.__module__.startswith("tfx.") and c.__name__ in ("BaseChannel", "Channel")
        for c in type(value).__mro__
    )


@dataclass
class Pusher:
    """TFX's Pusher component, run directly: ``Pusher(...).run()``."""

    model: Any = None
    model_blessing: Any = None
    infra_blessing: Any = None
    push_destination: PushDestination | dict[str, Any] | None = None
    pushed_model: Any = None
    custom_config: dict[str, Any] | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("model", "model_blessing", "infra_blessing", "pushed_model"):
            if _is_channel(getattr(self, name)):
                raise UsageError(
                    f"pushgate.Pusher got a TFX Channel as {name}: it runs a push now, from a "
                    "script. In a TFX pipeline use the component: "
                    "'from pushgate.tfx import Pusher' (same arguments as TFX's Pusher)"
                )
        if self.model is None and self.infra_blessing is None:
            raise UsageError("Pusher needs model or infra_blessing (as TFX refuses it too)")
        if self.push_destination is None:
            raise UsageError("Pusher needs push_destination=PushDestination(filesystem=...)")

    def _request(self) -> PushRequest:
        dest = self.push_destination
        if isinstance(dest, dict):  # TFX's dict form {"filesystem": {"base_directory": ...}}
            fs = dest.get("filesystem") or {}
            base, versioning = fs.get("base_directory"), fs.get("versioning", "AUTO")
        else:
            assert dest is not None
            if dest.filesystem is None:
                raise UsageError("PushDestination needs filesystem=PushDestination.Filesystem(...)")
            base, versioning = dest.filesystem.base_directory, dest.filesystem.versioning
        if not base:
            raise UsageError("PushDestination.Filesystem needs base_directory")
        try:
            policy = _VERSIONING[versioning]
        except KeyError:
            raise UsageError(f"unknown versioning {versioning!r}") from None
        return PushRequest(
            destinations=(str(base),),
            model=self.model,
            model_blessing=self.model_blessing,
            infra_blessing=self.infra_blessing,
            pushed_model=self.pushed_model,
            versioning=policy,
        )

    def run(self) -> PushResult:
        result = push(self._request())
        self.outputs["pushed_model"] = {
            "pushed": 1 if result.pushed else 0,
            "pushed_destination": result.destination or "",
            "pushed_version": result.version or "",
        }
        return result
