#!/bin/bash
# Installs flowinfer's build and test dependencies from Debian bookworm's packages.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libtbb-dev libtorch-dev libopenslide-dev libtiff-dev
      libfmt-dev libtomlplusplus-dev libboost-test-dev zlib1g-dev)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "flowinfer dependencies installed"
