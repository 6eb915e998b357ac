#!/usr/bin/python3
"""Reads flowinfer features files with h5py, as a TRIDENT or CLAM user's training code does,
and prints what it found as JSON for tests/test_embedding.cpp to check.

    h5py_read.py FILE.h5 [HALF.h5]

With HALF.h5 (the same run with embedding_dtype = "float16"), also says whether its features
are exactly FILE's float32 features rounded to float16 by numpy, and its coords FILE's.
"""
import json
import sys

import h5py
import numpy as np


def attr_value(v):
    if isinstance(v, (bytes, np.bytes_)):
        return {"type": "bytes", "value": v.decode("utf-8", "replace")}
    if isinstance(v, str):
        return {"type": "str", "value": v}
    if isinstance(v, np.integer):
        return {"type": "int", "value": int(v)}
    if isinstance(v, np.floating):
        return {"type": "float", "value": float(v)}
    return {"type": type(v).__name__, "value": str(v)}


def describe(path):
    with h5py.File(path, "r") as f:
        out = {"datasets": {}, "attrs": {}}
        for name in ("features", "coords"):
            d = f[name]
            out["datasets"][name] = {"shape": list(d.shape), "dtype": d.dtype.str,
                                     "chunks": list(d.chunks or []), "maxshape": [m if m is not None else -1 for m in d.maxshape]}
            out["attrs"][name] = {k: attr_value(v) for k, v in d.attrs.items()}
        # What a MIL training loop does with it: a bag of features and its coordinates.
        features = f["features"][:]
        coords = f["coords"][:]
        out["rows"] = int(features.shape[0])
        out["finite"] = bool(np.isfinite(features).all())
        out["first_row"] = features[0].astype(float).tolist() if len(features) else []
        out["first_coords"] = coords[0].tolist() if len(coords) else []
        return out, features, coords


def main():
    result, features, coords = describe(sys.argv[1])
    if len(sys.argv) > 2:
        half, half_features, half_coords = describe(sys.argv[2])
        result["half"] = half
        result["half_equals_rounded"] = bool(
            half_features.dtype == np.float16
            and np.array_equal(half_features, features.astype(np.float16))
            and np.array_equal(half_coords, coords))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
