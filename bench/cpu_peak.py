"""The CPU's theoretical fp32 peak, from what the machine reports: cores x FMA units x SIMD lanes x 2 x clock.

This is the denominator of the SR compute floor, so it must not be low: where the machine does not say, each
factor takes the higher plausible value (and the derivation says so). The clock is the highest of cpufreq's
maximum, /proc/cpuinfo's "cpu MHz", the model name and, on x86-64, a measured one: a virtual machine reports its
TSC rate as "cpu MHz" (2.6 GHz on the box the README quotes) while its cores turbo to 3.9 GHz, and a numpy
matmul beat the 2.6 GHz peak there. A measured matmul is a different figure (what a BLAS achieves here, which
OPENBLAS_CORETYPE or a busy neighbour can slow); bench keeps it as "achieved".

`python -m bench.cpu_peak` prints the peak and its derivation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
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


def fp32_peak(cpuinfo: str, cpus: Collection[int], max_freq_khz: Iterable[float] = (),
              measured_ghz: float | None = None) -> CpuPeak | None:
    """The fp32 peak of the logical CPUs `cpus`, from /proc/cpuinfo's text, cpufreq's cpuinfo_max_freq values and
    a measured clock (measured_clock_ghz).

    None when the SIMD width or the clock cannot be found (the caller then says the floor is not a strict one).
    """
    every = _blocks(cpuinfo)
    blocks = [b for b in every if _int(b.get("processor")) in cpus] or every[:len(cpus)]
    if not blocks:
        return None
    cores, cores_how = _physical_cores(blocks, len(cpus))
    flags = set((blocks[0].get("flags") or blocks[0].get("features") or "").split())
    simd = _simd(flags)
    clock = _clock(blocks, max_freq_khz, measured_ghz)
    if simd is None or clock is None:
        return None
    fma_units, lanes, simd_how = simd
    ghz, clock_how = clock
    gflops = cores * fma_units * lanes * 2 * ghz
    how = f"{cores} cores ({cores_how}) x {simd_how} x {ghz:.2f} GHz ({clock_how}) = {gflops:.1f} GFLOP/s"
    return CpuPeak(cores, fma_units, lanes, ghz, how)


def machine_fp32_peak() -> CpuPeak | None:
    """fp32_peak of this process's CPUs (os.sched_getaffinity), from /proc/cpuinfo, /sys cpufreq and the clock
    measured in a child process (machine code run through ctypes: a fault there must not end the caller)."""
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
    try:
        done = subprocess.run([sys.executable, "-m", "bench.cpu_peak", "--clock"], cwd=_ROOT, capture_output=True,
                              text=True, timeout=60)
        measured = float(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        measured = None
    return fp32_peak(cpuinfo, cpus, freqs, measured)


# x86-64 System V machine code for `uint64_t chain(uint64_t n)`: n iterations of 100 dependent `imul rax, rdx`
# (3 cycles of latency each on every x86-64 core since Nehalem, Intel and AMD alike; an add chain would not do:
# Golden Cove folds immediate adds at rename). The loop counter runs on its own chain, hidden under the imuls.
_IMULS_PER_ITERATION = 100
_IMUL_LATENCY = 3
_CHAIN = (bytes([0xB8, 1, 0, 0, 0, 0xBA, 3, 0, 0, 0])  # mov eax, 1; mov edx, 3
          + bytes([0x48, 0x0F, 0xAF, 0xC2]) * _IMULS_PER_ITERATION  # imul rax, rdx
          + bytes([0x48, 0xFF, 0xCF])  # dec rdi
          + bytes([0x0F, 0x85]) + (-(4 * _IMULS_PER_ITERATION + 3 + 6)).to_bytes(4, "little", signed=True)  # jnz
          + bytes([0xC3]))  # ret


def measured_clock_ghz(iterations: int = 100_000, repeats: int = 15) -> float | None:
    """The core clock in GHz, from timing a chain of dependent multiplies (the best of `repeats`: preemption
    only slows a run down). None off x86-64 Linux/macOS or where executable memory is refused."""
    import ctypes
    import mmap
    import platform
    import time

    if os.name != "posix" or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        code = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, AttributeError):
        return None
    code.write(_CHAIN)
    chain = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(code)))
    chain(iterations)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        chain(iterations)
        best = min(best, time.perf_counter() - started)
    return iterations * _IMULS_PER_ITERATION * _IMUL_LATENCY / best / 1e9


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


def _clock(blocks: list[dict[str, str]], max_freq_khz: Iterable[float],
           measured_ghz: float | None) -> tuple[float, str] | None:
    """The highest clock in GHz of: cpufreq's maximum, cpuinfo's "cpu MHz", the model name, the measured one."""
    candidates: list[tuple[float, str]] = []
    if measured_ghz:
        candidates.append((measured_ghz, "measured: a chain of dependent 3-cycle imuls"))
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
    if not freqs and not measured_ghz:
        how += "; no cpufreq maximum or measured clock, so turbo above this clock is not seen"
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


if __name__ == "__main__":
    if sys.argv[1:] == ["--clock"]:
        ghz = measured_clock_ghz()
        print("" if ghz is None else f"{ghz:.4f}")
    else:
        peak = machine_fp32_peak()
        print("fp32 peak unknown: no SIMD width or clock found" if peak is None
              else f"{peak.gflops:.1f} GFLOP/s: {peak.how}")
