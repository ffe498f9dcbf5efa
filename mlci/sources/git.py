"""A git repository through the ``git`` command: resolve refs, read blobs, write tags.

Reads never run filters (``git cat-file``), so a Git LFS file arrives as its pointer and mlci
decides what to do with it. Tags are written as a transaction (``git update-ref --stdin``)
that names the value each ref must have, so two writers cannot both win.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlci.errors import MlciError, ModelError

ZERO = "0" * 40
_CHUNK = 1 << 20


class GitError(MlciError):
    """git failed for a reason other than bad input."""

    exit_code = 1


class RefConflict(GitError):
    """A ref did not have the value a transaction required: someone else moved it first."""


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("LC_ALL", "C")
    return env


@dataclass(frozen=True)
class Repo:
    """A repository, by the root of its work tree."""

    root: Path

    @classmethod
    def find(cls, start: Path) -> Repo:
        """The repository holding ``start``; ModelError when there is none."""
        if shutil.which("git") is None:
            raise ModelError("git sources need the git command", tip="install git")
        folder = start if start.is_dir() else start.parent
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True,
            env=_environment(),
        )
        if done.returncode != 0:
            raise ModelError(
                f"{folder}: not inside a git repository's work tree",
                tip="git: sources and tags are read from the repository that holds mlci.yaml",
            )
        return cls(Path(done.stdout.decode().strip()))

    def run(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            ["git", "-C", str(self.root), *args],
            input=input,
            capture_output=True,
            env=_environment(),
        )
        if check and done.returncode != 0:
            raise GitError(
                f"git {' '.join(args[:2])} failed in {self.root}: "
                f"{done.stderr.decode(errors='replace').strip().splitlines()[-1:] or ['?']}"[:400]
            )
        return done

    def text(self, *args: str) -> str:
        return self.run(*args).stdout.decode().strip()

    def verify(self, name: str) -> str | None:
        """The object id ``name`` resolves to, or None."""
        done = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", name, check=False)
        return done.stdout.decode().strip() or None if done.returncode == 0 else None

    def resolve_commit(self, rev: str) -> tuple[str, str] | None:
        """``(commit, ref used)`` for a branch, tag or commit, trying ``origin/<rev>`` too (a
        checkout in CI often has the base branch only as a remote-tracking ref)."""
        for name in (rev, f"refs/remotes/origin/{rev}"):
            found = self.verify(f"{name}^{{commit}}")
            if found:
                return found, name
        return None

    def blob_id(self, commit: str, path: str) -> str | None:
        """The blob at ``commit:path``, or None when there is no file there."""
        found = self.verify(f"{commit}:{path}")
        if found is None:
            return None
        kind = self.text("cat-file", "-t", found)
        return found if kind == "blob" else None

    def blob_size(self, blob: str) -> int:
        return int(self.text("cat-file", "-s", blob))

    def read_blob(self, blob: str) -> bytes:
        return self.run("cat-file", "blob", blob).stdout

    def stream_blob(self, blob: str) -> Iterator[bytes]:
        """A blob's bytes in chunks, without holding it all in memory."""
        with subprocess.Popen(
            ["git", "-C", str(self.root), "cat-file", "blob", blob],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environment(),
        ) as process:
            assert process.stdout is not None
            while chunk := process.stdout.read(_CHUNK):
                yield chunk
            if process.wait() != 0:
                raise GitError(f"git cat-file blob {blob[:12]} failed in {self.root}")

    def common_dir(self) -> Path:
        """The folder holding objects, refs and ``lfs/`` (shared by every worktree)."""
        found = Path(self.text("rev-parse", "--git-common-dir"))
        return found if found.is_absolute() else (self.root / found).resolve()

    def refs(self, prefix: str) -> list[tuple[str, str]]:
        """``(ref name, object id)`` of every ref under ``prefix``, sorted by name."""
        out = self.text("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        return sorted(tuple(line.split(" ", 1)) for line in out.splitlines() if line)  # type: ignore[misc]

    def tag_message(self, tag: str) -> str:
        """The message of an annotated tag object (everything after its header)."""
        raw = self.read_object("tag", tag)
        _, _, message = raw.partition("\n\n")
        return message

    def read_object(self, kind: str, oid: str) -> str:
        return self.run("cat-file", kind, oid).stdout.decode("utf-8", errors="replace")

    def make_tag(self, commit: str, name: str, tagger: str, when: int, message: str) -> str:
        """Write an annotated tag object (not a ref) and return its id."""
        body = (
            f"object {commit}\ntype commit\ntag {name}\ntagger {tagger} {when} +0000\n\n{message}"
        )
        return self.run("mktag", input=body.encode("utf-8")).stdout.decode().strip()

    def transaction(self, updates: Sequence[tuple[str, str, str | None]]) -> None:
        """Set every ``(ref, new, old)`` at once, or none: ``old`` None means the ref must not
        exist yet. RefConflict when a ref had another value."""
        lines = ["start"]
        for ref, new, old in updates:
            lines.append(f"update {ref} {new} {old or ZERO}")
        lines += ["prepare", "commit", ""]
        done = self.run("update-ref", "--stdin", input="\n".join(lines).encode(), check=False)
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            raise RefConflict(detail[-1] if detail else "git update-ref failed")
