"""The executors of pushgate's TFX components: TFX's executor interface over pushgate's API.

``PusherExecutor`` makes TFX's Pusher decision (the ``blessed`` properties decide, the marker
files must agree) and pushes with :func:`pushgate.push` (crash-safe, journaled, any destination
kind), then sets TFX's properties on the PushedModel. ``InfraValidatorExecutor`` runs
:func:`pushgate.infra_validate` (pushgate's sandboxed runtime: no Docker, no TF Serving) and sets
TFX's properties on the InfraBlessing. Imports TFX: only ``pushgate.tfx`` loads this module.
"""

from __future__ import annotations

import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.proto import infra_validator_pb2, pusher_pb2
from tfx.utils import proto_utils

from pushgate.artifact import set_properties, single
from pushgate.errors import UsageError
from pushgate.remote import is_url
from pushgate.source import FORMAT_SERVING, SERVING_MODEL_DIR

PUSHGATE_OPTIONS_KEY = "pushgate_options"
# TFX's keys (tfx.types.standard_component_specs), spelled out to keep this module's surface small
MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
INFRA_BLESSING_KEY = "infra_blessing"
PUSHED_MODEL_KEY = "pushed_model"
PUSH_DESTINATION_KEY = "push_destination"
EXAMPLES_KEY = "examples"
BLESSING_KEY = "blessing"
SERVING_SPEC_KEY = "serving_spec"
VALIDATION_SPEC_KEY = "validation_spec"
REQUEST_SPEC_KEY = "request_spec"

# TFX's versioning enum -> pushgate's policy (AUTO is TFX's UNIX_TIMESTAMP)
_VERSIONING = {pusher_pb2.Versioning.AUTO: "auto", pusher_pb2.Versioning.UNIX_TIMESTAMP: "auto"}


def options(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """pushgate's own options of a component run (stored as JSON text, like custom_config)."""
    raw = exec_properties.get(PUSHGATE_OPTIONS_KEY) or "{}"
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise UsageError(f"{PUSHGATE_OPTIONS_KEY} must be a JSON object, got {raw!r}")
    return doc


def lineage(context: Any, input_dict: dict[str, list[Any]], component: str) -> dict[str, Any]:
    """Where a component run comes from: pipeline, run, component, ML Metadata execution and the
    ids of its input artifacts (what the orchestrator gave; missing parts are None)."""
    info = getattr(context, "pipeline_info", None)
    node = getattr(context, "pipeline_node", None)
    unique = getattr(context, "_unique_id", None)  # TFX's portable runner: the execution id
    node_id = node.node_info.id if node is not None and node.HasField("node_info") else None
    return {
        "orchestrator": "tfx",
        "pipeline": info.id if info is not None else None,
        "run_id": getattr(context, "pipeline_run_id", None),
        "component": node_id or component,
        "execution_id": int(unique) if unique is not None and str(unique).isdigit() else None,
        "input_artifacts": {
            key: [a.id for a in artifacts] for key, artifacts in sorted(input_dict.items())
        },
    }


class _Local:
    """Local paths for an executor's artifacts: URLs are downloaded (inputs) or written in a
    temporary directory and uploaded at the end (outputs); local paths are used as they are."""

    def __init__(self, stack: ExitStack, storage_options: dict[str, Any]) -> None:
        self.stack = stack
        self.options = storage_options

    def input(self, uri: str, what: str, prefer: tuple[str, ...] = ()) -> Path:
        if not is_url(uri):
            return Path(uri)
        from pushgate.remote import materialize

        local: Path = self.stack.enter_context(
            materialize(uri, self.options, prefer=prefer, required=f"the {what} artifact")
        )
        return local

    def output(self, uri: str) -> Path:
        if not is_url(uri):
            return Path(uri)
        return Path(self.stack.enter_context(tempfile.TemporaryDirectory(prefix="pushgate-out-")))

    def upload(self, local: Path, uri: str) -> None:
        if not is_url(uri):
            return
        from pushgate.blessing import BlessingKind
        from pushgate.remote import write_tree_url
        from pushgate.source import list_files

        markers = set(BlessingKind.INFRA.markers)
        files = [f for f in list_files(local) if f.rel not in markers]
        last = {m: b"" for m in markers if (local / m).exists()}  # the verdict lands last
        write_tree_url(uri, files, last, self.options)


class PusherExecutor(base_executor.BaseExecutor):
    """TFX's Pusher executor contract, carried out by :func:`pushgate.push`."""

    def Do(
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        from pushgate.pushing import PushRequest, push

        self._log_startup(input_dict, output_dict, exec_properties)
        pushed_model = single(output_dict[PUSHED_MODEL_KEY], PUSHED_MODEL_KEY)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[PUSH_DESTINATION_KEY], destination)
        kind = destination.WhichOneof("destination")
        if kind != "filesystem":
            raise UsageError(
                f"push_destination {kind or 'unset'}: pushgate's Pusher pushes to "
                "PushDestination(filesystem=Filesystem(base_directory=PATH or URL))"
            )
        fs = destination.filesystem
        opts = options(exec_properties)
        versioning = opts.pop("versioning", None) or _VERSIONING.get(fs.versioning)
        if versioning is None:
            raise UsageError(f"unknown push_destination versioning {fs.versioning}")
        request = PushRequest(
            destinations=(fs.base_directory,),
            model=input_dict.get(MODEL_KEY, []),
            model_blessing=input_dict.get(MODEL_BLESSING_KEY, []),
            infra_blessing=input_dict.get(INFRA_BLESSING_KEY, []),
            pushed_model=pushed_model,
            versioning=versioning,
            lineage=lineage(getattr(self, "_context", None), input_dict, "Pusher"),
            **opts,
        )
        result = push(request)
        for warning in result.warnings:
            logging.warning("pushgate: %s", warning)
        logging.info("pushgate: %s (version %s)", result.reason, result.version)


class InfraValidatorExecutor(base_executor.BaseExecutor):
    """TFX's InfraValidator executor contract, carried out by :func:`pushgate.infra_validate`:
    the model is loaded (and, with a request_spec and examples, queried) in pushgate's sandboxed
    runtime, whatever platform ``serving_spec`` names."""

    def Do(
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        from pushgate.infra_validator import InfraValidateRequest, infra_validate

        self._log_startup(input_dict, output_dict, exec_properties)
        model = single(input_dict[MODEL_KEY], MODEL_KEY)
        examples = single(input_dict.get(EXAMPLES_KEY, []), EXAMPLES_KEY)
        blessing = single(output_dict[BLESSING_KEY], BLESSING_KEY)
        validation = infra_validator_pb2.ValidationSpec()
        if exec_properties.get(VALIDATION_SPEC_KEY):
            proto_utils.json_to_proto(exec_properties[VALIDATION_SPEC_KEY], validation)
        requests = None
        if exec_properties.get(REQUEST_SPEC_KEY):
            requests = infra_validator_pb2.RequestSpec()
            proto_utils.json_to_proto(exec_properties[REQUEST_SPEC_KEY], requests)
        opts = options(exec_properties)
        if opts.get("features") is not None:
            opts["features"] = tuple(opts["features"])
        storage = dict(opts.pop("storage_options", None) or {})
        query = requests is not None and examples is not None
        signatures: tuple[str, ...] = ("serving_default",)
        if requests is not None and requests.tensorflow_serving.signature_names:
            signatures = tuple(requests.tensorflow_serving.signature_names)
        split = (requests.split_name or "eval") if requests is not None else "eval"
        with ExitStack() as stack:
            # artifacts in a bucket (a pipeline_root on gs://, s3://, az://, as on Vertex) are
            # validated from local copies; the blessing is uploaded, its marker last
            local = _Local(stack, storage)
            out = local.output(blessing.uri)
            request = InfraValidateRequest(
                model=local.input(model.uri, "model", (FORMAT_SERVING, SERVING_MODEL_DIR)),
                output=out,
                examples=local.input(examples.uri, "examples", (f"Split-{split}",))
                if query
                else None,
                num_examples=(requests.num_examples or 1) if requests is not None else 1,
                signatures=signatures,
                deadline=float(validation.max_loading_time_seconds or 300),
                num_tries=validation.num_tries or 5,
                make_warmup=bool(query and requests is not None and requests.make_warmup),
                split=split,
                python=opts.pop("python", None) or sys.executable,
                **opts,
            )
            result = infra_validate(request)
            local.upload(out, blessing.uri)
        # TFX's InfraValidator properties: blessed, and has_model when a stamped model was written
        props: dict[str, Any] = {"blessed": 1 if result.blessed else 0}
        if result.has_model:
            props["has_model"] = 1
        set_properties(blessing, props)
        for note in result.notes:
            logging.warning("pushgate: %s", note)
        logging.info("pushgate: %s", result.to_text())
