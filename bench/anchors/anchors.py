#!/usr/bin/env python3
"""Measure the anchor codecs side by side on the same tensors of real ONNX models.

For every model the *coded set* is every float32 initializer with at least 2 dimensions and at least
1024 elements (pwlc's lossy policy); everything else counts as stored as-is. Every method below codes
exactly that set, tensor by tensor unless said otherwise, and is measured for size, error and speed:

* ``nncodec``  MPEG NNC reference codec (DeepCABAC), ``nncodec.nn.encode``/``decode`` with its defaults
  except the swept ``qp``; the coded set goes in as one parameter dict.
* ``sz3``      SZ3 through ``pysz``, absolute error bound, one bound for every tensor, natural shape.
* ``zipnn``    ZipNN lossless, on the float32 values and on the same values cast to bfloat16.
* ``zstd``     zstd on the raw float32 bytes and on the four byte planes of each tensor.
* ``int8``     symmetric per-output-channel int8 quantization (scale = max|w| / 127, stored as f32).
* ``oracle``   uniform quantizer with step 2e, indices costed at their order-0 entropy per tensor.

Results go to ``OUT/anchors.json``; every lossy operating point also gets its reconstructed model at
``OUT/<model>/<method>_<param>.onnx`` so accuracy can be evaluated on it later.
"""

from __future__ import annotations

import os

# One thread everywhere: the numbers are single-process, single-thread CPU time. These must be set
# before numpy / torch (imported by nncodec) start their thread pools.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
for _var in THREAD_ENV:
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

MIN_ELEMENTS = 1024
MIN_DIMS = 2
MB = 1e6

NNCODEC_QPS = (-48, -46, -44, -42, -40, -38, -36, -34, -32, -30, -28, -26, -24, -20)
NNCODEC_QPS_QUICK = (-36, -32, -24)
SZ3_BOUNDS = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3)
SZ3_BOUNDS_QUICK = (1e-3, 3e-3)
ZSTD_LEVEL = 19
ZIPNN_THREADS = 1

VERSIONED_PACKAGES = ("nncodec", "zipnn", "pysz", "zstandard", "onnx", "numpy", "onnxruntime", "torch")


# --------------------------------------------------------------------------------------------------
# Coded set
# --------------------------------------------------------------------------------------------------


@dataclass
class CodedSet:
    """The tensors of one model that every method codes, plus what the file-level ratio needs."""

    model_name: str
    onnx_path: Path
    onnx_size: int
    tensors: dict[str, np.ndarray]
    channel_axes: dict[str, int]

    @property
    def n_weights(self) -> int:
        """Number of coded weights."""
        return sum(t.size for t in self.tensors.values())

    @property
    def bytes_f32(self) -> int:
        """Size of the coded set as float32."""
        return 4 * self.n_weights


def is_coded(init: onnx.TensorProto) -> bool:
    """pwlc's lossy policy: float32, >= 2 dims, >= 1024 elements."""
    n = math.prod(init.dims)
    return init.data_type == onnx.TensorProto.FLOAT and len(init.dims) >= MIN_DIMS and n >= MIN_ELEMENTS


def output_channel_axes(graph: onnx.GraphProto) -> dict[str, int]:
    """The output-channel axis of each initializer, from the first node that consumes it.

    Conv weights [O, I, kh, kw] -> 0; ConvTranspose [I, O/g, ...] -> 1; MatMul B [K, N] -> last;
    Gemm B -> 0 when transB else 1; anything else (Gather tables, MatMul A, ...) -> 0 (per row).
    """
    axes: dict[str, int] = {}
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        for pos, name in enumerate(node.input):
            if name in axes:
                continue
            if node.op_type == "ConvTranspose" and pos == 1:
                axes[name] = 1
            elif node.op_type == "MatMul" and pos == 1:
                axes[name] = -1
            elif node.op_type == "Gemm" and pos == 1:
                axes[name] = 0 if attrs.get("transB", 0) else 1
    return axes


def load_coded_set(path: Path) -> tuple[onnx.ModelProto, CodedSet]:
    """Load an ONNX model and pick its coded set."""
    model = onnx.load(str(path))
    axes = output_channel_axes(model.graph)
    tensors = {}
    channel_axes = {}
    for init in model.graph.initializer:
        if is_coded(init):
            arr = numpy_helper.to_array(init).astype(np.float32, copy=False)
            tensors[init.name] = np.ascontiguousarray(arr)
            channel_axes[init.name] = axes.get(init.name, 0) % arr.ndim
    if not tensors:
        raise ValueError(f"{path}: no float32 initializer with >= {MIN_DIMS} dims and >= {MIN_ELEMENTS} elements")
    coded = CodedSet(path.stem, path, path.stat().st_size, tensors, channel_axes)
    return model, coded


# --------------------------------------------------------------------------------------------------
# Methods: each returns an Outcome for one operating point
# --------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one method produced at one operating point."""

    compressed_bytes: float
    decoded: dict[str, np.ndarray]
    input_bytes: int
    input_dtype: str = "float32"
    encode_s: float | None = None
    decode_s: float | None = None
    lossy: bool = True
    error_bound: float | None = None
    notes: dict = field(default_factory=dict)


def timed(fn: Callable, *args, **kwargs):
    """Run fn and return (result, CPU seconds of this process).

    CPU time, not wall time: every library runs on one thread, and on a shared machine the wall
    clock also counts the time other processes held the core."""
    start = time.process_time()
    result = fn(*args, **kwargs)
    return result, time.process_time() - start


def run_nncodec(tensors: dict[str, np.ndarray], qp: int) -> Outcome:
    """NNCodec with its defaults except qp, on the coded set as one parameter dict."""
    import torch
    from nncodec.nn import decode, encode

    torch.set_num_threads(1)
    params = {name: arr.copy() for name, arr in tensors.items()}
    with tempfile.TemporaryDirectory(prefix="anchors-nnc-") as workdir:
        args = {"qp": qp, "verbose": False, "results": workdir}
        bitstream, enc_s = timed(encode, params, args=args)
        rec, dec_s = timed(decode, bitstream, args={"verbose": False})
    decoded = {name: np.asarray(rec[name], dtype=np.float32).reshape(arr.shape) for name, arr in tensors.items()}
    return Outcome(len(bitstream), decoded, 4 * total_size(tensors), encode_s=enc_s, decode_s=dec_s)


def sz3_config(bound: float):
    """An SZ3 config with an absolute error bound and defaults otherwise."""
    from pysz import szConfig, szErrorBoundMode

    config = szConfig()
    config.errorBoundMode = szErrorBoundMode.ABS
    config.absErrorBound = bound
    config.openmp = False
    return config


def run_sz3(tensors: dict[str, np.ndarray], bound: float) -> Outcome:
    """SZ3 per tensor in its natural shape, the same absolute bound for every tensor."""
    from pysz import sz

    config = sz3_config(bound)
    streams = {}
    start = time.process_time()
    for name, arr in tensors.items():
        streams[name], _ = sz.compress(arr, config)
    enc_s = time.process_time() - start
    decoded = {}
    start = time.process_time()
    for name, arr in tensors.items():
        out, _ = sz.decompress(streams[name], np.float32, arr.shape)
        decoded[name] = out
    dec_s = time.process_time() - start
    size = sum(len(s) for s in streams.values())
    return Outcome(size, decoded, 4 * total_size(tensors), encode_s=enc_s, decode_s=dec_s, error_bound=bound)


def to_bfloat16_bits(arr: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even; NaN stays NaN."""
    bits = arr.astype(np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    rounded = ((bits + rounding) >> 16).astype(np.uint16)
    nan = np.isnan(arr)
    rounded[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def run_zipnn(tensors: dict[str, np.ndarray], dtype: str) -> Outcome:
    """ZipNN lossless per tensor on float32 bytes, or on the tensors cast to bfloat16."""
    from zipnn import ZipNN

    if dtype == "float32":
        raw = {name: arr.tobytes() for name, arr in tensors.items()}
    else:
        raw = {name: to_bfloat16_bits(arr).tobytes() for name, arr in tensors.items()}
    codec = ZipNN(bytearray_dtype=dtype, threads=ZIPNN_THREADS)
    # ZipNN 0.5.4 rewrites its input buffer in place (even a `bytes`), so it gets throwaway copies.
    scratch = {name: bytearray(b) for name, b in raw.items()}
    streams, enc_s = timed(lambda: {name: codec.compress(scratch[name]) for name in raw})
    restored, dec_s = timed(lambda: {name: bytes(codec.decompress(s)) for name, s in streams.items()})
    if restored != raw:
        raise RuntimeError(f"zipnn {dtype}: decompressed bytes differ from the input")
    decoded = {name: decode_raw(restored[name], dtype, arr.shape) for name, arr in tensors.items()}
    size = sum(len(s) for s in streams.values())
    in_bytes = sum(len(b) for b in raw.values())
    lossy = dtype != "float32"
    return Outcome(size, decoded, in_bytes, dtype, enc_s, dec_s, lossy=lossy, notes={"threads": ZIPNN_THREADS})


def decode_raw(raw: bytes, dtype: str, shape: tuple) -> np.ndarray:
    """Raw float32 or bfloat16 bytes -> float32 array of the given shape."""
    if dtype == "float32":
        return np.frombuffer(raw, dtype=np.float32).reshape(shape)
    return from_bfloat16_bits(np.frombuffer(raw, dtype=np.uint16)).reshape(shape)


def byte_planes(arr: np.ndarray) -> bytes:
    """The float32 bytes of arr regrouped plane by plane (all byte 0s, then all byte 1s, ...)."""
    return arr.view(np.uint8).reshape(-1, 4).T.tobytes()


def from_byte_planes(raw: bytes, shape: tuple) -> np.ndarray:
    """Inverse of byte_planes."""
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(4, -1)
    return np.ascontiguousarray(planes.T).view(np.float32).reshape(shape)


def run_zstd(tensors: dict[str, np.ndarray], planes: bool) -> Outcome:
    """zstd per tensor on the raw float32 bytes, or on its byte planes (split timed as part of encode)."""
    import zstandard

    comp = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=0)
    dec = zstandard.ZstdDecompressor()
    split = byte_planes if planes else (lambda a: a.tobytes())

    def encode_all():
        return {name: comp.compress(split(arr)) for name, arr in tensors.items()}

    def decode_all():
        out = {}
        for name, arr in tensors.items():
            raw = dec.decompress(streams[name])
            out[name] = from_byte_planes(raw, arr.shape) if planes else decode_raw(raw, "float32", arr.shape)
        return out

    streams, enc_s = timed(encode_all)
    decoded, dec_s = timed(decode_all)
    size = sum(len(s) for s in streams.values())
    return Outcome(size, decoded, 4 * total_size(tensors), encode_s=enc_s, decode_s=dec_s, lossy=False)


def int8_quantize(arr: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8: (int8 values, float32 scale per channel along axis)."""
    moved = np.moveaxis(arr, axis, 0).reshape(arr.shape[axis], -1)
    max_abs = np.abs(moved).max(axis=1)
    scale = np.where(max_abs > 0, max_abs / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(moved / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def int8_dequantize(q: np.ndarray, scale: np.ndarray, axis: int, shape: tuple) -> np.ndarray:
    """Inverse of int8_quantize."""
    moved_shape = (shape[axis],) + tuple(s for i, s in enumerate(shape) if i != axis)
    values = (q.astype(np.float32) * scale[:, None]).reshape(moved_shape)
    return np.ascontiguousarray(np.moveaxis(values, 0, axis))


def run_int8(tensors: dict[str, np.ndarray], axes: dict[str, int]) -> Outcome:
    """int8 per-output-channel symmetric; size = int8 values + one float32 scale per channel."""
    quantized, enc_s = timed(lambda: {n: int8_quantize(a, axes[n]) for n, a in tensors.items()})
    decoded, dec_s = timed(lambda: {n: int8_dequantize(*quantized[n], axes[n], a.shape) for n, a in tensors.items()})
    size = sum(q.size + 4 * s.size for q, s in quantized.values())
    return Outcome(size, decoded, 4 * total_size(tensors), encode_s=enc_s, decode_s=dec_s)


def order0_entropy_bits(indices: np.ndarray) -> float:
    """n * H(indices): the order-0 empirical entropy of the whole array, in bits."""
    _, counts = np.unique(indices, return_counts=True)
    n = indices.size
    return float(-(counts * np.log2(counts / n)).sum())


def run_oracle(tensors: dict[str, np.ndarray], bound: float) -> Outcome:
    """Uniform quantizer, step 2e, indices at their per-tensor order-0 entropy (no real coder)."""
    step = 2.0 * bound
    bits = 0.0
    decoded = {}
    for name, arr in tensors.items():
        idx = np.rint(arr.astype(np.float64) / step).astype(np.int64)
        bits += order0_entropy_bits(idx)
        decoded[name] = (idx * step).astype(np.float32)
    return Outcome(bits / 8.0, decoded, 4 * total_size(tensors), error_bound=bound)


def total_size(tensors: dict[str, np.ndarray]) -> int:
    """Total number of elements."""
    return sum(a.size for a in tensors.values())


# --------------------------------------------------------------------------------------------------
# Operating points, metrics, records
# --------------------------------------------------------------------------------------------------


@dataclass
class OperatingPoint:
    """One (method, parameter) pair and how to run it on a coded set."""

    method: str
    param: str
    run: Callable[[CodedSet], Outcome]

    @property
    def slug(self) -> str:
        """File-name-safe id: <method>_<param>."""
        return f"{self.method}_{self.param}".replace("=", "").replace(",", "_")


def operating_points(quick: bool, methods: set[str] | None = None) -> list[OperatingPoint]:
    """Every operating point (of `methods` only, when given), in report order."""
    qps = NNCODEC_QPS_QUICK if quick else NNCODEC_QPS
    bounds = SZ3_BOUNDS_QUICK if quick else SZ3_BOUNDS
    points = [OperatingPoint("nncodec", f"qp={qp}", lambda c, qp=qp: run_nncodec(c.tensors, qp)) for qp in qps]
    points += [OperatingPoint("sz3", f"abs={e:g}", lambda c, e=e: run_sz3(c.tensors, e)) for e in bounds]
    points += [OperatingPoint("oracle", f"abs={e:g}", lambda c, e=e: run_oracle(c.tensors, e)) for e in bounds]
    points += [
        OperatingPoint("zipnn", "float32", lambda c: run_zipnn(c.tensors, "float32")),
        OperatingPoint("zipnn", "bfloat16", lambda c: run_zipnn(c.tensors, "bfloat16")),
        OperatingPoint("zstd", f"level={ZSTD_LEVEL}", lambda c: run_zstd(c.tensors, planes=False)),
        OperatingPoint("zstd", f"level={ZSTD_LEVEL},byteplanes", lambda c: run_zstd(c.tensors, planes=True)),
        OperatingPoint("int8", "per-channel", lambda c: run_int8(c.tensors, c.channel_axes)),
    ]
    return [p for p in points if methods is None or p.method in methods]


def error_stats(original: dict[str, np.ndarray], decoded: dict[str, np.ndarray]) -> tuple[float, float]:
    """(max abs error, RMSE) over all coded weights, in float64."""
    max_err = 0.0
    sq_sum = 0.0
    n = 0
    for name, arr in original.items():
        rec = decoded[name]
        if rec.shape != arr.shape:
            raise ValueError(f"{name}: decoded shape {rec.shape} != original {arr.shape}")
        diff = rec.astype(np.float64) - arr.astype(np.float64)
        max_err = max(max_err, float(np.abs(diff).max()))
        sq_sum += float(np.square(diff).sum())
        n += arr.size
    return max_err, math.sqrt(sq_sum / n)


def throughput(nbytes: int, seconds: float | None) -> float | None:
    """MB/s, or None when there was nothing timed."""
    if seconds is None or seconds <= 0:
        return None
    return nbytes / MB / seconds


def make_record(coded: CodedSet, point: OperatingPoint, out: Outcome, onnx_path: Path | None) -> dict:
    """The JSON record of one operating point."""
    max_err, rmse = error_stats(coded.tensors, out.decoded)
    stored_file = coded.onnx_size - coded.bytes_f32 + out.compressed_bytes
    return {
        "model": coded.model_name,
        "method": point.method,
        "param": point.param,
        "coded_weights": coded.n_weights,
        "coded_tensors": len(coded.tensors),
        "coded_bytes_f32": coded.bytes_f32,
        "input_dtype": out.input_dtype,
        "input_bytes": out.input_bytes,
        "compressed_bytes": out.compressed_bytes,
        "bits_per_weight": 8.0 * out.compressed_bytes / coded.n_weights,
        "ratio_coded": out.input_bytes / out.compressed_bytes,
        "ratio_coded_vs_f32": coded.bytes_f32 / out.compressed_bytes,
        "onnx_bytes": coded.onnx_size,
        "ratio_file": coded.onnx_size / stored_file,
        "lossy": out.lossy,
        "error_bound": out.error_bound,
        "max_abs_error": max_err,
        "rmse": rmse,
        "encode_s": out.encode_s,
        "decode_s": out.decode_s,
        "encode_mb_s": throughput(out.input_bytes, out.encode_s),
        "decode_mb_s": throughput(out.input_bytes, out.decode_s),
        "notes": out.notes,
        "reconstructed_onnx": str(onnx_path) if onnx_path else None,
        "versions": VERSIONS,
    }


def write_reconstruction(model: onnx.ModelProto, decoded: dict[str, np.ndarray], path: Path) -> None:
    """Save the original graph with the coded initializers replaced by their decoded values."""
    rebuilt = onnx.ModelProto()
    rebuilt.CopyFrom(model)
    for init in rebuilt.graph.initializer:
        if init.name in decoded:
            init.CopyFrom(numpy_helper.from_array(decoded[init.name].astype(np.float32), init.name))
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(rebuilt, str(path))


def package_versions() -> dict[str, str | None]:
    """Installed versions of the measured packages (None when absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


VERSIONS = package_versions()


def machine_info() -> dict:
    """CPU model, core count, OS and the thread settings in force."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_at_start": load,
        "threads": {var: os.environ.get(var) for var in THREAD_ENV}
        | {"torch": 1, "zipnn": ZIPNN_THREADS, "zstd": "single (threads=0)", "sz3": "single (no OpenMP)"},
    }


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def measure_model(path: Path, out_dir: Path, quick: bool, methods: set[str] | None, log) -> list[dict]:
    """Run every operating point (of `methods`, when given) on one model; return its records."""
    model, coded = load_coded_set(path)
    log(
        f"{coded.model_name}: {len(coded.tensors)} coded tensors, {coded.n_weights} weights "
        f"({coded.bytes_f32 / MB:.2f} MB f32) of a {coded.onnx_size / MB:.2f} MB file"
    )
    records = []
    for point in operating_points(quick, methods):
        outcome = point.run(coded)
        onnx_path = out_dir / coded.model_name / f"{point.slug}.onnx" if outcome.lossy else None
        if onnx_path:
            write_reconstruction(model, outcome.decoded, onnx_path)
        record = make_record(coded, point, outcome, onnx_path)
        records.append(record)
        log(format_record(record))
    return records


def format_record(r: dict) -> str:
    """One human-readable line per record."""
    enc = f"{r['encode_mb_s']:.1f}" if r["encode_mb_s"] else "-"
    dec = f"{r['decode_mb_s']:.1f}" if r["decode_mb_s"] else "-"
    return (
        f"  {r['method']:8s} {r['param']:22s} bpw={r['bits_per_weight']:6.3f} "
        f"coded={r['ratio_coded']:6.3f}x file={r['ratio_file']:6.3f}x "
        f"maxerr={r['max_abs_error']:.3g} rmse={r['rmse']:.3g} enc={enc} dec={dec} MB/s"
    )


def merge_records(previous: list[dict], new: list[dict]) -> list[dict]:
    """Keep earlier records of (model, method) pairs not measured in this run; replace the rest."""
    remeasured = {(r["model"], r["method"]) for r in new}
    return [r for r in previous if (r.get("model"), r.get("method")) not in remeasured] + new


def load_previous(path: Path) -> list[dict]:
    """Records of an earlier anchors.json, or [] when there is none."""
    if not path.exists():
        return []
    with path.open() as f:
        return json.load(f).get("records", [])


def write_report(out_dir: Path, records: list[dict], quick: bool) -> Path:
    """Write OUT/anchors.json (atomically: temp file + rename)."""
    path = out_dir / "anchors.json"
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "quick": quick,
        "policy": {"dtype": "float32", "min_dims": MIN_DIMS, "min_elements": MIN_ELEMENTS},
        "versions": VERSIONS,
        "records": records,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(path)
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="ONNX model files")
    parser.add_argument("--out", type=Path, default=Path("target/bench/anchors"), help="output directory")
    parser.add_argument("--quick", action="store_true", help="fewer operating points")
    parser.add_argument(
        "--methods",
        type=lambda v: set(v.split(",")),
        default=None,
        help="comma-separated methods to run (default: all); earlier records of the others are kept",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Measure every model in turn, writing anchors.json after each one."""
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, flush=True)

    records = load_previous(args.out / "anchors.json")
    for path in args.models:
        if not path.is_file():
            print(f"error: {path}: no such model file", file=sys.stderr)
            return 2
        records = merge_records(records, measure_model(path, args.out, args.quick, args.methods, log))
        log(f"wrote {write_report(args.out, records, args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
