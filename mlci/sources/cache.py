"""The cache of fetched models, keyed by sha256.

``$MLCI_CACHE_DIR/models`` (default ``${XDG_CACHE_HOME:-~/.cache}/mlci/models``) holds each
model as ``sha256/<hex>/<file name>``: the file keeps its name because loaders recognise
formats by suffix. Files enter the cache only once their digest checked out (written to a
temporary file, hashed while written, then renamed), and a cached file is hashed again before
it is used, so a file changed on disk is fetched again rather than trusted.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from mlci.errors import ModelError
from mlci.files import temp_file
from mlci.hashing import sha256_file

ENV_CACHE = "MLCI_CACHE_DIR"
_CHUNK = 1 << 20
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]")


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """Where fetched models are kept."""
    environ = os.environ if env is None else env
    if environ.get(ENV_CACHE):
        return Path(environ[ENV_CACHE]) / "models"
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlci" / "models"


def safe_name(name: str) -> str:
    """A file name that cannot leave its folder: the last path part, odd characters replaced."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _SAFE_NAME.sub("_", base).lstrip(".")
    return base or "model"


class DigestMismatch(ModelError):
    """Fetched bytes that are not the ones the source is pinned to."""


class ModelCache:
    """Files by sha256, each under the name it was fetched with."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ModelCache:
        return cls(cache_root(env))

    def path_for(self, hexdigest: str, name: str) -> Path:
        return self.root / "sha256" / hexdigest / safe_name(name)

    def lookup(self, hexdigest: str, name: str) -> Path | None:
        """The cached file with this digest and name, re-hashed; None when absent or altered."""
        path = self.path_for(hexdigest, name)
        if not path.is_file():
            return None
        if sha256_file(path) != hexdigest:
            path.unlink(missing_ok=True)
            return None
        return path

    def store(
        self, chunks: Iterable[bytes], name: str, expected: str | None, what: str
    ) -> tuple[Path, str]:
        """Write ``chunks`` into the cache; DigestMismatch (nothing kept) when their sha256 is
        not ``expected``. Returns the cached path and the hex digest."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_file(self.root, prefix=".fetch-")
        tmp_path = Path(tmp)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    digest.update(chunk)
                    handle.write(chunk)
            hexdigest = digest.hexdigest()
            if expected is not None and hexdigest != expected:
                raise DigestMismatch(
                    f"{what}: sha256 is {hexdigest}, not the pinned {expected}",
                    tip="the content changed or was tampered with; nothing was loaded",
                )
            final = self.path_for(hexdigest, name)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_path, final)
            return final, hexdigest
        finally:
            tmp_path.unlink(missing_ok=True)

    def store_file(
        self, source: Path, name: str, expected: str | None, what: str
    ) -> tuple[Path, str]:
        """Copy a local file into the cache, checking its digest on the way."""
        return self.store(read_chunks(source), name, expected, what)


def read_chunks(path: Path) -> Iterable[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk
