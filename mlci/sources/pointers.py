"""Pointer files that stand in for a model kept elsewhere: Git LFS and DVC. Pure parsing.

A Git LFS pointer (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md) is a small text
file, ``version https://git-lfs.github.com/spec/v1`` then ``oid sha256:<hex>`` and ``size N``.
A DVC-tracked file is absent from git; ``FILE.dvc`` beside it names it by md5 under ``outs``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

LFS_VERSIONS = (
    "https://git-lfs.github.com/spec/v1",
    "https://hawser.github.com/spec/v1",
    "http://git-media.io/v/2",
)
LFS_MAX_SIZE = 1024  # git-lfs looks for pointers only in files smaller than this
_LFS_KEYS = ("version", "oid", "size")
_LFS_MARK = re.compile(r"git-media|hawser|git-lfs")
_LFS_EXT = re.compile(r"ext-([0-9])-[0-9A-Za-z_]")
_LFS_OID = re.compile(r"sha256:([0-9a-f]{64})")
_GO_INT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class LfsPointer:
    oid: str  # hex sha256 of the real content
    size: int


@dataclass(frozen=True)
class DvcPointer:
    md5: str
    size: int | None
    path: str  # the tracked file, relative to the .dvc file's folder


def parse_lfs_pointer(data: bytes) -> LfsPointer | None:
    """The pointer in ``data``, or None when git-lfs would not read ``data`` as a pointer.

    Follows git-lfs's own reader: surrounding whitespace ignored, blank lines skipped, ``\r\n``
    accepted, ``version``, ``oid`` and ``size`` in that order with ``ext-N-name`` lines allowed
    before each, nothing after ``size``.
    """
    if not data or len(data) >= LFS_MAX_SIZE:
        return None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if not _LFS_MARK.search(text):
        return None
    fields: dict[str, str] = {}
    extensions: dict[str, str] = {}
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        if not line:
            continue
        key, sep, value = line.partition(" ")
        if not sep or len(fields) == len(_LFS_KEYS):
            return None
        if key == _LFS_KEYS[len(fields)]:
            fields[key] = value
            continue
        if not _LFS_EXT.match(key):
            return None
        extensions[key] = value  # a repeated key replaces the earlier one, as in git-lfs
    priorities = [key.split("-")[1] for key in extensions]
    if len(set(priorities)) < len(priorities):
        return None
    if not all(_LFS_OID.fullmatch(value) for value in extensions.values()):
        return None
    if len(fields) < len(_LFS_KEYS) or fields["version"] not in LFS_VERSIONS:
        return None
    oid = _LFS_OID.fullmatch(fields["oid"])
    if oid is None or not _GO_INT.fullmatch(fields["size"]) or int(fields["size"]) < 0:
        return None
    return LfsPointer(oid.group(1), int(fields["size"]))


def lfs_object_path(git_common_dir: Path, pointer: LfsPointer) -> Path:
    """Where git-lfs keeps a fetched object in a clone (``.git/lfs/objects/aa/bb/<oid>``)."""
    oid = pointer.oid
    return git_common_dir / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


def parse_dvc_file(text: str, wanted: str) -> DvcPointer | None:
    """The output named ``wanted`` (a file name) in a ``.dvc`` file, or None."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    outs = data.get("outs") if isinstance(data, dict) else None
    if not isinstance(outs, list):
        return None
    for out in outs:
        if not isinstance(out, dict) or str(out.get("path", "")) != wanted:
            continue
        md5 = str(out.get("md5", ""))
        if not re.fullmatch(r"[0-9a-f]{32}", md5):
            return None  # a directory output (md5 ends in .dir) or another hash
        size = out.get("size")
        return DvcPointer(md5, size if isinstance(size, int) else None, wanted)
    return None


def dvc_cache_paths(repo_root: Path, pointer: DvcPointer) -> list[Path]:
    """Where DVC's default cache keeps a file: DVC 3 (``files/md5/``) and DVC 2 layouts."""
    cache = repo_root / ".dvc" / "cache"
    head, tail = pointer.md5[:2], pointer.md5[2:]
    return [cache / "files" / "md5" / head / tail, cache / head / tail]


def dvc_file_for(path: str) -> str:
    """The ``.dvc`` file that would track ``path``."""
    return str(PurePosixPath(path + ".dvc"))
