"""mlci asks numpy for its AVX2 kernels on AMD Zen 4, and only there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlci import numpy_dispatch

# The first processor of /proc/cpuinfo on each machine, cut to the fields that matter and a
# few around them, as Linux prints them.
FLAGS_AVX2 = "fpu vme de pse tsc msr sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 bmi2 adx"
FLAGS_AVX512 = FLAGS_AVX2 + " avx512f avx512dq avx512cd avx512bw avx512vl avx512_vbmi2"


def cpuinfo(vendor: str, family: int, model: int, name: str, flags: str) -> str:
    block = (
        f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
        f"model name\t: {name}\nstepping\t: 1\nflags\t\t: {flags}\nbogomips\t: 5192.27\n"
    )
    # A second processor that disagrees shows that only the first is read.
    return (
        block
        + "\n"
        + block.replace("processor\t: 0", "processor\t: 1").replace(vendor, "GenuineIntel")
    )


MACHINES = {
    "AMD EPYC 9R14 (Zen 4)": (cpuinfo("AuthenticAMD", 25, 17, "AMD EPYC 9R14", FLAGS_AVX512), True),
    "AMD Ryzen 7 7700X (Zen 4)": (
        cpuinfo("AuthenticAMD", 25, 97, "AMD Ryzen 7 7700X 8-Core Processor", FLAGS_AVX512),
        True,
    ),
    "AMD EPYC 7763 (Zen 3, no AVX-512)": (
        cpuinfo("AuthenticAMD", 25, 1, "AMD EPYC 7763 64-Core Processor", FLAGS_AVX2),
        False,
    ),
    "AMD EPYC 9755 (Zen 5)": (
        cpuinfo("AuthenticAMD", 26, 2, "AMD EPYC 9755 128-Core Processor", FLAGS_AVX512),
        False,
    ),
    "Intel Xeon Platinum 8488C (Sapphire Rapids)": (
        cpuinfo("GenuineIntel", 6, 143, "Intel(R) Xeon(R) Platinum 8488C", FLAGS_AVX512),
        False,
    ),
    "no family field": ("processor\t: 0\nvendor_id\t: AuthenticAMD\n", False),
    "a family that is not a number": (
        cpuinfo("AuthenticAMD", 25, 17, "x", FLAGS_AVX512).replace(": 25", ": zen"),
        False,
    ),
    "empty": ("", False),
}


@pytest.mark.parametrize("machine", MACHINES)
def test_only_zen_4_with_avx512_has_the_slow_sort(machine: str) -> None:
    text, slow = MACHINES[machine]
    assert numpy_dispatch.slow_avx512_sort(text) is slow


def write(tmp_path: Path, machine: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(MACHINES[machine][0])
    return path


def test_before_numpy_loads_zen_4_gets_avx2(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    numpy_dispatch.settle(environ, set(), write(tmp_path, "AMD EPYC 9R14 (Zen 4)"))
    assert environ == {"NPY_DISABLE_CPU_FEATURES": "X86_V4"}


def test_after_numpy_loads_children_keep_numpys_choice(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    numpy_dispatch.settle(environ, {"numpy"}, write(tmp_path, "AMD EPYC 9R14 (Zen 4)"))
    assert environ == {"NPY_DISABLE_CPU_FEATURES": ""}


@pytest.mark.parametrize("value", ["", "AVX512_ICL", "X86_V4"])
def test_a_users_choice_is_kept(tmp_path: Path, value: str) -> None:
    environ = {"NPY_DISABLE_CPU_FEATURES": value}
    numpy_dispatch.settle(environ, set(), write(tmp_path, "AMD EPYC 9R14 (Zen 4)"))
    assert environ == {"NPY_DISABLE_CPU_FEATURES": value}


@pytest.mark.parametrize(
    "machine", ["AMD EPYC 7763 (Zen 3, no AVX-512)", "Intel Xeon Platinum 8488C (Sapphire Rapids)"]
)
def test_other_machines_are_left_alone(tmp_path: Path, machine: str) -> None:
    environ: dict[str, str] = {}
    numpy_dispatch.settle(environ, set(), write(tmp_path, machine))
    assert environ == {}


def test_no_cpuinfo_leaves_the_environment_alone(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    numpy_dispatch.settle(environ, set(), tmp_path / "missing")
    assert environ == {}


def test_a_fresh_process_that_imports_mlci_first_gets_the_kernels_it_chose() -> None:
    """On this machine: numpy, loaded after mlci, runs without AVX-512 exactly on Zen 4."""
    cpuinfo_path = Path("/proc/cpuinfo")
    # Without the file (not Linux) no machine counts as Zen 4.
    zen_4 = cpuinfo_path.exists() and numpy_dispatch.slow_avx512_sort(cpuinfo_path.read_text())
    env = {k: v for k, v in os.environ.items() if k != numpy_dispatch.VARIABLE}
    code = (
        "import json, os, mlci, numpy\n"
        "from numpy._core._multiarray_umath import __cpu_features__ as f\n"
        "print(json.dumps([os.environ.get('NPY_DISABLE_CPU_FEATURES'), f['AVX512_SKX'],"
        " f['AVX2']]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    variable, avx512, avx2 = json.loads(done.stdout)
    assert variable == ("X86_V4" if zen_4 else None)
    if zen_4:
        assert (avx512, avx2) == (False, True)
