"""The push decision: TFX's truth table, as one pure function.

====================  ====================  ======================================
model_blessing        infra_blessing        decision
====================  ====================  ======================================
absent                absent                push, with a warning (nothing validated)
blessed               absent                push
not blessed/no verd.  anything              do not push
absent or blessed     blessed               push
absent or blessed     not blessed/no verd.  do not push
====================  ====================  ======================================

``force_reason`` turns a "do not push" into a forced push; the decision still says which
blessing failed, so nothing hides that the model was not blessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pushgate.blessing import Blessing, Verdict


@dataclass(frozen=True)
class Decision:
    """Whether to push, why, and any warnings to show."""

    push: bool
    reason: str
    forced: bool = False
    warnings: tuple[str, ...] = field(default=())


def _describe(b: Blessing) -> str:
    name = b.kind.value.replace("_", " ")
    where = f" ({b.path})" if b.path else ""
    if b.note:
        return f"{name} {b.note}{where}"
    if b.verdict is Verdict.NOT_BLESSED:
        return f"{name} says NOT blessed{where}"
    return f"{name} has no verdict{where} (the validator wrote no marker: was it given thresholds?)"


def decide(model: Blessing, infra: Blessing, force_reason: str | None = None) -> Decision:
    """Apply TFX's truth table to the two blessings (each possibly ``absent``)."""
    failing = [b for b in (model, infra) if b.verdict in (Verdict.NOT_BLESSED, Verdict.NO_VERDICT)]
    if failing:
        why = "; ".join(_describe(b) for b in failing)
        if force_reason:
            return Decision(
                push=True,
                forced=True,
                reason=f"forced push: {force_reason} (overriding: {why})",
                warnings=(f"pushing a model that is not blessed: {why}",),
            )
        return Decision(push=False, reason=f"not pushed: {why}")
    if model.verdict is Verdict.ABSENT and infra.verdict is Verdict.ABSENT:
        return Decision(
            push=True,
            reason="pushed without validation: no blessing was given",
            warnings=(
                "no model blessing and no infra blessing given: nothing validated this model",
            ),
        )
    given = [b.kind.value.replace("_", " ") for b in (model, infra) if b.verdict is Verdict.BLESSED]
    warnings: tuple[str, ...] = ()
    if force_reason:
        warnings = ("--force-reason ignored: every blessing given says yes",)
    return Decision(push=True, reason=f"blessed ({' and '.join(given)})", warnings=warnings)
