#!/usr/bin/env bash
# Create .venv (once) and install cortexbench with its test extras. Idempotent; safe to re-run.
# TORCH_SPEC overrides the torch/torchvision pin (e.g. a CUDA or CPU build of your choice).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch first and pinned: a bare "torch" requirement would otherwise pull several GB of CUDA wheels.
.venv/bin/python -m pip install -q ${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
.venv/bin/python -m pip install -q -e ".[test]"
