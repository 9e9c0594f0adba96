#!/usr/bin/env python3
"""Reference values for glmhal's K-quant decoders (Q4_K, Q5_K, Q6_K).

Random super-blocks (finite f16 scales, random everything else) decoded by
the `gguf` package's numpy implementation of ggml's dequantization, written
to model/tests/fixtures/kquants.json. A developer tool: CI only reads the
committed file.

    python3 -m venv .venv && .venv/bin/pip install gguf numpy
    .venv/bin/python scripts/make_kquant_goldens.py
"""

import json
import pathlib

import numpy as np
from gguf.constants import GGMLQuantizationType as T
from gguf.quants import dequantize

OUT = pathlib.Path(__file__).resolve().parent.parent / "model" / "tests" / "fixtures" / "kquants.json"
BLOCKS = 3

# type, bytes per block, byte offsets of the f16 scales
TYPES = [("Q4_K", T.Q4_K, 144, [0, 2]), ("Q5_K", T.Q5_K, 176, [0, 2]), ("Q6_K", T.Q6_K, 210, [208])]


def main():
    rng = np.random.default_rng(20261128)
    out = {}
    for name, ty, size, scales in TYPES:
        raw = rng.integers(0, 256, size=(BLOCKS, size), dtype=np.uint8)
        for b in range(BLOCKS):
            for at in scales:
                half = np.array([rng.uniform(-0.05, 0.05)], dtype=np.float16).view(np.uint8)
                raw[b, at : at + 2] = half
        values = dequantize(raw.reshape(-1), ty).astype(np.float32).reshape(-1)
        out[name] = {
            "bytes": raw.reshape(-1).tolist(),
            "values": [float(v) for v in values],
        }
    OUT.write_text(json.dumps(out))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
