"""Tests of anchors.py on a small synthetic ONNX model (no download, no shared data needed).

Run: target/anchors-venv/bin/python -B -m unittest discover -s bench/anchors -v
"""

from __future__ import annotations

import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import anchors


def tiny_model(rng: np.random.Generator) -> onnx.ModelProto:
    """x[1,4,8,8] -> Conv(W[32,4,3,3], b[32]) -> Flatten -> MatMul(B[2048,64]) -> Gemm(C[16,64], transB=1)."""
    conv_w = (rng.standard_normal((32, 4, 3, 3)) * 0.05).astype(np.float32)
    conv_b = (rng.standard_normal(32) * 0.01).astype(np.float32)
    mat_b = (rng.standard_normal((2048, 64)) * 0.02).astype(np.float32)
    gemm_c = (rng.standard_normal((16, 64)) * 0.1).astype(np.float32)
    small = (rng.standard_normal((4, 4))).astype(np.float32)
    inits = [
        numpy_helper.from_array(conv_w, "conv_w"),
        numpy_helper.from_array(conv_b, "conv_b"),
        numpy_helper.from_array(mat_b, "mat_b"),
        numpy_helper.from_array(gemm_c, "gemm_c"),
        numpy_helper.from_array(small, "small_unused"),
        numpy_helper.from_array(np.arange(2048, dtype=np.int64).reshape(2, 1024), "int_unused"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["c"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "mat_b"], ["m"]),
        helper.make_node("Gemm", ["m", "gemm_c"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


class TinyModelCase(unittest.TestCase):
    """Writes the tiny model to a temp dir for each test."""

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)
        self.path = self.dir / "tiny.onnx"
        onnx.save(tiny_model(np.random.default_rng(7)), str(self.path))

    def tearDown(self) -> None:
        self.tmp.cleanup()


class CodedSetTest(TinyModelCase):
    def test_policy_picks_large_float_matrices_only(self) -> None:
        _, coded = anchors.load_coded_set(self.path)
        # conv_b is 1-D, small_unused has 16 elements, int_unused is int64; gemm_c has exactly 1024.
        self.assertEqual(set(coded.tensors), {"conv_w", "mat_b", "gemm_c"})
        self.assertEqual(coded.n_weights, 32 * 4 * 9 + 2048 * 64 + 16 * 64)
        self.assertEqual(coded.bytes_f32, 4 * coded.n_weights)
        self.assertEqual(coded.channel_axes, {"conv_w": 0, "mat_b": 1, "gemm_c": 0})

    def test_channel_axes_follow_the_consumer(self) -> None:
        model, _ = anchors.load_coded_set(self.path)
        axes = anchors.output_channel_axes(model.graph)
        self.assertEqual(axes["mat_b"], -1)
        self.assertEqual(axes["gemm_c"], 0)
        self.assertNotIn("conv_w", axes)  # Conv weights use the default axis 0

    def test_model_without_coded_tensors_is_an_error(self) -> None:
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "empty",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        )
        path = self.dir / "empty.onnx"
        onnx.save(helper.make_model(graph), str(path))
        with self.assertRaisesRegex(ValueError, "no float32 initializer"):
            anchors.load_coded_set(path)


class HelperTest(unittest.TestCase):
    def setUp(self) -> None:
        rng = np.random.default_rng(3)
        self.tensors = {
            "a": (rng.standard_normal((64, 3, 3, 3)) * 0.1).astype(np.float32),
            "b": (rng.standard_normal((96, 40)) * 0.02).astype(np.float32),
        }

    def test_byte_planes_round_trip(self) -> None:
        arr = self.tensors["a"]
        np.testing.assert_array_equal(anchors.from_byte_planes(anchors.byte_planes(arr), arr.shape), arr)

    def test_bfloat16_rounds_to_nearest_even(self) -> None:
        values = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, -2.5, np.inf], dtype=np.float32)
        back = anchors.from_bfloat16_bits(anchors.to_bfloat16_bits(values))
        np.testing.assert_array_equal(back, np.array([1.0, 1.0, 1.0 + 2**-6, -2.5, np.inf], dtype=np.float32))
        self.assertTrue(np.isnan(anchors.from_bfloat16_bits(anchors.to_bfloat16_bits(np.array([np.nan])))[0]))

    def test_bfloat16_matches_torch(self) -> None:
        import torch

        arr = self.tensors["a"].ravel()
        expected = torch.from_numpy(arr).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        np.testing.assert_array_equal(anchors.to_bfloat16_bits(arr), expected)

    def test_int8_error_within_half_step_per_channel(self) -> None:
        for axis in (0, 1):
            arr = self.tensors["b"]
            q, scale = anchors.int8_quantize(arr, axis)
            self.assertEqual(scale.size, arr.shape[axis])
            rec = anchors.int8_dequantize(q, scale, axis, arr.shape)
            err = np.abs(rec - arr)
            bound = np.expand_dims(scale, 1 - axis) / 2 * (1 + 1e-6)
            self.assertTrue(np.all(err <= bound), f"axis {axis}")

    def test_int8_size_counts_values_and_scales(self) -> None:
        out = anchors.run_int8(self.tensors, {"a": 0, "b": 1})
        self.assertEqual(out.compressed_bytes, 64 * 27 + 4 * 64 + 96 * 40 + 4 * 40)

    def test_oracle_respects_bound_and_entropy(self) -> None:
        out = anchors.run_oracle(self.tensors, 1e-3)
        max_err, _ = anchors.error_stats(self.tensors, out.decoded)
        self.assertLessEqual(max_err, 1e-3 * (1 + 1e-5))
        self.assertEqual(anchors.order0_entropy_bits(np.zeros(100, dtype=np.int64)), 0.0)
        self.assertAlmostEqual(anchors.order0_entropy_bits(np.array([0, 1] * 50)), 100.0)

    def test_zstd_is_lossless(self) -> None:
        for planes in (False, True):
            out = anchors.run_zstd(self.tensors, planes)
            self.assertEqual(anchors.error_stats(self.tensors, out.decoded), (0.0, 0.0))
            self.assertLess(out.compressed_bytes, out.input_bytes)

    def test_zipnn_float32_is_lossless_and_bf16_is_a_cast(self) -> None:
        out = anchors.run_zipnn(self.tensors, "float32")
        self.assertEqual(anchors.error_stats(self.tensors, out.decoded), (0.0, 0.0))
        self.assertFalse(out.lossy)
        out = anchors.run_zipnn(self.tensors, "bfloat16")
        self.assertEqual(out.input_bytes, 2 * anchors.total_size(self.tensors))
        max_err, _ = anchors.error_stats(self.tensors, out.decoded)
        self.assertLessEqual(max_err, 2**-8 * max(np.abs(t).max() for t in self.tensors.values()))

    def test_sz3_respects_bound(self) -> None:
        for bound in (1e-4, 3e-3):
            out = anchors.run_sz3(self.tensors, bound)
            max_err, _ = anchors.error_stats(self.tensors, out.decoded)
            self.assertLessEqual(max_err, bound * (1 + 1e-5))

    def test_nncodec_round_trip_keeps_shapes(self) -> None:
        out = anchors.run_nncodec(self.tensors, -32)
        for name, arr in self.tensors.items():
            self.assertEqual(out.decoded[name].shape, arr.shape)
        max_err, rmse = anchors.error_stats(self.tensors, out.decoded)
        self.assertGreater(max_err, 0.0)
        self.assertLess(rmse, 0.01)
        self.assertLess(out.compressed_bytes, out.input_bytes)

    def test_error_stats_rejects_shape_change(self) -> None:
        with self.assertRaisesRegex(ValueError, "decoded shape"):
            anchors.error_stats({"a": np.zeros((2, 3))}, {"a": np.zeros((3, 2))})


class EndToEndTest(TinyModelCase):
    def test_quick_run_writes_records_and_runnable_models(self) -> None:
        import onnxruntime as ort

        out = self.dir / "out"
        self.assertEqual(anchors.main([str(self.path), "--out", str(out), "--quick"]), 0)
        report = json.loads((out / "anchors.json").read_text())
        records = report["records"]
        self.assertEqual(len(records), len(anchors.operating_points(quick=True)))
        self.assertIn("cpu_model", report["machine"])
        x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the tiny model's unused initializers are deliberate

        def session(path: str) -> ort.InferenceSession:
            return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

        ref = session(str(self.path)).run(None, {"x": x})[0]
        for r in records:
            self.assertEqual(r["model"], "tiny")
            self.assertGreater(r["ratio_file"], 0.0)
            if r["error_bound"] is not None:
                self.assertLessEqual(r["max_abs_error"], r["error_bound"] * (1 + 1e-5), r["param"])
            if not r["lossy"]:
                self.assertEqual(r["max_abs_error"], 0.0, r["method"])
                self.assertIsNone(r["reconstructed_onnx"])
                continue
            y = session(r["reconstructed_onnx"]).run(None, {"x": x})[0]
            self.assertEqual(y.shape, ref.shape)
            self.assertFalse(np.array_equal(y, ref), f"{r['method']} {r['param']} left the weights unchanged")

    def test_rerun_replaces_only_the_remeasured_model_and_methods(self) -> None:
        previous = [
            {"model": "other", "method": "sz3", "param": "a"},
            {"model": "tiny", "method": "sz3", "param": "b"},
            {"model": "tiny", "method": "nncodec", "param": "c"},
        ]
        new = [{"model": "tiny", "method": "nncodec", "param": "d"}]
        merged = anchors.merge_records(previous, new)
        self.assertEqual([r["param"] for r in merged], ["a", "b", "d"])

    def test_methods_select_operating_points(self) -> None:
        points = anchors.operating_points(quick=True, methods={"nncodec", "int8"})
        self.assertEqual({p.method for p in points}, {"nncodec", "int8"})
        self.assertEqual(len(points), len(anchors.NNCODEC_QPS_QUICK) + 1)


if __name__ == "__main__":
    unittest.main()
