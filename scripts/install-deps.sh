#!/bin/bash
# Installs flowinfer's build and test dependencies from Debian bookworm's packages.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libtbb-dev libtorch-dev libopenslide-dev libtiff-dev
      libfmt-dev libtomlplusplus-dev libboost-test-dev zlib1g-dev nlohmann-json3-dev libssl-dev
      libpng-dev libcli11-dev libjpeg-dev libopenjp2-7-dev libhdf5-dev libopenblas0-pthread python3-venv
      python3-h5py python3-shapely chromium)
# libopenblas0-pthread: Debian's libtorch calls the generic libblas.so.3, which without it is
# netlib's reference BLAS; OpenBLAS registers itself as that library's higher-priority
# alternative (README, "Dependencies"; benchmarks/README.md has the before/after figures).
# python3-venv: scripts/torch-venv.sh makes the PyTorch 2.x venv with `python3 -m venv`, which
# Debian's python3 only has with this package.
# python3-h5py: tests/test_embedding reads the features files back with h5py, as TRIDENT's and
# CLAM's training code does (Debian's /usr/bin/python3, not the venv).
# python3-shapely: tests/test_contour_output checks the contours GEOS calls valid (tests/geojson_check.py).
# chromium: tests/test_report opens report.html in a real browser, headless, and reads its DOM.
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The fuzz targets (fuzz/, README "Sanitizers and fuzzing") need clang with its libFuzzer and
# sanitizer runtimes, which bookworm ships in libclang-rt-14-dev (only recommended by clang,
# so named here), and llvm-symbolizer (package llvm) for readable reports. Debian's packages only;
# a release without these package names gets the plain `clang` package.
if apt-cache show libclang-rt-14-dev >/dev/null 2>&1; then
  pkgs+=(clang libclang-rt-14-dev llvm)
elif apt-cache show clang >/dev/null 2>&1; then
  pkgs+=(clang)
fi
$sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "flowinfer dependencies installed"
