#!/bin/bash
# Patch-directory mode against seed 2's two Python designs (benchmarks/seeds_images.py), on the
# same directory of 256 PNG tiles (512 x 512, flowinfer synth --format png-tiles) and the same
# TorchScript model (the light segmentation model), each writing one PNG mask per tile.
# Rounds interleave flowinfer bench (its pipeline and its in-process loop), the seed's loop and
# the seed's batched design (batches of 12, loader threads, then DataLoader workers); the
# medians over ROUNDS (default 3) rounds count, and the ratios are printed at the end.
# Needs Debian's python3-torch, python3-pil and python3-numpy for the seed's designs.
# Usage: benchmarks/images.sh [BUILD_DIR] [flowinfer bench options...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
fi="$build/flowinfer"
tiles=flowinfer-demo/tiles-512
mkdir -p flowinfer-demo
[ -f "$tiles/row-031/tile-031-007.png" ] || "$fi" synth "$tiles" --format png-tiles --width 4096 --height 16384 --tissue 0.9 --tile 512 >/dev/null
[ -f flowinfer-demo/light.pt ] || "$fi" make-model flowinfer-demo/light.pt --kind light >/dev/null
py=/usr/bin/python3
"$py" -c "import torch, PIL, numpy" || { echo "images.sh: needs python3-torch, python3-pil, python3-numpy" >&2; exit 1; }
cores=$(nproc)
out=flowinfer-demo/out-bench-images
results=$(mktemp)
for round in $(seq "${ROUNDS:-3}"); do
  "$fi" bench configs/bench-images.toml --repeat 1 "$@" >/dev/null
  "$py" -c "import json,sys; b=json.load(open('$out/bench.json')); print(json.dumps({'design': 'flowinfer pipeline', 'images_per_s': b['pipeline_images_per_s']})); print(json.dumps({'design': 'flowinfer loop', 'images_per_s': b['loop_images_per_s']}))" >> "$results"
  # ImageNet mean/std as the config's defaults; every core for LibTorch, as a script would set.
  common=("$tiles" flowinfer-demo/light.pt --task segmentation --pattern '**/*.png' --torch-threads "$cores")
  "$py" benchmarks/seeds_images.py "${common[@]}" --design loop --out "$out/seed-loop" >> "$results"
  "$py" benchmarks/seeds_images.py "${common[@]}" --design batched --batch 12 --workers 2 --loader threads \
    --out "$out/seed-threads" | sed 's/"design": "batched"/"design": "batched-threads"/' >> "$results"
  "$py" benchmarks/seeds_images.py "${common[@]}" --design batched --batch 12 --workers 2 --loader dataloader \
    --out "$out/seed-dataloader" | sed 's/"design": "batched"/"design": "batched-dataloader"/' >> "$results"
done
"$py" - "$results" <<'PY'
import json, statistics, sys
rates = {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    rates.setdefault(j["design"], []).append(j["images_per_s"])
med = {d: statistics.median(v) for d, v in rates.items()}
for d, v in rates.items():
    print(f"  {d:<24}{med[d]:>10.1f} images/s   rounds: {', '.join(f'{x:.1f}' for x in v)}")
best_seed = max(med["batched-threads"], med["batched-dataloader"])
print(f"  flowinfer / seed's loop:            {med['flowinfer pipeline'] / med['loop']:.2f}x")
print(f"  flowinfer / seed's optimized (best): {med['flowinfer pipeline'] / best_seed:.2f}x")
PY
rm -f "$results"
