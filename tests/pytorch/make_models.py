"""Real architectures made by PyTorch with random weights (fixed seeds, nothing downloaded),
saved as TorchScript both traced and scripted, for the PyTorch-oracle tests.

    python make_models.py OUT_DIR [--only NAME ...]

Writes OUT_DIR/<name>-traced.pt and OUT_DIR/<name>-scripted.pt for every model in MODELS, and
OUT_DIR/models.json describing each (task, patch size, output shape, the ops its graph holds).
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from typing import Dict


class ConvBnRelu(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class UNet(nn.Module):
    """A 3-level U-Net with BatchNorm, as segmentation models in pathology are built."""

    def __init__(self, classes=2, base=16, in_channels=3):
        super().__init__()
        c1, c2, c3 = base, base * 2, base * 4
        self.enc1 = nn.Sequential(ConvBnRelu(in_channels, c1), ConvBnRelu(c1, c1))
        self.enc2 = nn.Sequential(ConvBnRelu(c1, c2), ConvBnRelu(c2, c2))
        self.bottom = nn.Sequential(ConvBnRelu(c2, c3), ConvBnRelu(c3, c3))
        self.up2 = nn.ConvTranspose2d(c3, c2, 2, stride=2)
        self.dec2 = nn.Sequential(ConvBnRelu(c2 * 2, c2), ConvBnRelu(c2, c2))
        self.up1 = nn.ConvTranspose2d(c2, c1, 2, stride=2)
        self.dec1 = nn.Sequential(ConvBnRelu(c1 * 2, c1), ConvBnRelu(c1, c1))
        self.head = nn.Conv2d(c1, classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottom(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


class GrayNucleiNet(UNet):
    """A grey-level nuclei network with two heads, as bioimage.io's and HoVer-Net's are shaped:
    one input channel (a first convolution that refuses three) and a dict of outputs, the
    auxiliary head first so that only models[].output finds the map."""

    def __init__(self):
        super().__init__(classes=2, in_channels=1)
        self.aux = nn.Conv2d(16, 1, 1)

    def forward(self, x) -> Dict[str, torch.Tensor]:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottom(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return {"aux": torch.sigmoid(self.aux(d1)), "seg": self.head(d1)}


class YoloV8Head(nn.Module):
    """A small detector whose output has YOLOv8's export layout: [B, 4 + nc, N] with rows
    cx, cy, w, h (patch pixels) and then nc sigmoid class scores, one column per anchor point
    of a stride-8 grid (ultralytics' Detect head in export mode, without the DFL)."""

    def __init__(self, classes=3, width=16):
        super().__init__()
        self.classes = classes
        self.stride = 8
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1), nn.BatchNorm2d(width), nn.SiLU(),
            nn.Conv2d(width, width * 2, 3, 2, 1), nn.BatchNorm2d(width * 2), nn.SiLU(),
            nn.Conv2d(width * 2, width * 4, 3, 2, 1), nn.BatchNorm2d(width * 4), nn.SiLU())
        self.box = nn.Conv2d(width * 4, 4, 1)
        self.cls = nn.Conv2d(width * 4, classes, 1)

    def forward(self, x):
        f = self.backbone(x)
        b, _, h, w = f.shape
        ys = torch.arange(h, dtype=f.dtype, device=f.device).view(1, h, 1).expand(1, h, w)
        xs = torch.arange(w, dtype=f.dtype, device=f.device).view(1, 1, w).expand(1, h, w)
        t = self.box(f)
        cx = (xs + torch.sigmoid(t[:, 0]) * 2.0 - 0.5) * self.stride
        cy = (ys + torch.sigmoid(t[:, 1]) * 2.0 - 0.5) * self.stride
        bw = torch.sigmoid(t[:, 2]) * 4.0 * self.stride
        bh = torch.sigmoid(t[:, 3]) * 4.0 * self.stride
        boxes = torch.stack([cx, cy, bw, bh], 1).view(b, 4, h * w)
        scores = torch.sigmoid(self.cls(f)).view(b, self.classes, h * w)
        return torch.cat([boxes, scores], 1)


def randomize_batchnorm(model, gen):
    # Fresh BatchNorm layers are the identity in eval mode (mean 0, var 1): random running
    # statistics and affine parameters make the oracle check the folded arithmetic too.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


def resnet18():
    import torchvision
    return torchvision.models.resnet18(weights=None, num_classes=3)


def vit_small():
    import timm
    # ViT-S/16 as UNI and other pathology foundation models use it: features [B, 384].
    model = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0)
    for block in model.blocks:
        # timm picks scaled_dot_product_attention itself where torch has it; insist, so the
        # saved graph holds the operator the LibTorch 1.13 check is about.
        block.attn.fused_attn = True
    return model


# name: (constructor, task, patch size, flowinfer settings for the model entry)
MODELS = {
    "resnet18": (resnet18, "classification", 224, {"activation": "none"}),
    "unet_bn": (lambda: UNet(classes=2), "segmentation", 256, {"activation": "none"}),
    "vit_s16": (vit_small, "embedding", 224, {}),
    "yolov8_head": (lambda: YoloV8Head(classes=3), "detection", 256, {"detection_format": "yolov8"}),
    # Input channels and outputs as models from the field have them: grey-level, a dict.
    "gray_nuclei": (GrayNucleiNet, "segmentation", 256,
                    {"channels": "gray", "mean": [0.5], "std": [0.25], "output": "seg", "activation": "none"}),
}


def select(output, settings):
    """The tensor models[].output names in `output` (the output itself without it)."""
    return output[settings["output"]] if "output" in settings else output


def graph_ops(module):
    """The operators that forward() runs, submodule calls inlined."""
    graph = module.inlined_graph  # nodes live as long as their graph
    ops = set()
    stack = [graph]
    while stack:
        for node in stack.pop().nodes():
            ops.add(node.kind())
            stack.extend(node.blocks())
    return ops


def make(name, out_dir):
    ctor, task, patch, settings = MODELS[name]
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(99)
    model = ctor()
    randomize_batchnorm(model, gen)
    model.eval()
    channels = 1 if settings.get("channels") == "gray" else 3
    example = torch.rand(2, channels, patch, patch, generator=gen) * 4.0 - 2.0
    saved = {}
    with torch.no_grad():
        reference = model(example)
        for mode in ("traced", "scripted"):
            if mode == "traced":
                # strict=False: a dict output is a model's, not a mistake
                jit = torch.jit.trace(model, example, check_trace=False, strict=False)
            else:
                jit = torch.jit.script(model)
            path = os.path.join(out_dir, f"{name}-{mode}.pt")
            torch.jit.save(jit, path)
            # What was saved computes what the eager model computes.
            loaded = torch.jit.load(path)
            diff = (select(loaded(example), settings) - select(reference, settings)).abs().max().item()
            if diff > 1e-5:
                raise SystemExit(f"{name} {mode}: saved module differs from eager by {diff}")
            ops = sorted(op for op in graph_ops(loaded) if op.startswith("aten::"))
            saved[mode] = {"path": path, "ops": ops}
    return {"task": task, "patch_size": patch, "settings": settings,
            "output_shape": list(select(reference, settings).shape[1:]), "files": saved}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--only", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    info = {"torch": torch.__version__, "models": {}}
    for name in args.only:
        info["models"][name] = make(name, args.out_dir)
        print(f"{name}: {info['models'][name]['output_shape']}", file=sys.stderr)
    with open(os.path.join(args.out_dir, "models.json"), "w") as f:
        json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
