"""``pushgate evaluate``: the Evaluator's verdict as a ModelBlessing directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pushgate.cli import _options as opts
from pushgate.cli._output import add_storage_options, emit_verdict, storage_options
from pushgate.metrics import RUNNERS, TASKS

DESCRIPTION = """\
Check a candidate model's metrics against thresholds (TFMA's semantics) and write a ModelBlessing
directory (BLESSED or NOT_BLESSED, with evaluation.json and evaluation.txt). Metrics are read from
--candidate-metrics, or computed by running --model over labelled --examples in its own runtime
(TensorFlow for SavedModels, onnxruntime for ONNX). Exit 0 when a verdict was reached, blessed
or not.
"""


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate",
        help="check a model's metrics against thresholds; write a ModelBlessing",
        description=DESCRIPTION,
    )
    opts.add_model_option(
        p,
        help="the candidate model: SavedModel dir, TFX Model artifact, or .onnx file (a local "
        "path; with --runner beam one every worker can read)",
        urls=True,
    )
    p.add_argument(
        "--thresholds",
        metavar="FILE",
        type=Path,
        required=True,
        help="thresholds file, JSON (or YAML: .yaml/.yml): "
        '{"metrics": {NAME: {"value": ..., "change": ...}}}',
    )
    opts.add_output_option(p, help="ModelBlessing directory to write")
    opts.add_examples_option(
        p,
        help="labelled examples: .csv, .jsonl, .tfrecord[.gz], or a TFX Examples artifact dir; "
        "local or s3:// gs:// az:// (streamed; on Beam each worker reads its own files)",
        urls=True,
    )
    opts.add_example_columns(
        p,
        label_help="label column / feature name (default: label)",
        features_help="comma-separated feature names, in the order the model takes them "
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
        type=opts.path_or_url_arg,
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
    opts.add_tag_set_option(p)
    p.add_argument(
        "--prediction-key",
        metavar="NAME",
        help="model output holding the score (default: the only output)",
    )
    opts.add_deadline_option(
        p, default=1800.0, help="seconds allowed for each model run (default: 1800)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=1024,
        metavar="N",
        help="examples per batch streamed through the model (default: 1024); memory grows "
        "with the batch, not with the data",
    )
    p.add_argument(
        "--runner",
        choices=RUNNERS,
        default="local",
        help="where the model runs over the examples: local (one runtime process, default) or "
        "beam (an Apache Beam pipeline: DirectRunner, Dataflow, Flink, Spark; the beam extra)",
    )
    p.add_argument(
        "--beam-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Beam pipeline option for --runner beam, repeatable, e.g. runner=DataflowRunner, "
        "direct_num_workers=2, direct_running_mode=multi_processing",
    )
    opts.add_python_option(p)
    add_storage_options(p)
    opts.add_result_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pushgate evaluate``; 0 when a verdict was reached."""
    from pushgate.evaluator import EvaluateRequest, evaluate

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
        batch_size=args.batch_size,
        runner=args.runner,
        beam_options=tuple(args.beam_option),
    )
    emit_verdict(evaluate(request), args.json)
    return 0
