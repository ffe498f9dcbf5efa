"""numpy's choice of CPU kernels on AMD Zen 4, settled before numpy loads.

numpy picks its kernels by CPU feature once, when it is imported. On AMD Zen 4 it picks its
AVX-512 sorts, whose partition step stores with ``vpcompress`` to memory, an instruction Zen 4
runs in microcode: there ``np.sort`` of 32- and 64-bit numbers is four to six times slower
than numpy's own AVX2 sort on the same core (28 against 5 ns a key for 500,000 uint32 keys;
numpy/x86-simd-sort issue 6; OpenJDK turned its AVX-512 sort off on Zen 4 for the same
reason). Exact ROC and PR AUC, quantile edges and distinct levels sort large arrays, so on
Zen 4 mlci asks numpy for its AVX2 kernels (``NPY_DISABLE_CPU_FEATURES=X86_V4``). numpy's
float64 ``log`` and ``exp`` are then slower (about 3x), which costs far less than the sorts
gain.

The choice is made once for a process and every process it starts, so that Dask workers and
subprocesses compute with the same kernels as the process that started them. A value the user
set, even an empty one, is kept.
"""

from __future__ import annotations

import sys
from collections.abc import Container, MutableMapping
from pathlib import Path

VARIABLE = "NPY_DISABLE_CPU_FEATURES"
# X86_V4 is numpy's AVX-512 baseline; every AVX-512 target above it depends on it.
WITHOUT_AVX512 = "X86_V4"
_AMD_ZEN_4_FAMILY = 0x19  # also Zen 3, which has no AVX-512; Zen 5 is 0x1A


def slow_avx512_sort(cpuinfo: str) -> bool:
    """Whether the first processor in ``/proc/cpuinfo`` text is AMD Zen 4 with AVX-512."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor speaks for all of them
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    try:
        family = int(fields.get("cpu family", ""))
    except ValueError:
        return False
    return (
        fields.get("vendor_id") == "AuthenticAMD"
        and family == _AMD_ZEN_4_FAMILY
        and "avx512f" in fields.get("flags", "").split()
    )


def settle(
    environ: MutableMapping[str, str],
    loaded: Container[str],
    cpuinfo: Path = Path("/proc/cpuinfo"),
) -> None:
    """Choose numpy's kernels for this process and the processes it starts.

    Only on a CPU where :func:`slow_avx512_sort` holds, and only when ``environ`` has no
    choice yet: before numpy is loaded, its AVX2 kernels; after, numpy has chosen, so the
    empty value (numpy's own choice) makes child processes choose alike.
    """
    if VARIABLE in environ:
        return
    if slow_avx512_sort(_first_processor(cpuinfo)):
        environ[VARIABLE] = "" if "numpy" in loaded else WITHOUT_AVX512


def _first_processor(cpuinfo: Path) -> str:
    """The first processor's lines of ``cpuinfo`` (empty where there is no such file)."""
    lines: list[str] = []
    try:
        with cpuinfo.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                lines.append(line)
    except OSError:
        pass
    return "".join(lines)


def settle_here() -> None:
    """:func:`settle` for this process (mlci calls it when it is first imported)."""
    import os

    settle(os.environ, sys.modules)
