#!/bin/bash
# Makes the benchmark slides and models under flowinfer-demo/ and runs `flowinfer bench` on
# configs/bench-light.toml and configs/bench-unet.toml. Usage: benchmarks/run.sh [BUILD_DIR]
# Extra arguments after the build dir go to `flowinfer bench` (e.g. --set runtime.device=cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
fi="$build/flowinfer"
mkdir -p flowinfer-demo
[ -f flowinfer-demo/bench-10k.tiff ] || "$fi" synth flowinfer-demo/bench-10k.tiff --width 10000 --height 10000 --mpp 0.25 >/dev/null
[ -f flowinfer-demo/bench-6k.tiff ] || "$fi" synth flowinfer-demo/bench-6k.tiff --width 6000 --height 6000 --mpp 0.25 >/dev/null
[ -f flowinfer-demo/light.pt ] || "$fi" make-model flowinfer-demo/light.pt --kind light >/dev/null
[ -f flowinfer-demo/unet.pt ] || "$fi" make-model flowinfer-demo/unet.pt --kind unet --param 16 >/dev/null
for model in light unet; do
  "$fi" bench configs/bench-$model.toml "$@"
done
