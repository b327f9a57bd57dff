"""Estimates for the lossless codec's exponent context and for adaptive models, on the float32
tensors of an ONNX model (the tensors of `cargo bench -p pwlc-codecs --bench lossless`).

1. The conditional entropy of the exponents (the head plane) given the exponent `lag` elements
   back, for lags 1, 2, 4 and 8, summed over the tensors, in bytes.
2. The code length of sequential adaptive models (a Dirichlet prior `a` per context, which sends
   no tables) for the four planes of each tensor, in their contexts (the head plane: the
   exponent four back; the tail planes: the element's exponent, or none, whichever is shorter;
   raw bits as a ceiling), with the best `a` of 1/64, 1/16, 1/4 and 1/2 chosen per plane and
   tensor after the fact. With `pwlc inspect --json` of a `--method lossless` container of the
   same model, the codec's bytes per size class are printed beside it.

Usage: python scripts/lossless_contexts.py MODEL.onnx [INSPECT.json]   (needs: pip install onnx numpy)
  e.g. pwlc compress ../shared/models/efficientnet_lite0.onnx --method lossless -o /tmp/e.pwlc
       pwlc inspect /tmp/e.pwlc --json > /tmp/e.json
       python scripts/lossless_contexts.py ../shared/models/efficientnet_lite0.onnx /tmp/e.json
"""
import json
import math
import sys

import numpy as np
import onnx
from onnx import numpy_helper

PRIORS = (1 / 64, 1 / 16, 1 / 4, 1 / 2)
SIZE_CLASSES = ((0, 1024), (1024, 10_000), (10_000, 100_000), (100_000, math.inf))
lgamma = np.vectorize(math.lgamma)


def counts(symbols, contexts):
    """Counts of each (context, symbol) pair that occurs, and of each context."""
    _, pair = np.unique(contexts.astype(np.int64) * 65536 + symbols, return_counts=True)
    _, context = np.unique(contexts, return_counts=True)
    return pair, context


def conditional_entropy_bits(symbols, contexts):
    pair, context = counts(symbols, contexts)
    return float(-(pair * np.log2(pair)).sum() + (context * np.log2(context)).sum())


def adaptive_bits(symbols, contexts, alphabet, a):
    """Code length of a sequential Dirichlet(a) estimator per context; it depends only on the
    final counts: log2 G(n + aK) - log2 G(aK) - sum(log2 G(c + a) - log2 G(a))."""
    pair, context = counts(symbols, contexts)
    nats = (lgamma(context + a * alphabet) - math.lgamma(a * alphabet)).sum() - (
        lgamma(pair + a) - math.lgamma(a)
    ).sum()
    return float(nats / math.log(2))


def earlier(values, lag):
    return np.concatenate([np.zeros(min(lag, values.size), np.int64), values[:-lag]])[: values.size]


def planes(tensor):
    u = tensor.ravel().view(np.uint32).astype(np.int64)
    head = (u >> 23) & 255
    tails = [(u >> 31) << 7 | (u >> 16) & 127, (u >> 8) & 255, u & 255]
    return head, tails


def adaptive_tensor_bytes(tensor):
    head, tails = planes(tensor)
    n = head.size
    none = np.zeros(n, np.int64)
    bits = min(adaptive_bits(head, earlier(head, 4), 256, a) for a in PRIORS)
    for tail in tails:
        bits += min(
            [8 * n]
            + [adaptive_bits(tail, c, 256, a) for a in PRIORS for c in (head, none)]
        )
    return bits / 8


def main():
    model = onnx.load(sys.argv[1])
    coded = {}
    if len(sys.argv) > 2:
        coded = {t["name"]: t["stored_bytes"] for t in json.load(open(sys.argv[2]))["tensors"]}
    tensors = [
        (init.name, numpy_helper.to_array(init))
        for init in model.graph.initializer
        if init.data_type == onnx.TensorProto.FLOAT
    ]
    print(f"{len(tensors)} float32 tensors")
    lags = {lag: 0.0 for lag in (1, 2, 4, 8)}
    classes = [[0, 0.0, 0] for _ in SIZE_CLASSES]
    for name, tensor in tensors:
        head, _ = planes(tensor)
        for lag in lags:
            lags[lag] += conditional_entropy_bits(head, earlier(head, lag)) / 8
        row = next(c for c, (lo, hi) in zip(classes, SIZE_CLASSES) if lo <= tensor.size < hi)
        row[0] += 4 * tensor.size
        row[1] += adaptive_tensor_bytes(tensor)
        row[2] += coded.get(name, 0)
    for lag, size in lags.items():
        print(f"exponents given the exponent {lag} back: {size:,.0f} bytes")
    raw = sum(c[0] for c in classes)
    adaptive = sum(c[1] for c in classes)
    print(f"adaptive models: {raw:,} -> {adaptive:,.0f} bytes, ratio {raw / adaptive:.4f}x")
    for (lo, hi), (size, adaptive, stored) in zip(SIZE_CLASSES, classes):
        line = f"  tensors of {lo:,} to {hi:,} values: {size:,} bytes, adaptive {adaptive:,.0f}"
        if coded:
            line += f", codec {stored:,} ({adaptive / stored - 1:+.2%} adaptive against codec)"
        print(line)


if __name__ == "__main__":
    main()
