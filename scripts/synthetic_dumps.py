"""Writes synthetic tensors in the raw dump format of scripts/dump_weights.py (DIR/NAME.f32 and
DIR/NAME.shape), for the codec examples' worst cases rather than for their typical speed:

- gaussian: 64 rows of 65536 values from N(0, 0.02^2) (long rows, long pieces at p = 5e-4);
- near_one: 4 rows of 262144 values 1 + N(0, 1e-6^2) (a bound of 1e-7 lies near the values'
  f32 rounding step, so the decoder's arithmetic cuts many runs short);
- ramp: 4 rows of 262144 evenly spaced values in [0, 1] (one straight piece per row).

Usage: python scripts/synthetic_dumps.py OUT_DIR   (needs: pip install numpy)
  e.g. cargo run --release -p pwlc-codecs --example pwl_bench -- OUT_DIR 1e-7 -v
"""
import os
import sys

import numpy as np


def write(out, name, values, shape):
    stem = os.path.join(out, name)
    values.astype("<f4").reshape(shape).tofile(stem + ".f32")
    with open(stem + ".shape", "w") as f:
        f.write(" ".join(str(d) for d in shape))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1)
    write(out, "gaussian", rng.standard_normal(64 * 65536) * 0.02, (64, 65536))
    write(out, "near_one", 1.0 + rng.standard_normal(4 * 262144) * 1e-6, (4, 262144))
    write(out, "ramp", np.linspace(0.0, 1.0, 4 * 262144), (4, 262144))


if __name__ == "__main__":
    main()
