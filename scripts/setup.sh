#!/usr/bin/env bash
# Creates .venv (if missing) and installs hwnas into it with its test dependencies.
# torch is installed first at a pinned CPU-friendly version, unless one is already importable in .venv,
# so that the project's open torch range does not pull a multi-GB CUDA build. Override with
# HWNAS_TORCH="torch==X.Y.Z" (or HWNAS_TORCH="" to skip) to choose another build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
TORCH_SPEC=${HWNAS_TORCH-torch==2.13.0}
if [ -n "$TORCH_SPEC" ] && ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/pip install --quiet --disable-pip-version-check "$TORCH_SPEC"
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
