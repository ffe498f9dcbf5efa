"""Models from HTTPS URLs, pinned by sha256.

Plain http is refused (see :mod:`mlci.sources.reference`), and so is a redirect from https to
anything else. Certificates are checked against certifi's roots, or against the bundle named
by ``REQUESTS_CA_BUNDLE`` (or ``CURL_CA_BUNDLE``) for a private certificate authority.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from mlci.errors import MlciError
from mlci.sources.cache import ModelCache, safe_name

TIMEOUT = (10.0, 120.0)  # connect, read
BUNDLE_LIMIT = 1 << 20
MAX_REDIRECTS = 5
_CHUNK = 1 << 20


class FetchError(MlciError):
    """A server that could not be reached or did not give the file."""

    exit_code = 1


def file_name(url: str) -> str:
    return safe_name(unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "model")


def sibling_url(url: str, suffix: str) -> str:
    """The URL of ``<file><suffix>`` beside the file (query kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path + suffix, parts.query, ""))


def _get(url: str) -> Any:
    """GET ``url``, following redirects only to https URLs."""
    from urllib.parse import urljoin

    import requests

    current = url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            response = requests.get(current, stream=True, timeout=TIMEOUT, allow_redirects=False)
        except requests.exceptions.SSLError as exc:
            reason = str(exc.args[0]) if exc.args else exc.__class__.__name__
            raise FetchError(
                f"{current}: the server's certificate is not trusted ({reason[:160]})",
                tip="for a private certificate authority point REQUESTS_CA_BUNDLE at its PEM file",
            ) from None
        except requests.exceptions.RequestException as exc:
            raise FetchError(f"{current}: cannot download ({exc.__class__.__name__})") from None
        if not response.is_redirect:
            return response
        response.close()
        following = urljoin(current, response.headers.get("Location", ""))
        if urlsplit(following).scheme != "https":
            raise FetchError(f"{url}: redirected to {following}, which is not https")
        current = following
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _chunks(response: Any) -> Iterator[bytes]:
    with response:
        yield from response.iter_content(_CHUNK)


def download(url: str, expected: str, cache: ModelCache) -> Path:
    """The file at ``url`` in the cache, checked against ``expected`` (hex sha256)."""
    name = file_name(url)
    cached = cache.lookup(expected, name)
    if cached is not None:
        return cached
    response = _get(url)
    if response.status_code != 200:
        response.close()
        raise FetchError(f"{url}: the server answered {response.status_code}")
    path, _ = cache.store(_chunks(response), name, expected, url)
    return path


def fetch_small(url: str) -> bytes | None:
    """A small file (a signature bundle) or None when the server has none (404)."""
    response = _get(url)
    with response:
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise FetchError(f"{url}: the server answered {response.status_code}")
        data = b""
        for chunk in response.iter_content(65536):
            data += chunk
            if len(data) > BUNDLE_LIMIT:
                raise FetchError(f"{url}: larger than a signature bundle can be")
        return data
