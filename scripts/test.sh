#!/usr/bin/env bash
# The one test command (README, CI): install everything the tests need, then lint, type-check
# and run the whole suite. Safe to re-run; reuses .venv and node_modules when present.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
# tensorflow-serving-api pulls full TensorFlow unless installed without deps beside tensorflow-cpu
.venv/bin/pip install -q --no-deps 'tensorflow-serving-api==2.21.0'
# -- Triton (tests/triton_server.py) ---------------------------------------------------------
# The real tritonserver, its Python backend and backend stubs come in the nvidia-pytriton wheel.
# It pins numpy and protobuf versions .venv must not get, so it has its own venv, made with the
# same Python as .venv (the backend stub is built per Python version) and reused when present.
if [ ! -x .venv-triton/bin/python ] || ! .venv-triton/bin/python -c 'import pytriton' 2>/dev/null; then
  "$(.venv/bin/python -c 'import sys; print(sys._base_executable)')" -m venv .venv-triton
  .venv-triton/bin/pip install -q 'nvidia-pytriton==0.7.0'
fi
# -- end Triton ------------------------------------------------------------------------------
# Azurite (Azure Blob emulator) for the object-store tests
npm install --no-audit --no-fund --loglevel=error
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"

# --- TFX pipelines (tests/tfx_pipeline): pushgate's components in a real TFX 1.16 pipeline. TFX
# needs Python 3.9/3.10, so they run in their own environment (.venv-tfx, built or reused by
# scripts/tfx_env.sh), as a separate pytest run. PUSHGATE_TFX_TESTS=0 leaves them out (local use).
if [ "${PUSHGATE_TFX_TESTS:-1}" != "0" ]; then
  bash scripts/tfx_env.sh
  PUSHGATE_TFX_TESTS=1 .venv-tfx/bin/python -m pytest -p no:cacheprovider tests/tfx_pipeline
fi
