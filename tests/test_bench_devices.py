"""Device selection and fallback: the pure selection function and the real ONNX Runtime on CPU."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from mlci.bench import devices
from mlci.bench.devices import CPU, CUDA, TENSORRT, DeviceChoice, DeviceError, GpuProbe

VISIBLE = GpuProbe(True, "1 GPU(s) visible", name="NVIDIA L4", driver="550.54", cuda="12.4")
HIDDEN = GpuProbe(False, "no GPU is visible (nvidia-smi not found)")


def test_cpu_is_always_possible() -> None:
    choice = devices.select_device("cpu", [TENSORRT, CUDA, CPU], VISIBLE)
    assert (choice.selected, choice.providers) == ("cpu", (CPU,))


def test_auto_without_gpu_providers_uses_the_cpu_and_says_why() -> None:
    choice = devices.select_device("auto", ["AzureExecutionProvider", CPU], VISIBLE)
    assert choice.selected == "cpu"
    assert "offers no CUDA or TensorRT provider" in choice.reason and "Azure" in choice.reason


def test_auto_with_cuda_but_no_visible_gpu_uses_the_cpu() -> None:
    choice = devices.select_device("auto", [CUDA, CPU], HIDDEN)
    assert choice.selected == "cpu"
    assert CUDA in choice.reason and "nvidia-smi not found" in choice.reason


def test_auto_with_cuda_and_a_gpu_picks_cuda() -> None:
    choice = devices.select_device("auto", [TENSORRT, CUDA, CPU], VISIBLE)
    assert choice.selected == "cuda"
    assert choice.providers == (CUDA, CPU)
    assert "NVIDIA L4" in choice.reason


def test_auto_with_only_tensorrt_picks_tensorrt() -> None:
    choice = devices.select_device("auto", [TENSORRT, CPU], VISIBLE)
    assert choice.selected == "tensorrt" and choice.providers == (TENSORRT, CPU)


@pytest.mark.parametrize("requested", ["cuda", "tensorrt"])
def test_explicit_gpu_without_provider_is_an_error(requested: str) -> None:
    with pytest.raises(DeviceError, match="offers no"):
        devices.select_device(requested, [CPU], VISIBLE)


def test_explicit_gpu_without_visible_gpu_is_an_error() -> None:
    with pytest.raises(DeviceError, match="nvidia-smi not found"):
        devices.select_device("cuda", [CUDA, CPU], HIDDEN)
    choice = devices.select_device("tensorrt", [TENSORRT, CUDA, CPU], VISIBLE)
    assert choice.providers == (TENSORRT, CUDA, CPU)


def test_confirm_detects_onnxruntime_falling_back() -> None:
    auto = DeviceChoice("auto", "cuda", "x", (CUDA, CPU))
    fell = devices.confirm_device(auto, [CPU])
    assert fell.selected == "cpu" and "fell back" in fell.reason
    assert devices.confirm_device(auto, [CUDA, CPU]).selected == "cuda"
    with pytest.raises(DeviceError, match="failed to initialise"):
        devices.confirm_device(DeviceChoice("cuda", "cuda", "x", (CUDA, CPU)), [CPU])


def identity(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_real_onnxruntime_selection_and_session(tmp_path: Path) -> None:
    available = ort.get_available_providers()
    probe = devices.probe_gpu()
    choice = devices.select_device("auto", available, probe)
    expect_gpu = probe.visible and (CUDA in available or TENSORRT in available)
    assert (choice.selected != "cpu") == expect_gpu
    session = ort.InferenceSession(
        str(identity(tmp_path / "id.onnx")),
        sess_options=devices.session_options(1, 1),
        providers=devices.provider_options(choice, 0, None),
    )
    confirmed = devices.confirm_device(choice, session.get_providers())
    assert confirmed.providers[0] == session.get_providers()[0]


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_real_onnxruntime_falls_back_when_cuda_is_missing(tmp_path: Path) -> None:
    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the fallback needs a CPU-only build")
    asked = DeviceChoice("auto", "cuda", "forced for the test", (CUDA, CPU))
    session = ort.InferenceSession(
        str(identity(tmp_path / "id.onnx")),
        sess_options=devices.session_options(1, 1),
        providers=devices.provider_options(asked, 0, None),
    )
    confirmed = devices.confirm_device(asked, session.get_providers())
    assert confirmed.selected == "cpu" and confirmed.providers == (CPU,)


def test_probe_respects_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    probe = devices.probe_gpu()
    assert not probe.visible and "CUDA_VISIBLE_DEVICES" in probe.reason


def test_probe_without_nvidia_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    probe = devices.probe_gpu()
    if Path("/proc/driver/nvidia/version").exists():
        assert probe.visible
    else:
        assert not probe.visible and "nvidia-smi not found" in probe.reason


def test_probe_reads_a_fake_nvidia_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--query-gpu=name,driver_version" ]; then echo "NVIDIA A10G, 535.104.05"; '
        'else echo "| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2 |"; fi\n'
    )
    fake.chmod(0o755)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    probe = devices.probe_gpu()
    assert probe == GpuProbe(True, "1 GPU(s) visible", "NVIDIA A10G", "535.104.05", "12.2")


def test_fingerprint_records_hardware_and_software() -> None:
    choice = DeviceChoice("auto", "cuda", "x", (CUDA, CPU))
    record = devices.fingerprint(VISIBLE, choice, {"intra_op": 1, "inter_op": 1})
    assert (
        record["gpu"] == "NVIDIA L4" and record["driver"] == "550.54" and record["cuda"] == "12.4"
    )
    assert record["onnxruntime"] == ort.__version__ and record["cores"] >= 1
    cpu = devices.fingerprint(
        VISIBLE, DeviceChoice("cpu", "cpu", "x", (CPU,)), {"intra_op": 1, "inter_op": 1}
    )
    assert cpu["gpu"] is None and cpu["id"] != record["id"]
    again = devices.fingerprint(
        VISIBLE, DeviceChoice("cpu", "cpu", "y", (CPU,)), {"intra_op": 1, "inter_op": 1}
    )
    assert again["id"] == cpu["id"]


def test_provider_options_for_tensorrt_cache_engines(tmp_path: Path) -> None:
    choice = DeviceChoice("tensorrt", "tensorrt", "x", (TENSORRT, CUDA, CPU))
    providers = devices.provider_options(choice, 1, tmp_path)
    assert providers[0] == (
        TENSORRT,
        {"device_id": 1, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(tmp_path)},
    )
    assert providers[1] == (CUDA, {"device_id": 1}) and providers[2] == CPU
