"""TF Serving warmup records: serialized ``tensorflow.serving.PredictionLog`` messages.

TF Serving reads ``<model>/assets.extra/tf_serving_warmup_requests`` at load time, a TFRecord file
of ``PredictionLog`` records, and refuses more than :data:`MAX_WARMUP_RECORDS`. The messages are
built with ``protobuf`` from the published definitions (:mod:`pushgate.protos`; the
``tensorflow-serving-api`` package pins the full ``tensorflow`` and cannot be installed beside
``tensorflow-cpu``); the tests parse every record with the real
``tensorflow_serving.apis.prediction_log_pb2``.
"""

from __future__ import annotations

from collections.abc import Mapping

WARMUP_FILE = "tf_serving_warmup_requests"
ASSETS_EXTRA = "assets.extra"
MAX_WARMUP_RECORDS = 1000


def predict_log(
    signature_name: str, inputs: Mapping[str, bytes], model_name: str | None = None
) -> bytes:
    """A serialized ``PredictionLog`` holding one ``PredictRequest``.

    ``inputs`` maps each input name to its serialized ``tensorflow.TensorProto``.
    """
    from pushgate.protos.prediction_log_pb2 import PredictionLog

    log = PredictionLog()
    request = log.predict_log.request
    if model_name:
        request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name in sorted(inputs):
        request.inputs[name].ParseFromString(inputs[name])
    return bytes(log.SerializeToString(deterministic=True))
