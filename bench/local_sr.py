"""The local AISuperResolution engine (SPAN ch48) against bicubic: quality on scikit-image's photos, seconds per
input megapixel on both runtimes, peak RSS on a 1920x1080 input, and the compute floor for comparison."""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
from PIL import Image

from superres.photos import photo_path
from superres.sr import load_engine
from superres.sr.metrics import crop_to_multiple, downscale_bicubic, psnr_y, ssim_y
from superres.sr.weights import span_model

from .cpu_peak import CpuPeak, machine_fp32_peak
from .measure import interleaved, median, progress, run_json_script
from .report import Goal, Row

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")
SPEED_PHOTO = "rocket.jpg"  # 427 x 640 = 0.27 MP of LR input
BACKENDS = ("onnxruntime", "ncnn")
SCALES = (2, 4)
THREADS = os.cpu_count() or 1
_MB = 1024 * 1024


def run_sr_quality(quick: bool) -> list[Row]:
    engine = load_engine("span", backend="onnxruntime")
    rows: list[Row] = []
    for scale in SCALES:
        progress(f"SR quality: x{scale} on {', '.join(PHOTOS)} (SPAN on onnxruntime, and bicubic)")
        scores = {"SPAN": [], "bicubic": []}  # (psnr, ssim) per photo
        for name in PHOTOS:
            with Image.open(photo_path(name)) as photo:
                hr = crop_to_multiple(photo.convert("RGB"), scale)
            lr = downscale_bicubic(hr, scale)
            outputs = {"SPAN": engine.upscale(lr, scale), "bicubic": lr.resize(hr.size, Image.Resampling.BICUBIC)}
            for method, sr in outputs.items():
                scores[method].append((psnr_y(sr, hr, crop=scale), ssim_y(sr, hr, crop=scale)))
        psnr = {m: statistics.fmean(p for p, _ in s) for m, s in scores.items()}
        ssim = {m: statistics.fmean(q for _, q in s) for m, s in scores.items()}
        how = (f"mean over {len(PHOTOS)} scikit-image photos; HR cropped to a multiple of {scale}, LR = Pillow "
               f"bicubic downscale; Y of BT.601, {scale} px border cropped")
        rows += [
            Row(f"SR x{scale} Y-PSNR: SPAN", psnr["SPAN"], "dB", note=how),
            Row(f"SR x{scale} Y-PSNR: bicubic", psnr["bicubic"], "dB"),
            Row(f"SR x{scale} Y-PSNR gain: SPAN - bicubic", psnr["SPAN"] - psnr["bicubic"], "dB",
                Goal(">=", 3.5) if scale == 2 else None),
            Row(f"SR x{scale} Y-SSIM: SPAN", ssim["SPAN"], ""),
            Row(f"SR x{scale} Y-SSIM: bicubic", ssim["bicubic"], ""),
        ]
    return rows


def run_sr_speed(quick: bool) -> list[Row]:
    rounds = 1 if quick else 3
    with Image.open(photo_path(SPEED_PHOTO)) as photo:
        lr = photo.convert("RGB")
    megapixels = lr.width * lr.height / 1e6
    engines = {backend: load_engine("span", backend=backend, threads=THREADS) for backend in BACKENDS}

    def timed(backend: str, scale: int):  # type: ignore[no-untyped-def]
        def once(_round: int) -> float:
            started = time.perf_counter()
            engines[backend].upscale(lr, scale)
            return time.perf_counter() - started
        return once

    arms = {(b, s): timed(b, s) for b in BACKENDS for s in SCALES}
    progress(f"SR speed: {SPEED_PHOTO} ({lr.width}x{lr.height}, {megapixels:.2f} MP), warm-up + {rounds} "
             f"interleaved rounds of {len(arms)} runs and a matmul, {THREADS} threads")
    results = interleaved({**arms, "matmul": _matmul_gflops}, rounds, warmup=1)  # type: ignore[arg-type,dict-item]
    s_per_mp = {arm: median(results[arm]) / megapixels for arm in arms}
    achieved = median(results.pop("matmul"))
    how = (f"median of {rounds} after a warm-up; {lr.width}x{lr.height} LR input; {THREADS} threads; wall time "
           "on a shared box")
    rows = [Row(f"SR x{s} speed: SPAN on {b}", s_per_mp[b, s], "s/MP", note=how if i == 0 else "")
            for i, (b, s) in enumerate(arms)]
    peak, peak_rows = _peak(machine_fp32_peak(), achieved)
    rows += peak_rows
    flop_per_px = {scale: model_flop_per_input_pixel(scale) for scale in SCALES}
    for scale in SCALES:
        floor_s = flop_per_px[scale] / 1e3 / peak  # FLOP/px * 1e6 px/MP / 1e9 FLOP/GFLOP
        rows += [
            Row(f"SR x{scale} model FLOPs per input pixel", flop_per_px[scale] / 1e3, "kFLOP/px",
                note="2*Cin*Cout*k*k/groups per output pixel of every Conv, at its resolution, from the ONNX graph "
                     "(shape inference); elementwise ops and the 12 px tile overlap not counted" if scale == 2 else ""),
            Row(f"SR x{scale} compute floor (model FLOPs / CPU fp32 peak)", floor_s, "s/MP",
                note="no implementation can be faster than this with direct convolution; Winograd 3x3 kernels "
                     "(ncnn) do fewer multiplies than this counts" if scale == 2 else ""),
            *[Row(f"SR x{scale} measured / floor: SPAN on {b}", s_per_mp[b, scale] / floor_s, "x") for b in BACKENDS],
        ]
    return rows


def run_sr_rss(quick: bool) -> list[Row]:
    cases = [("onnxruntime", 2)] if quick else [(b, s) for b in BACKENDS for s in SCALES]
    rows = []
    for backend, scale in cases:
        progress(f"SR peak RSS: 1920x1080 at x{scale} on {backend}, in a fresh process")
        result = run_json_script(_RSS_SCRIPT, env={"BENCH_BACKEND": backend, "BENCH_SCALE": str(scale)})
        rows.append(Row(f"SR x{scale} peak RSS, 1920x1080 input: SPAN on {backend}", result["hwm"] / _MB, "MB",
                        Goal("<=", 1024),
                        f"whole fresh process (VmHWM); {result['base'] / _MB:.0f} MB after imports and loading the "
                        f"photo; took {result['seconds']:.1f} s ({result['seconds'] / (1920 * 1080 / 1e6):.2f} s/MP)"))
    return rows


_RSS_SCRIPT = """
import json, os, time
from PIL import Image
from superres.photos import photo_path
from superres.sr import load_engine

def hwm():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

image = Image.open(photo_path("astronaut.png")).convert("RGB").resize((1920, 1080), Image.Resampling.BICUBIC)
engine = load_engine("span", backend=os.environ["BENCH_BACKEND"])
base = hwm()
started = time.perf_counter()
out = engine.upscale(image, int(os.environ["BENCH_SCALE"]))
seconds = time.perf_counter() - started
assert out.size == (1920 * int(os.environ["BENCH_SCALE"]), 1080 * int(os.environ["BENCH_SCALE"]))
print(json.dumps({"hwm": hwm(), "base": base, "seconds": seconds}))
"""


_MATMUL_N = 2048
_MATMUL_REPEATS = 3


def _peak(cpu: CpuPeak | None, achieved: float) -> tuple[float, list[Row]]:
    """The floor's denominator, GFLOP/s: the theoretical fp32 peak, or what the matmul achieved where that is
    higher (a peak it beats is no peak) or the peak is unknown; and the two rows that say which."""
    name = "CPU fp32 peak (cores x FMA units x SIMD lanes x 2 x clock)"
    matmul = (f"numpy (OpenBLAS, all {THREADS} threads) {_MATMUL_N}x{_MATMUL_N} float32 matmul, best of "
              f"{_MATMUL_REPEATS} per round, median over the same interleaved rounds as the SR runs"
              + (f"; OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}" if os.environ.get("OPENBLAS_CORETYPE")
                 else ""))
    if cpu is None:
        return achieved, [Row(name, None, "GFLOP/s", note="SIMD width or clock not found in /proc/cpuinfo; the floor "
                                                         "below uses the achieved matmul, so it is not a strict floor"),
                          Row("CPU fp32 achieved: float32 matmul", achieved, "GFLOP/s", note=matmul)]
    beaten = achieved > cpu.gflops
    return max(cpu.gflops, achieved), [
        Row(name, cpu.gflops, "GFLOP/s", note=cpu.how),
        Row("CPU fp32 achieved: float32 matmul", achieved, "GFLOP/s",
            note=f"{matmul}; {achieved / cpu.gflops:.0%} of the peak"
                 + ("; above the peak, so the floor below uses this instead" if beaten else "")),
        # The check that the derived peak (and the clock measured for it) is an upper bound on this machine.
        Row("CPU fp32 matmul / peak", achieved / cpu.gflops, "x", goal=Goal("<=", 1.0),
            note="a peak is an upper bound: no matmul may reach it (a low clock or a wrong SIMD width shows here)"),
    ]


def _matmul_gflops(_round: int) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.random((_MATMUL_N, _MATMUL_N), dtype=np.float32), rng.random((_MATMUL_N, _MATMUL_N), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(_MATMUL_REPEATS):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * _MATMUL_N**3 / best / 1e9


def model_flop_per_input_pixel(scale: int, side: int = 64) -> float:
    """FLOPs of every Conv in the SPAN graph per LR input pixel, from shapes inferred for a side x side input."""
    import onnx

    from superres.sr.runners import onnx_model_bytes

    model = onnx.load_from_string(onnx_model_bytes(span_model(scale)))
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.Clear()
        dim.dim_value = side
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in (*inferred.graph.value_info, *inferred.graph.output)}
    weights = {w.name: list(w.dims) for w in model.graph.initializer}
    flops = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        c_out, c_in_per_group, *kernel = weights[node.input[1]]
        _n, _c, height, width = shapes[node.output[0]]
        flops += 2 * c_out * c_in_per_group * int(np.prod(kernel)) * height * width
    return flops / (side * side)
