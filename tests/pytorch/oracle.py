"""PyTorch as the oracle for flowinfer: real architectures made by make_models.py, run by
flowinfer over a real slide, and compared patch by patch with PyTorch's own outputs on the
same patches (read with openslide-python, normalized in numpy). ctest runs this as
`pytorch_oracle` in every build that has a Python with torch (FLOWINFER_PYTHON).

    python oracle.py --dump OR_DUMP --cli FLOWINFER --slide SLIDE --libtorch X.Y.Z --work DIR

Checks:
- raw outputs: flowinfer's (oracle_dump: plan, read, Model::run_rgb in batches of 8 over two
  slots, micro-batches of 3) equal PyTorch's within 1e-4 for every patch, fp32, including a
  grey-level network with a dict output (channels = "gray", output = "seg"; the reference
  computes luma in numpy);
- the pipeline: `flowinfer run` of the resnet18 classifier (softmax) writes CSV rows equal to
  PyTorch's probabilities within 1e-4 (the CSV's 6 significant digits allow it), the
  U-Net's TIFF map (class-1 probability x 255) is PyTorch's within one grey level, and (from
  LibTorch 2.0) the timm ViT-S/16 encoder's features file (task embedding, read with h5py)
  holds PyTorch's features within 1e-4, or rounded to float16 with embedding_dtype float16;
- with a LibTorch older than 2.0 (Debian's 1.13), a model calling
  aten::scaled_dot_product_attention fails before any slide is read, with an error naming the
  operator and the way out.
Writes DIR/oracle.json with the worst difference per model and prints a table.
"""
import argparse
import csv
import json
import os
import subprocess
import sys

import numpy as np
import openslide
import torch

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
TOLERANCE = 1e-4
SDPA = "aten::scaled_dot_product_attention"


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def axis_positions(extent, patch, stride):
    """flowinfer's edge policy, recomputed: step by stride, the last patch shifted inward."""
    if extent <= patch:
        return [0]
    xs = list(range(0, extent - patch + 1, stride))
    if xs[-1] + patch < extent:
        xs.append(extent - patch)
    return xs


def read_patch(slide, x, y, size):
    """RGB uint8 [size, size, 3], transparent pixels composited onto white."""
    rgba = np.asarray(slide.read_region((int(x), int(y)), 0, (size, size)), dtype=np.float32)
    alpha = rgba[..., 3:4] / 255.0
    return np.clip(np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)), 0, 255).astype(np.uint8)


def normalize(rgb, settings=None):
    """The model's input from RGB patches: ImageNet-normalized RGB, or for channels = "gray"
    BT.601 luma normalized with the model's one mean and std."""
    settings = settings or {}
    if settings.get("channels") == "gray":
        x = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        x = (x / 255.0 - settings["mean"][0]) / settings["std"][0]
        return np.ascontiguousarray(x[:, None, :, :].astype(np.float32))
    x = (rgb.astype(np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def reference(model, slide, coords, size, batch=16, settings=None):
    """PyTorch's outputs of the loaded TorchScript `model` on the patches at `coords` (the
    element models[].output names, for a model with several)."""
    settings = settings or {}
    outs = []
    with torch.no_grad():
        for i in range(0, len(coords), batch):
            rgb = np.stack([read_patch(slide, x, y, size) for x, y in coords[i:i + batch]])
            out = model(torch.from_numpy(normalize(rgb, settings)))
            if "output" in settings:
                out = out[settings["output"]]
            outs.append(out.float().numpy())
    return np.concatenate(outs)


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def write_config(path, slide, out_dir, model_path, task, patch, extra):
    lines = ["[input]", f'slides = ["{slide}"]', "[output]", f'dir = "{out_dir}"', "[tiling]",
             f"patch_size = {patch}", "overlap = 0", "[runtime]", "readers = 2", "[[models]]",
             'name = "m"', f'path = "{model_path}"', f'task = "{task}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def check_raw(args, slide, name, info, mode, work):
    path = info["files"][mode]["path"]
    patch = info["patch_size"]
    out = os.path.join(work, f"dump-{name}-{mode}")
    os.makedirs(out, exist_ok=True)
    settings = info["settings"]
    extra = []
    if settings.get("channels") == "gray":
        extra += ["--gray", str(settings["mean"][0]), str(settings["std"][0])]
    if "output" in settings:
        extra += ["--output", settings["output"]]
    r = run([args.dump, args.slide, path, info["task"], str(patch), out,
             "--batch", "8", "--micro-batch", "3", "--slots", "2"] + extra)
    if r.returncode != 0:
        fail(f"{name} ({mode}): oracle_dump failed:\n{r.stdout}")
    coords = np.load(os.path.join(out, "coords.npy"))
    got = np.load(os.path.join(out, "outputs.npy"))
    w, h = slide.dimensions
    xs, ys = axis_positions(w, patch, patch), axis_positions(h, patch, patch)
    expected = sorted((x, y) for y in ys for x in xs)
    if sorted(map(tuple, coords.tolist())) != expected:
        fail(f"{name} ({mode}): flowinfer's patches are not the grid {len(xs)} x {len(ys)}")
    want = reference(torch.jit.load(path).eval(), slide, coords.tolist(), patch, settings=settings)
    if got.shape != want.shape:
        fail(f"{name} ({mode}): flowinfer's outputs are {got.shape}, PyTorch's {want.shape}")
    per_patch = np.abs(got - want).reshape(len(coords), -1).max(axis=1)
    worst = int(per_patch.argmax())
    spread = float(want.std())
    if spread < 1e-3:
        fail(f"{name} ({mode}): PyTorch's outputs are nearly constant (std {spread}); the check would prove nothing")
    if per_patch[worst] > TOLERANCE:
        x, y = coords[worst]
        fail(f"{name} ({mode}): patch at ({x}, {y}) differs from PyTorch by {per_patch[worst]:.3g} > {TOLERANCE}")
    return {"patches": int(len(coords)), "max_abs_diff": float(per_patch[worst]),
            "output_std": spread, "output_shape": list(got.shape[1:])}


def check_old_libtorch_refuses(args, name, info, mode, work):
    out = os.path.join(work, f"run-{name}-{mode}")
    cfg = os.path.join(work, f"{name}-{mode}.toml")
    write_config(cfg, args.slide, out, info["files"][mode]["path"], info["task"], info["patch_size"],
                 info["settings"])
    r = run([args.cli, "run", cfg, "--quiet"])
    for part in (SDPA, f"LibTorch ({args.libtorch})", "scripts/torch-venv.sh"):
        if part not in r.stdout:
            fail(f"{name} ({mode}) on LibTorch {args.libtorch}: the error does not name '{part}':\n{r.stdout}")
    if r.returncode != 1:
        fail(f"{name} ({mode}): exit {r.returncode}, expected 1")
    stem = os.path.splitext(os.path.basename(args.slide))[0]
    if os.path.exists(os.path.join(out, stem)):
        fail(f"{name} ({mode}): the slide was processed although the model cannot be loaded")
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    if summary["state"] != "failed" or summary["patches"] != 0:
        fail(f"{name} ({mode}): summary state {summary['state']}, {summary['patches']} patches")
    return {"refused": r.stdout.strip().splitlines()[-1]}


def check_pipeline_csv(args, slide, info, work):
    """resnet18 through `flowinfer run`: softmax probabilities in the CSV against PyTorch's."""
    path = info["files"]["traced"]["path"]
    out = os.path.join(work, "run-resnet18")
    cfg = os.path.join(work, "resnet18.toml")
    write_config(cfg, args.slide, out, path, "classification", info["patch_size"],
                 {"activation": "softmax", "batch_size": 8, "cpu_micro_batch": 3})
    r = run([args.cli, "run", cfg, "--quiet", "--force"])
    if r.returncode != 0:
        fail(f"flowinfer run resnet18 failed:\n{r.stdout}")
    stem = os.path.splitext(os.path.basename(args.slide))[0]
    with open(os.path.join(out, stem, "m.csv")) as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    coords = [(int(float(r[0])), int(float(r[1]))) for r in rows]
    got = np.array([[float(v) for v in r[4:]] for r in rows], dtype=np.float64)
    want = torch.softmax(torch.from_numpy(reference(torch.jit.load(path).eval(), slide, coords,
                                                        info["patch_size"])), 1).numpy()
    if got.shape != want.shape or len(header) != 4 + want.shape[1]:
        fail(f"resnet18 CSV: {got.shape} values under {header}, PyTorch gives {want.shape}")
    diff = float(np.abs(got - want).max())
    if diff > TOLERANCE:
        fail(f"resnet18 CSV differs from PyTorch's softmax by {diff:.3g}")
    return {"patches": len(rows), "max_abs_diff": diff}


def check_pipeline_map(args, slide, info, work):
    """The U-Net through `flowinfer run`: its map is round(255 x p(class 1)) of PyTorch's softmax."""
    path = info["files"]["scripted"]["path"]
    patch = info["patch_size"]
    out = os.path.join(work, "run-unet")
    cfg = os.path.join(work, "unet.toml")
    write_config(cfg, args.slide, out, path, "segmentation", patch, {"activation": "softmax", "batch_size": 4})
    r = run([args.cli, "run", cfg, "--quiet", "--force"])
    if r.returncode != 0:
        fail(f"flowinfer run unet failed:\n{r.stdout}")
    stem = os.path.splitext(os.path.basename(args.slide))[0]
    result = openslide.OpenSlide(os.path.join(out, stem, "m.tif"))
    w, h = slide.dimensions
    if result.dimensions != (w, h):
        fail(f"unet map is {result.dimensions}, the slide {slide.dimensions}")
    got = np.asarray(result.read_region((0, 0), 0, (w, h)))[..., 0].astype(np.int32)
    # Patches overlap only where the last row/column is shifted inward; the patches that do not
    # reach into it own every pixel they cover.
    xs, ys = axis_positions(w, patch, patch), axis_positions(h, patch, patch)
    model = torch.jit.load(path).eval()
    worst, pixels = 0, 0
    for y in [y for y in ys if y + patch <= ys[-1]]:
        coords = [(x, y) for x in xs if x + patch <= xs[-1]]
        probs = torch.softmax(torch.from_numpy(reference(model, slide, coords, patch)), 1)[:, 1].numpy()
        want = np.rint(probs * 255.0).astype(np.int32)
        for (x, _), p in zip(coords, want):
            d = int(np.abs(got[y:y + patch, x:x + patch] - p).max())
            worst = max(worst, d)
            pixels += p.size
    if worst > 1:
        fail(f"unet map differs from PyTorch's round(255 p1) by {worst} grey levels")
    return {"pixels": pixels, "max_grey_diff": worst}


def check_pipeline_features(args, slide, info, work):
    """The ViT-S/16 encoder through `flowinfer run`, task embedding: the features file's rows,
    read with h5py as TRIDENT's and CLAM's training code reads them, against PyTorch's features
    at the file's coords; float16 files hold those features rounded to half precision."""
    import h5py

    path = info["files"]["traced"]["path"]
    stem = os.path.splitext(os.path.basename(args.slide))[0]
    result = {}
    want = None
    for dtype in ("float32", "float16"):
        out = os.path.join(work, f"run-vit-{dtype}")
        cfg = os.path.join(work, f"vit-{dtype}.toml")
        write_config(cfg, args.slide, out, path, "embedding", info["patch_size"],
                     {"batch_size": 8, "cpu_micro_batch": 3, "embedding_dtype": dtype})
        r = run([args.cli, "run", cfg, "--quiet", "--force"])
        if r.returncode != 0:
            fail(f"flowinfer run vit ({dtype}) failed:\n{r.stdout}")
        with h5py.File(os.path.join(out, stem, "m.h5"), "r") as f:
            got = f["features"][:]
            coords = f["coords"][:]
            attrs = dict(f["coords"].attrs)
        if got.dtype != np.dtype(dtype) or coords.dtype != np.int64 or attrs.get("patch_size") != info["patch_size"]:
            fail(f"vit features file: {got.dtype}, coords {coords.dtype}, attributes {attrs}")
        if want is None:
            want = reference(torch.jit.load(path).eval(), slide, coords.tolist(), info["patch_size"])
        if got.shape != want.shape:
            fail(f"vit features are {got.shape}, PyTorch's {want.shape}")
        # float16: PyTorch's features rounded, give or take the fp32 difference's effect on
        # the rounding (one half-precision step).
        allowed = TOLERANCE + (np.abs(want) * 2.0 ** -10 if dtype == "float16" else 0.0)
        excess = float((np.abs(got.astype(np.float64) - want) - allowed).max())
        if excess > 0:
            fail(f"vit features ({dtype}) differ from PyTorch's beyond the tolerance by {excess:.3g}")
        result[dtype] = {"rows": int(got.shape[0]), "max_abs_diff": float(np.abs(got.astype(np.float64) - want).max())}
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--slide", required=True)
    ap.add_argument("--libtorch", required=True, help="the LibTorch version flowinfer was built with")
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.work, exist_ok=True)
    models_dir = os.path.join(args.work, "models")
    here = os.path.dirname(os.path.abspath(__file__))
    r = run([sys.executable, os.path.join(here, "make_models.py"), models_dir])
    if r.returncode != 0:
        fail(f"make_models.py failed:\n{r.stdout}")
    with open(os.path.join(models_dir, "models.json")) as f:
        made = json.load(f)
    old = int(args.libtorch.split(".")[0]) < 2
    slide = openslide.OpenSlide(args.slide)
    report = {"libtorch": args.libtorch, "pytorch": torch.__version__, "slide": args.slide,
              "tolerance": TOLERANCE, "models": {}}
    for name, info in made["models"].items():
        for mode in ("traced", "scripted"):
            if old and SDPA in info["files"][mode]["ops"]:
                res = check_old_libtorch_refuses(args, name, info, mode, args.work)
            else:
                res = check_raw(args, slide, name, info, mode, args.work)
            report["models"][f"{name} ({mode})"] = res
            print(f"{name:12} {mode:8} {json.dumps(res)}", flush=True)
    report["pipeline"] = {"resnet18 csv": check_pipeline_csv(args, slide, made["models"]["resnet18"], args.work),
                          "unet map": check_pipeline_map(args, slide, made["models"]["unet_bn"], args.work)}
    if not old:  # LibTorch 1.13 refuses the ViT (checked above)
        report["pipeline"]["vit features"] = check_pipeline_features(args, slide, made["models"]["vit_s16"], args.work)
    print(f"pipeline     {json.dumps(report['pipeline'])}")
    with open(os.path.join(args.work, "oracle.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
