"""``mlci build``: the serving image, daemonless (default) or from a Dockerfile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mlci.commands._base import command, progress_reporter
from mlci.errors import ConfigError, UsageError

BUILD_DESCRIPTION = """\
Build a serving image for an ONNX model: the Open Inference Protocol (KServe v2) server
(python -m mlci.serve on uvicorn with ONNX Runtime), and the model in a layer of its own.

Daemonless (the default): reads --base (an OCI layout folder, oci:DIR[:TAG], or a
docker-archive tar from 'docker save' / scripts/build-base-image), adds the dependency,
runtime and model layers, and writes --output oci:DIR or docker-archive:FILE. Builds are
reproducible: the same inputs give the same digest; timestamps come from
--source-date-epoch, SOURCE_DATE_EPOCH or the last commit.

With --dockerfile: builds your Dockerfile through the Docker Engine API at DOCKER_HOST
(Docker or Podman), with --build-arg values and the same OCI labels.

Prints the image digest (sha256:...) on standard output; nothing is written on failure."""


def register(sub: Any) -> None:
    build = command(
        sub, "build", "build the serving image (OCI layout or docker-archive)", BUILD_DESCRIPTION
    )
    model = build.add_argument_group("model")
    model.add_argument("--model", type=Path, metavar="PATH", help="the ONNX model file")
    model.add_argument(
        "-c", "--config", type=Path, metavar="PATH", help="take the model from mlci.yaml instead"
    )
    model.add_argument(
        "--model-name", metavar="NAME", help="which model of mlci.yaml (when it has several)"
    )
    model.add_argument(
        "--name",
        metavar="NAME",
        help="model name served in the URLs (default: from mlci.yaml or the file name)",
    )
    image = build.add_argument_group("image")
    image.add_argument(
        "--base",
        metavar="IMAGE",
        help="base image with Python: OCI layout folder, oci:DIR[:TAG], docker-archive:FILE or "
        "a tar path (daemonless builder; required without --dockerfile)",
    )
    image.add_argument(
        "-o",
        "--output",
        metavar="DEST",
        help="oci:DIR or docker-archive:FILE (the Docker builder: docker-archive only, optional)",
    )
    image.add_argument("-t", "--tag", metavar="NAME[:TAG]", help="image name and tag")
    image.add_argument(
        "--source-date-epoch",
        type=int,
        metavar="SECONDS",
        help="timestamp for every file and the created label (default: $SOURCE_DATE_EPOCH, "
        "else the last commit, else 0)",
    )
    image.add_argument("--source", metavar="URL", help="org.opencontainers.image.source label")
    image.add_argument("--revision", metavar="SHA", help="org.opencontainers.image.revision label")
    image.add_argument(
        "--requirement",
        action="append",
        metavar="SPEC",
        help="Python requirement for the dependency layer, repeatable "
        "(default: the serving runtime's packages at mlci's versions)",
    )
    image.add_argument(
        "--keep-base-layers",
        action="store_true",
        help="keep uncompressed base layers as they are (default: gzip them once, cached)",
    )
    image.add_argument(
        "--wheels", type=Path, metavar="DIR", help="use the wheels in DIR instead of pip download"
    )
    docker = build.add_argument_group("Docker builder")
    docker.add_argument(
        "--dockerfile", metavar="FILE", help="build this Dockerfile through DOCKER_HOST instead"
    )
    docker.add_argument(
        "--context", type=Path, metavar="DIR", help="build context (default: the current folder)"
    )
    docker.add_argument(
        "--build-arg", action="append", metavar="KEY=VALUE", help="build argument, repeatable"
    )
    build.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    build.set_defaults(run=run_build)


def _model_from_config(args: argparse.Namespace) -> tuple[Path, str]:
    from mlci.config import load_config

    loaded = load_config(args.config)
    models = loaded.config.models
    if args.model_name:
        chosen = [m for m in models if m.name == args.model_name]
        if not chosen:
            names = ", ".join(m.name for m in models)
            raise UsageError(f"--model-name {args.model_name}: not in {loaded.path} ({names})")
    elif len(models) > 1:
        names = ", ".join(m.name for m in models)
        raise UsageError(f"{loaded.path} has several models ({names}); pick one with --model-name")
    else:
        chosen = models
    model = chosen[0]
    if model.path is None:
        raise ConfigError(f"{loaded.path}: model {model.name} has no path to put in an image")
    fmt = model.format if model.format != "auto" else model.path.suffix.lstrip(".").lower()
    if fmt != "onnx":
        raise ConfigError(
            f"{loaded.path}: model {model.name} is not ONNX ({model.path.name})",
            tip="convert it with 'mlci convert' and build from the .onnx file with --model",
        )
    return model.path, model.name


def run_build(args: argparse.Namespace) -> int:
    """Run ``mlci build``; print the digest; return the exit code."""

    from mlci.supply.builder import ImageBuilder, Output

    model: Path | None = args.model
    name: str | None = args.name
    if args.model is not None and args.config is not None:
        raise UsageError("give --model or --config, not both")
    if args.config is not None:
        model, config_name = _model_from_config(args)
        name = name or config_name

    with progress_reporter(args.quiet) as progress:
        builder: ImageBuilder
        if args.dockerfile:
            from mlci.supply.docker_build import DockerBuilder, DockerBuildRequest, parse_build_args

            if args.base:
                raise UsageError(
                    "--base is for the daemonless builder; FROM sets it with --dockerfile"
                )
            builder = DockerBuilder(
                DockerBuildRequest(
                    context=args.context or Path("."),
                    dockerfile=args.dockerfile,
                    tag=args.tag,
                    build_args=parse_build_args(args.build_arg),
                    model=model,
                    name=name,
                    source_date_epoch=args.source_date_epoch,
                    source=args.source,
                    revision=args.revision,
                    output=Output.parse(args.output) if args.output else None,
                )
            )
        else:
            from mlci.supply.bases import base_source
            from mlci.supply.build import BuildRequest, DaemonlessBuilder

            if args.context or args.build_arg:
                raise UsageError("--context and --build-arg go with --dockerfile")
            if model is None:
                raise UsageError("give the model with --model PATH or --config mlci.yaml")
            if not args.base:
                raise UsageError(
                    "give a base image with --base",
                    tip="scripts/build-base-image makes one; or 'docker save python:3.11-slim -o base.tar'",
                )
            if not args.output:
                raise UsageError("give --output oci:DIR or --output docker-archive:FILE")
            output = Output.parse(args.output)
            builder = DaemonlessBuilder(
                BuildRequest(
                    model=model,
                    base=base_source(args.base),
                    output=output,
                    name=name,
                    tag=args.tag,
                    source_date_epoch=args.source_date_epoch,
                    requirements=tuple(args.requirement) if args.requirement else None,
                    wheels=args.wheels,
                    source=args.source,
                    revision=args.revision,
                    compress_base=not args.keep_base_layers,
                )
            )
        result = builder.build(progress)
    roles: dict[str, int] = {}
    for layer in result.layers:
        roles[layer.role] = roles.get(layer.role, 0) + layer.size
    sizes = ", ".join(f"{role} {size / 1e6:.1f} MB" for role, size in roles.items() if size)
    print(f"built {result.output}" + (f" ({sizes})" if sizes else ""), file=sys.stderr)
    print(result.digest)
    return 0
