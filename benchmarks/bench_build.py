"""Serving image builds: mlci's daemonless builder against `podman build` of the same image.

    scripts/setup-podman && scripts/build-base-image
    python benchmarks/bench_build.py [--runs 3]

Both build the same image from the same Debian base (scripts/build-base-image): the base,
numpy + onnxruntime unpacked into /opt/mlci/site-packages, the mlci.serve runtime, and the
model last. The Dockerfile peer gets its context ready-made (wheels already unpacked), so its
time is the engine's alone. Reports, with medians over --runs:

- build time: daemonless cold (dependency layer not yet cached), daemonless warm, and
  `podman build` with and without its layer cache;
- image size: uncompressed (what `podman images` shows) and compressed (what a registry
  stores; the daemonless builder's layers are gzip, the base stays as it came);
- bytes that change when only the model changes (what a registry push or a node's pull moves);
- reproducibility: the digest of two builds from the same inputs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

BASE = Path(
    os.environ.get("MLCI_BASE_IMAGE", Path.home() / ".cache" / "mlci" / "base-bookworm-python.tar")
)
CONF = Path(os.environ.get("MLCI_PODMAN_CONF", Path.home() / ".config" / "mlci-podman"))
EPOCH = 1_700_000_000
DOCKERFILE = """\
FROM localhost/mlci-base:bookworm-python
COPY site-packages /opt/mlci/site-packages
COPY runtime /opt/mlci/runtime
ENV PYTHONPATH=/opt/mlci/runtime:/opt/mlci/site-packages PYTHONDONTWRITEBYTECODE=1
EXPOSE 8080
ENTRYPOINT ["python3", "-m", "mlci.serve"]
CMD ["--model", "/model/model.onnx", "--name", "demo", "--port", "8080"]
COPY model /model
"""


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONF / "containers.conf"))
    env.setdefault("CONTAINERS_STORAGE_CONF", str(CONF / "storage.conf"))
    return env


def podman(*args: str) -> str:
    done = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"podman {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
    return done.stdout


def daemonless(model: Path, out: Path, cache: Path) -> tuple[float, object]:
    from mlci.supply.bases import base_source
    from mlci.supply.build import BuildRequest, build_image
    from mlci.supply.builder import Output

    os.environ["MLCI_CACHE_DIR"] = str(cache)
    start = time.perf_counter()
    result = build_image(
        BuildRequest(
            model=model,
            base=base_source(str(BASE)),
            output=Output.parse(f"oci:{out}"),
            name="demo",
            source_date_epoch=EPOCH,
        )
    )
    return time.perf_counter() - start, result


def podman_context(folder: Path, model: Path, wheels: list[Path]) -> Path:
    from mlci.supply import oci
    from mlci.supply.build import add_wheels, runtime_layer

    # Unpack exactly what the daemonless layers hold, as files for COPY.
    deps = oci.LayerBuilder(EPOCH)
    add_wheels(deps, wheels, "site-packages")
    for layer in (deps, None):
        if layer is None:
            built = runtime_layer(EPOCH, folder / "blobs")
        else:
            built = layer.build(folder / "blobs")
        assert built.blob.path is not None
        subprocess.run(["tar", "-xzf", str(built.blob.path), "-C", str(folder)], check=True)
    shutil.move(str(folder / "opt" / "mlci" / "runtime"), str(folder / "runtime"))
    shutil.rmtree(folder / "blobs")
    shutil.rmtree(folder / "opt", ignore_errors=True)
    (folder / "model").mkdir()
    shutil.copyfile(model, folder / "model" / "model.onnx")
    (folder / "Dockerfile").write_text(DOCKERFILE)
    return folder


def podman_build(context: Path, tag: str, *, cache: bool) -> float:
    start = time.perf_counter()
    args = ["build", "-q", "-t", tag, str(context)]
    if not cache:
        args.insert(1, "--no-cache")
    podman(*args)
    return time.perf_counter() - start


def podman_changed_layers(before: str, after: str) -> tuple[int, int]:
    """(layers, uncompressed bytes) in image ``after`` that ``before`` does not have.

    The Dockerfile copies the model last, so the new layers are the newest history entries."""
    old = set(json.loads(podman("image", "inspect", before))[0]["RootFS"]["Layers"])
    new = json.loads(podman("image", "inspect", after))[0]["RootFS"]["Layers"]
    fresh = [d for d in new if d not in old]
    history = json.loads(podman("history", "--format", "json", "--no-trunc", after))
    sized = [h for h in history if h.get("size", 0) > 0]
    return len(fresh), sum(h["size"] for h in sized[: len(fresh)])


def compressed_size(tag: str, folder: Path) -> int:
    archive = folder / "saved.tar"
    podman("save", "-o", str(archive), tag)
    done = subprocess.run(["gzip", "-6", "-c", str(archive)], capture_output=True, check=True)
    archive.unlink()
    return len(done.stdout)


def row(label: str, value: str) -> None:
    print(f"  {label:<52} {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not BASE.is_file():
        raise SystemExit(f"{BASE}: missing; run scripts/build-base-image")
    from mlci.supply import layout
    from mlci.supply.build import wheel_files
    from project import build_project

    work = Path(tempfile.mkdtemp(prefix="mlci-bench-build-"))
    try:
        project = build_project(work / "project")
        candidate = project.root / "models" / "candidate.onnx"
        baseline = project.root / "models" / "baseline.onnx"
        shared_cache = Path(os.environ.get("MLCI_CACHE_DIR", Path.home() / ".cache" / "mlci"))

        # Warm the wheel download once (network time is not the builder's).
        _, first = daemonless(candidate, work / "warmup", shared_cache)
        wheels_dir = next((shared_cache / "wheels").glob("*/.complete")).parent
        wheels = wheel_files(wheels_dir)

        cold, warm = [], []
        for i in range(args.runs):
            cache = work / f"cache{i}"
            (cache / "wheels").mkdir(parents=True)
            shutil.copytree(wheels_dir, cache / "wheels" / wheels_dir.name)
            seconds, result = daemonless(candidate, work / f"cold{i}", cache)
            cold.append(seconds)
            seconds, again = daemonless(candidate, work / f"warm{i}", cache)
            warm.append(seconds)
            assert again.digest == result.digest  # type: ignore[attr-defined]
        _, model_only = daemonless(baseline, work / "model-only", cache)

        podman("load", "-q", "-i", str(BASE))
        context = podman_context(work / "context", candidate, wheels)
        nocache = [
            podman_build(context, "localhost/mlci-bench/demo:nocache", cache=False)
            for _ in range(args.runs)
        ]
        ids = set()
        for _ in range(2):
            podman_build(context, "localhost/mlci-bench/demo:repro", cache=False)
            ids.add(
                json.loads(podman("image", "inspect", "localhost/mlci-bench/demo:repro"))[0]["Id"]
            )
        cached = [
            podman_build(context, "localhost/mlci-bench/demo:nocache", cache=True)
            for _ in range(args.runs)
        ]
        shutil.copyfile(baseline, context / "model" / "model.onnx")
        podman_build(context, "localhost/mlci-bench/demo:model-only", cache=True)
        podman_count, podman_changed = podman_changed_layers(
            "localhost/mlci-bench/demo:nocache", "localhost/mlci-bench/demo:model-only"
        )
        podman_size = json.loads(podman("image", "inspect", "localhost/mlci-bench/demo:nocache"))[
            0
        ]["Size"]
        podman_gz = compressed_size("localhost/mlci-bench/demo:nocache", work)

        ours = first  # type: ignore[assignment]
        ours_size = ours.size  # type: ignore[attr-defined]
        ours_uncompressed = 0
        _, _, _, layers = layout.read_layout(work / "warmup")
        for layer in layers:
            if layer.compressed:
                with gzip.open(layer.blob.path) as handle:  # type: ignore[arg-type]
                    while chunk := handle.read(1 << 20):
                        ours_uncompressed += len(chunk)
            else:
                ours_uncompressed += layer.descriptor.size
        changed = [
            (a, b)
            for a, b in zip(result.layers, model_only.layers, strict=True)  # type: ignore[attr-defined]
            if a.digest != b.digest
        ]
        ours_changed = sum(b.size for _, b in changed)

        med = statistics.median
        print(f"serving image for a {candidate.stat().st_size} B ONNX model, base {BASE.name}")
        print("build time (median of", args.runs, "runs)")
        row("mlci daemonless, cold (dependency layer built)", f"{med(cold):6.2f} s")
        row("mlci daemonless, warm (dependency layer cached)", f"{med(warm):6.2f} s")
        row("podman build --no-cache (vfs storage)", f"{med(nocache):6.2f} s")
        row("podman build, layer cache", f"{med(cached):6.2f} s")
        print("image size")
        row("mlci, uncompressed", f"{ours_uncompressed / 1e6:7.1f} MB")
        row("mlci, as stored (gzip layers, what a registry holds)", f"{ours_size / 1e6:7.1f} MB")
        row("podman, uncompressed (podman images)", f"{podman_size / 1e6:7.1f} MB")
        row("podman, podman save | gzip -6", f"{podman_gz / 1e6:7.1f} MB")
        print("model-only rebuild: bytes in changed layers")
        row("mlci", f"{ours_changed} B in {len(changed)} layer(s)")
        row("podman (uncompressed)", f"{podman_changed} B in {podman_count} layer(s)")
        print("reproducibility: two builds from the same inputs")
        row("mlci digests equal", "yes")
        row("podman --no-cache image IDs equal", "yes" if len(ids) == 1 else "no")
    finally:
        for tag in ("nocache", "repro", "model-only"):
            subprocess.run(
                ["podman", "rmi", "-f", f"localhost/mlci-bench/demo:{tag}"],
                env=podman_env(),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
