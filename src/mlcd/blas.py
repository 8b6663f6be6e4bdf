"""One BLAS kernel for every pipeline run, so dvc.lock does not depend on the runner's CPU family.

OpenBLAS (inside the numpy and scipy wheels) picks a kernel for the CPU it loads on.
Kernels sum in different orders, so a model fitted on an AVX-512 runner differs in
its last bits from one fitted on an AVX2 laptop, and the committed dvc.lock no longer
reproduces byte for byte. Every x86-64 CPU with AVX2 and FMA can run the Haswell
kernel, so mlcd asks OpenBLAS for it before numpy loads.

It must run before the first import of numpy or scipy: OpenBLAS reads
OPENBLAS_CORETYPE once, when the library loads. A kernel the CPU cannot run
would crash the process with SIGILL, so the CPU's flags are checked first.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

CORETYPE_VARIABLE = "OPENBLAS_CORETYPE"  # OpenBLAS's own switch
KERNEL_VARIABLE = "MLCD_BLAS_KERNEL"  # mlcd's: a kernel name, or "auto" to let OpenBLAS choose
DEFAULT_KERNEL = "Haswell"
AUTO = "auto"

# The x86-64 instructions each kernel needs (as /proc/cpuinfo names them).
REQUIRED_FLAGS: dict[str, frozenset[str]] = {
    "Prescott": frozenset({"pni"}),  # SSE3, as Linux names it
    "Sandybridge": frozenset({"avx"}),
    "Haswell": frozenset({"avx2", "fma"}),
    "SkylakeX": frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"}),
}
_X86_64 = {"x86_64", "amd64"}
_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class BlasPin:
    kernel: str | None  # what OPENBLAS_CORETYPE is now, None when OpenBLAS chooses
    reason: str  # why, in words for the log


def cpu_flags(cpuinfo: Path = _CPUINFO) -> frozenset[str]:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def can_run(kernel: str, flags: frozenset[str]) -> bool:
    required = REQUIRED_FLAGS.get(kernel)
    return required is not None and required <= flags


def pin_blas_kernel(
    environ: MutableMapping[str, str] | None = None,
    machine: str | None = None,
    flags: frozenset[str] | None = None,
) -> BlasPin:
    """Set OPENBLAS_CORETYPE for this process and its children, unless the user chose already."""
    env = os.environ if environ is None else environ
    if chosen := env.get(CORETYPE_VARIABLE):
        return BlasPin(chosen, f"{CORETYPE_VARIABLE}={chosen} was set by the user")
    wanted = env.get(KERNEL_VARIABLE, DEFAULT_KERNEL)
    if wanted == AUTO:
        return BlasPin(None, f"{KERNEL_VARIABLE}=auto: OpenBLAS picks the kernel for this CPU")
    if wanted not in REQUIRED_FLAGS:
        known = ", ".join([*REQUIRED_FLAGS, AUTO])
        return BlasPin(None, f"{KERNEL_VARIABLE}={wanted} is not one of {known}; not pinned")
    if (machine or platform.machine()).lower() not in _X86_64:
        return BlasPin(None, "not an x86-64 CPU: OpenBLAS picks its kernel; floats may differ in last bits")
    have = cpu_flags() if flags is None else flags
    if not can_run(wanted, have):
        missing = " ".join(sorted(REQUIRED_FLAGS[wanted] - have))
        return BlasPin(None, f"this CPU lacks {missing} for the {wanted} kernel: OpenBLAS picks its own")
    if "numpy" in sys.modules and environ is None:
        return BlasPin(None, "numpy was imported before the pin: OpenBLAS already chose its kernel")
    env[CORETYPE_VARIABLE] = wanted
    return BlasPin(wanted, f"pinned to the {wanted} kernel for results that match on every x86-64 runner")
