"""The Trainer's module file for the pipeline test: a tiny Keras model over x1, x2.

``custom_config``: ``features`` (which columns the model sees) and ``invert`` (train on flipped
labels: a model the Evaluator must reject). The serving signature takes serialized tf.Examples,
as TFX's templates export it, so TFMA, pushgate's InfraValidator and TF Serving feed it alike.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

FEATURES = ("x1", "x2")
LABEL = "label"


def _feature_spec(with_label: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {f: tf.io.FixedLenFeature([1], tf.float32) for f in FEATURES}
    if with_label:
        spec[LABEL] = tf.io.FixedLenFeature([1], tf.int64)
    return spec


def _dataset(files: list[str], features: list[str], invert: bool) -> tf.data.Dataset:
    spec = _feature_spec(True)

    def split(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, spec)
        x = tf.concat([parsed[f] for f in features], axis=1)
        y = tf.cast(parsed[LABEL], tf.float32)
        return x, (1.0 - y if invert else y)

    paths = [path for pattern in files for path in tf.io.gfile.glob(pattern)]  # TFX gives globs
    ds = tf.data.TFRecordDataset(paths, compression_type="GZIP")
    return ds.batch(32).map(split).repeat()


def run_fn(fn_args: Any) -> None:
    config = fn_args.custom_config or {}
    features = list(config.get("features", FEATURES))
    invert = bool(config.get("invert", False))
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [tf.keras.Input(shape=(len(features),)), tf.keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(0.1), loss="binary_crossentropy")
    model.fit(
        _dataset(fn_args.train_files, features, invert),
        steps_per_epoch=fn_args.train_steps,
        epochs=1,
        verbose=0,
    )
    serving_spec = _feature_spec(False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, serving_spec)
        x = tf.concat([parsed[f] for f in features], axis=1)
        return {"outputs": model(x)}

    module = tf.Module()
    module.model = model
    module.serve = serve
    tf.saved_model.save(module, fn_args.serving_model_dir, signatures={"serving_default": serve})
