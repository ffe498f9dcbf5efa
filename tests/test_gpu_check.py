"""scripts/gpu-check: a clear refusal without a GPU, and its table on the CPU path.

The GPU rows (CUDA with and without I/O binding, TensorRT) need an NVIDIA GPU, which these
machines do not have; the CPU row runs the same code path end to end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "gpu-check"


def test_without_a_gpu_it_stops_before_installing_anything(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "timeout", "sed"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    venv = tmp_path / "venv"
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "MLCI_GPU_CHECK_VENV": str(venv)}
    proc = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2
    assert "no NVIDIA GPU is visible" in proc.stderr and "nvidia-smi" in proc.stderr
    assert not venv.exists()

    # An nvidia-smi that lists no GPU is refused the same way.
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'No devices were found'\nexit 6\n")
    fake.chmod(0o755)
    proc = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2
    assert "nvidia-smi -L failed: No devices were found" in proc.stderr
    assert not venv.exists()


def test_the_cpu_row_runs_the_example_benchmark_and_prints_the_table() -> None:
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "MLCI_GPU_CHECK_TIMEOUT": "600"}
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--cpu-only", "--venv", str(venv), "--no-install"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| cpu |")]
    assert {line.split(" | ")[3] for line in lines} == {
        "single-stream",
        "offline (batch 1)",
        "offline (batch 64)",
    }
    assert all(" | cpu | none (CPU) | " in line for line in lines)
    assert not list((ROOT / "examples" / "credit").glob(".gpu-check-*"))
