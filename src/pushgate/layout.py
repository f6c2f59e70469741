"""What model servers read and write inside a version directory.

- Entry files: the file whose presence makes a server start loading a version. TF Serving:
  ``saved_model.pb`` / ``saved_model.pbtxt``; Triton: ``model.py``, ``model.onnx``, ``model.plan``,
  ``model.pt``, ``model.graphdef``, ``model.savedmodel/`` (each backend's default model file
  name, at the top of the version). A Triton version directory without its model file hangs
  Triton (the version stays LOADING for ever and the poll loop stops).
- Server-written paths: what a server writes into a version it loaded. Triton's Python backend
  writes ``__pycache__/`` next to ``model.py``. They are never part of a version's content:
  pushgate does not push them, ``verify`` does not count them as extra files, ``rollback``
  does not copy them.
"""

from __future__ import annotations

from pathlib import PurePosixPath

#: TF Serving's entry files (any depth; the top-level one is what TF Serving reads)
TFSERVING_ENTRY_FILES = ("saved_model.pb", "saved_model.pbtxt")
#: Triton's default model file names, at the top of a version directory
TRITON_ENTRY_FILES = (
    "model.py",
    "model.onnx",
    "model.plan",
    "model.pt",
    "model.graphdef",
    "model.netdef",
)
#: Triton's default model directory name for the TensorFlow SavedModel backend
TRITON_ENTRY_DIRS = ("model.savedmodel",)
#: directory names only a server writes into a version (never part of what pushgate publishes)
SERVER_WRITTEN_DIRS = ("__pycache__",)


def is_triton_entry(rel: str) -> bool:
    """True for a Triton model file at the top of a version (``model.py``, ...)."""
    parts = PurePosixPath(rel).parts
    return (len(parts) == 1 and parts[0] in TRITON_ENTRY_FILES) or (
        len(parts) > 1 and parts[0] in TRITON_ENTRY_DIRS
    )


def is_server_written(rel: str) -> bool:
    """True for a path inside a version that a model server writes itself (``__pycache__/``)."""
    return any(part in SERVER_WRITTEN_DIRS for part in PurePosixPath(rel).parts[:-1])
