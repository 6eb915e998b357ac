#!/usr/bin/env python3
"""The seeds' Python designs for a directory of patches, run on the same images and model as flowinfer.

What flowinfer's patch-directory mode replaces: a script that runs a TorchScript model over
image files (tiles exported by another tool), in one of two designs.
  loop:    one image at a time: open it with PIL, convert it to NumPy floats, normalize, make
           a batch of 1, run the model, write the output. Nothing overlaps.
  batched: a torch.utils.data.DataLoader (--loader dataloader, worker processes) or a thread
           pool prefetching whole batches (--loader threads) decodes and normalizes batches of
           --batch images with --workers loaders while the main loop runs the model and writes
           each batch's outputs.
Outputs as flowinfer writes them: segmentation ([N, C, h, w]; sigmoid for C == 1, else
softmax): one 8-bit greyscale PNG per image under --out, same relative path, extension .png,
round(255 p0) for C == 1, round(255 p1) for C == 2, the argmax class for C > 2;
classification ([N, C] logits): one CSV --out/<model stem>.csv, a header, then image,p0,p1,...
(softmax). Preprocessing as flowinfer's: RGB uint8 -> (x / 255 - mean) / std, NCHW float32.

Needs python3-torch (Debian's, the same LibTorch 1.13 as flowinfer), python3-pil and
python3-numpy. Prints one line of JSON: design, images, seconds, images_per_s. Timing starts
after the model is loaded and warmed up with one forward of the timed batch shape (as
flowinfer's is) and ends when every output is on disk.
"""
import argparse
import collections
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def find_images(root, pattern):
    paths = sorted(p for p in Path(root).glob(pattern) if p.is_file())
    if not paths:
        raise SystemExit(f"{root}: no file matches {pattern!r}")
    sizes = collections.Counter()
    first = {}
    for p in paths:
        try:
            with Image.open(p) as im:  # header only: PIL decodes lazily
                size = im.size
        except Exception as e:
            raise SystemExit(f"{p}: not an image PIL can open: {e}")
        sizes[size] += 1
        first.setdefault(size, p)
    if len(sizes) > 1:
        listed = ", ".join(f"{w}x{h}: {n} (e.g. {first[(w, h)]})" for (w, h), n in sizes.most_common(4))
        raise SystemExit(f"{root}: the images are not all the same size ({listed}); this benchmark needs a "
                         "uniform directory")
    return paths, next(iter(sizes))


class Preprocess:
    """RGB uint8 -> (x / 255 - mean) / std, CHW float32, as flowinfer's normalize stage."""

    def __init__(self, mean, std):
        self.mean = np.array(mean, np.float32)
        self.std = np.array(std, np.float32)

    def __call__(self, path):
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), np.uint8)
        x = (rgb.astype(np.float32) / np.float32(255.0) - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(2, 0, 1))


class ImageSet(torch.utils.data.Dataset):
    def __init__(self, paths, preprocess):
        self.paths, self.preprocess = paths, preprocess

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return torch.from_numpy(self.preprocess(self.paths[i]))


def thread_batches(paths, batch, workers, preprocess):
    """Batches in order, each loaded by one of `workers` threads, 2 per worker in flight
    (DataLoader's default prefetch_factor)."""
    def load(chunk):
        return torch.from_numpy(np.stack([preprocess(p) for p in chunk]))

    chunks = [paths[i:i + batch] for i in range(0, len(paths), batch)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        pending = collections.deque()
        it = iter(chunks)
        for chunk in it:
            pending.append(pool.submit(load, chunk))
            if len(pending) >= 2 * max(1, workers):
                break
        while pending:
            x = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(load, nxt))
            yield x


def probability_bytes(p):
    """flowinfer's probability_byte: round(255 p), halves up, p clamped to [0, 1], NaN -> 0."""
    p = np.nan_to_num(p, nan=0.0)
    return np.floor(np.clip(p, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


class Writer:
    def __init__(self, task, root, out, model_path):
        self.task, self.root, self.out = task, Path(root), Path(out)
        self.csv = None
        if task == "classification":
            self.out.mkdir(parents=True, exist_ok=True)
            self.csv = open(self.out / (Path(model_path).stem + ".csv"), "w")
            self.header = False

    def write(self, paths, logits):
        """Writes the outputs of a batch: `paths` and model output `logits` (first dim N)."""
        rels = [p.relative_to(self.root) for p in paths]
        if self.task == "classification":
            probs = torch.softmax(logits.reshape(logits.shape[0], -1).float(), 1).numpy()
            if not self.header:
                self.csv.write("image," + ",".join(f"p{c}" for c in range(probs.shape[1])) + "\n")
                self.header = True
            for rel, row in zip(rels, probs):
                self.csv.write(f"{rel.as_posix()}," + ",".join(f"{v:.6g}" for v in row) + "\n")
            return
        if logits.dim() != 4:
            raise SystemExit(f"segmentation wants a model output [N, C, h, w]; got {list(logits.shape)}")
        c = logits.shape[1]
        if c == 1:
            maps = probability_bytes(torch.sigmoid(logits[:, 0]).float().numpy())
        elif c == 2:
            maps = probability_bytes(torch.softmax(logits.float(), 1)[:, 1].numpy())
        else:
            maps = torch.softmax(logits.float(), 1).argmax(1).clamp(max=255).to(torch.uint8).numpy()
        for rel, m in zip(rels, maps):
            dest = (self.out / rel).with_suffix(".png")
            dest.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(m, "L").save(dest)

    def close(self):
        if self.csv:
            self.csv.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", help="directory of image patches")
    ap.add_argument("model", help="TorchScript model file")
    ap.add_argument("--design", choices=["loop", "batched"], required=True)
    ap.add_argument("--task", choices=["segmentation", "classification"], required=True)
    ap.add_argument("--pattern", default="**/*.png", help="glob under DIR (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=12, help="batched design's batch size")
    ap.add_argument("--workers", type=int, default=2, help="batched design's loaders (0: load in the main loop)")
    ap.add_argument("--loader", choices=["dataloader", "threads"], default="dataloader",
                    help="batched design's loaders: DataLoader worker processes or a thread pool")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="LibTorch intra-op threads (default: PyTorch's own, one per core)")
    ap.add_argument("--out", default=None, help="output directory (default: a new temporary one)")
    ap.add_argument("--mean", type=float, nargs=3, default=[0.485, 0.456, 0.406])
    ap.add_argument("--std", type=float, nargs=3, default=[0.229, 0.224, 0.225])
    args = ap.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.batch < 1:
        raise SystemExit("--batch must be at least 1")

    paths, (width, height) = find_images(args.dir, args.pattern)
    out = args.out or tempfile.mkdtemp(prefix="seeds_images_")
    preprocess = Preprocess(args.mean, args.std)
    model = torch.jit.load(args.model, map_location="cpu").eval()
    batch = 1 if args.design == "loop" else min(args.batch, len(paths))
    with torch.inference_mode():
        model(torch.zeros(batch, 3, height, width))  # warm-up, untimed
    writer = Writer(args.task, args.dir, out, args.model)

    with torch.inference_mode():
        t0 = time.perf_counter()
        if args.design == "loop":
            for p in paths:
                x = torch.from_numpy(preprocess(p)).unsqueeze(0)
                writer.write([p], model(x))
        else:
            if args.loader == "dataloader":
                batches = torch.utils.data.DataLoader(ImageSet(paths, preprocess), batch_size=args.batch,
                                                      shuffle=False, num_workers=args.workers)
            else:
                batches = thread_batches(paths, args.batch, args.workers, preprocess)
            done = 0
            for x in batches:
                writer.write(paths[done:done + x.shape[0]], model(x))
                done += x.shape[0]
        writer.close()
        seconds = time.perf_counter() - t0

    n = len(paths)
    print(json.dumps({"design": args.design, "images": n, "seconds": round(seconds, 3),
                      "images_per_s": round(n / seconds, 1), "torch_threads": torch.get_num_threads(),
                      "task": args.task, "batch": batch,
                      "workers": args.workers if args.design == "batched" else 0,
                      "loader": args.loader if args.design == "batched" else None,
                      "size": [width, height], "out": out}))


if __name__ == "__main__":
    main()
