"""Warmup: `--make-warmup` writes TF Serving's own warmup file; the pushed model answers it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import (
    INPUT_NAME,
    OUTPUT_NAME,
    labelled_data,
    make_onnx_model,
    make_saved_model,
    make_tfx_style_saved_model,
    reference_predict,
    write_examples_csv,
)
from pushgate.api import PushRequest, push
from pushgate.artifact import read_properties
from pushgate.errors import UsageError
from pushgate.infra_validator import InfraValidateRequest, InfraValidationResult, infra_validate
from pushgate.runtime.warmup import predict_log

N = 5


@pytest.fixture(scope="module")
def stamped(tmp_path_factory: pytest.TempPathFactory) -> tuple[InfraValidationResult, np.ndarray]:
    root = tmp_path_factory.mktemp("warmup")
    x, y = labelled_data(N, seed=11)
    result = infra_validate(
        InfraValidateRequest(
            model=make_saved_model(root / "model"),
            output=root / "infra_blessing",
            examples=write_examples_csv(root / "eval.csv", x, y),
            num_examples=N,
            make_warmup=True,
            num_tries=1,
        )
    )
    assert result.blessed, result.to_text()
    return result, x


def read_warmup(path: Path) -> list:
    """Every record of the file, read by TensorFlow and parsed by TF Serving's own proto."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for raw in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw.numpy())
        logs.append(log)
    return logs


def test_every_warmup_record_is_a_prediction_log_of_one_example(stamped: tuple) -> None:
    import tensorflow as tf

    result, x = stamped
    warmup = result.blessing / "stamped_model" / "assets.extra" / "tf_serving_warmup_requests"
    logs = read_warmup(warmup)
    assert len(logs) == N == result.warmup_records
    for log, row in zip(logs, x, strict=True):
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        assert list(request.inputs) == [INPUT_NAME]
        tensor = tf.make_ndarray(request.inputs[INPUT_NAME])
        assert tensor.dtype == np.float32
        np.testing.assert_array_equal(tensor, row.reshape(1, 2))
    props = read_properties(result.blessing)
    assert props["has_model"] == 1 and props["blessed"] == 1


def test_stamped_model_pushed_from_the_infra_blessing_answers_every_warmup_request(
    stamped: tuple, tmp_path: Path
) -> None:
    import tensorflow as tf

    result, x = stamped
    pushed = push(PushRequest(infra_blessing=result.blessing, destinations=(str(tmp_path / "m"),)))
    assert pushed.pushed, pushed.reason
    version_dir = tmp_path / "m" / str(pushed.version)
    warmup = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    assert warmup.is_file()
    # Replay: what TF Serving does at load time, against the version as pushed.
    loaded = tf.saved_model.load(str(version_dir), tags=["serve"])
    answers = []
    for log in read_warmup(warmup):
        request = log.predict_log.request
        fn = loaded.signatures[request.model_spec.signature_name]
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        answers.append(fn(**inputs)[OUTPUT_NAME].numpy().reshape(-1)[0])
    np.testing.assert_allclose(answers, reference_predict(x), rtol=1e-6)


def test_prediction_log_built_with_pushgates_protos_equals_tf_servings_own() -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    tensor = tf.make_tensor_proto(np.array([[1.5, -2.0]], dtype=np.float32))
    want = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(
            request=predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name="m", signature_name="sig"),
                inputs={"x": tensor},
            )
        )
    )
    mine = predict_log("sig", {"x": tensor.SerializeToString()}, model_name="m")
    assert prediction_log_pb2.PredictionLog.FromString(mine) == want
    assert mine == want.SerializeToString(deterministic=True)


@pytest.mark.parametrize(("signatures", "num_examples"), [(1, 1001), (2, 501)])
def test_more_than_1000_warmup_records_is_refused(
    tmp_path: Path, signatures: int, num_examples: int
) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "saved_model.pb").write_bytes(b"never loaded")
    (tmp_path / "e.csv").write_text("a,b,label\n1,2,0\n")
    with pytest.raises(UsageError, match="more than 1000"):
        infra_validate(
            InfraValidateRequest(
                model=tmp_path / "model",
                output=tmp_path / "ib",
                examples=tmp_path / "e.csv",
                num_examples=num_examples,
                signatures=tuple(f"s{i}" for i in range(signatures)),
                make_warmup=True,
            )
        )
    assert not (tmp_path / "ib").exists()


def test_warmup_for_an_onnx_model_is_refused(tmp_path: Path) -> None:
    model = make_onnx_model(tmp_path / "m" / "model.onnx")
    (tmp_path / "e.csv").write_text("a,b,label\n1,2,0\n")
    with pytest.raises(UsageError, match="not a SavedModel"):
        infra_validate(
            InfraValidateRequest(
                model=model, output=tmp_path / "ib", examples=tmp_path / "e.csv", make_warmup=True
            )
        )


def test_tfx_style_model_taking_serialized_examples_gets_warmup_it_can_parse(
    tmp_path: Path,
) -> None:
    import tensorflow as tf

    x, y = labelled_data(3, seed=12)
    result = infra_validate(
        InfraValidateRequest(
            model=make_tfx_style_saved_model(tmp_path / "model"),
            output=tmp_path / "ib",
            examples=write_examples_csv(tmp_path / "eval.csv", x, y),  # rows become tf.Examples
            num_examples=3,
            make_warmup=True,
            num_tries=1,
        )
    )
    assert result.blessed, result.to_text()
    stamped = result.blessing / "stamped_model"
    loaded = tf.saved_model.load(str(stamped), tags=["serve"])
    answers = []
    for log in read_warmup(stamped / "assets.extra" / "tf_serving_warmup_requests"):
        examples = tf.make_ndarray(log.predict_log.request.inputs["examples"])
        assert examples.shape == (1,) and isinstance(examples[0], bytes)
        out = loaded.signatures["serving_default"](examples=tf.constant(examples))
        answers.append(out[OUTPUT_NAME].numpy().reshape(-1)[0])
    np.testing.assert_allclose(answers, reference_predict(x), rtol=1e-6)


def test_vendored_messages_keep_the_published_names_numbers_and_types() -> None:
    """pushgate/protos/ is a subset of the official .proto files: every message and field it has
    exists in TensorFlow's / TF Serving's own generated modules with the same number and type."""
    from tensorflow.core.example import example_pb2, feature_pb2
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    from pushgate.protos import example_pb2 as pg_example
    from pushgate.protos import feature_pb2 as pg_feature
    from pushgate.protos import prediction_log_pb2 as pg_log
    from pushgate.protos import tensor_pb2 as pg_tensor

    official = {}
    for module in (example_pb2, feature_pb2, tensor_pb2, prediction_log_pb2):
        pool = module.DESCRIPTOR.pool
        for name in ("Example", "Features", "Feature", "BytesList", "FloatList", "Int64List"):
            official[f"tensorflow.{name}"] = pool.FindMessageTypeByName(f"tensorflow.{name}")
        for name in ("TensorProto", "TensorShapeProto", "TensorShapeProto.Dim"):
            official[f"tensorflow.{name}"] = pool.FindMessageTypeByName(f"tensorflow.{name}")
        for name in ("PredictionLog", "PredictLog", "PredictRequest", "PredictResponse"):
            full = f"tensorflow.serving.{name}"
            official[full] = pool.FindMessageTypeByName(full)
        official["tensorflow.serving.ModelSpec"] = pool.FindMessageTypeByName(
            "tensorflow.serving.ModelSpec"
        )
    checked = 0
    for module in (pg_example, pg_feature, pg_tensor, pg_log):
        stack = list(module.DESCRIPTOR.message_types_by_name.values())
        while stack:
            mine = stack.pop()
            stack.extend(mine.nested_types)
            if mine.GetOptions().map_entry:
                continue
            theirs = official[mine.full_name]
            for field in mine.fields:
                twin = theirs.fields_by_number[field.number]
                assert (field.name, field.type) == (twin.name, twin.type), field.full_name
                if field.message_type is not None:
                    assert field.message_type.full_name == twin.message_type.full_name
                checked += 1
    assert checked >= 35  # every field of the vendored subset
    for value in pg_tensor.DataType.DESCRIPTOR.values:
        assert types_pb2.DataType.Value(value.name) == value.number
