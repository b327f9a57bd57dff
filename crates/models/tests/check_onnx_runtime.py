"""Runs an ONNX model and its rewritten copy on the same random inputs and compares outputs.

Usage: python check_onnx_runtime.py ORIGINAL.onnx REWRITTEN.onnx [TOLERANCE]
Exits non-zero if an output differs by more than TOLERANCE (default 1e-6, absolute).
Needs: pip install onnxruntime numpy
"""
import sys

import numpy as np
import onnxruntime as ort

TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
         "tensor(double)": np.float64, "tensor(float16)": np.float16, "tensor(bool)": np.bool_}


def random_inputs(session, rng):
    feeds = {}
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else (1 if i == 0 else 16)
                 for i, d in enumerate(arg.shape)]
        dtype = TYPES[arg.type]
        if np.issubdtype(dtype, np.integer):
            feeds[arg.name] = rng.integers(0, 2 if "mask" in arg.name or "type" in arg.name else 1000,
                                           size=shape).astype(dtype)
        else:
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def main():
    original, rewritten = sys.argv[1], sys.argv[2]
    tolerance = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-6
    sessions = [ort.InferenceSession(p, providers=["CPUExecutionProvider"]) for p in (original, rewritten)]
    feeds = random_inputs(sessions[0], np.random.default_rng(0))
    expected, got = (s.run(None, feeds) for s in sessions)
    worst = max(float(np.max(np.abs(e.astype(np.float64) - g.astype(np.float64)), initial=0.0))
                for e, g in zip(expected, got))
    print(f"{rewritten}: {len(got)} outputs, max |difference| {worst:.3g} (tolerance {tolerance:g})")
    sys.exit(0 if worst <= tolerance else 1)


if __name__ == "__main__":
    main()
