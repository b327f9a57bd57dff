"""Measures levers `pwlc tune` does not use, on the shared CNNs, with onnxruntime.

1. Bias correction. A layer's weight error `dW` shifts its mean output by `dW . E[x]`, where
   `E[x]` is the mean of its input over the data. Subtracting that shift from the (exactly
   stored) bias removes the systematic part of the error. The input means are measured on the
   calibration half; the result is judged on the held-out half.
2. Bounds per row (or per column) within a tensor. Starting from the bounds `pwlc tune` chose
   (one per tensor, from `target/tune/MODEL-quant.json`, times `--scale`), each row (output
   channel) gets the tensor's bound times a factor, normalised so that the mean log bound of the
   tensor is unchanged (at high rate the coded size depends only on it, so every variant has the
   same size to first order). Factors: `rms^a` of the row; the row's input energy (depthwise
   convolutions, whose rows each see one input channel); the energy of the weights that read the
   row's output downstream; and combinations. Each variant is judged by the KL divergence and
   the top-1 agreement with the original on both halves. The `columns` variants scale each
   weight of a dense Conv or Gemm by its input channel's `E[x^2]^-1/2` instead (bounds per input
   channel, as activation-aware quantizers weigh them).

Weights are rounded to the grid of step `2 e` (the quant codec's reconstruction; the entropy coder
does not change them). Images: the shared ImageNet sample, preprocessed as models.json says (PIL
bilinear resize of the shorter side, centre crop), split like `pwlc tune` (items 0, 2, 4, ...
calibrate, 1, 3, 5, ... are held out).

Usage: python levers.py MODEL [--bounds 1e-3,2e-3] [--scale 2] [--shared DIR] [--tune-dir DIR]
                        [--variants uniform,columns] [--skip-bias]
"""

import argparse
import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from PIL import Image

BATCH = 25
ort.set_default_logger_severity(3)  # no warnings about unused initializers
ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_images(shared, config):
    folder = shared / "data" / "imagenet-sample"
    mean, std = np.array(config["mean"], np.float32), np.array(config["std"], np.float32)
    resize, size = config["resize"], config["input_size"]
    images = []
    for path in sorted(folder.iterdir()):
        image = Image.open(path).convert("RGB")
        width, height = image.size
        scale = resize / min(width, height)
        image = image.resize(
            (max(resize, round(width * scale)), max(resize, round(height * scale))),
            Image.BILINEAR,
        )
        width, height = image.size
        left, top = (width - size) // 2, (height - size) // 2
        pixels = np.asarray(image.crop((left, top, left + size, top + size)), np.float32) / 255
        images.append(((pixels - mean) / std).transpose(2, 0, 1))
    return np.stack(images)


class Model:
    """The ONNX graph, its initializers, and runs of variants of it."""

    def __init__(self, path):
        self.path = path
        self.graph = onnx.load(path).graph
        self.weights = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        self.readers = {}  # tensor name -> the nodes that take it as an input
        for node in self.graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.options = ort.SessionOptions()
        self.options.intra_op_num_threads = 2

    def coded(self):
        """Tensors the default policy codes lossily: >= 2 dimensions, >= 1024 values."""
        return [n for n, w in self.weights.items() if w.ndim >= 2 and w.size >= 1024]

    def layers(self):
        """Conv and Gemm nodes with a coded weight and a bias."""
        coded = set(self.coded())
        return [
            n for n in self.graph.node
            if n.op_type in ("Conv", "Gemm") and len(n.input) > 2 and n.input[1] in coded
        ]

    def session(self, replaced, extra_outputs=()):
        model = onnx.load(self.path)
        for init in model.graph.initializer:
            if init.name in replaced:
                value = replaced[init.name].astype(np.float32)
                init.CopyFrom(numpy_helper.from_array(value, init.name))
        for name in extra_outputs:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
        return ort.InferenceSession(model.SerializeToString(), self.options)

    def logits(self, replaced, images):
        session = self.session(replaced)
        name = session.get_inputs()[0].name
        batches = [session.run(None, {name: images[i:i + BATCH]})[0] for i in range(0, len(images), BATCH)]
        return np.concatenate(batches)

    def channel_moments(self, names, images, power):
        """Mean of x**power per channel of each named tensor over `images`."""
        session = self.session({}, names)
        name = session.get_inputs()[0].name
        totals = {n: 0.0 for n in names}
        for i in range(0, len(images), BATCH):
            outputs = session.run(list(names), {name: images[i:i + BATCH]})
            for n, x in zip(names, outputs):
                axes = (0, 2, 3) if x.ndim == 4 else tuple(range(x.ndim - 1))
                totals[n] = totals[n] + (x.astype(np.float64) ** power).mean(axis=axes) * len(x)
        return {n: t / len(images) for n, t in totals.items()}


def attribute(node, name, default):
    return next((a.i for a in node.attribute if a.name == name), default)


def quantized(values, bound):
    """Rounding to the grid of step 2 * bound (bound broadcast over rows)."""
    return np.round(values / (2 * bound)) * (2 * bound)


def compare(reference, logits):
    def softmax(z):
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    p, q = softmax(reference), softmax(logits)
    kl = np.mean(np.sum(p * (np.log(p + 1e-30) - np.log(q + 1e-30)), axis=1))
    agreement = np.mean(reference.argmax(1) == logits.argmax(1))
    return f"agreement {agreement:.1%}, KL {kl:.2e}"


def mean_shift(node, weight_error, input_mean):
    """dW . E[x] per output channel of a Conv (any group count) or Gemm node."""
    error = weight_error.astype(np.float64)
    if node.op_type == "Gemm":
        return error @ input_mean if attribute(node, "transB", 0) else input_mean @ error
    groups = attribute(node, "group", 1)
    summed = error.sum(axis=(2, 3))
    outputs, per_group = summed.shape
    return np.einsum(
        "gok,gk->go",
        summed.reshape(groups, outputs // groups, per_group),
        input_mean.reshape(groups, per_group),
    ).reshape(outputs)


def bias_correction(model, calibration, held_out, bounds):
    layers = model.layers()
    means = model.channel_moments(list(dict.fromkeys(n.input[0] for n in layers)), calibration, 1)
    reference = model.logits({}, held_out)
    print("| uniform bound | held-out, plain | held-out, bias corrected |")
    print("|---|---|---|")
    for bound in bounds:
        variant = {n: quantized(model.weights[n], bound) for n in model.coded()}
        plain = compare(reference, model.logits(variant, held_out))
        for node in layers:
            weight = node.input[1]
            shift = mean_shift(node, variant[weight] - model.weights[weight], means[node.input[0]])
            variant[node.input[2]] = model.weights[node.input[2]] - shift
        corrected = compare(reference, model.logits(variant, held_out))
        print(f"| {bound:g} | {plain} | {corrected} |")


def downstream_energy(model, node):
    """Per output channel of `node`: the squared weights of the Conv/Gemm nodes reading it."""
    channels = model.weights[node.input[1]].shape[0]
    energy, seen, pending = np.zeros(channels), set(), list(node.output)
    while pending:
        tensor = pending.pop()
        for reader in model.readers.get(tensor, []):
            if id(reader) in seen:
                continue
            seen.add(id(reader))
            if reader.op_type not in ("Conv", "Gemm") or reader.input[0] != tensor:
                pending.extend(reader.output)
                continue
            squares = model.weights[reader.input[1]].astype(np.float64) ** 2
            if reader.op_type == "Gemm":
                column = squares.sum(0) if attribute(reader, "transB", 0) else squares.sum(1)
            elif attribute(reader, "group", 1) == 1:
                column = squares.sum(axis=(0, 2, 3))
            else:
                column = squares.sum(axis=(1, 2, 3))
            if column.shape[0] == channels:
                energy += column
    return energy


def column_factors(model, node, shape, variant, input_energy):
    """Bound factor of every weight from the energy of the input it multiplies (before normalising).

    For a dense Conv (group 1) or Gemm, weight `W[o, i, ...]` multiplies input channel `i`, so
    its error adds `E[x_i^2] dW^2` to the output's mean square: bounds `~ E[x_i^2]^-1/2` equalise
    that. Depthwise Conv rows see one channel each (the `input` row variant covers them).
    """
    factors = np.ones(shape)
    if "columns" not in variant or node is None:
        return factors
    energy = input_energy.get(node.input[0])
    if energy is None:
        return factors
    energy = np.maximum(energy, energy.mean() * 1e-3 + 1e-12) ** -0.5
    if node.op_type == "Conv" and attribute(node, "group", 1) == 1 and shape[1] == len(energy):
        return factors * energy.reshape((1, -1) + (1,) * (len(shape) - 2))
    if node.op_type == "Gemm" and len(shape) == 2:
        if attribute(node, "transB", 0) and shape[1] == len(energy):
            return factors * energy[None, :]
        if not attribute(node, "transB", 0) and shape[0] == len(energy):
            return factors * energy[:, None]
    return factors


def row_factors(model, node, rows, variant, input_energy):
    """Bound factor of every row of a tensor for one allocation variant (before normalising)."""
    if variant in ("uniform", "columns") or node is None:
        return np.ones(len(rows))
    if variant.startswith("rms^"):
        return (np.sqrt((rows.astype(np.float64) ** 2).mean(1)) + 1e-12) ** float(variant[4:])
    sensitivity = np.ones(len(rows))
    if "input" in variant and node.op_type == "Conv" and attribute(node, "group", 1) > 1:
        energy = input_energy[node.input[0]]
        sensitivity *= np.maximum(energy, energy.mean() * 1e-3 + 1e-12)
    if "downstream" in variant:
        energy = downstream_energy(model, node)
        if (energy > 0).any():
            sensitivity *= np.maximum(energy, energy[energy > 0].min())
    return sensitivity ** -0.5


VARIANTS = ["uniform", "rms^0.5", "rms^-0.5", "input", "downstream", "input+downstream", "columns",
            "input+columns"]


def row_bounds(model, calibration, held_out, tuned, scale, only=None):
    by_weight = {n.input[1]: n for n in model.layers()}
    input_energy = model.channel_moments(
        list(dict.fromkeys(n.input[0] for n in by_weight.values())), calibration[:100], 2
    )
    references = [model.logits({}, half) for half in (calibration, held_out)]
    variants = VARIANTS if only is None else only
    print(f"| rows' bounds (tuned bounds x {scale:g}) | calibration half | held-out half |")
    print("|---|---|---|")
    for variant in variants:
        replaced = {}
        for tensor in tuned:
            name, weights = tensor["name"], model.weights[tensor["name"]]
            rows = weights.reshape(weights.shape[0], -1)
            node = by_weight.get(name)
            factors = row_factors(model, node, rows, variant, input_energy)[:, None] * np.ones_like(rows)
            factors = factors * column_factors(model, node, weights.shape, variant, input_energy).reshape(rows.shape)
            factors = factors / np.exp(np.mean(np.log(factors)))
            bound = tensor["bound"] * scale * factors
            replaced[name] = quantized(rows, bound).reshape(weights.shape)
        results = [
            compare(reference, model.logits(replaced, half))
            for reference, half in zip(references, (calibration, held_out))
        ]
        print(f"| {variant} | {results[0]} | {results[1]} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="mobilenet_v2 or efficientnet_lite0")
    parser.add_argument("--bounds", default="1e-3,2e-3,4e-3")
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--shared", type=pathlib.Path, default=ROOT.parent / "shared")
    parser.add_argument("--tune-dir", type=pathlib.Path, default=ROOT / "target" / "tune")
    parser.add_argument("--variants", help=f"comma-separated subset of {','.join(VARIANTS)}")
    parser.add_argument("--skip-bias", action="store_true", help="only the per-row/column part")
    args = parser.parse_args()
    config = json.loads((args.shared / "models" / "models.json").read_text())[args.model]
    model = Model(str(args.shared / "models" / config["onnx"]))
    images = load_images(args.shared, config)
    calibration, held_out = images[0::2], images[1::2]
    if not args.skip_bias:
        print(f"## {args.model}: bias correction\n")
        bias_correction(model, calibration, held_out, [float(b) for b in args.bounds.split(",")])
    tuned_path = args.tune_dir / f"{args.model}-quant.json"
    if tuned_path.exists():
        tuned = json.loads(tuned_path.read_text())["tuned"]["tensors"]
        print(f"\n## {args.model}: bounds per row\n")
        only = args.variants.split(",") if args.variants else None
        row_bounds(model, calibration, held_out, tuned, args.scale, only)
    else:
        print(f"\n{tuned_path} not found: run scripts/tune.sh for the per-row experiment")


if __name__ == "__main__":
    main()
