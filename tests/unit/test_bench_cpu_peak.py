"""The SR compute floor's denominator: the CPU's fp32 peak, cores x FMA units x SIMD lanes x 2 x clock, from
/proc/cpuinfo text (injected here) and cpufreq's maximum. Nothing here is timed: that this machine's peak is not
beaten by a matmul (and so its measured clock is not too low) is the bench's "CPU fp32 matmul / peak" row."""

from __future__ import annotations

import pytest

from bench.cpu_peak import CpuPeak, fp32_peak
from bench.local_sr import _peak


def _cpuinfo(cpus: list[tuple[int, int]], flags: str, mhz: float | None = 2600.0, model: str = "Intel(R) Xeon(R)",
             key: str = "flags") -> str:
    """One block per logical CPU: (processor, core id)."""
    blocks = []
    for processor, core in cpus:
        lines = [f"processor\t: {processor}", "vendor_id\t: GenuineIntel", f"model name\t: {model}",
                 "physical id\t: 0", f"core id\t\t: {core}", f"{key}\t\t: fpu sse sse2 {flags}"]
        if mhz is not None:
            lines.insert(3, f"cpu MHz\t\t: {mhz}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def test_avx512_counts_16_lanes_and_two_fma_units_at_the_reported_clock() -> None:
    peak = fp32_peak(_cpuinfo([(0, 0), (1, 1)], "avx avx2 fma avx512f", mhz=2599.998), {0, 1})
    assert peak is not None
    assert (peak.cores, peak.fma_units, peak.lanes) == (2, 2, 16)
    assert peak.gflops == pytest.approx(2 * 2 * 16 * 2 * 2.599998)
    assert "avx512f" in peak.how and "2 FMA units (assumed" in peak.how and "cpu MHz" in peak.how
    assert peak.how.endswith(f"= {peak.gflops:.1f} GFLOP/s")


def test_avx2_fma_takes_the_highest_clock_and_counts_smt_siblings_once() -> None:
    # 2 cores x 2 threads; the idle "cpu MHz" is low, the model name says 3.00, cpufreq's maximum is 3.9 GHz
    text = _cpuinfo([(0, 0), (1, 1), (2, 0), (3, 1)], "avx avx2 fma", mhz=1200.0,
                    model="Intel(R) Core(TM) i7-9700 CPU @ 3.00GHz")
    peak = fp32_peak(text, {0, 1, 2, 3}, max_freq_khz=[3_900_000.0, 3_900_000.0])
    assert peak is not None
    assert (peak.cores, peak.fma_units, peak.lanes, peak.ghz) == (2, 2, 8, 3.9)
    assert peak.gflops == pytest.approx(2 * 2 * 8 * 2 * 3.9)
    assert "cpufreq" in peak.how and "4 CPUs" in peak.how


def test_affinity_limits_the_cores_counted() -> None:
    text = _cpuinfo([(0, 0), (1, 1), (2, 2), (3, 3)], "avx avx2 fma")
    peak = fp32_peak(text, {2})
    assert peak is not None and peak.cores == 1


def test_model_name_clock_is_used_when_it_is_the_highest() -> None:
    peak = fp32_peak(_cpuinfo([(0, 0)], "avx avx2 fma", mhz=800.0, model="AMD EPYC @ 2.45GHz"), {0})
    assert peak is not None and peak.ghz == 2.45 and "model name" in peak.how


def test_a_measured_clock_above_the_reported_one_is_used() -> None:
    # a VM: "cpu MHz" is the TSC rate, no cpufreq, the cores turbo higher
    peak = fp32_peak(_cpuinfo([(0, 0), (1, 1)], "avx avx2 fma avx512f", mhz=2600.0), {0, 1}, measured_ghz=3.8)
    assert peak is not None and peak.ghz == 3.8
    assert "measured" in peak.how and "'cpu MHz' 2.60" in peak.how and "not seen" not in peak.how


def test_without_cpufreq_or_a_measured_clock_the_note_says_turbo_is_not_seen() -> None:
    peak = fp32_peak(_cpuinfo([(0, 0)], "avx avx2 fma", mhz=2600.0), {0})
    assert peak is not None and "turbo above this clock is not seen" in peak.how


def test_avx_without_fma_counts_one_multiply_and_one_add_port() -> None:
    peak = fp32_peak(_cpuinfo([(0, 0), (1, 1)], "avx", mhz=3000.0), {0, 1})
    assert peak is not None
    assert (peak.fma_units, peak.lanes) == (1, 8)
    assert peak.gflops == pytest.approx(2 * 1 * 8 * 2 * 3.0)
    assert "no fma flag" in peak.how


def test_unknown_simd_or_clock_gives_none() -> None:
    assert fp32_peak(_cpuinfo([(0, 0)], "", mhz=None, model="Some CPU"), {0}) is None  # no clock anywhere
    no_simd = "processor\t: 0\ncpu MHz\t\t: 2000\nflags\t\t: fpu\n"
    assert fp32_peak(no_simd, {0}) is None


def test_arm_features_line_is_read() -> None:
    text = "processor\t: 0\nFeatures\t: fp asimd evtstrm\n\nprocessor\t: 1\nFeatures\t: fp asimd evtstrm\n"
    peak = fp32_peak(text, {0, 1}, max_freq_khz=[3_000_000.0])
    assert peak is not None and (peak.cores, peak.lanes, peak.ghz) == (2, 4, 3.0)


def test_the_floor_uses_the_matmul_only_where_it_beats_the_peak_or_the_peak_is_unknown() -> None:
    cpu = CpuPeak(cores=2, fma_units=2, lanes=16, ghz=2.6, how="derivation")
    denominator, rows = _peak(cpu, achieved=200.0)
    assert denominator == pytest.approx(332.8) and rows[0].value == pytest.approx(332.8) and rows[1].value == 200.0
    assert rows[0].note == "derivation" and "60% of the peak" in rows[1].note
    assert rows[2].value == pytest.approx(200.0 / 332.8) and rows[2].meets is True
    denominator, rows = _peak(cpu, achieved=340.0)
    assert denominator == 340.0 and "the floor below uses this instead" in rows[1].note
    assert rows[2].meets is False  # the bench's table shows the peak was beaten
    denominator, rows = _peak(None, achieved=200.0)
    assert denominator == 200.0 and rows[0].value is None and "not a strict floor" in rows[0].note
