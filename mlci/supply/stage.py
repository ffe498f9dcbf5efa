"""The supply-chain stages of ``mlci check``: build (and push) the serving image, write its
SBOM, sign it, and, after the gate, sign the evaluation decision.

Each stage updates the ``image`` section of the results document. They run the same code as
``mlci build``, ``mlci push``, ``mlci sbom``, ``mlci sign`` and ``mlci verify``. Without a
registry the image stays an OCI layout beside the results and signatures are attached to it
there (``mlci push`` carries them to a registry later).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from mlci.errors import InputError
from mlci.results.image import Image, Layer, SbomRecord
from mlci.stages import ModelContext, StageFailed, StageSkipped

if TYPE_CHECKING:
    from mlci.supply.config import ImageConfig
    from mlci.supply.signing import Signer
    from mlci.supply.store import Store

IMAGE_DIR = "image"
IMAGE_TAR = "image.tar"
SBOM_FILE = "sbom.cdx.json"
PUBLIC_KEY_FILE = "signing.pub"


def _config(ctx: ModelContext) -> ImageConfig:
    cfg = ctx.loaded.config.image
    if cfg is None:
        raise StageSkipped("no image section in mlci.yaml")
    return cfg


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _model_file(ctx: ModelContext) -> Path:
    """The ONNX file to serve: the candidate, or its conversion when ``convert: true``."""
    info = ctx.candidate.info
    if info.format == "onnx":
        return Path(info.path)
    conversion = ctx.results.conversion
    if conversion is not None and conversion.status == "converted" and conversion.onnx_path:
        return ctx.staging / conversion.onnx_path
    raise StageSkipped(
        f"the serving image runs ONNX models and the candidate is {info.format} "
        "(tip: set convert: true on the model, or point it at an .onnx file)"
    )


def _base(ctx: ModelContext, cfg: ImageConfig) -> str:
    spec = ctx.options.image_base or cfg.base
    if spec is None:
        raise StageSkipped("no base image (tip: set image.base in mlci.yaml or pass --image-base)")
    if ctx.options.image_base is None:
        spec = _relative_to_config(ctx, spec)
    return spec


def _relative_to_config(ctx: ModelContext, spec: str) -> str:
    """A base path written in mlci.yaml is relative to mlci.yaml's folder."""
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in ("oci", "docker-archive", "oci-archive") and not rest.startswith("//"):
        return f"{scheme}:{_resolve(ctx, rest)}"
    if sep and rest.startswith("//"):
        return spec
    return str(_resolve(ctx, spec))


def _resolve(ctx: ModelContext, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else ctx.loaded.path.parent / p


def build(ctx: ModelContext) -> Image:
    """Build the serving image beside the results; push it when configured."""
    from mlci.supply.bases import base_source
    from mlci.supply.build import BuildRequest, DaemonlessBuilder
    from mlci.supply.builder import Output

    cfg = _config(ctx)
    model = _model_file(ctx)
    base = _base(ctx, cfg)
    kind = cfg.format
    target = ctx.staging / (IMAGE_DIR if kind == "oci" else IMAGE_TAR)
    tag = cfg.tag or ctx.name.lower()
    ctx.progress(f"building the serving image on {base}")
    result = DaemonlessBuilder(
        BuildRequest(
            model=model,
            base=base_source(base),
            output=Output(kind, target),
            name=ctx.name,
            tag=tag if ":" in tag else f"{ctx.name.lower()}:{tag}",
            requirements=tuple(cfg.requirements) if cfg.requirements else None,
        )
    ).build(ctx.progress)
    image = Image(
        output=f"{kind}:{target.name}",
        digest=result.digest,
        media_type="application/vnd.oci.image.manifest.v1+json",
        size=result.size,
        layers=[
            Layer(
                digest=layer.digest,
                size=layer.size,
                media_type=layer.media_type,
                role=layer.role,
            )
            for layer in result.layers
        ],
    )
    if ctx.options.push if ctx.options.push is not None else cfg.push:
        image = push(ctx, cfg, image, target)
    return image


def push(ctx: ModelContext, cfg: ImageConfig, image: Image, layout_path: Path) -> Image:
    """Push the built layout to ``image.registry``; a failure fails the stage (exit 1)."""
    from mlci.supply.layout import read_image_layout
    from mlci.supply.registry import Reference, RegistryClient, RegistryError, push_layout

    if not cfg.registry:
        raise InputError(
            f"{ctx.loaded.path}: image.registry is needed to push",
            tip="set image.registry to host/repository",
        )
    if cfg.format != "oci":
        raise StageSkipped("pushing needs format: oci")
    reference = Reference.parse(f"{cfg.registry}:{cfg.tag or ctx.name.lower()}")
    ctx.progress(f"pushing to {reference}")
    try:
        result = push_layout(
            read_image_layout(layout_path), reference, client=RegistryClient(reference)
        )
    except RegistryError as exc:
        raise StageFailed(f"push to {reference} failed: {exc.message}", tip=exc.tip) from None
    return image.model_copy(
        update={
            "reference": str(reference),
            "repository": reference.name,
            "digest": result.digest,
            "media_type": result.media_type,
            "pushed": _now(),
        }
    )


def store_of(ctx: ModelContext, image: Image) -> Store:
    """Where the image's signatures go: its registry when pushed, else its layout."""
    from mlci.supply.store import LayoutStore, RegistryStore

    if image.pushed and image.reference:
        from mlci.supply.registry import Reference

        return RegistryStore.open(Reference.parse(image.reference).with_digest(image.digest or ""))
    if image.output is None or not image.output.startswith("oci:"):
        raise StageSkipped("signatures are attached to an OCI layout or a registry image")
    return LayoutStore(ctx.staging / image.output[len("oci:") :])


def _image(ctx: ModelContext) -> Image:
    image = ctx.results.image
    if image is None or image.digest is None:
        raise StageSkipped("no image was built")
    return image


def sbom(ctx: ModelContext) -> Image:
    """Describe the built image in CycloneDX 1.6, written beside the results."""
    from mlci.files import write_atomic
    from mlci.hashing import sha256_file
    from mlci.supply.sbom import build_sbom

    cfg = _config(ctx)
    if not cfg.sbom:
        raise StageSkipped("image.sbom is false")
    image = _image(ctx)
    if image.output is None or not image.output.startswith("oci:"):
        raise StageSkipped("the SBOM is read from an OCI layout (image.format: oci)")
    ctx.progress("describing the image (SBOM)")
    document = build_sbom(
        ctx.staging / image.output[len("oci:") :],
        image_name=image.repository or ctx.name,
        results=ctx.results,
    )
    path = ctx.staging / SBOM_FILE
    write_atomic(path, document.dumps())
    return image.model_copy(
        update={
            "sbom": SbomRecord(
                path=SBOM_FILE,
                format="CycloneDX 1.6",
                sha256=sha256_file(path),
                components=len(document.document.get("components") or []),
            )
        }
    )


def signer_for(ctx: ModelContext, cfg: ImageConfig) -> Signer:
    from mlci.supply.signing import make_signer

    method = ctx.options.sign or cfg.sign.method
    if method == "none":
        raise StageSkipped("signing is off (image.sign.method: none)")
    key = ctx.options.sign_key or cfg.sign.key
    if method == "key" and key is None:
        raise InputError(
            f"{ctx.loaded.path}: signing with a key needs image.sign.key or --sign-key"
        )
    return make_signer(
        key=key if method == "key" else None,
        keyless=method == "keyless",
        password_env=cfg.sign.password_env,
        staging=cfg.sign.staging,
    )


def _attach(ctx: ModelContext, image: Image, *, evaluation: bool) -> Image:
    """Sign statements about the image, attach them, and verify what was attached."""
    import json

    from mlci.supply.signatures import sign_and_attach, statements, with_verification
    from mlci.supply.verify import verify_image

    cfg = _config(ctx)
    signer = signer_for(ctx, cfg)
    store = store_of(ctx, image)
    subject = store.resolve()
    sbom_doc = None
    if not evaluation and image.sbom is not None and image.sbom.path:
        sbom_doc = json.loads((ctx.staging / image.sbom.path).read_text(encoding="utf-8"))
    signed = statements(
        store,
        subject,
        signature=not evaluation,
        sbom=sbom_doc,
        evaluation=ctx.results if evaluation else None,
    )
    ctx.progress(f"signing {len(signed)} statement(s) as {signer.identity.identity}")
    attached = sign_and_attach(store, subject, signer, signed)
    policy = signer.policy(ctx.staging / PUBLIC_KEY_FILE)
    outcome = verify_image(store, policy, require=())
    attached = with_verification(attached, outcome)
    sbom = image.sbom
    if sbom_doc is not None and sbom is not None:
        referrer = next(s.referrer for s in attached if s.kind == "sbom")
        sbom = sbom.model_copy(update={"attached": True, "referrer": referrer})
    kept = [s for s in image.signatures if s.referrer not in {a.referrer for a in attached}]
    return image.model_copy(update={"signatures": kept + attached, "sbom": sbom})


def sign(ctx: ModelContext) -> Image:
    """Sign the image and attach its SBOM as a signed attestation."""
    return _attach(ctx, _image(ctx), evaluation=False)


def attest(ctx: ModelContext) -> Image:
    """Sign the evaluation and the gate's final decision as an attestation of the image."""
    return _attach(ctx, _image(ctx), evaluation=True)
