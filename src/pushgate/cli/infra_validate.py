"""``pushgate infra-validate``: the InfraValidator's verdict as an InfraBlessing directory."""

from __future__ import annotations

import argparse
from typing import Any

from pushgate.cli import _options as opts
from pushgate.cli._output import emit_verdict

DESCRIPTION = """\
Load the model in its serving runtime (TensorFlow for SavedModels, onnxruntime for ONNX) in a
separate process, with a deadline and a number of tries; with --examples, send one request per
example to each signature and check the answers. Writes an InfraBlessing directory
(INFRA_BLESSED or INFRA_NOT_BLESSED). With --make-warmup, also writes stamped_model/ holding TF
Serving warmup requests; push it with `pushgate push --infra-blessing DIR` and no --model.
Exit 0 when a verdict was reached, blessed or not.
"""


def register(subparsers: Any) -> None:
    """Add the ``infra-validate`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "infra-validate",
        help="load the model in its serving runtime; write an InfraBlessing",
        description=DESCRIPTION,
    )
    opts.add_model_option(
        p, required=True, help="SavedModel dir, TFX Model artifact, or .onnx file"
    )
    opts.add_output_option(p, help="InfraBlessing directory to write")
    opts.add_examples_option(
        p,
        help="examples to build requests from: .csv, .jsonl, .tfrecord[.gz], or a TFX "
        "Examples artifact dir (without: load only)",
    )
    p.add_argument(
        "--num-examples",
        type=int,
        default=1,
        metavar="N",
        help="examples per signature to send (default: 1)",
    )
    opts.add_example_columns(
        p,
        label_help="label column, left out of the requests (default: label)",
        features_help="comma-separated feature names, in the order the model takes them",
    )
    p.add_argument(
        "--signature",
        metavar="NAME",
        action="append",
        dest="signatures",
        help="signature to send requests to; repeat for several (default: serving_default)",
    )
    opts.add_tag_set_option(p)
    opts.add_deadline_option(
        p,
        default=300.0,
        help="seconds each attempt may take to load the model and answer "
        "(default: 300, TFX's max_loading_time_seconds)",
    )
    p.add_argument(
        "--num-tries",
        type=int,
        default=5,
        metavar="N",
        help="attempts before giving up (default: 5)",
    )
    p.add_argument(
        "--make-warmup",
        action="store_true",
        help="write stamped_model/ with assets.extra/tf_serving_warmup_requests "
        "(SavedModels; at most 1000 records)",
    )
    opts.add_python_option(p)
    opts.add_result_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pushgate infra-validate``; 0 when a verdict was reached."""
    from pushgate.infra_validator import InfraValidateRequest, infra_validate

    request = InfraValidateRequest(
        model=args.model,
        output=args.output,
        examples=args.examples,
        num_examples=args.num_examples,
        signatures=tuple(args.signatures or ("serving_default",)),
        tags=tuple(args.tag_set),
        deadline=args.deadline,
        num_tries=args.num_tries,
        make_warmup=args.make_warmup,
        label=args.label,
        split=args.split,
        features=args.features,
        python=args.python,
    )
    emit_verdict(infra_validate(request), args.json)
    return 0
