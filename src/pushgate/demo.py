"""``pushgate demo``: a whole Evaluator -> InfraValidator -> Pusher story on a bundled model.

The bundled model is a real TensorFlow SavedModel (a two-feature logistic regression, 13 KB) made
once with TensorFlow and shipped as package data, so the demo needs no TensorFlow.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushgate.blessing import BlessingKind, write_blessing
from pushgate.journal import Journal, VersionInfo
from pushgate.pushing import PushRequest, PushResult, push

BUNDLED_MODEL = Path(__file__).with_name("demo_data") / "saved_model"


@dataclass
class DemoResult:
    """The pushes the demo made and the versions it left."""

    workdir: Path
    base: Path
    steps: list[tuple[str, PushResult]] = field(default_factory=list)
    versions: list[VersionInfo] = field(default_factory=list)


def run_demo(workdir: Path) -> DemoResult:
    """Lay out TFX-shaped artifacts under ``workdir`` and push them into ``workdir/serving``."""
    workdir = workdir.absolute()
    pipeline = workdir / "pipeline"
    if pipeline.exists():
        shutil.rmtree(pipeline)
    model = pipeline / "Trainer" / "model" / "1"
    shutil.copytree(BUNDLED_MODEL, model / "Format-Serving")
    blessed = write_blessing(
        pipeline / "Evaluator" / "blessing" / "2",
        BlessingKind.MODEL,
        True,
        {"current_model": str(model)},
    ).path
    infra = write_blessing(
        pipeline / "InfraValidator" / "blessing" / "3", BlessingKind.INFRA, True, {"has_model": 0}
    ).path
    rejected = write_blessing(
        pipeline / "Evaluator" / "blessing" / "4",
        BlessingKind.MODEL,
        False,
        {"current_model": str(model)},
    ).path
    base = workdir / "serving" / "demo_model"
    result = DemoResult(workdir, base)
    common: dict[str, Any] = {"destinations": (str(base),), "model": model, "infra_blessing": infra}
    result.steps.append(
        (
            "blessed model",
            push(
                PushRequest(
                    model_blessing=blessed,
                    pushed_model=pipeline / "Pusher" / "pushed_model" / "5",
                    **common,
                )
            ),
        )
    )
    result.steps.append(
        ("same model again (idempotent)", push(PushRequest(model_blessing=blessed, **common)))
    )
    result.steps.append(
        ("model the Evaluator rejected", push(PushRequest(model_blessing=rejected, **common)))
    )
    from pushgate.destination.local import LocalDestination

    result.versions = Journal(LocalDestination(base)).versions()
    return result
