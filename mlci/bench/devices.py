"""Where a benchmark runs: execution-provider selection, sessions and a hardware fingerprint.

:func:`select_device` is a pure function of (requested device, providers ONNX Runtime offers,
GPU probe); :func:`confirm_device` checks what the session really got, because ONNX Runtime
falls back to the CPU on its own when a GPU provider fails to initialise.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlci.errors import InputError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
DEVICE_ENV = "MLCI_BENCHMARK_DEVICE"


class DeviceError(InputError):
    """A device was asked for that this machine cannot provide."""


@dataclass(frozen=True)
class GpuProbe:
    """Whether a GPU is visible to this process, and what is known about it."""

    visible: bool
    reason: str
    name: str | None = None
    driver: str | None = None
    cuda: str | None = None


@dataclass(frozen=True)
class DeviceChoice:
    """The device a benchmark runs on and why."""

    requested: str
    selected: str  # "cpu", "cuda" or "tensorrt"
    reason: str
    providers: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "selected": self.selected,
            "reason": self.reason,
            "providers": list(self.providers),
        }


def select_device(
    requested: str, available: list[str] | tuple[str, ...], gpu: GpuProbe
) -> DeviceChoice:
    """Choose execution providers for ``requested`` ('auto', 'cpu', 'cuda' or 'tensorrt').

    'auto' takes CUDA (else TensorRT) when ONNX Runtime offers it and a GPU is visible, else the
    CPU, and says why. An explicit 'cuda' or 'tensorrt' that cannot be honoured is an error:
    numbers measured elsewhere must not be labelled as GPU numbers.
    """
    offered = set(available)
    if requested == "cpu":
        return DeviceChoice("cpu", "cpu", "the CPU was requested", (CPU,))
    if requested == "auto":
        gpu_provider = CUDA if CUDA in offered else TENSORRT if TENSORRT in offered else None
        if gpu_provider is None:
            shown = ", ".join(p.removesuffix("ExecutionProvider") for p in available) or "none"
            return DeviceChoice(
                "auto",
                "cpu",
                f"ONNX Runtime offers no CUDA or TensorRT provider (available: {shown})",
                (CPU,),
            )
        if not gpu.visible:
            return DeviceChoice(
                "auto", "cpu", f"ONNX Runtime offers {gpu_provider} but {gpu.reason}", (CPU,)
            )
        selected = "cuda" if gpu_provider == CUDA else "tensorrt"
        name = f" ({gpu.name})" if gpu.name else ""
        providers = (CUDA, CPU) if selected == "cuda" else (TENSORRT, CUDA, CPU)
        return DeviceChoice(
            "auto",
            selected,
            f"ONNX Runtime offers {gpu_provider} and a GPU is visible{name}",
            tuple(p for p in providers if p in offered or p == CPU),
        )
    if requested in ("cuda", "tensorrt"):
        wanted = CUDA if requested == "cuda" else TENSORRT
        if wanted not in offered:
            raise DeviceError(
                f"benchmark device '{requested}' was requested but ONNX Runtime offers no "
                f"{wanted} (available: {', '.join(available) or 'none'})",
                tip="install onnxruntime-gpu on a GPU machine, or set benchmark.device to auto",
            )
        if not gpu.visible:
            raise DeviceError(
                f"benchmark device '{requested}' was requested but {gpu.reason}",
                tip="run on a GPU runner, or set benchmark.device to auto",
            )
        providers = (CUDA, CPU) if requested == "cuda" else (TENSORRT, CUDA, CPU)
        return DeviceChoice(
            requested,
            requested,
            f"{requested} was requested",
            tuple(p for p in providers if p in offered or p == CPU),
        )
    raise ValueError(f"unknown device {requested!r}")


def confirm_device(choice: DeviceChoice, session_providers: list[str]) -> DeviceChoice:
    """The choice as the session really ran it (ONNX Runtime may have fallen back to the CPU)."""
    first = session_providers[0] if session_providers else CPU
    if choice.selected == "cpu" or first == choice.providers[0]:
        return replace(choice, providers=tuple(session_providers))
    if choice.requested == "auto":
        return DeviceChoice(
            "auto",
            "cpu",
            f"{choice.providers[0]} failed to initialise, so ONNX Runtime fell back to the CPU",
            tuple(session_providers),
        )
    raise DeviceError(
        f"benchmark device '{choice.requested}' was requested but {choice.providers[0]} failed "
        "to initialise (ONNX Runtime fell back to the CPU)",
        tip="check the CUDA, cuDNN and TensorRT libraries match the onnxruntime-gpu build",
    )


def probe_gpu(timeout: float = 10.0) -> GpuProbe:
    """Ask ``nvidia-smi`` (or the NVIDIA driver's /proc entry) whether a GPU is visible."""
    visible_env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible_env is not None and visible_env.strip() in ("", "-1", "none", "NoDevFiles"):
        return GpuProbe(False, f"CUDA_VISIBLE_DEVICES={visible_env!r} hides every GPU")
    smi = shutil.which("nvidia-smi")
    if smi is None:
        if Path("/proc/driver/nvidia/version").exists():
            return GpuProbe(True, "the NVIDIA driver is loaded")
        return GpuProbe(False, "no GPU is visible (nvidia-smi not found)")
    try:
        query = subprocess.run(
            [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        header = subprocess.run(
            [smi], capture_output=True, text=True, timeout=timeout, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return GpuProbe(False, f"no GPU is visible (nvidia-smi failed: {exc.__class__.__name__})")
    lines = [line for line in query.stdout.splitlines() if line.strip()]
    if query.returncode != 0 or not lines:
        return GpuProbe(False, "no GPU is visible (nvidia-smi lists none)")
    name, _, driver = (part.strip() for part in lines[0].partition(","))
    cuda = re.search(r"CUDA Version:\s*([0-9.]+)", header or "")
    return GpuProbe(
        True,
        f"{len(lines)} GPU(s) visible",
        name=name or None,
        driver=driver or None,
        cuda=cuda.group(1) if cuda else None,
    )


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def fingerprint(gpu: GpuProbe, choice: DeviceChoice, threads: dict[str, int]) -> dict[str, Any]:
    """Hardware and software a result was measured on; ``id`` hashes what makes it comparable."""
    import onnxruntime as ort

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    build_cuda = None
    try:  # present in GPU builds of onnxruntime
        from onnxruntime.capi import build_and_package_info as info

        build_cuda = getattr(info, "cuda_version", None)
    except ImportError:
        pass
    record: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count() or 0,
        "usable_cores": usable,
        "gpu": gpu.name if choice.selected != "cpu" else None,
        "driver": gpu.driver if choice.selected != "cpu" else None,
        "cuda": (gpu.cuda or build_cuda) if choice.selected != "cpu" else None,
        "onnxruntime": ort.__version__,
        "providers": list(ort.get_available_providers()),
        "session_providers": list(choice.providers),
        "threads": dict(threads),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    identity = {
        k: record[k]
        for k in ("cpu", "cores", "usable_cores", "gpu", "driver", "cuda", "onnxruntime", "threads")
    }
    identity["device"] = choice.selected
    record["id"] = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return record


def provider_options(choice: DeviceChoice, device_id: int, cache_dir: Path | None) -> list[Any]:
    """The ``providers`` argument of ``InferenceSession`` for a choice."""
    providers: list[Any] = []
    for name in choice.providers:
        if name == CUDA:
            providers.append((CUDA, {"device_id": device_id}))
        elif name == TENSORRT:
            options: dict[str, Any] = {"device_id": device_id}
            if cache_dir is not None:
                # Engines take long to build; cache them between runs of the same model.
                options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
            providers.append((TENSORRT, options))
        else:
            providers.append(name)
    return providers


def session_options(intra_op: int, inter_op: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = intra_op
    options.inter_op_num_threads = inter_op
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options
