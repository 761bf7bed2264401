"""Convert an ncnn .param/.bin network into an ONNX model, in-process, with ``onnx.helper``.

Only the layer types the SPAN graphs contain are implemented; any other type is an ``EngineError`` rather than a
silently wrong graph. Layout follows ncnn's model format: the .param file is text (magic 7767517, then
``type name n_in n_out inputs... outputs... key=value...`` per layer, in topological order); the .bin file is the
layers' weights back to back, in the same order, each blob either raw fp32 or, for "auto" blobs such as
convolution weights, preceded by a 4-byte tag that says how it is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import EngineError

if TYPE_CHECKING:
    import onnx

# Bump when the produced graph changes, so on-disk caches keyed by weights + this version are invalidated.
CONVERTER_VERSION = 1
OPSET = 17
_IR_VERSION = 8  # the IR version that goes with opset 17; keeps the model loadable by older onnxruntime too

_PARAM_MAGIC = 7767517
_TAG_FP16 = 0x01306B47
_TAG_INT8 = 0x000D4B38
_TAG_FP32_SCALED = 0x0002C056  # raw fp32 with an extra scale table that float inference ignores
_LOAD_AUTO = 0  # the blob starts with a storage tag
_LOAD_RAW_FP32 = 1  # the blob is plain little-endian fp32

ParamValue = int | float | list[int | float]


@dataclass(frozen=True)
class Layer:
    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, ParamValue]

    def get(self, key: int, default: ParamValue) -> ParamValue:
        return self.params.get(key, default)


def parse_param(text: str) -> list[Layer]:
    """The layers of an ncnn .param file, in file (= topological) order."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != str(_PARAM_MAGIC):
        raise EngineError("unsupported_model", "not an ncnn text .param file (missing magic 7767517)")
    layer_count = int(lines[1].split()[0])
    layers = [_parse_layer_line(line) for line in lines[2 : 2 + layer_count]]
    if len(layers) != layer_count:
        raise EngineError("unsupported_model", f".param declares {layer_count} layers but has {len(layers)}")
    return layers


def _parse_layer_line(line: str) -> Layer:
    tokens = line.split()
    layer_type, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
    inputs = tuple(tokens[4 : 4 + n_in])
    outputs = tuple(tokens[4 + n_in : 4 + n_in + n_out])
    params = dict(_parse_param_entry(token) for token in tokens[4 + n_in + n_out :])
    return Layer(layer_type, name, inputs, outputs, params)


def _parse_param_entry(token: str) -> tuple[int, ParamValue]:
    key_text, _, value_text = token.partition("=")
    key = int(key_text)
    # Keys -23300 - k hold arrays for param k, written "count,v1,v2,...".
    if key <= -23300:
        count, *values = value_text.split(",")
        return -key - 23300, [_parse_number(v) for v in values[: int(count)]]
    return key, _parse_number(value_text)


def _parse_number(text: str) -> int | float:
    # ncnn's own rule: a value is a float when it has a '.' or an exponent.
    return float(text) if any(ch in text for ch in ".eE") else int(text)


class _WeightReader:
    """Sequential reader over the .bin file, following ncnn's ModelBinFromDataReader."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0

    def read(self, count: int, load_type: int) -> np.ndarray:
        if load_type == _LOAD_RAW_FP32:
            return self._take(count, "<f4", 4 * count)
        tag = int.from_bytes(self._take_bytes(4), "little")
        if tag == _TAG_FP16:
            # fp16 blobs are padded to a 4-byte boundary.
            return self._take(count, "<f2", (2 * count + 3) // 4 * 4).astype(np.float32)
        if tag in (0, _TAG_FP32_SCALED):
            return self._take(count, "<f4", 4 * count)
        kind = "int8" if tag == _TAG_INT8 else "quantized-table"
        raise EngineError("unsupported_model", f"{kind} weight storage (tag 0x{tag:08X}) is not supported")

    def ensure_consumed(self) -> None:
        left = len(self._data) - self._offset
        if left:
            raise EngineError("unsupported_model", f".bin has {left} bytes left over: layer/weight layout mismatch")

    def _take(self, count: int, dtype: str, nbytes: int) -> np.ndarray:
        raw = self._take_bytes(nbytes)
        return np.frombuffer(raw, dtype=dtype, count=count).copy()

    def _take_bytes(self, nbytes: int) -> memoryview:
        end = self._offset + nbytes
        if end > len(self._data):
            raise EngineError("unsupported_model", ".bin is shorter than the .param file says")
        raw = self._data[self._offset : end]
        self._offset = end
        return raw


@dataclass
class _Graph:
    """What the converters append to while walking the layers."""

    weights: _WeightReader
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)

    def blob(self, name: str) -> str:
        """The ONNX tensor behind an ncnn blob (Split outputs are aliases of their input)."""
        return self.aliases.get(name, name)

    def constant(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs: object) -> None:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))


def convert(param_text: str, bin_data: bytes) -> bytes:
    """The serialized ONNX model equivalent to the ncnn network (input/output blob names kept)."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError as exc:
        raise EngineError("backend_unavailable", "the onnx package is needed to convert the ncnn model") from exc

    layers = parse_param(param_text)
    graph = _Graph(_WeightReader(bin_data))
    for layer in layers:
        converter = _CONVERTERS.get(layer.type)
        if converter is None:
            raise EngineError("unsupported_model", f"ncnn layer type {layer.type!r} ({layer.name}) is not supported")
        converter(graph, layer)
    graph.weights.ensure_consumed()

    def value_info(name: str, h: str, w: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 3, h, w])

    outputs = _graph_outputs(layers, graph)
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "ncnn",
            [value_info(name, "height", "width") for name in graph.inputs],
            [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, None, None, None]) for name in outputs],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="cos-superres.ncnn_to_onnx",
    )
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _graph_outputs(layers: list[Layer], graph: _Graph) -> list[str]:
    consumed = {graph.blob(name) for layer in layers for name in layer.inputs}
    produced = [graph.blob(name) for layer in layers for name in layer.outputs]
    return list(dict.fromkeys(name for name in produced if name not in consumed))


# --- one converter per ncnn layer type -------------------------------------------------------------------------


def _input(graph: _Graph, layer: Layer) -> None:
    graph.inputs.extend(layer.outputs)


def _memory_data(graph: _Graph, layer: Layer) -> None:
    w, h, d, c = (int(layer.get(k, 0)) for k in (0, 1, 11, 2))
    if d or not c:
        raise EngineError("unsupported_model", f"MemoryData {layer.name}: only 3-D (c,h,w) constants are supported")
    values = graph.weights.read(w * h * c, int(layer.get(21, _LOAD_RAW_FP32)))
    # A leading batch axis makes ONNX (numpy) broadcasting match ncnn's per-channel broadcasting.
    graph.constant(layer.outputs[0], values.reshape(1, c, h, w))


def _convolution(graph: _Graph, layer: Layer) -> None:
    out_ch = int(layer.get(0, 0))
    kw = int(layer.get(1, 0))
    kh = int(layer.get(11, kw))
    dil_w = int(layer.get(2, 1))
    stride_w = int(layer.get(3, 1))
    pad_left = int(layer.get(4, 0))
    pad_top = int(layer.get(14, pad_left))
    pads = [pad_top, pad_left, int(layer.get(16, pad_top)), int(layer.get(15, pad_left))]
    if min(pads) < 0 or layer.get(8, 0) or layer.get(19, 0) or float(layer.get(18, 0.0)) != 0.0:
        raise EngineError(
            "unsupported_model", f"Convolution {layer.name}: SAME/valued padding, int8 or dynamic weights"
        )
    size = int(layer.get(6, 0))
    weight = graph.weights.read(size, _LOAD_AUTO).reshape(out_ch, size // (out_ch * kh * kw), kh, kw)
    inputs = [graph.blob(layer.inputs[0]), graph.constant(f"{layer.name}.weight", weight)]
    if layer.get(5, 0):
        inputs.append(graph.constant(f"{layer.name}.bias", graph.weights.read(out_ch, _LOAD_RAW_FP32)))
    activation = int(layer.get(9, 0))
    conv_out = layer.outputs[0] if activation == 0 else f"{layer.outputs[0]}.preact"
    graph.node(
        "Conv",
        inputs,
        [conv_out],
        layer.name,
        kernel_shape=[kh, kw],
        strides=[int(layer.get(13, stride_w)), stride_w],
        dilations=[int(layer.get(12, dil_w)), dil_w],
        pads=pads,
    )
    if activation:
        _activation(graph, layer, conv_out, activation)


def _activation(graph: _Graph, layer: Layer, source: str, activation: int) -> None:
    params = layer.get(10, [])
    slope = float(params[0]) if isinstance(params, list) and params else 0.0
    target, name = layer.outputs[0], f"{layer.name}.act"
    if activation == 1 and slope == 0.0:
        graph.node("Relu", [source], [target], name)
    elif activation in (1, 2):
        graph.node("LeakyRelu", [source], [target], name, alpha=slope)
    elif activation == 4:
        graph.node("Sigmoid", [source], [target], name)
    else:
        raise EngineError("unsupported_model", f"Convolution {layer.name}: activation type {activation}")


# ncnn BinaryOp op_type -> (ONNX op, operands swapped)
_BINARY_OPS = {
    0: ("Add", False),
    1: ("Sub", False),
    2: ("Mul", False),
    3: ("Div", False),
    4: ("Max", False),
    5: ("Min", False),
    6: ("Pow", False),
    7: ("Sub", True),
    8: ("Div", True),
}


def _binary_op(graph: _Graph, layer: Layer) -> None:
    op_type = int(layer.get(0, 0))
    if op_type not in _BINARY_OPS:
        raise EngineError("unsupported_model", f"BinaryOp {layer.name}: op_type {op_type}")
    op, swapped = _BINARY_OPS[op_type]
    a = graph.blob(layer.inputs[0])
    if int(layer.get(1, 0)):
        b = graph.constant(f"{layer.name}.b", np.array(float(layer.get(2, 0.0))))
    else:
        b = graph.blob(layer.inputs[1])
    graph.node(op, [b, a] if swapped else [a, b], [layer.outputs[0]], layer.name)


def _sigmoid(graph: _Graph, layer: Layer) -> None:
    graph.node("Sigmoid", [graph.blob(layer.inputs[0])], [layer.outputs[0]], layer.name)


def _swish(graph: _Graph, layer: Layer) -> None:
    # x * sigmoid(x): Swish is not an operator at opset 17.
    source = graph.blob(layer.inputs[0])
    gate = f"{layer.outputs[0]}.sigmoid"
    graph.node("Sigmoid", [source], [gate], f"{layer.name}.sigmoid")
    graph.node("Mul", [source, gate], [layer.outputs[0]], layer.name)


def _split(graph: _Graph, layer: Layer) -> None:
    # ncnn's Split only fans a blob out to several consumers; in ONNX a tensor can be consumed many times.
    for output in layer.outputs:
        graph.aliases[output] = graph.blob(layer.inputs[0])


def _concat(graph: _Graph, layer: Layer) -> None:
    axis = int(layer.get(0, 0))
    # ncnn axes skip the batch dimension.
    onnx_axis = axis + 1 if axis >= 0 else axis
    graph.node("Concat", [graph.blob(name) for name in layer.inputs], [layer.outputs[0]], layer.name, axis=onnx_axis)


def _pixel_shuffle(graph: _Graph, layer: Layer) -> None:
    # ncnn mode 0 is PyTorch's PixelShuffle, which is DepthToSpace in CRD order.
    mode = "CRD" if int(layer.get(1, 0)) == 0 else "DCR"
    graph.node(
        "DepthToSpace",
        [graph.blob(layer.inputs[0])],
        [layer.outputs[0]],
        layer.name,
        blocksize=int(layer.get(0, 1)),
        mode=mode,
    )


_CONVERTERS: dict[str, Callable[[_Graph, Layer], None]] = {
    "Input": _input,
    "MemoryData": _memory_data,
    "Convolution": _convolution,
    "BinaryOp": _binary_op,
    "Sigmoid": _sigmoid,
    "Swish": _swish,
    "Split": _split,
    "Concat": _concat,
    "PixelShuffle": _pixel_shuffle,
}
