#!/bin/bash
# The slide readers side by side (native tile reader / OpenSlide 3.4.1), read ceilings only
# (`flowinfer bench --reads-only`, interleaved rounds, medians): level 0 at overlap 0 and at
# overlap 0.8 (204 of 256) on a JPEG generic-TIFF pyramid, and level 0 shrunk by 2
# (tiling.mpp 0.5 on a 0.25 µm/px Aperio-style SVS whose levels are 4x apart).
# Usage: benchmarks/readers.sh [BUILD_DIR] [bench options, e.g. --repeat 5]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
fi="$build/flowinfer"
mkdir -p flowinfer-demo
[ -f flowinfer-demo/bench-20k.tiff ] || "$fi" synth flowinfer-demo/bench-20k.tiff --width 20000 --height 20000 --mpp 0.25 >/dev/null
[ -f flowinfer-demo/bench-20k.svs ] || "$fi" synth flowinfer-demo/bench-20k.svs --width 20000 --height 20000 --mpp 0.25 --format svs >/dev/null
[ -f flowinfer-demo/light.pt ] || "$fi" make-model flowinfer-demo/light.pt --kind light >/dev/null
ratio() {  # ratio NAME BENCH-ARGS...: runs bench, prints native/openslide from bench.json
  local name=$1
  shift
  echo "== $name"
  "$fi" bench configs/bench-read.toml --reads-only "$@" | grep -E "reader|round"
  python3 - flowinfer-demo/out-bench-read/bench.json "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["read_patches_per_s_by_reader"]
print(f"  {sys.argv[2]}: native / openslide = {r['native'] / r['openslide']:.1f}x")
PY
}
ratio "level 0, overlap 0" "$@"
ratio "level 0, overlap 0.8" --set tiling.overlap=204 "$@"
ratio "level 0 shrunk by 2 (SVS)" --set 'input.slides=["../flowinfer-demo/bench-20k.svs"]' --set tiling.mpp=0.5 "$@"
