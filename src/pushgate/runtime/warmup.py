"""TF Serving warmup records: serialized ``tensorflow.serving.PredictionLog`` messages.

TF Serving reads ``<model>/assets.extra/tf_serving_warmup_requests`` at load time, a TFRecord file
of ``PredictionLog`` records, and refuses more than :data:`MAX_WARMUP_RECORDS`. The messages are
encoded here by hand from the protobuf wire format (the ``tensorflow-serving-api`` package pins
the full ``tensorflow`` and cannot be installed beside ``tensorflow-cpu``); the tests parse every
record with the real ``tensorflow_serving.apis.prediction_log_pb2``.

Field numbers (tensorflow_serving/apis/*.proto)::

    PredictionLog  { LogMetadata log_metadata = 1; ... PredictLog predict_log = 6; }
    PredictLog     { PredictRequest request = 1; PredictResponse response = 2; }
    PredictRequest { ModelSpec model_spec = 1; map<string, TensorProto> inputs = 2; }
    ModelSpec      { string name = 1; string signature_name = 3; }
"""

from __future__ import annotations

from collections.abc import Mapping

WARMUP_FILE = "tf_serving_warmup_requests"
ASSETS_EXTRA = "assets.extra"
MAX_WARMUP_RECORDS = 1000


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def predict_log(
    signature_name: str, inputs: Mapping[str, bytes], model_name: str | None = None
) -> bytes:
    """A serialized ``PredictionLog`` holding one ``PredictRequest``.

    ``inputs`` maps each input name to its serialized ``tensorflow.TensorProto``.
    """
    spec = b""
    if model_name:
        spec += _field(1, model_name.encode("utf-8"))
    spec += _field(3, signature_name.encode("utf-8"))
    request = _field(1, spec)
    for name in sorted(inputs):
        entry = _field(1, name.encode("utf-8")) + _field(2, inputs[name])
        request += _field(2, entry)
    return _field(6, _field(1, request))
