"""Registry credentials and the authentication challenges of the OCI distribution spec.

Credentials come, in this order, from ``MLCI_REGISTRY_USERNAME`` / ``MLCI_REGISTRY_PASSWORD``,
from the Docker config file (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``:
``auths`` entries and credential helpers) and from the Podman/Skopeo auth file
(``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``). Without any, requests
are anonymous: a registry that answers 401 with a Bearer challenge still hands out anonymous
tokens for public repositories, as ghcr.io and Docker Hub do.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mlci.errors import InputError

ENV_USERNAME = "MLCI_REGISTRY_USERNAME"
ENV_PASSWORD = "MLCI_REGISTRY_PASSWORD"
# Hosts, besides a registry's own, that may receive its credentials as a token service.
ENV_AUTH_HOSTS = "MLCI_REGISTRY_AUTH_HOSTS"
# Token services of well-known registries that live on another host than the registry.
KNOWN_TOKEN_HOSTS: dict[str, tuple[str, ...]] = {
    "docker.io": ("auth.docker.io",),
    "registry-1.docker.io": ("auth.docker.io",),
    "index.docker.io": ("auth.docker.io",),
}

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or a token used as password) for one registry."""

    username: str
    password: str = field(repr=False)
    source: str = "environment"

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Challenge:
    """One parsed ``WWW-Authenticate`` challenge: a scheme and its parameters."""

    scheme: str
    params: Mapping[str, str]

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


_PARAM = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenge(header: str) -> Challenge:
    """Parse ``Bearer realm="...",service="...",scope="..."`` (or ``Basic realm=...``)."""
    header = header.strip()
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if not match or match.end() == position:
            break
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
        position = match.end()
    return Challenge(scheme=scheme.lower(), params=params)


def _docker_config_paths(env: Mapping[str, str]) -> list[Path]:
    paths = []
    if env.get("DOCKER_CONFIG"):
        paths.append(Path(env["DOCKER_CONFIG"]) / "config.json")
    elif env.get("HOME"):
        paths.append(Path(env["HOME"]) / ".docker" / "config.json")
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(env["REGISTRY_AUTH_FILE"]))
    elif env.get("XDG_RUNTIME_DIR"):
        paths.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    return paths


def _keys_for(host: str) -> list[str]:
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in ("registry-1.docker.io", "docker.io", "index.docker.io"):
        keys = list(DOCKER_HUB_KEYS) + keys
    return keys


def _from_helper(helper: str, host: str, path: Path) -> Credentials | None:
    program = f"docker-credential-{helper}"
    try:
        done = subprocess.run(
            [program, "get"], input=host, capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        raise InputError(
            f"{path}: credential helper '{program}' is not installed",
            tip=f"install it, or remove it from {path}",
        ) from None
    except subprocess.TimeoutExpired:
        raise InputError(f"credential helper '{program}' did not answer in 30 s") from None
    if done.returncode != 0:
        return None  # the helper has nothing for this registry
    try:
        data = json.loads(done.stdout)
        return Credentials(data["Username"], data["Secret"], f"{program}")
    except (ValueError, KeyError, TypeError, RecursionError):
        raise InputError(f"credential helper '{program}' answered something unreadable") from None


def _from_config(path: Path, host: str) -> Credentials | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(
            f"{path}: not a readable registry config file ({exc.__class__.__name__})"
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k) or {}, dict) for k in ("auths", "credHelpers")
    ):
        raise InputError(f"{path}: not a registry config file (expected a JSON object)")
    keys = _keys_for(host)
    helpers = data.get("credHelpers") or {}
    for key in keys:
        if key in helpers:
            return _from_helper(str(helpers[key]), host, path)
    auths = data.get("auths") or {}
    for key in keys:
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return Credentials("<token>", str(entry["identitytoken"]), str(path))
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise InputError(f"{path}: the 'auth' entry for {key} is not base64") from None
            return Credentials(user, password, str(path))
        if entry.get("username"):
            return Credentials(str(entry["username"]), str(entry.get("password", "")), str(path))
    if data.get("credsStore"):
        return _from_helper(str(data["credsStore"]), host, path)
    return None


def find_credentials(host: str, env: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials for ``host`` from the environment or the config files, or None."""
    env = os.environ if env is None else env
    if env.get(ENV_USERNAME) or env.get(ENV_PASSWORD):
        if not env.get(ENV_USERNAME) or not env.get(ENV_PASSWORD):
            raise InputError(f"set both {ENV_USERNAME} and {ENV_PASSWORD}, or neither")
        return Credentials(env[ENV_USERNAME], env[ENV_PASSWORD], "environment")
    for path in _docker_config_paths(env):
        found = _from_config(path, host)
        if found:
            return found
    return None


def hostname(host: str) -> str:
    """The host name of ``host[:port]`` (or ``[v6]:port``), lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(name: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def trusted_auth_hosts(env: Mapping[str, str]) -> tuple[str, ...]:
    """Extra token-service hosts the user allows (``MLCI_REGISTRY_AUTH_HOSTS``, comma-separated)."""
    return tuple(h for h in (hostname(x) for x in env.get(ENV_AUTH_HOSTS, "").split(",")) if h)


def credential_refusal(registry_host: str, url: str, trusted: Iterable[str] = ()) -> str | None:
    """Why credentials for ``registry_host`` must not be sent to ``url`` (None: they may).

    A registry's 401 names the token service (realm) the client should log in to; whoever
    answers for the registry, or sits between it and the client, chooses that URL. So the
    login goes only to the registry's own host name, a well-known token service of that
    registry, or a host the user listed in MLCI_REGISTRY_AUTH_HOSTS, and never over plain
    http except to this machine.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL"
    target = parts.hostname.lower()
    own = hostname(registry_host)
    allowed = {own, *KNOWN_TOKEN_HOSTS.get(own, ()), *trusted}
    if target not in allowed:
        return f"{target} is not the registry's host ({own})"
    if parts.scheme == "http" and not is_loopback(target):
        return f"{url} is plain http, which would expose them on the network"
    return None
