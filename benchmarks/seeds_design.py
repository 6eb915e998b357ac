#!/usr/bin/env python3
"""The seeds' Python design, run on the same slide, model and settings as `flowinfer bench`.

What flowinfer replaces: a script that splits the slide into horizontal subsections and gives
each to a thread; every thread reads its patches with OpenSlide, normalizes them with NumPy,
runs the TorchScript model on batches of 8 and stitches the outputs into one map, which is
written when all threads are done. Reads, preprocessing and inference of one thread never
overlap; the threads only overlap each other where the GIL lets them.

Needs python3-openslide, python3-torch (Debian's, the same LibTorch 1.13 as flowinfer) and
python3-numpy. Prints one line of JSON: patches, seconds, patches_per_s. Timing starts after
the model is loaded and warmed up (as flowinfer's does) and ends when the map is on disk.
"""
import argparse
import json
import math
import os
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import openslide
import torch


def positions(extent, patch, stride):
    """flowinfer's grid (stages/layout.hpp): step by stride, the last patch shifted inward."""
    if extent <= patch:
        return [0]
    n = math.ceil((extent - patch) / stride) + 1
    return [min(i * stride, extent - patch) for i in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("slide")
    ap.add_argument("model")
    ap.add_argument("--out", required=True, help="map file to write (raw deflate-compressed bytes)")
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--mpp", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="LibTorch intra-op threads (default: PyTorch's own, one per core)")
    args = ap.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    slide = openslide.OpenSlide(args.slide)
    base_mpp = float(slide.properties.get(openslide.PROPERTY_NAME_MPP_X, 0) or 0)
    if base_mpp <= 0:  # generic TIFF: OpenSlide 3.4.1 gives no mpp; use the resolution tag
        res = float(slide.properties["tiff.XResolution"])
        unit = slide.properties.get("tiff.ResolutionUnit", "centimeter")
        base_mpp = (1e4 if unit == "centimeter" else 25400.0) / res
    want = args.mpp / base_mpp
    level = slide.get_best_level_for_downsample(want + 1e-6)
    ds = slide.level_downsamples[level]
    if abs(ds - want) > 1e-3 * want:
        raise SystemExit(f"{args.slide}: no level at downsample {want:.3f}; this script does not resize")
    width, height = slide.level_dimensions[level]
    stride = args.patch - args.overlap
    xs, ys = positions(width, args.patch, stride), positions(height, args.patch, stride)

    model = torch.jit.load(args.model).eval()
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)
    with torch.no_grad():
        model(torch.zeros(args.batch, 3, args.patch, args.patch))  # warm-up, untimed

    acc = np.zeros((height, width), np.float32)
    cnt = np.zeros((height, width), np.float32)
    lock = threading.Lock()

    def run_section(rows):
        keys = [(x, y) for y in rows for x in xs]
        for b in range(0, len(keys), args.batch):
            batch = keys[b:b + args.batch]
            arrays = []
            for x, y in batch:
                rgba = slide.read_region((int(x * ds), int(y * ds)), level, (args.patch, args.patch))
                rgb = np.asarray(rgba, np.uint8)[:, :, :3]
                arrays.append((rgb.transpose(2, 0, 1).astype(np.float32) / 255.0 - mean) / std)
            with torch.no_grad():
                out = torch.softmax(model(torch.from_numpy(np.stack(arrays))), 1)[:, 1].numpy()
            with lock:
                for (x, y), p in zip(batch, out):
                    acc[y:y + args.patch, x:x + args.patch] += p
                    cnt[y:y + args.patch, x:x + args.patch] += 1

    t0 = time.perf_counter()
    sections = np.array_split(np.array(ys), max(1, args.threads))
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(run_section, [list(s) for s in sections if len(s)]))
    mapped = np.rint(np.clip(acc / np.maximum(cnt, 1), 0, 1) * 255).astype(np.uint8)
    with open(args.out, "wb") as f:
        f.write(zlib.compress(mapped.tobytes(), 1))
    seconds = time.perf_counter() - t0
    n = len(xs) * len(ys)
    print(json.dumps({"patches": n, "seconds": round(seconds, 3), "patches_per_s": round(n / seconds, 1),
                      "threads": args.threads, "torch_threads": torch.get_num_threads(),
                      "level": level, "map": [width, height]}))


if __name__ == "__main__":
    main()
