"""Checks with PyTorch that a checkpoint written by the pytorch adapter loads like the original.

    python check_pth.py ORIGINAL WRITTEN [--scale S]

Both files are loaded with `torch.load(..., weights_only=True)`. The check passes when they
hold the same structure (same keys in the same order, same non-tensor values) and every tensor
has the same dtype, shape and strides, with WRITTEN's float values equal to ORIGINAL's times S
(default 1; non-float tensors must be equal) and views of one storage still sharing it.
The adapter's ignored test `real_checkpoint_round_trips` writes such files (`PWLC_PTH_OUT`).
"""

import argparse
import sys

import torch


def flatten(value, path=""):
    """Yields (dotted path, leaf) for every leaf of nested dicts, lists and tuples."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from flatten(item, f"{path}.{index}" if path else str(index))
    else:
        yield path, value


def compare(original, written, scale):
    """Returns a list of differences (empty when the files agree)."""
    problems = []
    left, right = list(flatten(original)), list(flatten(written))
    if [k for k, _ in left] != [k for k, _ in right]:
        return ["the key paths or their order differ"]
    storages = {}
    for (path, a), (_, b) in zip(left, right):
        if not isinstance(a, torch.Tensor):
            if type(a) is not type(b) or a != b:
                problems.append(f"{path}: {a!r} became {b!r}")
            continue
        if (a.dtype, a.shape, a.stride(), a.storage_offset()) != \
                (b.dtype, b.shape, b.stride(), b.storage_offset()):
            problems.append(f"{path}: dtype, shape, stride or offset changed")
            continue
        pair = storages.setdefault(a.untyped_storage().data_ptr(), b.untyped_storage().data_ptr())
        if pair != b.untyped_storage().data_ptr():
            problems.append(f"{path}: no longer shares its storage")
        expected = a * scale if a.is_floating_point() else a
        if not torch.equal(expected.to(b.dtype), b):
            worst = (expected.double() - b.double()).abs().max().item()
            problems.append(f"{path}: values differ (max |diff| {worst})")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original")
    parser.add_argument("written")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    original = torch.load(args.original, weights_only=True)
    written = torch.load(args.written, weights_only=True)
    problems = compare(original, written, args.scale)
    for problem in problems:
        print(problem)
    tensors = sum(isinstance(v, torch.Tensor) for _, v in flatten(written))
    print(f"{args.written}: {tensors} tensors, {'OK' if not problems else 'MISMATCH'}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
