"""What model servers read and write inside a version directory.

- Entry files: the file whose presence makes a server start loading a version. TF Serving:
  ``saved_model.pb`` / ``saved_model.pbtxt``; Triton: each backend's default model name at the
  top of the version (``model.py``, ``model.onnx``, ``model.plan``, ``model.pt``,
  ``model.savedmodel/``, ...), taken from the one table in :mod:`pushgate.model_layout`. A
  Triton version directory without its model file hangs Triton (the version stays LOADING for
  ever and the poll loop stops).
- Server-written paths: what a server writes into a version it loaded. Triton's Python backend
  writes ``__pycache__/`` next to ``model.py``. They are never part of a version's content:
  pushgate does not push them, ``verify`` does not count them as extra files, ``rollback``
  does not copy them.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from pushgate.model_layout import LAYOUTS

#: TF Serving's entry files (any depth; the top-level one is what TF Serving reads)
TFSERVING_ENTRY_FILES = ("saved_model.pb", "saved_model.pbtxt")
#: the layouts (:mod:`pushgate.model_layout`) Triton loads from a model file or directory
_TRITON_KINDS = (
    "onnx",
    "torchscript",
    "openvino",
    "triton-python",
    "triton-tensorrt",
    "triton-savedmodel",
    "triton-graphdef",
    "triton-netdef",
)
#: Triton's default model names at the top of a version; ``name/`` is a directory
TRITON_ENTRIES = tuple(e for lay in LAYOUTS if lay.kind in _TRITON_KINDS for e in lay.entries)
#: directory names only a server writes into a version (never part of what pushgate publishes)
SERVER_WRITTEN_DIRS = ("__pycache__",)


def is_triton_entry(rel: str) -> bool:
    """True for Triton's model file at the top of a version (``model.py``, ...), or a file in
    its model directory (``model.savedmodel/...``)."""
    parts = PurePosixPath(rel).parts
    if not parts:
        return False
    return (parts[0] + ("/" if len(parts) > 1 else "")) in TRITON_ENTRIES


def is_server_written(rel: str) -> bool:
    """True for a path inside a version that a model server writes itself (``__pycache__/``)."""
    return any(part in SERVER_WRITTEN_DIRS for part in PurePosixPath(rel).parts[:-1])
