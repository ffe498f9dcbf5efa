"""Files mlci writes for the user: created with the user's umask, replaced atomically, and
output paths checked before any work starts.

``tempfile.mkstemp`` and ``mkdtemp`` create 0600 files and 0700 folders whatever the umask;
anything renamed into place from them keeps that mode, so results, reports and images would
be unreadable to the rest of a team. Here the kernel applies the umask as for any file a user
creates (mode 0666 & ~umask, folders 0777 & ~umask).
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from mlci.errors import UsageError

_ATTEMPTS = 100


def temp_file(
    directory: Path | str, prefix: str = ".mlci-", suffix: str = ".tmp"
) -> tuple[int, str]:
    """Create a new empty file in ``directory``; return its open descriptor and path."""
    for _ in range(_ATTEMPTS):
        path = os.path.join(directory, f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        return fd, path
    raise FileExistsError(f"no free temporary name in {directory}")  # pragma: no cover


def temp_dir(directory: Path | str, prefix: str = ".mlci-", suffix: str = "") -> str:
    """Create a new empty folder in ``directory``; return its path."""
    for _ in range(_ATTEMPTS):
        path = os.path.join(directory, f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            os.mkdir(path, 0o777)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name in {directory}")  # pragma: no cover


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write a file so that readers see either the old content or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(path.parent, prefix=f".{path.name}.")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _nearest_existing(path: Path) -> Path:
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _check_creatable(path: Path, option: str, what: str) -> None:
    """The folder that would hold ``path`` exists or can be made, and is writable."""
    parent = _nearest_existing(path.parent)
    if not parent.is_dir():
        raise UsageError(
            f"{option} {path}: {parent} is a file, so the {what} cannot be created there",
            tip=f"choose another {option}",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(
            f"{option} {path}: {parent} is not writable", tip=f"choose another {option}"
        )


def check_out_dir(path: Path, option: str = "--out") -> None:
    """Fail before any work when ``path`` cannot be the output folder."""
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"{option} {path}: is a file, not a folder",
            tip=f"give {option} a folder (it is created when missing), or move the file away",
        )
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {path}: the folder is not writable")
        return
    _check_creatable(path, option, "folder")


def check_out_file(path: Path, option: str = "--out") -> None:
    """Fail before any work when ``path`` cannot be the output file."""
    if path.is_dir():
        raise UsageError(
            f"{option} {path}: is a folder, not a file", tip=f"give {option} a file name"
        )
    if path.exists():
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {path}: its folder is not writable")
        return
    _check_creatable(path, option, "file")


def move_into(source: Path, target: Path) -> None:
    """Move everything in folder ``source`` into ``target``, replacing what has the same name."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        destination = target / entry.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        elif destination.exists() or destination.is_symlink():
            destination.unlink()
        shutil.move(str(entry), destination)
