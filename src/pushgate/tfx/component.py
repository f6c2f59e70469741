"""``pushgate.tfx.Pusher`` and ``pushgate.tfx.InfraValidator``: TFX components.

They take the arguments of ``tfx.components.Pusher`` / ``tfx.components.InfraValidator`` and
declare TFX's own inputs and outputs (their specs copy TFX's ``PusherSpec`` /
``InfraValidatorSpec`` and add one ``pushgate_options`` parameter), so resolvers, TFX tooling and
ML Metadata lineage see them as they see TFX's. Outputs carry TFX's custom properties:
PushedModel ``pushed``, ``pushed_destination``, ``pushed_version`` (plus ``pushed_digest``);
InfraBlessing ``blessed`` (plus ``has_model`` with a stamped model).

pushgate's own options are keyword arguments, stored as JSON in ``pushgate_options``, an
execution property recorded in ML Metadata: never put credentials there (the object stores'
standard credential chains are read in the component's environment).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import infra_validator_pb2, pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ComponentSpec, ExecutionParameter
from tfx.utils import json_utils

from pushgate.errors import UsageError
from pushgate.tfx.executor import PUSHGATE_OPTIONS_KEY, InfraValidatorExecutor, PusherExecutor

_SECRET_WORDS = ("secret", "password", "token", "credential", "sas", "session")


def _spec(base: type[ComponentSpec], name: str) -> type[ComponentSpec]:
    """TFX's spec ``base`` plus the ``pushgate_options`` parameter."""
    attrs: dict[str, Any] = {
        "PARAMETERS": {
            **base.PARAMETERS,
            PUSHGATE_OPTIONS_KEY: ExecutionParameter(type=str, optional=True),
        },
        "INPUTS": dict(base.INPUTS),
        "OUTPUTS": dict(base.OUTPUTS),
        "__doc__": f"TFX's {base.__name__} plus pushgate's options.",
    }
    annotation = getattr(base, "TYPE_ANNOTATION", None)
    if annotation is not None:
        attrs["TYPE_ANNOTATION"] = annotation
    return type(name, (ComponentSpec,), attrs)


PusherSpec = _spec(standard_component_specs.PusherSpec, "PusherSpec")
InfraValidatorSpec = _spec(standard_component_specs.InfraValidatorSpec, "InfraValidatorSpec")
# pushgate needs no serving platform: the serving_spec TFX requires is optional here
InfraValidatorSpec.PARAMETERS[standard_component_specs.SERVING_SPEC_KEY] = ExecutionParameter(
    type=infra_validator_pb2.ServingSpec, optional=True
)


def _options(values: Mapping[str, Any]) -> str | None:
    """pushgate's keyword options as the JSON execution property (None when there are none)."""
    given = {k: v for k, v in values.items() if v is not None}
    for key in given.get("storage_options") or {}:
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise UsageError(
                f"storage_options[{key!r}] looks like a credential; component options are "
                "recorded in ML Metadata, so give credentials through the environment instead"
            )
    if "storage_options" in given:
        given["storage_options"] = dict(given["storage_options"])
    if "features" in given:
        given["features"] = list(given["features"])
    return json.dumps(given, sort_keys=True) if given else None


def _proto(value: Any, message: Any, what: str) -> Any:
    """A proto argument given as the proto or its dict form."""
    if value is None or isinstance(value, type(message)):
        return value
    if isinstance(value, Mapping):
        try:
            return json_format.ParseDict(dict(value), message)
        except json_format.ParseError as e:
            raise UsageError(f"{what}: {e}") from None
    return value  # a RuntimeParameter or a placeholder: TFX checks it


class Pusher(base_component.BaseComponent):
    """TFX's Pusher, pushing with pushgate: crash-safe, journaled, to a path or an ``s3://``,
    ``gs://`` or ``az://`` URL. Same arguments as ``tfx.components.Pusher``; pushgate's options:
    ``force_reason``, ``allow_duplicate``, ``on_publish``, ``versioning`` ("auto",
    "sequential"), ``storage_options`` (no credentials)."""

    SPEC_CLASS = PusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(PusherExecutor)

    def __init__(
        self,
        model: types.BaseChannel | None = None,
        model_blessing: types.BaseChannel | None = None,
        infra_blessing: types.BaseChannel | None = None,
        push_destination: pusher_pb2.PushDestination | Mapping[str, Any] | None = None,
        custom_config: dict[str, Any] | None = None,
        *,
        force_reason: str | None = None,
        allow_duplicate: bool | None = None,
        on_publish: str | None = None,
        versioning: str | None = None,
        storage_options: Mapping[str, str] | None = None,
    ) -> None:
        if push_destination is None:
            raise UsageError(
                "pushgate.tfx.Pusher needs push_destination="
                "PushDestination(filesystem=PushDestination.Filesystem(base_directory=...))"
            )
        if model is None and infra_blessing is None:
            raise UsageError(
                "pushgate.tfx.Pusher needs model or infra_blessing (an InfraBlessing made with "
                "request_spec.make_warmup=True), as TFX's Pusher does"
            )
        if versioning is not None:
            from pushgate.version import check_policy

            check_policy(versioning)
        spec = PusherSpec(
            model=model,
            model_blessing=model_blessing,
            infra_blessing=infra_blessing,
            push_destination=_proto(
                push_destination, pusher_pb2.PushDestination(), "push_destination"
            ),
            custom_config=json_utils.dumps(custom_config),
            pushgate_options=_options(
                {
                    "force_reason": force_reason,
                    "allow_duplicate": allow_duplicate,
                    "on_publish": on_publish,
                    "versioning": versioning,
                    "storage_options": storage_options,
                }
            ),
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
        )
        super().__init__(spec=spec)


class InfraValidator(base_component.BaseComponent):
    """TFX's InfraValidator, validating in pushgate's sandboxed runtime (TensorFlow or
    onnxruntime in a child process under a deadline): no Docker, no Kubernetes, no TF Serving.
    Same arguments as ``tfx.components.InfraValidator`` (``serving_spec`` is accepted and its
    platform ignored); ``request_spec.make_warmup`` writes the stamped model. pushgate's
    options: ``python`` (the interpreter that has the model's runtime; default: the one running
    the component), ``label``, ``features``, ``storage_options`` (no credentials). Artifacts in a
    bucket (a ``gs://``/``s3://``/``az://`` pipeline root) are validated from local copies and the
    blessing is uploaded, its marker file last."""

    SPEC_CLASS = InfraValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(InfraValidatorExecutor)

    def __init__(
        self,
        model: types.BaseChannel,
        serving_spec: infra_validator_pb2.ServingSpec | Mapping[str, Any] | None = None,
        examples: types.BaseChannel | None = None,
        request_spec: infra_validator_pb2.RequestSpec | Mapping[str, Any] | None = None,
        validation_spec: infra_validator_pb2.ValidationSpec | Mapping[str, Any] | None = None,
        *,
        python: str | None = None,
        label: str | None = None,
        features: tuple[str, ...] | list[str] | None = None,
        storage_options: Mapping[str, str] | None = None,
    ) -> None:
        spec = InfraValidatorSpec(
            model=model,
            examples=examples,
            blessing=types.Channel(type=standard_artifacts.InfraBlessing),
            serving_spec=_proto(serving_spec, infra_validator_pb2.ServingSpec(), "serving_spec"),
            validation_spec=_proto(
                validation_spec, infra_validator_pb2.ValidationSpec(), "validation_spec"
            ),
            request_spec=_proto(request_spec, infra_validator_pb2.RequestSpec(), "request_spec"),
            pushgate_options=_options(
                {
                    "python": python,
                    "label": label,
                    "features": features,
                    "storage_options": storage_options,
                }
            ),
        )
        super().__init__(spec=spec)
