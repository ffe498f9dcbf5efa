"""A CycloneDX 1.6 SBOM of a serving image, read from its OCI image layout.

The layers are replayed in order (with OCI whiteouts) to find what the final file system
holds: Debian packages from ``var/lib/dpkg/status`` (and ``status.d/`` as distroless images
keep them), the operating system from ``os-release``, Python distributions from their
``*.dist-info/METADATA``, mlci itself as the serving runtime, and the model files as
``machine-learning-model`` components with their sha256 and the model card's ``modelCard``.
The document is built with cyclonedx-python-lib and checked with its strict JSON validator.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

from mlci.errors import InputError, MlciError
from mlci.models.formats import MODEL_SUFFIXES

if TYPE_CHECKING:
    from mlci.results import Results

SERVING_RUNTIME = "mlci"
SBOM_MEDIA_TYPE = "application/vnd.cyclonedx+json"
# What mlci's image builder records (labels and the runtime layer's history entry)
LABEL_MODEL_SHA256 = "dev.mlci.model.sha256"
LABEL_MODEL_NAME = "dev.mlci.model.name"
_RUNTIME_HISTORY = re.compile(r"mlci: serving runtime \(mlci ([^)\s]+)\)")


@dataclass(frozen=True)
class Package:
    """One package found in the image."""

    ecosystem: str  # "deb" or "pypi"
    name: str
    version: str
    path: str
    license: str | None = None
    arch: str | None = None
    source: str | None = None
    summary: str | None = None


@dataclass(frozen=True)
class ModelFile:
    """A model file found in the image."""

    path: str
    sha256: str
    size: int


@dataclass
class ImageContents:
    """What the final file system of an image holds, for the SBOM."""

    os_release: dict[str, str] = field(default_factory=dict)
    runtime_path: str | None = None
    packages: list[Package] = field(default_factory=list)
    models: list[ModelFile] = field(default_factory=list)
    files_seen: int = 0


def _is_dpkg(name: str) -> bool:
    return name == "var/lib/dpkg/status" or (
        name.startswith("var/lib/dpkg/status.d/") and not name.endswith(".md5sums")
    )


def _is_metadata(name: str) -> bool:
    parts = name.split("/")
    return (
        len(parts) >= 3
        and parts[-1] == "METADATA"
        and parts[-2].endswith(".dist-info")
        and parts[-3] in ("site-packages", "dist-packages")
    )


def _is_runtime(name: str) -> bool:
    return name.endswith("mlci/serve/__init__.py")


def _interesting(name: str) -> bool:
    return (
        _is_runtime(name)
        or _is_dpkg(name)
        or name in ("etc/os-release", "usr/lib/os-release")
        or _is_metadata(name)
        or name.endswith(MODEL_SUFFIXES)
    )


def _open_layer(path: Path, media_type: str) -> BinaryIO:
    handle = open(path, "rb")
    magic = handle.read(2)
    handle.seek(0)
    if magic == b"\x1f\x8b" or media_type.endswith("gzip"):
        return gzip.GzipFile(fileobj=handle)  # type: ignore[return-value]
    if media_type.endswith("zstd"):
        handle.close()
        raise InputError(f"{path}: zstd-compressed layers are not supported")
    return handle


def _normal(name: str) -> str:
    return str(PurePosixPath("/" + name)).lstrip("/")


def replay_layers(layers: list[tuple[Path, str]]) -> dict[str, tuple[bytes | None, str, int]]:
    """Replay layer tars; return interesting path -> (content or None, sha256, size).

    Model files are hashed as they stream past and not kept; small metadata files are kept.
    Whiteouts (``.wh.NAME``) and opaque directories (``.wh..wh..opq``) are honoured.
    """
    state: dict[str, tuple[bytes | None, str, int]] = {}
    for path, media_type in layers:
        try:
            with (
                _open_layer(path, media_type) as stream,
                tarfile.open(fileobj=stream, mode="r|") as tar,
            ):
                for member in tar:
                    name = _normal(member.name)
                    base = PurePosixPath(name)
                    if base.name == ".wh..wh..opq":
                        prefix = str(base.parent) + "/"
                        for key in [k for k in state if k.startswith(prefix)]:
                            del state[key]
                        continue
                    if base.name.startswith(".wh."):
                        gone = str(base.parent / base.name[4:]).lstrip("./") or ""
                        for key in [k for k in state if k == gone or k.startswith(gone + "/")]:
                            del state[key]
                        continue
                    if not member.isfile() or not _interesting(name):
                        if name in state and not member.isfile():
                            del state[name]
                        continue
                    handle = tar.extractfile(member)
                    if handle is None:
                        continue
                    digest = hashlib.sha256()
                    kept: list[bytes] = []
                    keep = not name.endswith(MODEL_SUFFIXES) or member.size < 1 << 16
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
                        if keep:
                            kept.append(chunk)
                    state[name] = (
                        b"".join(kept) if keep else None,
                        digest.hexdigest(),
                        member.size,
                    )
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InputError(f"{path}: layer is not a readable tar ({exc})") from None
    return state


def parse_dpkg_status(text: str, path: str) -> list[Package]:
    """Installed packages from a dpkg status file (paragraphs of RFC 822 fields)."""
    packages = []
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        last = None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and last:
                continue  # continuation lines (descriptions)
            key, sep, value = line.partition(":")
            if sep:
                last = key.strip()
                fields[last] = value.strip()
        if not fields.get("Package") or not fields.get("Version"):
            continue
        status = fields.get("Status", "install ok installed")
        if not status.endswith(" installed"):
            continue
        source = fields.get("Source", "").split(" ")[0] or None
        packages.append(
            Package(
                ecosystem="deb",
                name=fields["Package"],
                version=fields["Version"],
                path=path,
                arch=fields.get("Architecture"),
                source=source,
                summary=(fields.get("Description") or None),
            )
        )
    return packages


def parse_metadata(text: str, path: str) -> Package | None:
    """A Python distribution from its core metadata file."""
    headers = HeaderParser().parsestr(text)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        return None
    license_text = headers.get("License-Expression") or headers.get("License")
    if not license_text or len(license_text) > 80 or "\n" in license_text:
        classifiers = [
            c.rsplit("::", 1)[-1].strip()
            for c in headers.get_all("Classifier") or []
            if c.startswith("License ::")
        ]
        license_text = classifiers[0] if classifiers else None
    return Package(
        ecosystem="pypi",
        name=str(name),
        version=str(version),
        path=path,
        license=license_text,
        summary=headers.get("Summary"),
    )


def _os_release(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def scan_layout(path: Path, tag: str | None = None) -> tuple[ImageContents, dict[str, Any]]:
    """Read an OCI layout and list what its image holds; also return a summary of the image."""
    from mlci.supply.layout import read_image_layout

    image = read_image_layout(path, tag)
    manifests = image.image_manifests()
    if not manifests:
        raise InputError(f"{path}: the layout holds no image manifest")
    manifest = manifests[0]
    config = json.loads(image.read_blob(manifest["config"]["digest"]))
    layers = [
        (image.blob_path(layer["digest"]), str(layer.get("mediaType", "")))
        for layer in manifest.get("layers") or []
    ]
    for layer_path, _ in layers:
        if not layer_path.exists():
            raise InputError(f"{path}: layer {layer_path.name[:12]} is missing from the layout")
    state = replay_layers(layers)
    contents = ImageContents(files_seen=len(state))
    for name in sorted(state):
        data, digest, size = state[name]
        if name.endswith(MODEL_SUFFIXES):
            contents.models.append(ModelFile("/" + name, digest, size))
            continue
        if _is_runtime(name):
            contents.runtime_path = "/" + name.rsplit("/serve/", 1)[0]
            continue
        text = (data or b"").decode("utf-8", errors="replace")
        if _is_dpkg(name):
            contents.packages.extend(parse_dpkg_status(text, "/" + name))
        elif name.endswith("os-release"):
            if not contents.os_release or name == "etc/os-release":
                contents.os_release = _os_release(text)
        elif _is_metadata(name):
            package = parse_metadata(text, "/" + name)
            if package:
                contents.packages.append(package)
    summary = {
        "digest": image.descriptor.digest,
        "config": config,
        "labels": ((config.get("config") or {}).get("Labels")) or {},
        "entrypoint": ((config.get("config") or {}).get("Entrypoint")) or [],
        "cmd": ((config.get("config") or {}).get("Cmd")) or [],
        "history": [str(h.get("created_by", "")) for h in config.get("history") or []],
    }
    return contents, summary


def _purl(package: Package, distro: str | None) -> str:
    if package.ecosystem == "deb":
        qualifiers = []
        if package.arch:
            qualifiers.append(f"arch={package.arch}")
        if distro:
            qualifiers.append(f"distro={distro}")
        text = f"pkg:deb/debian/{quote(package.name)}@{quote(package.version, safe='')}"
        return text + ("?" + "&".join(qualifiers) if qualifiers else "")
    name = package.name.lower().replace("_", "-").replace(".", "-")
    return f"pkg:pypi/{quote(name)}@{quote(package.version, safe='')}"


def model_card_from_results(document: Results) -> dict[str, Any]:
    """A minimal CycloneDX ``modelCard`` from a results document's evaluation."""
    evaluation = document.evaluation
    metrics = []
    for name, estimate in (evaluation.metrics.candidate if evaluation else {}).items():
        if estimate.value is None:
            continue
        entry: dict[str, Any] = {"type": name, "value": f"{estimate.value:.6g}"}
        if estimate.ci_low is not None and estimate.ci_high is not None:
            entry["confidenceInterval"] = {
                "lowerBound": f"{estimate.ci_low:.6g}",
                "upperBound": f"{estimate.ci_high:.6g}",
            }
        metrics.append(entry)
    card: dict[str, Any] = {}
    task = document.model.task
    if task:
        card["modelParameters"] = {
            "task": {"binary": "classification", "multiclass": "classification"}.get(task, task)
        }
    if metrics:
        card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    return card


def load_model_card(path: Path) -> dict[str, Any]:
    """A ``modelCard`` object from a JSON file holding one, a component, or a whole BOM."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such model card file") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a JSON model card ({exc.__class__.__name__})") from None
    if isinstance(data, dict) and isinstance(data.get("modelCard"), dict):
        return dict(data["modelCard"])
    if isinstance(data, dict) and data.get("bomFormat") == "CycloneDX":
        for component in data.get("components") or []:
            if isinstance(component.get("modelCard"), dict):
                return dict(component["modelCard"])
        raise InputError(f"{path}: the CycloneDX document has no component with a modelCard")
    if isinstance(data, dict):
        return data
    raise InputError(f"{path}: a model card must be a JSON object")


@dataclass(frozen=True)
class Sbom:
    """A generated SBOM and its counts."""

    document: dict[str, Any]
    image_digest: str
    packages: int
    models: list[ModelFile]

    def dumps(self) -> str:
        return json.dumps(self.document, indent=2, sort_keys=False) + "\n"


def build_sbom(
    layout: Path,
    *,
    tag: str | None = None,
    image_name: str | None = None,
    results: Results | None = None,
    model_card: dict[str, Any] | None = None,
    model_path: str | None = None,
) -> Sbom:
    """The CycloneDX 1.6 SBOM of the image in ``layout``, validated."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.license import LicenseExpression
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    contents, summary = scan_layout(layout, tag)
    digest = summary["digest"]
    labels = summary["labels"]
    model_info: dict[str, Any] = (
        {"name": results.model.name, "sha256": results.model.sha256} if results else {}
    )
    name = (
        image_name
        or labels.get("org.opencontainers.image.title")
        or model_info.get("name")
        or "image"
    )

    def license_of(text: str | None) -> list[Any]:
        return [LicenseExpression(text)] if text else []

    image_component = Component(
        type=ComponentType.CONTAINER,
        name=name,
        version=digest,
        bom_ref=digest,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest.split(":", 1)[1])],
        purl=PackageURL("oci", name=name.rsplit("/", 1)[-1].lower(), version=digest),
    )
    bom = Bom()
    bom.metadata.component = image_component
    components: list[Any] = []
    os_release = contents.os_release
    distro = None
    if os_release.get("ID"):
        distro = f"{os_release['ID']}-{os_release.get('VERSION_ID', '')}".rstrip("-")
        components.append(
            Component(
                type=ComponentType.OPERATING_SYSTEM,
                name=os_release["ID"],
                version=os_release.get("VERSION_ID"),
                description=os_release.get("PRETTY_NAME"),
                bom_ref=f"os:{distro}",
            )
        )
    seen: set[str] = set()
    runtime_found = False
    for package in contents.packages:
        purl = _purl(package, distro)
        if purl in seen:
            continue
        seen.add(purl)
        properties = [Property(name="mlci:path", value=package.path)]
        kind = ComponentType.LIBRARY
        if package.ecosystem == "pypi" and package.name.lower() == SERVING_RUNTIME:
            runtime_found = True
            kind = ComponentType.APPLICATION
            properties.append(Property(name="mlci:role", value="serving-runtime"))
            if summary["entrypoint"] or summary["cmd"]:
                properties.append(
                    Property(
                        name="mlci:entrypoint",
                        value=" ".join(summary["entrypoint"] + summary["cmd"]),
                    )
                )
        if package.ecosystem == "deb" and package.source:
            properties.append(Property(name="mlci:deb:source", value=package.source))
        components.append(
            Component(
                type=kind,
                name=package.name,
                version=package.version,
                purl=PackageURL.from_string(purl),
                bom_ref=purl,
                licenses=license_of(package.license) if package.ecosystem == "pypi" else [],
                properties=properties,
            )
        )
    command = summary["entrypoint"] + summary["cmd"]
    if not runtime_found and (
        contents.runtime_path or any("mlci" in str(part) for part in command)
    ):
        version = None
        for line in summary["history"]:
            found = _RUNTIME_HISTORY.search(line)
            if found:
                version = found.group(1)
        properties = [Property(name="mlci:role", value="serving-runtime")]
        if contents.runtime_path:
            properties.append(Property(name="mlci:path", value=contents.runtime_path))
        if command:
            properties.append(Property(name="mlci:entrypoint", value=" ".join(map(str, command))))
        components.append(
            Component(
                type=ComponentType.APPLICATION,
                name=SERVING_RUNTIME,
                version=version,
                purl=PackageURL("pypi", name=SERVING_RUNTIME, version=version) if version else None,
                bom_ref="mlci-serving-runtime",
                properties=properties,
            )
        )
    models = contents.models
    labelled = labels.get(LABEL_MODEL_SHA256)
    if labelled and not model_info.get("sha256"):
        model_info = {**model_info, "sha256": labelled}
    if labels.get(LABEL_MODEL_NAME) and not model_info.get("name"):
        model_info = {**model_info, "name": labels[LABEL_MODEL_NAME]}
    if model_path:
        wanted = "/" + model_path.lstrip("/")
        models = [m for m in models if m.path == wanted]
        if not models:
            raise InputError(f"{layout}: the image holds no model file at {wanted}")
    elif model_info.get("sha256"):
        matching = [m for m in models if m.sha256 == model_info["sha256"]]
        models = matching or models
    model_refs = []
    for model in models:
        ref = f"model:{model.path}"
        model_refs.append(ref)
        component_name = str(
            model_info.get("name")
            if len(models) == 1 and model_info.get("name")
            else PurePosixPath(model.path).name
        )
        components.append(
            Component(
                type=ComponentType.MACHINE_LEARNING_MODEL,
                name=component_name,
                bom_ref=ref,
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=model.sha256)],
                properties=[
                    Property(name="mlci:path", value=model.path),
                    Property(name="mlci:size", value=str(model.size)),
                ],
            )
        )
    for component in components:
        bom.components.add(component)
    bom.register_dependency(image_component, components)
    text = JsonV1Dot6(bom).output_as_string(indent=None)
    document = json.loads(text)
    card = (
        model_card
        if model_card is not None
        else (model_card_from_results(results) if results else {})
    )
    if card:
        for component in document.get("components") or []:
            if component.get("bom-ref") in model_refs:
                component["modelCard"] = card
    validate_sbom(document)
    return Sbom(document, digest, len(contents.packages), models)


def validate_sbom(document: dict[str, Any]) -> None:
    """Raise when ``document`` is not valid CycloneDX 1.6 (the library's strict validator)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    if error is not None:
        message = str(getattr(error, "data", error)).splitlines()[0][:200]
        raise MlciError(f"the SBOM is not valid CycloneDX 1.6: {message}")


def sbom_image_digest(document: dict[str, Any]) -> str | None:
    """The image digest an SBOM describes (its metadata component)."""
    component = (document.get("metadata") or {}).get("component") or {}
    for entry in component.get("hashes") or []:
        if entry.get("alg") == "SHA-256":
            return f"sha256:{entry.get('content')}"
    return None


def sbom_models(document: dict[str, Any]) -> list[str]:
    """sha256 of every machine-learning-model component."""
    found: list[str] = []
    for component in document.get("components") or []:
        if component.get("type") == "machine-learning-model":
            found.extend(
                h.get("content") for h in component.get("hashes") or [] if h.get("alg") == "SHA-256"
            )
    return found


def iter_components(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from document.get("components") or []
