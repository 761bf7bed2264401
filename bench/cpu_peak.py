"""The CPU's theoretical fp32 peak, from what the machine reports: cores x FMA units x SIMD lanes x 2 x clock.

This is the denominator of the SR compute floor, so it must not be low: where the machine does not say, each
factor takes the higher plausible value (and the derivation says so). A measured matmul is a different figure
(what a BLAS achieves here, which OPENBLAS_CORETYPE or a busy neighbour can slow); bench keeps it as "achieved".
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

_GHZ_IN_NAME = re.compile(r"(\d+(?:\.\d+)?)\s*GHz", re.IGNORECASE)


@dataclass(frozen=True)
class CpuPeak:
    cores: int
    fma_units: int
    lanes: int
    ghz: float
    how: str  # the derivation, for the benchmark's note

    @property
    def gflops(self) -> float:
        return self.cores * self.fma_units * self.lanes * 2 * self.ghz


def fp32_peak(cpuinfo: str, cpus: Collection[int], max_freq_khz: Iterable[float] = ()) -> CpuPeak | None:
    """The fp32 peak of the logical CPUs `cpus`, from /proc/cpuinfo's text and cpufreq's cpuinfo_max_freq values.

    None when the SIMD width or the clock cannot be found (the caller then says the floor is not a strict one).
    """
    every = _blocks(cpuinfo)
    blocks = [b for b in every if _int(b.get("processor")) in cpus] or every[:len(cpus)]
    if not blocks:
        return None
    cores, cores_how = _physical_cores(blocks, len(cpus))
    flags = set((blocks[0].get("flags") or blocks[0].get("features") or "").split())
    simd = _simd(flags)
    clock = _clock(blocks, max_freq_khz)
    if simd is None or clock is None:
        return None
    fma_units, lanes, simd_how = simd
    ghz, clock_how = clock
    gflops = cores * fma_units * lanes * 2 * ghz
    how = f"{cores} cores ({cores_how}) x {simd_how} x {ghz:.2f} GHz ({clock_how}) = {gflops:.1f} GFLOP/s"
    return CpuPeak(cores, fma_units, lanes, ghz, how)


def machine_fp32_peak() -> CpuPeak | None:
    """fp32_peak of this process's CPUs (os.sched_getaffinity), from /proc/cpuinfo and /sys cpufreq."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    freqs = []
    for cpu in cpus:
        try:
            freqs.append(float(Path(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq").read_text()))
        except (OSError, ValueError):
            pass
    return fp32_peak(cpuinfo, cpus, freqs)


def _blocks(cpuinfo: str) -> list[dict[str, str]]:
    blocks = []
    for chunk in re.split(r"\n\s*\n", cpuinfo):
        fields = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        if "processor" in fields:
            blocks.append(fields)
    return blocks


def _physical_cores(blocks: list[dict[str, str]], logical: int) -> tuple[int, str]:
    """SMT siblings share a core's FMA units, so count distinct (physical id, core id) pairs where reported."""
    if all("core id" in b for b in blocks):
        cores = len({(b.get("physical id", "0"), b["core id"]) for b in blocks})
        return cores, (f"{logical} CPUs in os.sched_getaffinity, on {cores} distinct physical id/core id pairs "
                       "in /proc/cpuinfo")
    return logical, f"{logical} CPUs in os.sched_getaffinity; /proc/cpuinfo gives no core ids, each counted as a core"


def _simd(flags: set[str]) -> tuple[int, int, str] | None:
    """(FMA units per core, fp32 lanes, how) from the CPU flags."""
    two_fma = ("2 FMA units (assumed: two FMA ports per core, as on Intel Haswell and later and on Xeon "
               "Gold/Platinum; a floor takes the higher count where cpuinfo cannot tell)")
    if "avx512f" in flags:
        return 2, 16, f"{two_fma} x 16 fp32 lanes (avx512f: 512-bit) x 2 FLOP per FMA"
    if "avx2" in flags and "fma" in flags:
        return 2, 8, f"{two_fma} x 8 fp32 lanes (avx2 + fma: 256-bit) x 2 FLOP per FMA"
    if "avx" in flags:
        return 1, 8, ("1 unit (no fma flag: one multiply and one add port, 2 FLOP per lane per cycle together) "
                      "x 8 fp32 lanes (avx: 256-bit) x 2 FLOP")
    if "sse" in flags or "sse2" in flags:
        return 1, 4, ("1 unit (no fma flag: one multiply and one add port, 2 FLOP per lane per cycle together) "
                      "x 4 fp32 lanes (sse: 128-bit) x 2 FLOP")
    if "asimd" in flags:
        return 2, 4, ("2 FMA units (assumed: two NEON FMA pipes, as on Neoverse N1; a floor takes the higher count) "
                      "x 4 fp32 lanes (asimd: 128-bit) x 2 FLOP per FMA")
    return None


def _clock(blocks: list[dict[str, str]], max_freq_khz: Iterable[float]) -> tuple[float, str] | None:
    """The highest clock any source reports, in GHz: cpufreq's maximum, cpuinfo's "cpu MHz", the model name."""
    candidates: list[tuple[float, str]] = []
    freqs = [f for f in max_freq_khz if f > 0]
    if freqs:
        candidates.append((max(freqs) / 1e6, "cpufreq cpuinfo_max_freq"))
    mhz = [v for b in blocks if (v := _float(b.get("cpu mhz"))) and v > 0]
    if mhz:
        candidates.append((max(mhz) / 1e3, "/proc/cpuinfo 'cpu MHz'"))
    if m := _GHZ_IN_NAME.search(blocks[0].get("model name", "")):
        candidates.append((float(m[1]), "the model name"))
    if not candidates:
        return None
    ghz = max(value for value, _ in candidates)
    sources = [source for value, source in candidates if value == ghz]
    others = [f"{source} {value:.2f}" for value, source in candidates if value != ghz]
    how = " and ".join(sources) + (f"; highest of it and {', '.join(others)}" if others else "")
    if not freqs:
        how += "; no cpufreq maximum, so turbo above this clock is not seen"
    return ghz, how


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
