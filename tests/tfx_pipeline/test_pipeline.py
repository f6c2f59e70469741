"""pushgate's TFX components in a real TFX 1.16 pipeline (LocalDagRunner, SQLite ML Metadata).

CsvExampleGen -> Trainer (tiny Keras model) -> TFX's Evaluator (thresholds, latest-blessed
baseline) -> pushgate's InfraValidator (make_warmup, no Docker) -> pushgate's Pusher (the stamped
model; to a local BASE and to S3 on a loopback moto server) beside TFX's own Pusher on the same
inputs. Three runs: a first model, a better one, one the Evaluator rejects.

Runs in the TFX environment only (``scripts/tfx_env.sh``; ``scripts/test.sh`` runs it as its own
pytest run with ``PUSHGATE_TFX_TESTS=1``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tfx import v1 as tfx  # required: this module runs in the TFX environment

import pushgate
from pushgate.tfx import InfraValidator, Pusher

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PIPELINE = "pushgate_tfx"
RUNS = (
    {"features": ["x1"]},  # a first model
    {"features": ["x1", "x2"]},  # a better one
    {"features": ["x1", "x2"], "invert": True},  # one the Evaluator rejects
)


def eval_config() -> Any:
    import tensorflow_model_analysis as tfma

    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default", label_key="label", prediction_key="outputs"
            )
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(
                        class_name="BinaryAccuracy",
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.6}),
                            change_threshold=tfma.GenericChangeThreshold(
                                direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                absolute={"value": -1e-10},
                            ),
                        ),
                    )
                ]
            )
        ],
    )


def build(root: Path, config: dict[str, Any], s3: dict[str, str]) -> Any:
    example_gen = tfx.components.CsvExampleGen(input_base=str(HERE / "data"))
    trainer = tfx.components.Trainer(
        module_file=str(HERE / "trainer_module.py"),
        examples=example_gen.outputs["examples"],
        train_args=tfx.proto.TrainArgs(num_steps=60),
        eval_args=tfx.proto.EvalArgs(num_steps=2),
        custom_config=config,
    )
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        eval_config=eval_config(),
    )
    infra = InfraValidator(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        serving_spec=tfx.proto.ServingSpec(
            tensorflow_serving=tfx.proto.TensorFlowServing(tags=["latest"]),
            local_docker=tfx.proto.LocalDockerConfig(),
        ),
        request_spec=tfx.proto.RequestSpec(
            tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(),
            num_examples=3,
            make_warmup=True,
        ),
    )
    blessings = {
        "model_blessing": evaluator.outputs["blessing"],
        "infra_blessing": infra.outputs["blessing"],
    }
    pusher = Pusher(  # the guide's code, the dict form of push_destination
        **blessings,
        push_destination={"filesystem": {"base_directory": str(root / "serving")}},
    )
    s3_pusher = Pusher(
        **blessings,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=s3["base"])
        ),
        storage_options={"endpoint": s3["endpoint"], "region": s3["region"]},
    ).with_id("S3Pusher")
    tfx_pusher = tfx.components.Pusher(
        **blessings,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=str(root / "tfx-serving")
            )
        ),
    ).with_id("TfxPusher")
    return tfx.dsl.Pipeline(
        pipeline_name=PIPELINE,
        pipeline_root=str(root / "pipeline"),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(root / "metadata.sqlite")
        ),
        components=[
            example_gen,
            trainer,
            baseline,
            evaluator,
            infra,
            pusher,
            s3_pusher,
            tfx_pusher,
        ],
        enable_cache=True,
        beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    )


# -- reading ML Metadata ------------------------------------------------------------------------
def prop(artifact: Any, key: str) -> Any:
    if key not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[key]
    return getattr(value, value.WhichOneof("value"))


@dataclass
class Node:
    """One component's execution in one run, as ML Metadata has it."""

    execution_id: int
    inputs: dict[str, list[Any]] = field(default_factory=dict)
    outputs: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class Run:
    run_id: str
    nodes: dict[str, Node]


def read_run(store: Any) -> Run:
    """The newest pipeline run: each component's execution, input and output artifacts."""
    from ml_metadata.proto import metadata_store_pb2

    run_ctx = max(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id)
    nodes: dict[str, Node] = {}
    for execution in store.get_executions_by_context(run_ctx.id):
        node_ctx = [
            c
            for c in store.get_contexts_by_execution(execution.id)
            if store.get_context_types_by_id([c.type_id])[0].name == "node"
        ]
        component = node_ctx[0].name.split(".", 1)[1]
        node = nodes.setdefault(component, Node(execution.id))
        for event in store.get_events_by_execution_ids([execution.id]):
            artifact = store.get_artifacts_by_id([event.artifact_id])[0]
            key = event.path.steps[0].key
            if event.type == metadata_store_pb2.Event.INPUT:
                node.inputs.setdefault(key, []).append(artifact)
            elif event.type == metadata_store_pb2.Event.OUTPUT:
                node.outputs.setdefault(key, []).append(artifact)
    return Run(run_ctx.name, nodes)


def type_name(store: Any, artifact: Any) -> str:
    return store.get_artifact_types_by_id([artifact.type_id])[0].name


# -- the three runs, once for the module ---------------------------------------------------------
@dataclass
class Pipeline:
    root: Path
    store: Any
    runs: list[Run]
    s3: dict[str, str]


@pytest.fixture(scope="module")
def pipeline(s3_server: Any) -> Iterator[Pipeline]:
    # a directory of its own: pytest's numbered temporary directories are removed by other
    # pytest runs on the machine once they are not among the newest three
    if os.environ.get("PUSHGATE_TFX_KEEP"):  # keep the pipeline's files to look at them
        yield run_pipeline(Path(tempfile.mkdtemp(prefix="pushgate-tfx-")), s3_server)
        return
    with tempfile.TemporaryDirectory(prefix="pushgate-tfx-") as tmp:
        yield run_pipeline(Path(tmp), s3_server)


def run_pipeline(root: Path, s3_server: Any) -> Pipeline:
    from ml_metadata.metadata_store import metadata_store

    bucket = s3_server.make_bucket()
    s3 = {
        "base": f"s3://{bucket}/models/taxi",
        "endpoint": s3_server.endpoint,
        "region": s3_server.options()["region"],
    }
    # credentials come from the environment, as on a worker; only these are set, for the run
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = s3_server.options()["access_key_id"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = s3_server.options()["secret_access_key"]
    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(str(root / "metadata.sqlite"))
    )
    runs = []
    try:
        for config in RUNS:
            tfx.orchestration.LocalDagRunner().run(build(root, config, s3))
            runs.append(read_run(store))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Pipeline(root, store, runs, s3)


def numeric(base: Path) -> list[str]:
    return sorted((p.name for p in base.iterdir() if p.name.isdigit()), key=int)


def tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def record(base: Path, version: str) -> dict[str, Any]:
    return json.loads((base / ".pushgate" / "records" / f"{version}.json").read_text())


# -- the tests ----------------------------------------------------------------------------------
def test_the_evaluator_blesses_the_first_two_models_and_rejects_the_third(
    pipeline: Pipeline,
) -> None:
    verdicts = [prop(r.nodes["Evaluator"].outputs["blessing"][0], "blessed") for r in pipeline.runs]
    assert verdicts == [1, 1, 0]


def test_infra_blessings_carry_tfx_properties_and_a_stamped_model(pipeline: Pipeline) -> None:
    for run in pipeline.runs:
        blessing = run.nodes["InfraValidator"].outputs["blessing"][0]
        assert type_name(pipeline.store, blessing) == "InfraBlessing"
        uri = Path(blessing.uri)
        report = (uri / "infra_validation.json").read_text()
        assert prop(blessing, "blessed") == 1, report
        assert prop(blessing, "has_model") == 1, report
        assert (uri / "INFRA_BLESSED").exists() and not (uri / "INFRA_NOT_BLESSED").exists()
        assert (uri / "stamped_model" / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_pushgate_pushes_what_tfx_pushes_with_the_same_ml_metadata(pipeline: Pipeline) -> None:
    serving, tfx_serving = pipeline.root / "serving", pipeline.root / "tfx-serving"
    ours, theirs = numeric(serving), numeric(tfx_serving)
    assert len(ours) == len(theirs) == 2
    for i, run in enumerate(pipeline.runs):
        mine = run.nodes["Pusher"].outputs["pushed_model"][0]
        tfx_one = run.nodes["TfxPusher"].outputs["pushed_model"][0]
        assert type_name(pipeline.store, mine) == type_name(pipeline.store, tfx_one)
        assert type_name(pipeline.store, mine) == "PushedModel"
        assert prop(mine, "pushed") == prop(tfx_one, "pushed") == (1 if i < 2 else 0)
        if i == 2:
            assert prop(mine, "pushed_version") is None is prop(tfx_one, "pushed_version")
            continue
        version, tfx_version = prop(mine, "pushed_version"), prop(tfx_one, "pushed_version")
        assert version == ours[i] and tfx_version == theirs[i]
        assert prop(mine, "pushed_destination") == os.path.join(str(serving), version)
        assert prop(tfx_one, "pushed_destination") == os.path.join(str(tfx_serving), tfx_version)
        assert prop(mine, "pushed_digest") == record(serving, version)["digest"]
        # the same bytes: the stamped model, in the version and in the PushedModel artifact
        stamped = tree(
            Path(run.nodes["InfraValidator"].outputs["blessing"][0].uri, "stamped_model")
        )
        assert tree(serving / version) == stamped == tree(tfx_serving / tfx_version)
        pushed_copy = tree(Path(mine.uri))
        pushed_copy.pop(".pushgate-artifact.json")
        assert pushed_copy == tree(Path(tfx_one.uri)) == stamped


def test_the_journal_traces_each_version_to_its_pipeline_run(pipeline: Pipeline) -> None:
    serving = pipeline.root / "serving"
    for run, version in zip(pipeline.runs[:2], numeric(serving), strict=True):
        node = run.nodes["Pusher"]
        lineage = record(serving, version)["lineage"]
        assert lineage == {
            "orchestrator": "tfx",
            "pipeline": PIPELINE,
            "run_id": run.run_id,
            "component": "Pusher",
            "execution_id": node.execution_id,
            "input_artifacts": {k: [a.id for a in v] for k, v in sorted(node.inputs.items())},
        }
        assert set(lineage["input_artifacts"]) == {"infra_blessing", "model_blessing"}


def test_the_warmup_requests_replay_on_the_pushed_model(pipeline: Pipeline) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    serving = pipeline.root / "serving"
    for run, version in zip(pipeline.runs[:2], numeric(serving), strict=True):
        pushed = serving / version
        warmup = pushed / "assets.extra" / "tf_serving_warmup_requests"
        model = tf.saved_model.load(str(pushed))
        trained = tf.saved_model.load(
            str(Path(run.nodes["Trainer"].outputs["model"][0].uri, "Format-Serving"))
        )
        logs = []
        for raw in tf.data.TFRecordDataset(str(warmup)):
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(raw.numpy())
            logs.append(log)
        assert len(logs) == 3
        for log in logs:
            request = log.predict_log.request
            signature = request.model_spec.signature_name or "serving_default"
            inputs = {k: tf.make_tensor_proto(v) for k, v in request.inputs.items()}
            tensors = {k: tf.constant(tf.make_ndarray(v)) for k, v in inputs.items()}
            got = model.signatures[signature](**tensors)["outputs"].numpy()
            want = trained.signatures[signature](**tensors)["outputs"].numpy()
            assert got.shape == (1, 1) and (got == want).all()
            assert 0.0 <= float(got[0][0]) <= 1.0


def test_the_component_pushes_to_s3(pipeline: Pipeline, s3_server: Any) -> None:
    import boto3

    options = s3_server.options()
    bucket, _, prefix = pipeline.s3["base"].removeprefix("s3://").partition("/")
    client = boto3.client(
        "s3",
        endpoint_url=options["endpoint"],
        aws_access_key_id=options["access_key_id"],
        aws_secret_access_key=options["secret_access_key"],
        region_name=options["region"],
    )
    serving = pipeline.root / "serving"
    for run, local_version in zip(pipeline.runs, [*numeric(serving), None], strict=True):
        pushed = run.nodes["S3Pusher"].outputs["pushed_model"][0]
        if local_version is None:
            assert prop(pushed, "pushed") == 0
            continue
        version = prop(pushed, "pushed_version")
        assert prop(pushed, "pushed_destination") == f"{pipeline.s3['base']}/{version}"
        key = f"{prefix}/.pushgate/records/{version}.json"
        rec = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert (
            rec["digest"]
            == record(serving, local_version)["digest"]
            == prop(pushed, "pushed_digest")
        )
        assert rec["lineage"]["component"] == "S3Pusher"
        listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{version}/")
        assert {o["Key"].split(f"/{version}/", 1)[1] for o in listed["Contents"]} == set(
            tree(serving / local_version)
        )


def test_adopt_takes_over_the_versions_tfx_pushed(pipeline: Pipeline) -> None:
    base = pipeline.root / "tfx-serving"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pushgate", *args], capture_output=True, text=True, env=env
        )

    assert cli("verify", str(base), "--json").returncode == 3
    proc = cli("adopt", str(base), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["adopted"] == numeric(base)
    assert cli("verify", str(base), "--json").returncode == 0
    # the bytes TFX pushed are the bytes pushgate pushed: the same digests
    ours = [
        record(pipeline.root / "serving", v)["digest"] for v in numeric(pipeline.root / "serving")
    ]
    assert [record(base, v)["digest"] for v in numeric(base)] == ours


def test_the_script_facade_refuses_channels_at_once(pipeline: Pipeline) -> None:
    channel = tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model)
    with pytest.raises(pushgate.PushgateError, match=r"from pushgate\.tfx import Pusher"):
        pushgate.Pusher(
            model=channel,
            push_destination={"filesystem": {"base_directory": str(pipeline.root / "x")}},
        )


def test_import_pushgate_never_imports_tfx() -> None:
    code = (
        "import sys, pushgate, pushgate.tfx, pushgate.tfx.facade; "
        "print(sorted(m for m in sys.modules "
        "if m == 'tfx' or m.startswith(('tfx.', 'tensorflow'))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_executors_work_on_artifacts_in_a_bucket(
    pipeline: Pipeline, s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on Vertex (a pipeline_root in a bucket): the InfraValidator validates from the bucket's
    model and examples and uploads its blessing; the Pusher pushes the stamped model from there.
    The executors are called as TFX's launcher calls them, with TFX's artifact objects."""
    import boto3
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    from pushgate.tfx import InfraValidatorExecutor, PusherExecutor

    options = s3_server.options()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", options["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", options["secret_access_key"])
    client = boto3.client(
        "s3",
        endpoint_url=options["endpoint"],
        aws_access_key_id=options["access_key_id"],
        aws_secret_access_key=options["secret_access_key"],
        region_name=options["region"],
    )
    bucket = s3_server.make_bucket()
    run = pipeline.runs[1]

    def upload(local: Path, prefix: str) -> str:
        for rel, data in tree(local).items():
            client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=data)
        return f"s3://{bucket}/{prefix}"

    trained = Path(run.nodes["Trainer"].outputs["model"][0].uri)
    model = standard_artifacts.Model()
    model.uri = upload(trained, "root/Trainer/model/2")
    examples = standard_artifacts.Examples()
    examples.uri = upload(
        Path(run.nodes["CsvExampleGen"].outputs["examples"][0].uri), "root/CsvExampleGen/examples/1"
    )
    examples.split_names = '["train", "eval"]'
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = f"s3://{bucket}/root/InfraValidator/blessing/5"
    storage = json.dumps(
        {"storage_options": {"endpoint": options["endpoint"], "region": options["region"]}}
    )
    request_spec = tfx.proto.RequestSpec(
        tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(),
        num_examples=3,
        make_warmup=True,
    )
    InfraValidatorExecutor().Do(
        {"model": [model], "examples": [examples]},
        {"blessing": [blessing]},
        {"request_spec": proto_utils.proto_to_json(request_spec), "pushgate_options": storage},
    )
    assert blessing.get_int_custom_property("blessed") == 1
    assert blessing.get_int_custom_property("has_model") == 1
    listed = client.list_objects_v2(Bucket=bucket, Prefix="root/InfraValidator/blessing/5/")
    keys = {o["Key"].split("/blessing/5/", 1)[1] for o in listed["Contents"]}
    assert {"INFRA_BLESSED", "stamped_model/saved_model.pb"} <= keys
    assert "stamped_model/assets.extra/tf_serving_warmup_requests" in keys

    base = pipeline.root / "from-bucket"
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(pipeline.root / "from-bucket-pushed")
    destination = tfx.proto.PushDestination(
        filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(base))
    )
    PusherExecutor().Do(
        {"infra_blessing": [blessing]},
        {"pushed_model": [pushed]},
        {"push_destination": proto_utils.proto_to_json(destination), "pushgate_options": storage},
    )
    assert pushed.get_int_custom_property("pushed") == 1
    version = pushed.get_string_custom_property("pushed_version")
    got = tree(base / version)
    warmup = got.pop("assets.extra/tf_serving_warmup_requests")
    assert got == tree(trained / "Format-Serving")
    assert len(warmup) > 0


def test_component_options_refuse_credentials_and_bad_destinations() -> None:
    """pushgate's options are execution properties, stored in ML Metadata: no secrets there."""
    blessing = tfx.dsl.Channel(type=tfx.types.standard_artifacts.InfraBlessing)
    destination = {"filesystem": {"base_directory": "s3://bucket/models"}}
    with pytest.raises(pushgate.PushgateError, match="looks like a credential"):
        Pusher(
            infra_blessing=blessing,
            push_destination=destination,
            storage_options={"endpoint": "http://127.0.0.1:9000", "secret_access_key": "x"},
        )
    with pytest.raises(pushgate.PushgateError, match="push_destination"):
        Pusher(infra_blessing=blessing, push_destination={"filesystem": {"base_dir": "/x"}})
    with pytest.raises(pushgate.PushgateError, match="needs model or infra_blessing"):
        Pusher(push_destination=destination)
    pusher = Pusher(infra_blessing=blessing, push_destination=destination, versioning="sequential")
    options = json.loads(pusher.exec_properties["pushgate_options"])
    assert options == {"versioning": "sequential"}
    assert pusher.outputs["pushed_model"].type_name == "PushedModel"
