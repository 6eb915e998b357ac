#!/bin/bash
# torch-venv.sh [BUILD_DIR [CMAKE_ARGS...]]
#
# Makes the Python venv of the PyTorch 2.x build (README, "PyTorch 2.x and CUDA") and, given a
# BUILD_DIR, configures flowinfer there against the LibTorch inside its torch wheel: the
# LibTorch that users' GPU hosts have, built with CUDA, so FLOWINFER_WITH_CUDA is compiled and
# linked (CUDA's toolkit must be installed: /usr/local/cuda or nvcc on PATH; no GPU is needed).
# The venv also holds what the PyTorch-oracle test runs (torchvision, timm, numpy,
# openslide-python, h5py), and is found by every build of this checkout (tests/CMakeLists.txt).
#
#   FLOWINFER_VENV  where the venv goes (default: .venv-torch in the project root)
#   PYTHON          the interpreter that makes it (default: python3; 3.9 or newer)
#
# Prints each step's wall time. A venv that already holds the pinned versions is reused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${FLOWINFER_VENV:-$root/.venv-torch}
python=${PYTHON:-python3}

# torch 2.11.0 is the GPU host's version; its PyPI wheel for Linux x86-64 is built with CUDA
# 13.0 and pulls CUDA's runtime libraries (cuBLAS, cuDNN, NCCL, ...) as nvidia-* wheels.
pins=(torch==2.11.0 torchvision==0.26.0 timm==1.0.31 numpy==2.4.6 openslide-python==1.4.7 h5py==3.16.0)

t0=$SECONDS
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" - "${pins[@]}" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(any(version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))
EOF
then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${pins[@]}"
fi
torch_dir=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
echo "torch-venv: $venv ($("$venv/bin/python" -c 'import torch; print(torch.__version__)')): $((SECONDS - t0)) s"

[ $# -ge 1 ] || exit 0
build=$1
shift
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
t0=$SECONDS
# The torch package directory itself, not torch.utils.cmake_prefix_path: TorchConfig looks up
# libtorch.so in the prefixes before its own lib/, and a machine with Debian's libtorch-dev
# would otherwise mix that library with the wheel's headers (cmake/torch.cmake checks).
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFLOWINFER_TESTS=ON \
  -DCMAKE_PREFIX_PATH="$torch_dir" -DFLOWINFER_PYTHON="$venv/bin/python" "$@" >/dev/null
grep -q '^FLOWINFER_WITH_CUDA:INTERNAL=ON' "$build/CMakeCache.txt" 2>/dev/null ||
  echo "torch-venv: note: $build has no CUDA support (this torch wheel is CPU-only)"
echo "torch-venv: configured $build against $torch_dir: $((SECONDS - t0)) s"
