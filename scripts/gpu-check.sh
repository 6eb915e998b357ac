#!/bin/bash
# gpu-check.sh [--dry-run] [--build DIR] [--deps DIR] [--python PY] OUT_DIR
#
# One command for a GPU host without network (README, "PyTorch 2.x and CUDA"): builds flowinfer
# against that host's PyTorch (its LibTorch) and the offline dependency bundle, runs the
# gpu-labelled tests, benches the light model, the U-Net and the ViT-S encoder at fp32, fp16 and bf16 while
# nvidia-smi samples GPU utilization, and writes OUT_DIR/gpu-report.txt and gpu-report.json.
#
#   --dry-run     every step that needs no GPU, on any machine (CI runs it): the build, the gpu
#                 tests (which then report themselves skipped), a short CPU fp32 bench and the
#                 report; the steps it skips are listed in the report as "skipped: no GPU".
#   --build DIR   build directory (default build-gpu); an already configured one is reused.
#   --deps DIR    the bundle of scripts/offline-deps.sh (default .deps when it exists; none:
#                 the system's packages). With an already configured --build, a fresh configure
#                 against the bundle alone is checked as well (CI does this).
#   --python PY   the Python whose torch to build against (default: python3 when it imports
#                 torch, else .venv-torch/bin/python from scripts/torch-venv.sh).
#
# Exit status: 0 when every step that ran passed, 1 otherwise (the report says which).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dry=0 build="" deps="" python="" out=""
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry=1 ;;
    --build) build=$2; shift ;;
    --deps) deps=$2; shift ;;
    --python) python=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu-check: unknown option $1" >&2; exit 2 ;;
    *) [ -z "$out" ] || { echo "gpu-check: one OUT_DIR only" >&2; exit 2; }; out=$1 ;;
  esac
  shift
done
[ -n "$out" ] || { echo "usage: gpu-check.sh [--dry-run] [--build DIR] [--deps DIR] [--python PY] OUT_DIR" >&2; exit 2; }
mkdir -p "$out" && out=$(cd "$out" && pwd)
build=${build:-$root/build-gpu}
[ -n "$deps" ] || { [ -d "$root/.deps" ] && deps=$root/.deps; }
if [ -n "$deps" ]; then
  [ -d "$deps" ] || { echo "gpu-check: --deps $deps: no such directory (make it with scripts/offline-deps.sh)" >&2; exit 2; }
  deps=$(cd "$deps" && pwd)
fi
if [ -z "$python" ]; then
  if python3 -c 'import torch' 2>/dev/null; then python=python3; else python=$root/.venv-torch/bin/python; fi
fi
log=$out/gpu-check.log
: > "$log"
steps=$out/steps.tsv  # name, status, seconds, detail
: > "$steps"
failed=0

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$steps"; echo "gpu-check: $1: $2 ($3 s)${4:+ - $4}"; }
step() {  # step NAME COMMAND...: runs it, logs its output, records ok/failed and its wall time
  local name=$1 t0=$SECONDS
  shift
  echo "== $name: $*" >> "$log"
  if "$@" >> "$log" 2>&1; then record "$name" ok $((SECONDS - t0)) ""
  else record "$name" failed $((SECONDS - t0)) "see gpu-check.log"; failed=1; return 1; fi
}
skip() { record "$1" skipped 0 "$2"; }

# 1. The host.
gpu=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi
if [ "$dry" = 0 ] && [ "$gpu" = 0 ]; then
  echo "gpu-check: nvidia-smi finds no GPU here; use --dry-run on a machine without one" >&2
  exit 1
fi
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(uname -srm), $(nproc) cores"
  if [ "$gpu" = 1 ]; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; else echo "gpu: none"; fi
  "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
} > "$out/host.txt" 2>&1
cat "$out/host.txt" >> "$log"

# 2. Configure and build against this Python's LibTorch (and the bundle, when there is one).
torch_dir=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>>"$log")
if [ -z "$torch_dir" ]; then record configure failed 0 "$python cannot import torch"; failed=1; fi
prefix=$torch_dir
if [ -n "$deps" ]; then
  # The bundle holds Debian's packages unpacked (scripts/offline-deps.sh says what).
  export PKG_CONFIG_PATH=$deps/usr/lib/x86_64-linux-gnu/pkgconfig:$deps/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  export PKG_CONFIG_SYSROOT_DIR=$deps
  export LD_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu:$deps/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # OpenSSL keeps its configuration headers in Debian's multiarch include directory, which
  # FindOpenSSL's one include directory does not cover (libtiff's .pc file names its own).
  export CPATH=$deps/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}
  prefix="$torch_dir;$deps/usr"
fi
command -v nvcc >/dev/null || { [ -x /usr/local/cuda/bin/nvcc ] && export PATH=/usr/local/cuda/bin:$PATH; }
gen=()
command -v ninja >/dev/null && [ ! -f "$build/CMakeCache.txt" ] && gen=(-G Ninja)
cfg=()
if [ -n "$deps" ]; then
  # Named directly: a host whose CMake has no Debian multiarch directory would not look there.
  multi=$deps/usr/lib/x86_64-linux-gnu
  cfg+=(-DTBB_DIR="$multi/cmake/TBB" -Dfmt_DIR="$multi/cmake/fmt" -Dtomlplusplus_DIR="$multi/cmake/tomlplusplus"
        -DBoost_DIR="$multi/cmake/Boost-1.74.0" -DZLIB_ROOT="$deps/usr" -DZLIB_LIBRARY="$multi/libz.so"
        -Dnlohmann_json_DIR="$deps/usr/share/cmake/nlohmann_json" -DCLI11_DIR="$deps/usr/share/cmake/CLI11"
        -DOPENSSL_ROOT_DIR="$deps/usr" -DOPENSSL_INCLUDE_DIR="$deps/usr/include"
        -DOPENSSL_CRYPTO_LIBRARY="$multi/libcrypto.so" -DPNG_PNG_INCLUDE_DIR="$deps/usr/include"
        -DPNG_LIBRARY="$multi/libpng.so" -DJPEG_INCLUDE_DIR="$deps/usr/include"
        -DJPEG_LIBRARY_RELEASE="$multi/libjpeg.so")
fi
if [ "$failed" = 0 ]; then
  if [ -f "$build/CMakeCache.txt" ]; then
    # A build configured before (CI's build-torch2) keeps its settings: regenerate only, and
    # check that a fresh configure against the bundle alone finds every dependency there.
    step configure cmake -S "$root" -B "$build"
    if [ -n "$deps" ]; then
      step "configure against the bundle" cmake -S "$root" -B "$out/bundle-configure" -DFLOWINFER_TESTS=ON \
        -DFLOWINFER_PYTHON= -DCMAKE_PREFIX_PATH="$prefix" "${cfg[@]}"
      for lib in pkgcfg_lib_OPENSLIDE_openslide pkgcfg_lib_LIBTIFF_tiff TBB_DIR fmt_DIR Boost_DIR ZLIB_LIBRARY \
                 nlohmann_json_DIR CLI11_DIR OPENSSL_CRYPTO_LIBRARY PNG_LIBRARY JPEG_LIBRARY_RELEASE \
                 pkgcfg_lib_OPENJPEG_openjp2 pkgcfg_lib_HDF5_hdf5; do
        grep -q "^$lib:.*=$deps/" "$out/bundle-configure/CMakeCache.txt" ||
          { record "configure against the bundle" failed 0 "$lib not from $deps"; failed=1; }
      done
    fi
  else
    step configure cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DFLOWINFER_TESTS=ON \
      -DFLOWINFER_BENCHMARKS=OFF -DFLOWINFER_INSTALL=OFF -DCMAKE_PREFIX_PATH="$prefix" -DFLOWINFER_PYTHON= "${cfg[@]}"
  fi
  if [ "$failed" = 0 ] && ! grep -q '^FLOWINFER_WITH_CUDA:INTERNAL=ON' "$build/CMakeCache.txt"; then
    record configure failed 0 "LibTorch in $torch_dir has no CUDA"; failed=1
  fi
  [ "$failed" = 0 ] && step build cmake --build "$build" -j"$(nproc)" --target flowinfer_cli test_gpu test_model test_embedding test_model_io
fi
# Tests and benches need the build only: a failing test still leaves the GPU's figures to take.
built=$((1 - failed))
fi_cli=$build/flowinfer

# 3. The gpu-labelled tests (they skip themselves, and say so, where no GPU is visible).
if [ "$built" = 1 ]; then
  for t in test_gpu test_model test_embedding test_model_io; do
    t0=$SECONDS
    if (cd "$build/tests" && "./$t" --run_test=@gpu --log_level=message --report_level=short --color_output=no) \
         > "$out/$t.log" 2>&1; then st=ok; else st=failed; failed=1; fi
    cat "$out/$t.log" >> "$log"
    summary=$(grep -A3 '^Test module' "$out/$t.log" | grep -E 'Test module|test cases?' | tr -s ' \n' ' ')
    record "tests $t @gpu" "$st" $((SECONDS - t0)) "$summary"
  done
fi

# 4. Benchmarks: the light model (read-bound), the U-Net (compute-bound) and the ViT-S/16
# encoder (task embedding, tissue patches at 224 px).
assets=$out/assets
bench_one() {  # bench_one MODEL PRECISION DEVICE [extra bench args...]
  local model=$1 prec=$2 device=$3 dir=$out/bench-$1-$2 sampler=""
  shift 3
  mkdir -p "$dir"
  if [ "$gpu" = 1 ]; then
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 100 > "$dir/nvidia-smi.csv" &
    sampler=$!
  fi
  local rc=0
  "$fi_cli" bench "$root/configs/bench-$model.toml" --set "input.slides=[\"$assets/bench.tiff\"]" \
    --set "models.0.path=\"$assets/$model.pt\"" --set "output.dir=\"$dir\"" --set tiling.mpp=0.25 \
    --set "runtime.device=\"$device\"" --set "models.0.precision=\"$prec\"" "$@" > "$dir/bench.txt" 2>&1 || rc=$?
  [ -n "$sampler" ] && { kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null; }
  cat "$dir/bench.txt" >> "$log"
  return $rc
}
if [ "$built" = 1 ]; then
  mkdir -p "$assets"
  side=10000; [ "$gpu" = 1 ] || side=3000
  step "bench assets" bash -c "'$fi_cli' synth '$assets/bench.tiff' --width $side --height $side --mpp 0.25 &&
    '$fi_cli' make-model '$assets/light.pt' --kind light && '$fi_cli' make-model '$assets/unet.pt' --kind unet --param 16 &&
    '$fi_cli' make-model '$assets/vit.pt' --kind vit_small"
  for model in light unet vit; do
    for prec in fp32 fp16 bf16; do
      if [ "$gpu" = 1 ]; then
        step "bench $model $prec" bench_one "$model" "$prec" cuda --set runtime.readers=16 --set runtime.max_in_flight=512 \
          --set models.0.batch_size=64 --repeat 3 --ceiling-seconds 1.5
      elif [ "$prec" = fp32 ]; then
        step "bench $model $prec (cpu)" bench_one "$model" fp32 cpu --repeat 1 --ceiling-seconds 0.5
      else
        skip "bench $model $prec" "no GPU"
      fi
    done
  done
fi

# 5. The report.
"$python" - "$out" "$dry" <<'EOF'
import csv, glob, json, os, sys
out, dry = sys.argv[1], sys.argv[2] == "1"
steps = [dict(zip(("name", "status", "seconds", "detail"), line.rstrip("\n").split("\t")))
         for line in open(os.path.join(out, "steps.tsv"))]
for s in steps:
    s["seconds"] = int(s["seconds"])
benches = []
for path in sorted(glob.glob(os.path.join(out, "bench-*", "bench.json"))):
    b = json.load(open(path))
    row = {k: b.get(k) for k in ("model", "device", "precision", "patches", "batch_size", "read_patches_per_s",
                                 "model_patches_per_s", "bound_patches_per_s", "pipeline_patches_per_s",
                                 "efficiency", "speedup_vs_sequential", "peak_in_flight")}
    row["model"] = os.path.basename(os.path.dirname(path)).split("-")[1]
    smi = os.path.join(os.path.dirname(path), "nvidia-smi.csv")
    util = [float(r[0]) for r in csv.reader(open(smi)) if r and r[0].strip().replace(".", "").isdigit()] if os.path.exists(smi) else []
    mem = [float(r[1]) for r in csv.reader(open(smi)) if len(r) > 1 and r[1].strip().replace(".", "").isdigit()] if os.path.exists(smi) else []
    row["gpu_util_mean"] = sum(util) / len(util) if util else None
    row["gpu_util_max"] = max(util) if util else None
    row["gpu_mem_max_mib"] = max(mem) if mem else None
    row["gpu_samples"] = len(util)
    benches.append(row)
report = {"dry_run": dry, "host": open(os.path.join(out, "host.txt")).read().strip().splitlines(),
          "steps": steps, "benchmarks": benches,
          "ok": all(s["status"] != "failed" for s in steps)}
json.dump(report, open(os.path.join(out, "gpu-report.json"), "w"), indent=1)
lines = ["flowinfer gpu-check" + (" (dry run: steps that need a GPU are skipped)" if dry else ""), ""]
lines += report["host"] + [""]
lines += [f"{s['name']:<32}{s['status']:<9}{s['seconds']:>5} s  {s['detail']}" for s in steps]
if benches:
    f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
    lines += ["", f"{'model':<7}{'prec':<6}{'device':<8}{'read':>9}{'model':>10}{'bound':>9}{'pipeline':>10}{'eff.':>6}"
                  f"{'GPU util mean/max %':>21}{'GPU MiB':>9}   (patches/s)"]
    for b in benches:
        lines.append(f"{b['model']:<7}{b['precision']:<6}{b['device']:<8}{f(b['read_patches_per_s']):>9}"
                     f"{f(b['model_patches_per_s']):>10}{f(b['bound_patches_per_s']):>9}{f(b['pipeline_patches_per_s']):>10}"
                     f"{f(b['efficiency'], 2):>6}{f(b['gpu_util_mean'], 0) + ' / ' + f(b['gpu_util_max'], 0):>21}"
                     f"{f(b['gpu_mem_max_mib'], 0):>9}")
lines += ["", "result: " + ("ok" if report["ok"] else "FAILED (see gpu-check.log)")]
open(os.path.join(out, "gpu-report.txt"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
[ "$failed" = 0 ]
