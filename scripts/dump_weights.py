"""Dumps the tensors pwlc codes lossily (float32, >= 2 dims, >= 1024 elements) of ONNX models as raw files
for the codec example quant_bench: DIR/NAME.f32 (little-endian values) and DIR/NAME.shape
(dimensions separated by spaces).

Usage: python scripts/dump_weights.py OUT_DIR MODEL.onnx [MODEL.onnx ...]   (needs: pip install onnx numpy)
"""
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for path in sys.argv[2:]:
        model = os.path.splitext(os.path.basename(path))[0]
        for i, init in enumerate(onnx.load(path).graph.initializer):
            w = numpy_helper.to_array(init)
            if w.dtype != np.float32 or w.ndim < 2 or w.size < 1024:
                continue
            stem = os.path.join(out, f"{model}_{i:04d}")
            w.astype("<f4").tofile(stem + ".f32")
            with open(stem + ".shape", "w") as f:
                f.write(" ".join(str(d) for d in w.shape))


if __name__ == "__main__":
    main()
