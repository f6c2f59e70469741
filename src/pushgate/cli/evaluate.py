"""``pushgate evaluate``: the Evaluator's verdict as a ModelBlessing directory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pushgate.cli._output import add_storage_options, storage_options
from pushgate.evaluate import EvaluateRequest, evaluate
from pushgate.metrics import TASKS

DESCRIPTION = """\
Check a candidate model's metrics against thresholds (TFMA's semantics) and write a ModelBlessing
directory (BLESSED or NOT_BLESSED, with evaluation.json and evaluation.txt). Metrics are read from
--candidate-metrics, or computed by running --model over labelled --examples in its own runtime
(TensorFlow for SavedModels, onnxruntime for ONNX). Exit 0 when a verdict was reached, blessed
or not.
"""


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate",
        help="check a model's metrics against thresholds; write a ModelBlessing",
        description=DESCRIPTION,
    )
    p.add_argument(
        "--model",
        metavar="PATH",
        type=Path,
        help="the candidate model: SavedModel dir, TFX Model artifact, or .onnx file",
    )
    p.add_argument(
        "--thresholds",
        metavar="FILE",
        type=Path,
        required=True,
        help="thresholds file, JSON (or YAML: .yaml/.yml): "
        '{"metrics": {NAME: {"value": ..., "change": ...}}}',
    )
    p.add_argument(
        "--output",
        "-o",
        type=Path,
        required=True,
        metavar="DIR",
        help="ModelBlessing directory to write",
    )
    p.add_argument(
        "--examples",
        metavar="PATH",
        type=Path,
        help="labelled examples: .csv, .jsonl, .tfrecord[.gz], or a TFX Examples artifact dir",
    )
    p.add_argument(
        "--label",
        default="label",
        metavar="NAME",
        help="label column / feature name (default: label)",
    )
    p.add_argument(
        "--split",
        default="eval",
        metavar="NAME",
        help="split of a TFX Examples artifact (default: eval)",
    )
    p.add_argument(
        "--features",
        metavar="A,B,...",
        type=_csv,
        help="comma-separated feature names, in the order the model takes them "
        "(default: all but the label, in file order)",
    )
    p.add_argument(
        "--task",
        choices=TASKS,
        default="auto",
        help="metrics to compute (default: auto: classification for 0/1 labels and "
        "scores in [0, 1], else regression)",
    )
    p.add_argument(
        "--candidate-metrics",
        metavar="FILE",
        type=Path,
        help="JSON file of the candidate's metrics, instead of computing them",
    )
    base = p.add_mutually_exclusive_group()
    base.add_argument(
        "--baseline-model",
        type=Path,
        metavar="PATH",
        help="baseline model to compare with (change thresholds)",
    )
    base.add_argument(
        "--baseline-from",
        metavar="BASE",
        help="use the newest published version at this pushgate destination as the baseline",
    )
    p.add_argument(
        "--baseline-metrics",
        metavar="FILE",
        type=Path,
        help="JSON file of the baseline's metrics, instead of computing them",
    )
    p.add_argument(
        "--signature",
        metavar="NAME",
        default="serving_default",
        help="SavedModel signature to predict with (default: serving_default)",
    )
    p.add_argument(
        "--tag-set",
        metavar="TAGS",
        type=_csv,
        default=("serve",),
        help="SavedModel tag set, comma-separated (default: serve)",
    )
    p.add_argument(
        "--prediction-key",
        metavar="NAME",
        help="model output holding the score (default: the only output)",
    )
    p.add_argument(
        "--deadline",
        metavar="SECONDS",
        type=float,
        default=1800.0,
        help="seconds allowed for each model run (default: 1800)",
    )
    p.add_argument(
        "--python", help="Python interpreter with the model's runtime installed (default: this one)"
    )
    add_storage_options(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pushgate evaluate``; 0 when a verdict was reached."""
    request = EvaluateRequest(
        output=args.output,
        thresholds=args.thresholds,
        model=args.model,
        examples=args.examples,
        candidate_metrics=args.candidate_metrics,
        baseline_model=args.baseline_model,
        baseline_from=args.baseline_from,
        baseline_metrics=args.baseline_metrics,
        label=args.label,
        split=args.split,
        features=args.features,
        task=args.task,
        signature=args.signature,
        tags=tuple(args.tag_set),
        prediction_key=args.prediction_key,
        deadline=args.deadline,
        python=args.python,
        storage_options=storage_options(args) or None,
    )
    result = evaluate(request)
    for note in result.notes:
        print(f"pushgate: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        sys.stdout.write(result.to_text())
    return 0
