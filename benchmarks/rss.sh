#!/bin/bash
# Peak RSS of `flowinfer run` on two synthetic slides whose areas differ 9x (README,
# "Bounded resources"). Usage: benchmarks/rss.sh [BUILD_DIR] [WORK_DIR]
set -euo pipefail
build=$(realpath "${1:-build}")
work=${2:-/tmp/flowinfer-rss}
fi="$build/flowinfer"
mkdir -p "$work"
cd "$work"
[ -f tissue.pt ] || "$fi" make-model tissue.pt --kind tissue >/dev/null
for side in 10000 30000; do
  slide=synthetic-$side.tiff
  [ -f "$slide" ] || "$fi" synth "$slide" --width $side --height $side --mpp 0.25 --seed 7 >/dev/null
  cat > rss-$side.toml <<TOML
[input]
slides = ["$slide"]
[output]
dir = "out-$side"
[tiling]
patch_size = 256
overlap = 32
mpp = 0.5
[runtime]
readers = 2
max_in_flight = 64
[[models]]
name = "tissue"
path = "tissue.pt"
batch_size = 8
TOML
  # --force: measure a whole run, not the resume check of an earlier one
  "$fi" run rss-$side.toml --quiet --force >/dev/null
  python3 - "$side" "out-$side/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[2]))
o = s["slides"][0]["outputs"][0]
print(f'{sys.argv[1]}x{sys.argv[1]} slide: {s["patches"]} patches, output {o["width"]}x{o["height"]}, '
      f'{s["patches_per_s"]:.1f} patches/s, peak RSS {s["peak_rss_mb"]:.0f} MB')
PY
done
