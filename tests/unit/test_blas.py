"""The BLAS kernel pin: when it applies, when it steps aside, and that it acts before numpy loads."""

import os
import subprocess
import sys

import pytest

from mlcd.blas import (
    CORETYPE_VARIABLE,
    DEFAULT_KERNEL,
    KERNEL_VARIABLE,
    REQUIRED_FLAGS,
    can_run,
    cpu_flags,
    pin_blas_kernel,
)

AVX2 = frozenset({"pni", "avx", "avx2", "fma"})


def test_pins_haswell_on_an_avx2_x86_64_cpu():
    env: dict[str, str] = {}
    pin = pin_blas_kernel(env, machine="x86_64", flags=AVX2)
    assert env == {CORETYPE_VARIABLE: DEFAULT_KERNEL} and pin.kernel == DEFAULT_KERNEL


def test_a_kernel_the_user_set_is_kept():
    env = {CORETYPE_VARIABLE: "Sandybridge"}
    assert pin_blas_kernel(env, machine="x86_64", flags=AVX2).kernel == "Sandybridge"
    assert env == {CORETYPE_VARIABLE: "Sandybridge"}


@pytest.mark.parametrize(
    ("env", "machine", "flags", "reason"),
    [
        ({KERNEL_VARIABLE: "auto"}, "x86_64", AVX2, "OpenBLAS picks the kernel"),
        ({}, "aarch64", AVX2, "not an x86-64 CPU"),
        ({}, "x86_64", frozenset({"pni", "avx"}), "this CPU lacks avx2 fma for the Haswell kernel"),
        ({KERNEL_VARIABLE: "SkylakeX"}, "x86_64", AVX2, "this CPU lacks avx512bw"),
        ({KERNEL_VARIABLE: "Pentium"}, "x86_64", AVX2, "is not one of Prescott, Sandybridge"),
    ],
)
def test_no_pin_where_it_would_crash_or_was_declined(env, machine, flags, reason):
    pin = pin_blas_kernel(env, machine=machine, flags=flags)
    assert pin.kernel is None and reason in pin.reason
    assert CORETYPE_VARIABLE not in env  # a forced kernel without its instructions is SIGILL


def test_cpu_flags_read_proc_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu pni avx avx2 fma\n")
    assert can_run("Haswell", cpu_flags(cpuinfo)) and not can_run("SkylakeX", cpu_flags(cpuinfo))
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert set(REQUIRED_FLAGS) == {"Prescott", "Sandybridge", "Haswell", "SkylakeX"}


def test_the_cli_pins_before_any_command_loads_numpy():
    """A real process through mlcd's entry point: OpenBLAS reports the kernel it loaded."""
    script = (
        "import sys\n"
        "sys.argv = ['mlcd', '--help']\n"
        "from mlcd.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "import numpy, threadpoolctl\n"
        "print('kernel', [i.get('architecture') for i in threadpoolctl.threadpool_info()])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in (CORETYPE_VARIABLE, KERNEL_VARIABLE)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    kernels = done.stdout.rsplit("kernel", 1)[1]
    expected = DEFAULT_KERNEL if can_run(DEFAULT_KERNEL, cpu_flags()) else None
    if expected:
        assert f"'{expected}'" in kernels
    else:  # this CPU cannot run the pinned kernel: OpenBLAS chose, and nothing crashed
        assert done.returncode == 0
