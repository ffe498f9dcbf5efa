"""An OCI distribution client: push an image layout, read manifests and blobs.

Speaks the OCI distribution spec over ``requests`` (imported lazily): anonymous, basic and
bearer-token authentication (the ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``
challenge of ghcr.io and Docker Hub), blobs pushed only when a HEAD says they are missing,
retries with back-off on connection errors and 5xx answers. A push uploads every blob, then
the manifest by digest, and moves the tag last, so a failed push never leaves a tag pointing at
a half-pushed image.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from mlci.supply.layout import LayoutImage
from mlci.supply.oci import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_EMPTY,
    MEDIA_MANIFEST,
    Descriptor,
    sha256_digest,
)

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
            response.headers.get("Content-Type", MEDIA_MANIFEST).split(";")[0],
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
            if desc.media_type == MEDIA_EMPTY and desc.size == 2:
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
    referrers = _push_referrers(layout, client)
    if referrers:
        say(f"pushed {referrers} signature(s) and attestation(s) attached in the layout")
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


def _push_referrers(layout: LayoutImage, client: RegistryClient) -> int:
    """Push what refers to the layout's image (signatures, attestations) along with it."""
    from mlci.supply.store import LayoutStore, RegistryStore

    source = LayoutStore(layout.root)
    target = RegistryStore(client)
    subject = layout.descriptor.digest
    found = source.referrers(subject)
    for descriptor in found:
        raw = source.get_manifest(descriptor.digest)
        manifest = json.loads(raw)
        for entry in [manifest.get("config") or {}, *(manifest.get("layers") or [])]:
            blob = Descriptor.from_json(entry)
            client.push_blob(source.get_blob(blob.digest), blob.digest)
        target.put_referrer(raw, descriptor, subject)
    return len(found)
