"""TFMA's side of bench/bench_evaluate.py: ``tfma.run_model_analysis`` on DirectRunner.

Runs in a Python with TFX's TFMA (0.47); prints one JSON line ``{"metrics": {...}}`` with the
metrics pushgate also computes. ``--make-model DIR`` instead writes the TFX-style SavedModel
(serialized ``tf.Example`` in, ``probability`` out) of ``tests/models.py`` with this TensorFlow.

    python bench/tfma_run.py --model M --examples 'Examples/Split-eval/*' --out OUT --workers 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

NAMES = {
    "example_count": "example_count",
    "binary_accuracy": "accuracy",
    "auc": "auc",
    "precision": "precision",
    "recall": "recall",
    "binary_crossentropy": "log_loss",
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-model", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--examples")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if args.make_model is not None:
        from models import make_tfx_style_saved_model

        make_tfx_style_saved_model(args.make_model)
        return 0
    import tensorflow_model_analysis as tfma
    from apache_beam.options.pipeline_options import PipelineOptions

    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key="label")],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(class_name="BinaryAccuracy"),
                    tfma.MetricConfig(class_name="AUC"),
                    tfma.MetricConfig(class_name="Precision"),
                    tfma.MetricConfig(class_name="Recall"),
                    tfma.MetricConfig(class_name="BinaryCrossentropy"),
                ]
            )
        ],
    )
    model = tfma.default_eval_shared_model(
        eval_saved_model_path=str(args.model), eval_config=config
    )
    options = PipelineOptions(
        [
            "--runner=DirectRunner",
            f"--direct_num_workers={args.workers}",
            "--direct_running_mode=multi_processing",
        ]
    )
    result = tfma.run_model_analysis(
        eval_shared_model=model,
        eval_config=config,
        data_location=args.examples,
        file_format="tfrecords",
        output_path=str(args.out),
        pipeline_options=options,
    )
    (_slice, metrics), *_ = result.slicing_metrics
    values = {}
    for name, value in metrics[""][""].items():
        if name in NAMES:
            values[NAMES[name]] = float(value.get("doubleValue", value.get("double_value", 0.0)))
    print(json.dumps({"metrics": values}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
