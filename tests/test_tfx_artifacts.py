"""TFX's Pusher decision from artifact objects, without TFX.

TFX decides from the ``blessed`` custom property in ML Metadata; pushgate decides the same from
any object with ``.uri`` and TFX's property getters (TFX's Artifact, or a user's own class like
``Artifact`` below, which is the seam a user plugs into), and refuses when the marker file in the
artifact's directory disagrees. These tests push real model directories with real marker files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import pushgate
from conftest import blessing, numeric_dirs, tfx_model
from pushgate.errors import InputError, MissingDependencyError


class Artifact:
    """An artifact as TFX's Artifact presents it: a uri and custom properties."""

    def __init__(self, uri: Path | str, **properties: Any) -> None:
        self.uri = str(uri)
        self.properties: dict[str, Any] = dict(properties)

    def has_custom_property(self, key: str) -> bool:
        return key in self.properties

    def get_custom_property(self, key: str) -> Any:
        return self.properties.get(key)

    def get_int_custom_property(self, key: str) -> int:
        return int(self.properties.get(key, 0))

    def set_int_custom_property(self, key: str, value: int) -> None:
        self.properties[key] = int(value)

    def set_string_custom_property(self, key: str, value: str) -> None:
        self.properties[key] = str(value)


class GetterOnly:
    """The smallest artifact a user can pass: a uri and TFX's int getter (unset reads 0)."""

    def __init__(self, uri: Path, blessed: int | None) -> None:
        self.uri = str(uri)
        self._blessed = blessed

    def get_int_custom_property(self, key: str) -> int:
        assert key == "blessed"
        return self._blessed or 0


MARKERS = {"model": ("BLESSED", "NOT_BLESSED"), "infra": ("INFRA_BLESSED", "INFRA_NOT_BLESSED")}

# (blessed property, marker file) -> pushed?, words the reason must hold
TABLE = [
    (1, "blessed", True, "blessed"),
    (0, "not_blessed", False, "NOT blessed"),
    (1, "not_blessed", False, "disagrees with itself: its blessed property is 1 but the marker"),
    (0, "blessed", False, "disagrees with itself: its blessed property is 0 but the marker"),
    (None, "blessed", False, "its blessed property is unset but the marker file says blessed"),
    (1, "no_verdict", False, "its blessed property is 1 but there is no marker file"),
    (None, "not_blessed", False, "NOT blessed"),
]


@pytest.mark.parametrize("kind", ["model", "infra"])
@pytest.mark.parametrize(("flag", "marker", "pushed", "reason"), TABLE)
def test_the_blessed_property_decides_and_the_marker_must_agree(
    tmp_path: Path, kind: str, flag: int | None, marker: str, pushed: bool, reason: str
) -> None:
    path = blessing(tmp_path / "blessing", kind, marker)
    props = {} if flag is None else {"blessed": flag}
    art = Artifact(path, **props)
    base = tmp_path / "serving"
    result = pushgate.push(
        model=Artifact(tfx_model(tmp_path / "model")),
        to=base,
        **{f"{kind}_blessing": [art]},
    )
    assert result.pushed is pushed, result.reason
    assert reason in result.reason
    assert numeric_dirs(base) == ([result.version] if pushed else [])
    if not pushed and "disagrees" in reason:
        assert str(path) in result.reason


@pytest.mark.parametrize(("flag", "pushed"), [(1, True), (0, False), (None, False)])
def test_an_artifact_with_only_the_int_getter_reads_unset_as_zero(
    tmp_path: Path, flag: int | None, pushed: bool
) -> None:
    path = blessing(tmp_path / "b", "model", "blessed" if flag == 1 else "not_blessed")
    result = pushgate.push(
        model=tfx_model(tmp_path / "model"),
        model_blessing=GetterOnly(path, flag),
        to=tmp_path / "serving",
    )
    assert result.pushed is pushed, result.reason


def test_an_empty_list_counts_as_absent(tmp_path: Path) -> None:
    infra = Artifact(blessing(tmp_path / "infra", "infra", "blessed"), blessed=1)
    result = pushgate.push(
        model=[Artifact(tfx_model(tmp_path / "model"))],
        model_blessing=[],
        infra_blessing=[infra],
        to=tmp_path / "serving",
    )
    assert result.pushed, result.reason
    assert result.blessings["model_blessing"].verdict is pushgate.Verdict.ABSENT
    assert result.reason == "blessed (infra blessing)"


def test_two_artifacts_for_one_input_are_refused(tmp_path: Path) -> None:
    a = Artifact(blessing(tmp_path / "a", "model", "blessed"), blessed=1)
    b = Artifact(blessing(tmp_path / "b", "model", "blessed"), blessed=1)
    with pytest.raises(InputError, match="expected one artifact, got 2"):
        pushgate.push(model=tfx_model(tmp_path / "m"), model_blessing=[a, b], to=tmp_path / "s")


def test_a_pushed_model_artifact_gets_tfx_properties(tmp_path: Path) -> None:
    out = Artifact(tmp_path / "pushed")
    base = tmp_path / "serving"
    result = pushgate.push(
        model=tfx_model(tmp_path / "model"),
        model_blessing=[Artifact(blessing(tmp_path / "b", "model", "blessed"), blessed=1)],
        pushed_model=[out],
        to=base,
    )
    assert result.pushed
    assert out.properties["pushed"] == 1
    assert out.properties["pushed_version"] == result.version
    assert out.properties["pushed_destination"] == result.destination
    assert out.properties["pushed_destination"] == str(base.resolve() / result.version)
    assert out.properties["pushed_digest"] == result.digest
    assert json.loads(out.properties["pushed_destinations"]) == [result.destination]
    assert (tmp_path / "pushed" / "saved_model.pb").exists()


def test_a_refused_push_marks_the_pushed_model_not_pushed(tmp_path: Path) -> None:
    out = Artifact(tmp_path / "pushed", pushed=1)
    result = pushgate.push(
        model=tfx_model(tmp_path / "model"),
        model_blessing=Artifact(blessing(tmp_path / "b", "model", "not_blessed"), blessed=0),
        pushed_model=out,
        to=tmp_path / "serving",
    )
    assert not result.pushed
    assert out.properties == {"pushed": 0}


def test_lineage_is_stored_in_the_record(tmp_path: Path) -> None:
    lineage = {
        "pipeline": "taxi",
        "run_id": "run-7",
        "component": "Pusher",
        "execution_id": 42,
        "input_artifacts": {"model": [3], "model_blessing": [9]},
    }
    base = tmp_path / "serving"
    result = pushgate.push(model=tfx_model(tmp_path / "model"), to=base, lineage=lineage)
    record = json.loads((base / ".pushgate" / "records" / f"{result.version}.json").read_text())
    assert record["lineage"] == lineage
    plain = pushgate.push(model=tfx_model(tmp_path / "m2", seed=1), to=base)
    record = json.loads((base / ".pushgate" / "records" / f"{plain.version}.json").read_text())
    assert "lineage" not in record


def test_the_components_without_tfx_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import pushgate.tfx

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tfx" else real(name, *a)
    )
    with pytest.raises(MissingDependencyError, match=r"pip install 'pushgate\[tfx\]'") as e:
        pushgate.tfx.Pusher  # noqa: B018
    assert e.value.exit_code == 2
