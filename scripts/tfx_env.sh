#!/usr/bin/env bash
# Build (or reuse) .venv-tfx: a Python 3.10 environment with TFX 1.16 and pushgate installed
# editable into it, as a TFX user would have it. tests/tfx_pipeline/ runs with it (scripts/test.sh);
# the TFMA benchmarks use it too. Reused as is when complete for the same pyproject.toml and script.
# Env: PUSHGATE_TFX_PYTHON (a Python 3.9/3.10 interpreter), PUSHGATE_TFX_VENV (default .venv-tfx).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
VENV=${PUSHGATE_TFX_VENV:-.venv-tfx}
TFX_VERSION=1.16.0
# What the pipeline tests need beside TFX (pinned below TFX's own ranges: they change none of them).
TEST_TOOLS=("pytest>=8" "moto[server]>=5" "boto3" "tf-keras")
# pushgate's extras a TFX user installs: object stores; TensorFlow comes from TFX.
PUSHGATE_EXTRAS="cloud,tensorflow,tfx"

stamp_of() {
  cat "$0" scripts/tfx-constraints.txt pyproject.toml | sha256sum | cut -c1-16
}
STAMP="$VENV/.pushgate-tfx-complete"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_of)" ]; then
  exit 0
fi

find_python() {
  if [ -n "${PUSHGATE_TFX_PYTHON:-}" ]; then echo "$PUSHGATE_TFX_PYTHON"; return; fi
  for p in python3.10 "$HOME"/.pyenv/versions/3.10*/bin/python python3.9; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; assert sys.version_info[:2] in ((3, 9), (3, 10))' 2>/dev/null; then
      echo "$p"; return
    fi
  done
  echo "tfx_env.sh: TFX $TFX_VERSION needs Python 3.9 or 3.10; none found (set PUSHGATE_TFX_PYTHON)" >&2
  exit 2
}

if [ ! -x "$VENV/bin/python" ]; then
  "$(find_python)" -m venv "$VENV"
fi
rm -f "$STAMP"
"$VENV/bin/pip" install -q --upgrade "pip>=24" "setuptools>=68" wheel
"$VENV/bin/pip" install -q -c scripts/tfx-constraints.txt "tfx==$TFX_VERSION" "${TEST_TOOLS[@]}"
# Snapshot TFX's packages, install pushgate, and fail if pushgate changed any of them.
"$VENV/bin/pip" freeze --exclude-editable | sort > "$VENV/.before.txt"
"$VENV/bin/pip" install -q -e ".[$PUSHGATE_EXTRAS]"
"$VENV/bin/pip" freeze --exclude-editable | sort > "$VENV/.after.txt"
changed=$(comm -23 "$VENV/.before.txt" "$VENV/.after.txt" || true)
if [ -n "$changed" ]; then
  echo "tfx_env.sh: installing pushgate[$PUSHGATE_EXTRAS] changed TFX's packages:" >&2
  echo "$changed" >&2
  exit 1
fi
stamp_of > "$STAMP"
