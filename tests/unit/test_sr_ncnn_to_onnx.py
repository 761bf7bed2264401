"""The ncnn -> ONNX converter on a small hand-written network, checked against ncnn itself running the same files."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from superres.sr import EngineError
from superres.sr.ncnn_to_onnx import convert, parse_param

FP16_TAG = struct.pack("<I", 0x01306B47)
FP32_TAG = struct.pack("<I", 0)

# Every layer type SPAN uses. conv1 has 81 fp16 weights (162 bytes, padded to 164), so a wrong alignment rule
# shifts everything read after it.
PARAM = """7767517
11 12
Input        in0    0 1 data
MemoryData   mean   0 1 mean 0=1 1=1 2=3
BinaryOp     sub    2 1 data mean centred 0=1
BinaryOp     mul    1 1 centred scaled 0=2 1=1 2=2.000000e+00
Convolution  conv1  1 1 scaled c1 0=3 1=3 4=1 5=1 6=81
Split        split  1 2 c1 c1a c1b
Swish        swish  1 1 c1a s
Sigmoid      sig    1 1 c1b g
Concat       cat    2 1 s g cat 0=0
Convolution  conv2  1 1 cat c2 0=12 1=3 4=1 5=1 6=648
PixelShuffle ps     1 1 c2 output 0=2
"""


def tiny_weights(rng: np.random.Generator) -> bytes:
    mean = rng.uniform(0.3, 0.5, 3).astype("<f4")
    w1 = rng.normal(0, 0.3, 81).astype("<f2")
    b1 = rng.normal(0, 0.1, 3).astype("<f4")
    w2 = rng.normal(0, 0.2, 648).astype("<f4")
    b2 = rng.normal(0, 0.1, 12).astype("<f4")
    return b"".join(
        [mean.tobytes(), FP16_TAG, w1.tobytes(), b"\0\0", b1.tobytes(), FP32_TAG, w2.tobytes(), b2.tobytes()]
    )


def run_onnx(model: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(["output"], {"data": x[np.newaxis]})[0][0]


def run_ncnn(param: Path, weights: Path, x: np.ndarray) -> np.ndarray:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = False
    net.opt.num_threads = 1
    assert net.load_param(str(param)) == 0 and net.load_model(str(weights)) == 0
    extractor = net.create_extractor()
    mat_in = ncnn.Mat(x)
    extractor.input("data", mat_in)
    status, mat_out = extractor.extract("output")
    assert status == 0
    return np.array(mat_out)


def test_converted_graph_matches_ncnn_on_every_span_layer_type(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    weights = tiny_weights(rng)
    (tmp_path / "tiny.param").write_text(PARAM)
    (tmp_path / "tiny.bin").write_bytes(weights)
    x = rng.uniform(0, 1, (3, 9, 11)).astype(np.float32)

    onnx_out = run_onnx(convert(PARAM, weights), x)
    ncnn_out = run_ncnn(tmp_path / "tiny.param", tmp_path / "tiny.bin", x)

    assert onnx_out.shape == ncnn_out.shape == (3, 18, 22)
    np.testing.assert_allclose(onnx_out, ncnn_out, atol=1e-4)


def test_param_values_parse_as_ints_floats_and_arrays() -> None:
    text = "7767517\n1 1\nConvolution c 0 1 out 0=8 2=2.5e+02 -23310=2,1.000000e-01,6\n"
    (layer,) = parse_param(text)
    assert layer.params == {0: 8, 2: 250.0, 10: [0.1, 6]}
    assert isinstance(layer.params[0], int)


def test_unknown_layer_type_is_rejected_by_name() -> None:
    text = PARAM.replace("Sigmoid      sig", "Deconvolution sig")
    with pytest.raises(EngineError, match="Deconvolution") as info:
        convert(text, tiny_weights(np.random.default_rng(0)))
    assert info.value.code == "unsupported_model"


def test_leftover_weight_bytes_mean_a_layout_mismatch() -> None:
    with pytest.raises(EngineError, match="left over"):
        convert(PARAM, tiny_weights(np.random.default_rng(0)) + b"\0" * 8)


def test_truncated_weights_are_rejected() -> None:
    with pytest.raises(EngineError, match="shorter"):
        convert(PARAM, tiny_weights(np.random.default_rng(0))[:-40])


def test_int8_weights_are_rejected_not_misread() -> None:
    weights = tiny_weights(np.random.default_rng(0)).replace(FP16_TAG, struct.pack("<I", 0x000D4B38), 1)
    with pytest.raises(EngineError, match="int8"):
        convert(PARAM, weights)


def test_binary_param_file_is_rejected() -> None:
    with pytest.raises(EngineError, match="magic"):
        convert("\x00\x01garbage", b"")
