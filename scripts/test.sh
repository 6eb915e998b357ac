#!/bin/bash
# The README's test command, and the first part of CI's .ci/run: installs the dependencies,
# builds flowinfer twice and runs every test of both builds:
#   build/         against Debian's LibTorch 1.13 (CPU), the README's default build;
#   build-torch2/  against the LibTorch inside PyPI's torch 2.11 wheel, built with CUDA
#                  (FLOWINFER_WITH_CUDA compiled and linked; on a machine without a GPU its
#                  tests run on the CPU and the gpu-labelled ones report themselves skipped).
# Both builds run the PyTorch-oracle test with the venv's Python (scripts/torch-venv.sh).
# Tests are switched on explicitly and ctest fails when it finds none, so a build directory
# left configured without tests (README command 1) is not a silent pass. Prints each step's
# wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
step() {  # step NAME COMMAND...
  local name=$1 t0=$SECONDS
  shift
  echo "== $name"
  "$@"
  echo "== $name: $((SECONDS - t0)) s"
}
step "install dependencies" ./scripts/install-deps.sh
step "torch 2.x venv and configure" ./scripts/torch-venv.sh build-torch2
step "debian configure" cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DFLOWINFER_TESTS=ON \
  -DFLOWINFER_PYTHON="$PWD/.venv-torch/bin/python"
step "debian build" cmake --build build -j"$jobs"
step "debian tests" ctest --test-dir build --output-on-failure --no-tests=error
step "torch2 build" cmake --build build-torch2 -j"$jobs"
step "torch2 tests" ctest --test-dir build-torch2 --output-on-failure --no-tests=error
