#!/usr/bin/env bash
# Install torch 2.13.0 into the given venv before the project, so the project's torch range
# installs nothing more: the default (CUDA) build where an NVIDIA GPU answers, else the CPU
# build: from a local wheel when pip's find-links has one, else from PyTorch's CPU index.
set -euo pipefail
pip="$1/bin/pip"
if "$1/bin/python" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
  exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "NVIDIA GPU found: installing the default torch 2.13.0 build"
  "$pip" install -q "torch==2.13.0"
elif "$pip" install -q --no-index --no-deps "torch==2.13.0" >/dev/null 2>&1; then
  echo "no NVIDIA GPU: installed the local CPU build of torch 2.13.0; now its dependencies"
  "$pip" install -q "torch==2.13.0"
else
  echo "no NVIDIA GPU: installing torch 2.13.0 from PyTorch's CPU index"
  "$pip" install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
    --extra-index-url https://pypi.org/simple
fi
