"""An OCI distribution client: push an image layout, read manifests and blobs.

Speaks the OCI distribution spec over ``requests`` (imported lazily): anonymous, basic and
bearer-token authentication (the ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``
challenge of ghcr.io and Docker Hub), blobs pushed only when a HEAD says they are missing,
retries with back-off on connection errors and 5xx answers. A push uploads every blob, then
the manifest by digest, and moves the tag last, so a failed push never leaves a tag pointing at
a half-pushed image.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from mlci.errors import InputError, MlciError, UsageError
from mlci.supply.auth import (
    ENV_AUTH_HOSTS,
    Challenge,
    Credentials,
    credential_refusal,
    find_credentials,
    is_loopback,
    parse_challenge,
    trusted_auth_hosts,
)
from mlci.supply.auth import (
    hostname as hostname_of,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)

ENV_INSECURE = "MLCI_REGISTRY_INSECURE"
ENV_RETRIES = "MLCI_REGISTRY_RETRIES"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_REPO = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


class RegistryError(MlciError):
    """The registry could not be reached or refused what we asked."""

    exit_code = 1


class AuthError(RegistryError):
    """The registry refused our credentials."""


class NotFound(RegistryError):
    """A manifest or blob that the registry does not have."""


@dataclass(frozen=True)
class Reference:
    """``host[:port]/repository[:tag][@digest]``, with Docker Hub's defaults."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        original = text
        digest = None
        if "@" in text:
            text, digest = text.split("@", 1)
            if not _DIGEST.match(digest):
                raise UsageError(f"'{original}': the digest must look like sha256:<64 hex>")
        tag = None
        last = text.rsplit("/", 1)[-1]
        if ":" in last:
            text, tag = text.rsplit(":", 1)
            if not _TAG.match(tag):
                raise UsageError(f"'{original}': '{tag}' is not a valid tag")
        first, _, rest = text.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            host, repository = first, rest
        else:
            host, repository = "docker.io", text
            if "/" not in repository:
                repository = f"library/{repository}"
        if not repository or not _REPO.match(repository):
            raise UsageError(
                f"'{original}': not an image reference",
                tip="use host[:port]/repository[:tag][@sha256:...]",
            )
        return cls(host=host, repository=repository, tag=tag, digest=digest)

    @property
    def api_host(self) -> str:
        return "registry-1.docker.io" if self.host == "docker.io" else self.host

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.host, self.repository, None, digest)

    @property
    def name(self) -> str:
        """``host/repository`` without tag or digest."""
        return f"{self.host}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Descriptor:
        return cls(
            media_type=str(data.get("mediaType", "")),
            digest=str(data["digest"]),
            size=int(data.get("size", 0)),
            annotations=dict(data.get("annotations") or {}),
            artifact_type=data.get("artifactType"),
        )


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(data: Any) -> bytes:
    """The bytes we push for a JSON manifest or config we produce ourselves."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")


# --- the OCI image layout ---------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutImage:
    """One image of an OCI image layout: its top manifest and where its blobs are."""

    root: Path
    descriptor: Descriptor
    manifest: dict[str, Any]

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.root / "blobs" / algorithm / hexdigest

    def read_blob(self, digest: str) -> bytes:
        try:
            data = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise InputError(f"{self.root}: blob {digest} is missing from the layout") from None
        if sha256_digest(data) != digest:
            raise InputError(f"{self.root}: blob {digest} does not match its digest")
        return data

    @property
    def manifest_bytes(self) -> bytes:
        return self.read_blob(self.descriptor.digest)

    def manifests(self) -> Iterator[tuple[Descriptor, dict[str, Any]]]:
        """Every manifest reachable from the top one, children first."""
        if self.descriptor.media_type in INDEX_TYPES:
            for child in self.manifest.get("manifests", []):
                desc = Descriptor.from_json(child)
                yield desc, json.loads(self.read_blob(desc.digest))
        yield self.descriptor, self.manifest

    def image_manifests(self) -> list[dict[str, Any]]:
        return [m for d, m in self.manifests() if d.media_type not in INDEX_TYPES]


def read_image_layout(path: str | Path, tag: str | None = None) -> LayoutImage:
    """Read ``index.json`` of an OCI image layout and the manifest it points at.

    Uses ``mlci.supply.oci.read_layout`` when the image builder provides it; the chain
    index.json -> manifest -> config and layers is read here directly otherwise.
    """
    root = Path(path)
    try:
        from mlci.supply import oci
    except ImportError:  # the builder's module is optional here
        oci = None  # type: ignore[assignment]
    if oci is not None:
        oci.read_layout(root, ref_name=tag)  # validates the whole chain with its messages
    if not root.is_dir():
        raise InputError(f"{root}: no such OCI image layout directory")
    try:
        layout = json.loads((root / "oci-layout").read_text(encoding="utf-8"))
        index = json.loads((root / "index.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(
            f"{root}: not an OCI image layout ({Path(exc.filename).name} is missing)",
            tip="build one with 'mlci build' or 'skopeo copy ... oci:DIR'",
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{root}: not a readable OCI image layout ({exc})") from None
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise InputError(f"{root}/oci-layout: imageLayoutVersion is missing")
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not entries:
        raise InputError(f"{root}/index.json: the layout holds no image")
    if tag is not None:
        entries = [
            e
            for e in entries
            if (e.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag
        ]
        if not entries:
            raise InputError(f"{root}: no image tagged '{tag}' in the layout")
    if len(entries) > 1:
        names = [
            (e.get("annotations") or {}).get("org.opencontainers.image.ref.name", e.get("digest"))
            for e in entries
        ]
        raise InputError(
            f"{root}: the layout holds {len(entries)} images ({', '.join(map(str, names))})",
            tip="name one with LAYOUT:TAG",
        )
    try:
        descriptor = Descriptor.from_json(entries[0])
    except (KeyError, ValueError, TypeError):
        raise InputError(f"{root}/index.json: the manifest descriptor is malformed") from None
    image = LayoutImage(root, descriptor, {})
    try:
        manifest = json.loads(image.read_blob(descriptor.digest))
    except ValueError:
        raise InputError(f"{root}: manifest {descriptor.digest} is not JSON") from None
    if not descriptor.media_type:
        descriptor = Descriptor(
            manifest.get("mediaType", OCI_MANIFEST), descriptor.digest, descriptor.size
        )
    return LayoutImage(root, descriptor, manifest)


def split_layout_argument(text: str) -> tuple[Path, str | None]:
    """``DIR`` or ``DIR:TAG`` (the tag names one image of a layout that holds several)."""
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    path, _, tag = text.rpartition(":")
    return Path(path), tag or None


# --- the client -------------------------------------------------------------------------------


class RegistryClient:
    """One repository on one registry, with its authentication state."""

    def __init__(
        self,
        reference: Reference,
        *,
        credentials: Credentials | None = None,
        insecure: bool | None = None,
        retries: int | None = None,
        backoff: float = 0.25,
        timeout: float = 30.0,
        env: dict[str, str] | None = None,
    ) -> None:
        import requests

        env_map = os.environ if env is None else env
        self.reference = reference
        if insecure is None:
            insecure = is_loopback(hostname_of(reference.host)) or env_map.get(
                ENV_INSECURE, ""
            ) in (
                "1",
                "true",
            )
        self.scheme = "http" if insecure else "https"
        self.base = f"{self.scheme}://{reference.api_host}/v2"
        self.credentials = (
            credentials if credentials is not None else find_credentials(reference.host, env_map)
        )
        if retries is None:
            try:
                retries = int(env_map.get(ENV_RETRIES, "3"))
            except ValueError:
                raise UsageError(f"{ENV_RETRIES} must be a whole number") from None
        self.retries = max(0, retries)
        self.backoff = backoff
        self.timeout = timeout
        self.auth_hosts = trusted_auth_hosts(env_map)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "mlci"
        self._authorization: str | None = None
        self._tokens: dict[str, str] = {}

    # -- transport

    def _scope(self, push: bool) -> str:
        return f"repository:{self.reference.repository}:{'pull,push' if push else 'pull'}"

    def request(
        self,
        method: str,
        url: str,
        *,
        push: bool = False,
        ok: tuple[int, ...] = (200,),
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        allow_missing: bool = False,
    ) -> Any:
        """Send one request with authentication and retries; return the response."""
        import requests

        if not url.startswith("http"):
            url = self.base + url
        attempt = 0
        authenticated_once = False
        while True:
            sent = dict(headers or {})
            if self._authorization:
                sent["Authorization"] = self._authorization
            try:
                response = self.session.request(
                    method, url, data=data, headers=sent, timeout=self.timeout, allow_redirects=True
                )
            except requests.exceptions.SSLError as exc:
                raise RegistryError(
                    f"{self.reference.host}: TLS failed ({exc.__class__.__name__})",
                    tip=f"for a plain-HTTP registry set {ENV_INSECURE}=1",
                ) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if attempt < self.retries:
                    attempt += 1
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                raise RegistryError(
                    f"registry {self.reference.host} is unreachable "
                    f"({exc.__class__.__name__} after {attempt + 1} attempts)",
                    tip="check the host and port, and that the registry is running",
                ) from None
            if response.status_code == 401 and not authenticated_once:
                authenticated_once = True
                self._authenticate(response, push)
                continue
            if response.status_code in (429, 500, 502, 503, 504) and attempt < self.retries:
                attempt += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            if response.status_code in ok:
                return response
            if response.status_code == 404 and allow_missing:
                return response
            self._raise_for(response, method, url)

    def _raise_for(self, response: Any, method: str, url: str) -> None:
        detail = ""
        try:
            errors = response.json().get("errors") or []
            if errors:
                detail = (
                    ": "
                    + "; ".join(
                        f"{e.get('code', '')} {e.get('message', '')}".strip() for e in errors
                    )[:500]
                )
        except (ValueError, RecursionError, AttributeError, TypeError):
            pass
        where = url.replace(self.base, "")
        if response.status_code in (401, 403):
            who = f"user '{self.credentials.username}'" if self.credentials else "anonymous access"
            raise AuthError(
                f"registry {self.reference.host} refused {who} ({response.status_code} on "
                f"{method} {where}){detail}",
                tip=f"log in (docker/podman login) or set {'MLCI_REGISTRY_USERNAME'} and "
                "MLCI_REGISTRY_PASSWORD",
            )
        if response.status_code == 404:
            raise NotFound(f"{self.reference.name}: {where} not found{detail}")
        raise RegistryError(
            f"registry {self.reference.host} answered {response.status_code} to {method} "
            f"{where}{detail}"
        )

    def _authenticate(self, response: Any, push: bool) -> None:
        header = response.headers.get("WWW-Authenticate", "")
        challenge = parse_challenge(header) if header else Challenge("basic", {})
        if challenge.scheme == "basic":
            if not self.credentials:
                raise AuthError(
                    f"registry {self.reference.host} requires a login",
                    tip="docker/podman login, or set MLCI_REGISTRY_USERNAME and "
                    "MLCI_REGISTRY_PASSWORD",
                )
            if self.scheme == "http" and not is_loopback(hostname_of(self.reference.api_host)):
                raise AuthError(
                    f"registry {self.reference.host} asks for a password over plain http; mlci "
                    "sends credentials over http only to this machine",
                    tip="use the registry over https",
                )
            self._authorization = self.credentials.basic_header()
            return
        if challenge.scheme != "bearer" or not challenge.realm:
            raise AuthError(
                f"registry {self.reference.host} asks for unsupported authentication '{header}'"
            )
        self._authorization = "Bearer " + self._token(challenge, push)

    def _token(self, challenge: Challenge, push: bool) -> str:
        import requests

        scope = challenge.params.get("scope") or self._scope(push)
        if push and ":push" not in scope and "push" not in scope.rsplit(":", 1)[-1]:
            scope = self._scope(True)
        query = {"scope": scope}
        if challenge.params.get("service"):
            query["service"] = challenge.params["service"]
        key = f"{challenge.realm}?{urlencode(query)}"
        if key in self._tokens:
            return self._tokens[key]
        realm = str(challenge.realm)
        headers = {}
        if self.credentials:
            refusal = credential_refusal(
                self.reference.api_host, realm, (hostname_of(self.reference.host), *self.auth_hosts)
            )
            if refusal:
                raise AuthError(
                    f"registry {self.reference.host} sends its login to the token service "
                    f"{realm}; mlci does not send your credentials there: {refusal}",
                    tip=f"if you trust that service, add its host to {ENV_AUTH_HOSTS}",
                )
            headers["Authorization"] = self.credentials.basic_header()
        elif not realm.startswith(("https://", "http://")):
            raise AuthError(
                f"registry {self.reference.host} names a token service that is not an http(s) "
                f"URL: {realm!r}"
            )
        try:
            # No redirects: they would carry the login to wherever the service points.
            answer = self.session.get(
                realm, params=query, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.exceptions.RequestException as exc:
            raise RegistryError(
                f"token service {challenge.realm} is unreachable ({exc.__class__.__name__})"
            ) from None
        if answer.status_code in (401, 403):
            who = f"user '{self.credentials.username}'" if self.credentials else "anonymous access"
            raise AuthError(
                f"token service {challenge.realm} refused {who} for {scope}",
                tip="check the user name and password (or token) for this registry",
            )
        if answer.status_code != 200:
            raise RegistryError(
                f"token service {challenge.realm} answered {answer.status_code} for {scope}"
            )
        try:
            body = answer.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, RecursionError, AttributeError):
            token = None
        if not token:
            raise RegistryError(f"token service {challenge.realm} answered without a token")
        self._tokens[key] = str(token)
        return str(token)

    # -- blobs

    def blob_exists(self, digest: str) -> bool:
        response = self.request(
            "HEAD", f"/{self.reference.repository}/blobs/{digest}", allow_missing=True
        )
        return bool(response.status_code == 200)

    def get_blob(self, digest: str) -> bytes:
        response = self.request("GET", f"/{self.reference.repository}/blobs/{digest}")
        data = bytes(response.content)
        if sha256_digest(data) != digest:
            raise RegistryError(f"{self.reference.name}: blob {digest} does not match its digest")
        return data

    def push_blob(self, data: bytes | Path, digest: str | None = None) -> tuple[str, bool]:
        """Upload a blob unless the registry has it; return its digest and whether it was sent."""
        payload = data.read_bytes() if isinstance(data, Path) else data
        digest = digest or sha256_digest(payload)
        if self.blob_exists(digest):
            return digest, False
        started = self.request(
            "POST", f"/{self.reference.repository}/blobs/uploads/", push=True, ok=(202, 201)
        )
        if started.status_code == 201:  # mounted or accepted at once
            return digest, True
        location = started.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.reference.host} gave no upload location")
        if location.startswith("/"):
            location = f"{self.scheme}://{self.reference.api_host}{location}"
        separator = "&" if "?" in location else "?"
        self.request(
            "PUT",
            f"{location}{separator}{urlencode({'digest': digest})}",
            push=True,
            ok=(201,),
            data=payload,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(payload)),
            },
        )
        return digest, True

    # -- manifests

    def put_manifest(self, data: bytes, media_type: str, reference: str) -> tuple[str, Any]:
        response = self.request(
            "PUT",
            f"/{self.reference.repository}/manifests/{reference}",
            push=True,
            ok=(201, 200),
            data=data,
            headers={"Content-Type": media_type},
        )
        digest = sha256_digest(data)
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise RegistryError(
                f"registry {self.reference.host} stored the manifest as {answered}, not {digest}"
            )
        return digest, response

    def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        """The manifest bytes, media type and digest for a tag or digest."""
        response = self.request(
            "GET",
            f"/{self.reference.repository}/manifests/{reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        data = bytes(response.content)
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"{self.reference.name}: manifest {reference} does not match")
        media_type = response.headers.get("Content-Type", "").split(";")[0]
        try:
            media_type = json.loads(data).get("mediaType") or media_type
        except ValueError:
            raise RegistryError(
                f"{self.reference.name}: manifest {reference} is not JSON"
            ) from None
        return data, media_type, digest

    def head_manifest(self, reference: str) -> Descriptor | None:
        response = self.request(
            "HEAD",
            f"/{self.reference.repository}/manifests/{reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            allow_missing=True,
        )
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:
            data, media_type, digest = self.get_manifest(reference)
            return Descriptor(media_type, digest, len(data))
        return Descriptor(
            response.headers.get("Content-Type", OCI_MANIFEST).split(";")[0],
            digest,
            int(response.headers.get("Content-Length", 0)),
        )

    def resolve(self) -> Descriptor:
        """The descriptor of the manifest the client's reference names (tag or digest)."""
        target = self.reference.digest or self.reference.tag or "latest"
        data, media_type, digest = self.get_manifest(target)
        return Descriptor(media_type, digest, len(data))


@dataclass(frozen=True)
class PushResult:
    """What a push sent and where it landed."""

    reference: Reference
    digest: str
    media_type: str
    size: int
    layers: list[Descriptor]
    blobs_sent: int
    blobs_skipped: int

    @property
    def pinned(self) -> str:
        return f"{self.reference.name}@{self.digest}"


def push_layout(
    layout: LayoutImage,
    reference: Reference,
    *,
    client: RegistryClient | None = None,
    progress: Callable[[str], None] | None = None,
) -> PushResult:
    """Push every blob and manifest of ``layout``; tag it last. Returns the pushed digest."""
    client = client or RegistryClient(reference)
    say = progress or (lambda message: None)
    sent = skipped = 0
    layers: list[Descriptor] = []
    size = 0
    manifests = list(layout.manifests())
    for descriptor, manifest in manifests:
        if descriptor.media_type in INDEX_TYPES:
            continue
        blobs = [manifest.get("config", {})] + list(manifest.get("layers", []))
        for entry in blobs:
            desc = Descriptor.from_json(entry)
            if desc.media_type == "application/vnd.oci.empty.v1+json" and desc.size == 2:
                data: bytes | Path = b"{}"
            else:
                data = layout.blob_path(desc.digest)
                if not data.exists():
                    raise InputError(
                        f"{layout.root}: blob {desc.digest} is missing from the layout"
                    )
            _, was_sent = client.push_blob(data, desc.digest)
            sent += was_sent
            skipped += not was_sent
            say(f"{'pushed' if was_sent else 'exists'} {desc.digest[:19]} ({desc.size} bytes)")
            size += desc.size
            if entry is not blobs[0]:
                layers.append(desc)
    for descriptor, _ in manifests:
        raw = layout.read_blob(descriptor.digest)
        client.put_manifest(raw, descriptor.media_type, descriptor.digest)
        size += len(raw)
    top = layout.descriptor
    if reference.tag:
        client.put_manifest(layout.manifest_bytes, top.media_type, reference.tag)
        say(f"tagged {reference}")
    return PushResult(
        reference=reference,
        digest=top.digest,
        media_type=top.media_type,
        size=size,
        layers=layers,
        blobs_sent=sent,
        blobs_skipped=skipped,
    )
