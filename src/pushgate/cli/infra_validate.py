"""``pushgate infra-validate``: the InfraValidator's verdict as an InfraBlessing directory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pushgate.infra_validate import InfraValidateRequest, infra_validate

DESCRIPTION = """\
Load the model in its serving runtime (TensorFlow for SavedModels, onnxruntime for ONNX) in a
separate process, with a deadline and a number of tries; with --examples, send one request per
example to each signature and check the answers. Writes an InfraBlessing directory
(INFRA_BLESSED or INFRA_NOT_BLESSED). With --make-warmup, also writes stamped_model/ holding TF
Serving warmup requests; push it with `pushgate push --infra-blessing DIR` and no --model.
Exit 0 when a verdict was reached, blessed or not.
"""


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def register(subparsers: Any) -> None:
    """Add the ``infra-validate`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "infra-validate",
        help="load the model in its serving runtime; write an InfraBlessing",
        description=DESCRIPTION,
    )
    p.add_argument(
        "--model",
        metavar="PATH",
        type=Path,
        required=True,
        help="SavedModel dir, TFX Model artifact, or .onnx file",
    )
    p.add_argument(
        "--output",
        "-o",
        type=Path,
        required=True,
        metavar="DIR",
        help="InfraBlessing directory to write",
    )
    p.add_argument(
        "--examples",
        metavar="PATH",
        type=Path,
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
    p.add_argument(
        "--label",
        default="label",
        metavar="NAME",
        help="label column, left out of the requests (default: label)",
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
        help="comma-separated feature names, in the order the model takes them",
    )
    p.add_argument(
        "--signature",
        metavar="NAME",
        action="append",
        dest="signatures",
        help="signature to send requests to; repeat for several (default: serving_default)",
    )
    p.add_argument(
        "--tag-set",
        metavar="TAGS",
        type=_csv,
        default=("serve",),
        help="SavedModel tag set, comma-separated (default: serve)",
    )
    p.add_argument(
        "--deadline",
        metavar="SECONDS",
        type=float,
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
    p.add_argument(
        "--python", help="Python interpreter with the model's runtime installed (default: this one)"
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pushgate infra-validate``; 0 when a verdict was reached."""
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
    result = infra_validate(request)
    for note in result.notes:
        print(f"pushgate: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        sys.stdout.write(result.to_text())
    return 0
