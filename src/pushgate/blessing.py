"""Blessings: the verdicts of the Evaluator (ModelBlessing) and InfraValidator (InfraBlessing).

A blessing artifact is a directory holding one empty marker file, as TFX writes it:

========================  ===============  ===================
artifact                  blessed          not blessed
========================  ===============  ===================
ModelBlessing (Evaluator) ``BLESSED``      ``NOT_BLESSED``
InfraBlessing             ``INFRA_BLESSED`` ``INFRA_NOT_BLESSED``
========================  ===============  ===================

A directory with neither marker has **no verdict** (TFX's Evaluator without thresholds). pushgate
keeps the three states apart everywhere: ``blessed``, ``not_blessed``, ``no_verdict``, plus
``absent`` when no blessing was given at all.

Given a TFX artifact object (``.uri`` plus property getters, see :mod:`pushgate.artifact`), its
``blessed`` custom property decides, as in TFX's Pusher (unset reads as 0, as TFX reads it); the
marker file in its directory must agree, else the blessing fails with a note saying so (fail
closed: an artifact whose metadata and files disagree was tampered with or half-written).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushgate.artifact import has_properties, int_property, read_properties, write_properties
from pushgate.errors import InputError


class Verdict(str, enum.Enum):
    """What one blessing input says."""

    BLESSED = "blessed"
    NOT_BLESSED = "not_blessed"
    NO_VERDICT = "no_verdict"
    ABSENT = "absent"

    def __str__(self) -> str:
        return self.value


class BlessingKind(str, enum.Enum):
    """Which validator a blessing comes from."""

    MODEL = "model_blessing"
    INFRA = "infra_blessing"

    @property
    def markers(self) -> tuple[str, str]:
        """(blessed marker, not-blessed marker) file names."""
        if self is BlessingKind.MODEL:
            return ("BLESSED", "NOT_BLESSED")
        return ("INFRA_BLESSED", "INFRA_NOT_BLESSED")

    @property
    def artifact_type(self) -> str:
        return "ModelBlessing" if self is BlessingKind.MODEL else "InfraBlessing"


@dataclass(frozen=True)
class Blessing:
    """One blessing input as read from disk."""

    kind: BlessingKind
    verdict: Verdict
    path: Path | None = None
    properties: dict[str, Any] | None = None
    #: why a failing verdict fails, when the verdict alone does not say it (a disagreement)
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc = {
            "verdict": self.verdict.value,
            "path": str(self.path) if self.path else None,
            "properties": self.properties or {},
        }
        if self.note:
            doc["note"] = self.note
        return doc


def absent(kind: BlessingKind) -> Blessing:
    """The blessing of an input that was not given."""
    return Blessing(kind=kind, verdict=Verdict.ABSENT)


def read_blessing(path: Path, kind: BlessingKind) -> Blessing:
    """Read a blessing directory's marker files (and pushgate's properties, if present)."""
    if not path.exists():
        raise InputError(
            f"{kind.value.replace('_', ' ')} path does not exist: {path} "
            f"(give the {kind.artifact_type} artifact directory the validator wrote)"
        )
    if not path.is_dir():
        raise InputError(
            f"{kind.value.replace('_', ' ')} path is a file, not an artifact directory: {path}"
        )
    yes, no = kind.markers
    has_yes, has_no = (path / yes).exists(), (path / no).exists()
    if has_yes and has_no:
        raise InputError(
            f"{path} holds both {yes} and {no}; the blessing is ambiguous. "
            "Re-run the validator into an empty directory."
        )
    props = read_properties(path)
    if has_yes:
        verdict = Verdict.BLESSED
    elif has_no:
        verdict = Verdict.NOT_BLESSED
    else:
        verdict = Verdict.NO_VERDICT
    flag = props.get("blessed")
    if (
        flag is not None
        and verdict is not Verdict.NO_VERDICT
        and bool(int(flag)) != (verdict is Verdict.BLESSED)
    ):
        raise InputError(
            f"{path}: marker file says {verdict.value} but its properties say blessed={flag}; "
            "the artifact was edited by hand or half-written. Re-run the validator."
        )
    return Blessing(kind=kind, verdict=verdict, path=path, properties=props)


def clear_verdict(path: Path, kind: BlessingKind) -> None:
    """Remove the verdict markers a previous run left in ``path``, before a validator runs, so a
    run that fails leaves no verdict behind (fail closed: a stale BLESSED is never pushed)."""
    if not path.is_dir():
        return
    for name in kind.markers:
        try:
            (path / name).unlink(missing_ok=True)
        except OSError as e:
            raise InputError(
                f"cannot remove the earlier verdict {path / name}: {e.strerror}; fix the "
                "permissions of the output directory or give another one"
            ) from e


def write_blessing(
    path: Path, kind: BlessingKind, blessed: bool, properties: dict[str, Any] | None = None
) -> Blessing:
    """Write a blessing artifact the way TFX does (marker + ``blessed`` property)."""
    path.mkdir(parents=True, exist_ok=True)
    yes, no = kind.markers
    for name in (yes, no):
        (path / name).unlink(missing_ok=True)
    (path / (yes if blessed else no)).touch()
    props = {**(properties or {}), "blessed": 1 if blessed else 0}
    write_properties(path, kind.artifact_type, props)
    return Blessing(
        kind=kind,
        verdict=Verdict.BLESSED if blessed else Verdict.NOT_BLESSED,
        path=path,
        properties=props,
    )


def _marker_text(verdict: Verdict, kind: BlessingKind) -> str:
    yes, no = kind.markers
    if verdict is Verdict.BLESSED:
        return f"the marker file says blessed ({yes})"
    if verdict is Verdict.NOT_BLESSED:
        return f"the marker file says not blessed ({no})"
    return f"there is no marker file ({yes} or {no})"


def read_input_blessing(value: Any, path: Path, kind: BlessingKind) -> Blessing:
    """The blessing of one input: ``value`` as given (a path or an artifact object) and ``path``
    the local directory holding its files."""
    files = read_blessing(path, kind)
    if not has_properties(value):
        return files
    flag = int_property(value, "blessed")
    blessed = flag == 1  # TFX's test: get_int_custom_property('blessed') == 1
    said = Verdict.BLESSED if blessed else Verdict.NOT_BLESSED
    props = {**(files.properties or {}), "blessed": flag}
    if files.verdict is said:
        return Blessing(kind=kind, verdict=said, path=path, properties=props)
    shown = "unset" if flag is None else flag
    note = (
        f"disagrees with itself: its blessed property is {shown} but "
        f"{_marker_text(files.verdict, kind)}; not pushing a model whose metadata and files "
        "disagree (re-run the validator)"
    )
    return Blessing(kind=kind, verdict=Verdict.NOT_BLESSED, path=path, properties=props, note=note)
