"""The model layouts pushgate publishes, and the check that a directory is one of them.

A version directory is servable when its top level holds the entry file of a known server or
runtime. The table below is the one place that knows them (``push`` checks the model with it,
``adopt`` checks existing versions, serving code finds the entry file with it):

=====================  ==============================================  ============================
kind                   entry at the top of the version directory        served by
=====================  ==============================================  ============================
``tf-saved-model``     ``saved_model.pb`` or ``saved_model.pbtxt``      TF Serving, Triton (TF)
``onnx``               ``model.onnx`` (file or Triton's directory), or  Triton, ONNX Runtime servers
                       another ``*.onnx`` file
``triton-python``      ``model.py``                                     Triton Python backend
``triton-tensorrt``    ``model.plan``                                   Triton TensorRT backend
``torchscript``        ``model.pt``, or another ``*.pt`` file           Triton PyTorch (LibTorch)
``triton-savedmodel``  ``model.savedmodel/`` (a SavedModel inside)      Triton TensorFlow backend
``triton-graphdef``    ``model.graphdef``                               Triton TensorFlow backend
``triton-netdef``      ``model.netdef``                                 Triton Caffe2 (legacy)
``openvino``           ``model.xml`` (with its ``model.bin``)           Triton / OpenVINO Serving
``mlflow``             ``MLmodel``                                      MLflow, MLServer
``sklearn``            ``model.joblib``, ``model.pkl``, ``model.pickle``  MLServer SKLearn runtime
``xgboost``            ``model.bst``, ``model.ubj``                     MLServer XGBoost/LightGBM
=====================  ==============================================  ============================

The list is deliberately conservative: a generic name (``model.json``, ``model.bin`` alone, a
``*.pth`` state dict, a ``.keras``/``.h5`` file no server loads as is) is not taken as a model;
``--any-model`` pushes such a directory anyway. A blessing directory (the Evaluator's or the
InfraValidator's markers, or pushgate's properties file of a blessing) is never a model, whatever
``--any-model`` says: pushing one would publish a verdict where a server expects a model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pushgate.errors import InputError

#: the marker files of TFX's blessing artifacts (ModelBlessing, InfraBlessing)
BLESSING_MARKERS = ("BLESSED", "NOT_BLESSED", "INFRA_BLESSED", "INFRA_NOT_BLESSED")
#: the artifact types of pushgate's own blessing properties files
BLESSING_TYPES = ("ModelBlessing", "InfraBlessing")
#: the kind recorded for a directory pushed with ``--any-model`` that matches no layout
UNRECOGNISED = "unrecognised"


@dataclass(frozen=True)
class Layout:
    """One servable layout: the names that identify it at the top of a version directory."""

    kind: str
    #: exact names, the first being the entry a server loads; a name ending in ``/`` is a
    #: directory, any other a file
    entries: tuple[str, ...]
    #: file-name suffix that also identifies it (``.pt``), or ``""``
    suffix: str = ""
    served_by: str = ""

    def describe(self) -> str:
        names = " or ".join(self.entries + ((f"*{self.suffix}",) if self.suffix else ()))
        return f"{names} ({self.served_by})"


LAYOUTS: tuple[Layout, ...] = (
    Layout("tf-saved-model", ("saved_model.pb", "saved_model.pbtxt"), "", "TF SavedModel"),
    Layout("onnx", ("model.onnx", "model.onnx/"), ".onnx", "ONNX"),
    Layout("triton-python", ("model.py",), "", "Triton Python backend"),
    Layout("triton-tensorrt", ("model.plan",), "", "TensorRT"),
    Layout("torchscript", ("model.pt",), ".pt", "TorchScript"),
    Layout("triton-savedmodel", ("model.savedmodel/",), "", "Triton TensorFlow SavedModel"),
    Layout("triton-graphdef", ("model.graphdef",), "", "Triton TensorFlow GraphDef"),
    Layout("triton-netdef", ("model.netdef",), "", "Triton Caffe2 NetDef"),
    Layout("openvino", ("model.xml",), "", "OpenVINO IR, with model.bin"),
    Layout("mlflow", ("MLmodel",), "", "MLflow model"),
    Layout("sklearn", ("model.joblib", "model.pkl", "model.pickle"), "", "scikit-learn"),
    Layout("xgboost", ("model.bst", "model.ubj"), "", "XGBoost / LightGBM"),
)


def _top_level(path: Path) -> dict[str, bool]:
    """``{name: is a directory}`` of the entries at the top of ``path`` (links followed)."""
    out: dict[str, bool] = {}
    try:
        with os.scandir(path) as it:
            for e in it:
                try:
                    out[e.name] = e.is_dir()
                except OSError:  # a link loop: neither; the file walk reports it by name
                    out[e.name] = False
    except OSError as e:
        raise InputError(f"cannot read model directory {path}: {e.strerror}") from e
    return out


def match_layout(path: Path) -> Layout | None:
    """The first layout whose entry is at the top of ``path``, or None."""
    return match_top(_top_level(path))


def match_top(top: dict[str, bool]) -> Layout | None:
    """The first layout whose entry is among ``top`` (``{name: is a directory}`` of the entries
    at the top of a version; from a file listing for a version in a bucket), or None."""
    for layout in LAYOUTS:
        for name in layout.entries:
            if top.get(name.rstrip("/")) is name.endswith("/"):
                return layout
        if layout.suffix and any(
            n.endswith(layout.suffix) and not is_dir for n, is_dir in top.items()
        ):
            return layout
    return None


def entry_file(path: Path) -> str | None:
    """The name of the entry a server loads in the version directory ``path`` (``model.onnx``,
    ``saved_model.pb``...), or None when it matches no layout."""
    layout = match_layout(path)
    if layout is None:
        return None
    top = _top_level(path)
    for name in layout.entries:
        if name.rstrip("/") in top:
            return name.rstrip("/")
    return next(n for n in sorted(top) if layout.suffix and n.endswith(layout.suffix))


def blessing_reason(path: Path) -> str | None:
    """Why ``path`` is a blessing directory (a marker or a blessing properties file), or None."""
    top = _top_level(path)
    markers = [m for m in BLESSING_MARKERS if m in top and not top[m]]
    if markers:
        return f"it holds the blessing marker {markers[0]}"
    props = path / ".pushgate-artifact.json"
    try:
        doc = json.loads(props.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind in BLESSING_TYPES:
        return f"its {props.name} says it is a {kind}"
    return None


def refuse_blessing(path: Path, what: str) -> None:
    """Raise InputError when ``path`` is a blessing directory (never a model)."""
    why = blessing_reason(path)
    if why is not None:
        raise InputError(
            f"{what} {path} is a blessing directory, not a model ({why}); pass the model "
            "(the Trainer's Model artifact) as --model and this directory as --model-blessing "
            "or --infra-blessing"
        )


def _found(top: dict[str, bool]) -> str:
    names = sorted(f"{n}/" if d else n for n, d in top.items())
    if not names:
        return "nothing"
    shown = ", ".join(names[:10])
    return shown + (f" and {len(names) - 10} more" if len(names) > 10 else "")


def _hint(path: Path, top: dict[str, bool]) -> str:
    if "Format-TFMA" in top and "Format-Serving" not in top:
        return (
            " It looks like a TFX Model artifact holding only Format-TFMA/ (the Evaluator's "
            "copy, which no server loads): push the artifact that has Format-Serving/."
        )
    inside = [n for n, d in sorted(top.items()) if d and match_layout(path / n) is not None]
    if inside:
        return f" The model may be one level down: --model {path / inside[0]}."
    return ""


def check_servable(path: Path, what: str = "model") -> str:
    """The layout kind of the model directory ``path`` (see :data:`LAYOUTS`); raises InputError
    naming what was found and what is expected when it is a blessing or no known layout."""
    refuse_blessing(path, what)
    layout = match_layout(path)
    if layout is not None:
        return layout.kind
    top = _top_level(path)
    expected = "; ".join(layout.describe() for layout in LAYOUTS)
    raise InputError(
        f"{what} {path} is not a model pushgate knows how to serve: it holds {_found(top)}. "
        f"Expected at its top one of: {expected}.{_hint(path, top)} "
        "To publish this directory as it is, pass --any-model (recorded)."
    )


def servable_kind(path: Path, what: str = "model", *, any_model: bool = False) -> str:
    """:func:`check_servable`, except that with ``any_model`` a directory matching no layout is
    accepted (kind ``unrecognised``); a blessing directory is refused either way."""
    if not any_model:
        return check_servable(path, what)
    refuse_blessing(path, what)
    layout = match_layout(path)
    return layout.kind if layout is not None else UNRECOGNISED
