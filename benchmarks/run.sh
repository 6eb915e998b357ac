#!/bin/bash
# Makes the benchmark slides and models under flowinfer-demo/ and runs `flowinfer bench` on
# configs/bench-light.toml, configs/bench-unet.toml and configs/bench-vit.toml (task embedding).
# Usage: benchmarks/run.sh [BUILD_DIR]
# Extra arguments after the build dir go to `flowinfer bench` (e.g. --set runtime.device=cuda).
# When Debian's python3-torch and python3-openslide are installed, it also runs the seeds'
# Python design (benchmarks/seeds_design.py) on the same slides and models, and prints
# flowinfer's pipeline rate over it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
fi="$build/flowinfer"
mkdir -p flowinfer-demo
[ -f flowinfer-demo/bench-20k.tiff ] || "$fi" synth flowinfer-demo/bench-20k.tiff --width 20000 --height 20000 --mpp 0.25 >/dev/null
[ -f flowinfer-demo/bench-6k.tiff ] || "$fi" synth flowinfer-demo/bench-6k.tiff --width 6000 --height 6000 --mpp 0.25 >/dev/null
[ -f flowinfer-demo/light.pt ] || "$fi" make-model flowinfer-demo/light.pt --kind light >/dev/null
[ -f flowinfer-demo/unet.pt ] || "$fi" make-model flowinfer-demo/unet.pt --kind unet --param 16 >/dev/null
[ -f flowinfer-demo/vit_small.pt ] || "$fi" make-model flowinfer-demo/vit_small.pt --kind vit_small >/dev/null
py=/usr/bin/python3
have_py=0
"$py" -c "import torch, openslide, numpy" 2>/dev/null && have_py=1
for model in light unet vit; do
  "$fi" bench configs/bench-$model.toml "$@"
  # The seeds' design stitches a segmentation map: it has no embedding counterpart.
  [ "$have_py" = 1 ] && [ "$model" != vit ] || continue
  # Same slide, model, patch, overlap, mpp and batch as the config.
  slide=$(sed -n 's/^slides = \["\.\.\/\(.*\)"\]/\1/p' configs/bench-$model.toml)
  out=$(sed -n 's/^dir = "\.\.\/\(.*\)"/\1/p' configs/bench-$model.toml)
  seeds=$("$py" benchmarks/seeds_design.py "$slide" "flowinfer-demo/$model.pt" --out "$out/seeds-map.bin")
  echo "  seeds' Python design         $seeds"
  "$py" - "$out/bench.json" "$seeds" <<'PY'
import json, sys
bench = json.load(open(sys.argv[1]))
seeds = json.loads(sys.argv[2])
print(f"  pipeline / seeds' Python design: {bench['pipeline_patches_per_s'] / seeds['patches_per_s']:.2f}x")
PY
done
