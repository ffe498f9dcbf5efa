"""The text of a model source, parsed: pure, so mlci.yaml can be checked when it is loaded.

models/candidate.onnx                     a local file (relative to mlci.yaml)
git:main:models/candidate.onnx            a file at a git ref (path from the repository root)
base-branch                               the candidate's path on the pull request's base branch
oci://ghcr.io/org/credit:prod             a ModelPack artifact by tag ...
oci://ghcr.io/org/credit@sha256:<hex>     ... or by digest
models:/credit@champion                   an MLflow registered model by alias ...
models:/credit/7                          ... or by version
https://host/m.onnx#sha256=<hex>          an HTTPS URL pinned by sha256 (or the sha256 key)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

Scheme = Literal["path", "git", "base-branch", "oci", "mlflow", "https"]
BASE_BRANCH = "base-branch"

_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?")
# git check-ref-format forbids these anywhere in a ref (':' is what lets us split).
_BAD_REF = re.compile(r"[\s~^:?*\[\\]|\.\.|@\{|//")
_MLFLOW_NAME = re.compile(r"^[^/@\s][^@\s]*$")
_ALIAS = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


class SourceSyntaxError(ValueError):
    """A source string that does not parse; the message says what is wrong and how to write it."""


class UnpinnedError(SourceSyntaxError):
    """An HTTPS source without its sha256."""


@dataclass(frozen=True)
class LocalSource:
    path: str
    scheme: Scheme = "path"

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True)
class GitSource:
    rev: str
    path: str
    scheme: Scheme = "git"

    def __str__(self) -> str:
        return f"git:{self.rev}:{self.path}"


@dataclass(frozen=True)
class BaseBranchSource:
    scheme: Scheme = "base-branch"

    def __str__(self) -> str:
        return BASE_BRANCH


@dataclass(frozen=True)
class OciSource:
    """``host/repository`` and a tag or a digest (exactly one)."""

    repository: str  # host/repository
    tag: str | None = None
    digest: str | None = None
    scheme: Scheme = "oci"

    @property
    def image(self) -> str:
        """The reference the registry client takes: ``host/repo:tag`` or ``host/repo@digest``."""
        return (
            f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"
        )

    def __str__(self) -> str:
        return f"oci://{self.image}"


@dataclass(frozen=True)
class MlflowSource:
    """A registered model version (``models:/name/7``) or alias (``models:/name@champion``)."""

    name: str
    version: str | None = None
    alias: str | None = None
    scheme: Scheme = "mlflow"

    def __str__(self) -> str:
        return (
            f"models:/{self.name}@{self.alias}"
            if self.alias
            else f"models:/{self.name}/{self.version}"
        )


@dataclass(frozen=True)
class HttpsSource:
    url: str  # without the #sha256= fragment
    sha256: str
    scheme: Scheme = "https"

    def __str__(self) -> str:
        return f"{self.url}#sha256={self.sha256}"


SourceRef = LocalSource | GitSource | BaseBranchSource | OciSource | MlflowSource | HttpsSource


def parse_sha256(value: str) -> str:
    """``<hex>`` from ``<hex>`` or ``sha256:<hex>``; SourceSyntaxError otherwise."""
    match = _SHA256.match(value.strip().lower())
    if not match:
        raise SourceSyntaxError(f"'{value}' is not a sha256 digest (64 hex digits)")
    return match.group(1)


def parse_source(text: str, sha256: str | None = None) -> SourceRef:
    """Parse a source string; ``sha256`` is the separate pin, required for HTTPS unless the
    URL carries ``#sha256=``. Raises SourceSyntaxError with a message fit for the user."""
    text = text.strip()
    if not text:
        raise SourceSyntaxError("the source is empty")
    if text == BASE_BRANCH:
        return BaseBranchSource()
    if text.startswith("git:"):
        return _git(text)
    if text.startswith("models:"):
        return _mlflow(text)
    scheme = _URL_SCHEME.match(text)
    if scheme and (scheme.group(2) or scheme.group(1).lower() in ("http", "https", "oci")):
        name = scheme.group(1).lower()
        if name == "oci":
            return _oci(text)
        if name == "https":
            return _https(text, sha256)
        if name == "http":
            raise SourceSyntaxError(
                f"'{text}': plain http is refused (anyone on the path could swap the model); "
                "use https://"
            )
        raise SourceSyntaxError(
            f"'{text}': unknown scheme '{name}:'; use a path, git:REF:PATH, base-branch, "
            "oci://HOST/REPO:TAG, models:/NAME@ALIAS or https://...#sha256=HEX"
        )
    return LocalSource(text)


def check_path(path: str, what: str) -> str:
    """A relative POSIX path without '..' (a path inside a repository or an artifact)."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or path.endswith("/"):
        raise SourceSyntaxError(f"{what}: '{path}' must be a relative file path without '..'")
    return str(pure)


def _git(text: str) -> GitSource:
    rest = text[len("git:") :]
    rev, sep, path = rest.partition(":")
    if not sep or not rev or not path:
        raise SourceSyntaxError(
            f"'{text}': write git:REF:PATH, e.g. git:main:models/model.onnx "
            "(PATH from the repository's root)"
        )
    if _BAD_REF.search(rev) or rev.startswith(("-", "/", ".")) or rev.endswith((".", "/", ".lock")):
        raise SourceSyntaxError(f"'{text}': '{rev}' is not a valid git ref")
    return GitSource(rev, check_path(path, f"'{text}'"))


def _oci(text: str) -> OciSource:
    from mlci.errors import MlciError
    from mlci.supply.registry import Reference

    rest = text[len("oci://") :]
    try:
        ref = Reference.parse(rest)
    except MlciError as exc:
        raise SourceSyntaxError(f"'{text}': {exc.message.split(': ', 1)[-1]}") from None
    if "/" not in rest or ref.host == "docker.io" and not rest.startswith("docker.io/"):
        raise SourceSyntaxError(
            f"'{text}': name the registry host, e.g. oci://ghcr.io/org/model:prod"
        )
    if ref.tag and ref.digest:
        raise SourceSyntaxError(f"'{text}': give a tag or a digest, not both")
    if not ref.tag and not ref.digest:
        raise SourceSyntaxError(
            f"'{text}': give a tag (oci://{rest}:prod) or a digest (oci://{rest}@sha256:...)"
        )
    return OciSource(ref.name, ref.tag, ref.digest)


def _mlflow(text: str) -> MlflowSource:
    rest = text[len("models:/") :] if text.startswith("models:/") else ""
    usage = f"'{text}': write models:/NAME@ALIAS or models:/NAME/VERSION"
    if not rest:
        raise SourceSyntaxError(usage)
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if not _MLFLOW_NAME.match(name) or not _ALIAS.match(alias):
            raise SourceSyntaxError(usage)
        return MlflowSource(name, alias=alias)
    name, _, version = rest.rpartition("/")
    if not name or not _MLFLOW_NAME.match(name) or not version.isdigit() or int(version) < 1:
        raise SourceSyntaxError(usage + " (stages such as /Production are not supported)")
    return MlflowSource(name, version=str(int(version)))


def _https(text: str, sha256: str | None) -> HttpsSource:
    parts = urlsplit(text)
    if not parts.hostname:
        raise SourceSyntaxError(f"'{text}': the URL names no host")
    pins = []
    if parts.fragment:
        key, _, value = parts.fragment.partition("=")
        if key != "sha256":
            raise SourceSyntaxError(f"'{text}': the only fragment understood is #sha256=HEX")
        pins.append(parse_sha256(value))
    if sha256 is not None:
        pins.append(parse_sha256(sha256))
    if not pins:
        raise UnpinnedError(
            f"'{text}': an https source must be pinned: add #sha256=HEX to the URL or a "
            "sha256 key beside it"
        )
    if len(set(pins)) > 1:
        raise SourceSyntaxError(f"'{text}': the URL's #sha256 and the sha256 key differ")
    url = urlunsplit((parts.scheme.lower(), parts.netloc, parts.path, parts.query, ""))
    return HttpsSource(url, pins[0])


def sibling(ref: SourceRef, suffix: str) -> SourceRef | None:
    """The same kind of source for the file beside this one named ``<file><suffix>`` (where a
    file's signature bundle lives), or None where files have no siblings (OCI, MLflow)."""
    if isinstance(ref, LocalSource):
        return LocalSource(ref.path + suffix)
    if isinstance(ref, GitSource):
        return GitSource(ref.rev, ref.path + suffix)
    return None
