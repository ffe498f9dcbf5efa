"""A production pointer that is a git tag (``git:TAG:PATH``; PATH is the model file).

Each move is an annotated tag object whose message holds the history entry and the signed
attestation. ``refs/tags/TAG`` points at the latest such object and
``refs/tags/TAG-history/<seq>`` keeps every one, so the history is in the repository itself.
Both refs change in one ``git update-ref --stdin`` transaction that names the value the
pointer must still have and requires the history ref to be new: of two racing runs, exactly
one commits. With ``--push REMOTE`` the local refs first mirror the remote's, and the push is
atomic with ``--force-with-lease`` on the pointer, so the remote is the arbiter.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import UsageError
from mlci.sources.git import GitError, RefConflict, Repo
from mlci.sources.targets import Candidate, Lost, Target

if TYPE_CHECKING:
    from mlci.results import Results
    from mlci.sources.history import Entry, State
    from mlci.sources.reference import GitSource

BEGIN_ENTRY, END_ENTRY = "-----BEGIN MLCI PROMOTION-----", "-----END MLCI PROMOTION-----"
BEGIN_BUNDLE, END_BUNDLE = "-----BEGIN MLCI ATTESTATION-----", "-----END MLCI ATTESTATION-----"


def tag_message(entry: Entry, path: str, tag: str, bundle: dict[str, Any]) -> str:
    """A tag message a person can read, with the entry and the attestation for mlci."""
    verb = "promote" if entry.action == "promote" else "roll back to"
    return (
        f"mlci: {verb} {path} (sha256 {entry.model_sha256[:12]}) as {tag}\n\n"
        f"{entry.reason}\n\n"
        f"{BEGIN_ENTRY}\n{entry.dumps()}\n{END_ENTRY}\n"
        f"{BEGIN_BUNDLE}\n{json.dumps(bundle, separators=(',', ':'))}\n{END_BUNDLE}\n"
    )


def _between(text: str, begin: str, end: str) -> str | None:
    start = text.find(begin)
    stop = text.find(end, start + 1)
    if start < 0 or stop < 0:
        return None
    return text[start + len(begin) : stop].strip()


def parse_message(message: str, where: str) -> tuple[Entry, dict[str, Any] | None]:
    from mlci.sources.history import Entry, HistoryError

    entry = _between(message, BEGIN_ENTRY, END_ENTRY)
    if entry is None:
        raise HistoryError(f"{where}: the tag holds no mlci promotion entry")
    bundle = _between(message, BEGIN_BUNDLE, END_BUNDLE)
    try:
        signed = json.loads(bundle) if bundle else None
    except ValueError:
        signed = None
    return Entry.loads(entry, where), signed


class GitTarget(Target):
    kind = "git"

    def __init__(self, ref: GitSource, base_dir: Path, *, push: str | None = None) -> None:
        self.ref = ref
        self.tag = ref.rev
        self.path = ref.path
        self.repo = Repo.find(base_dir)
        self.pointer_ref = f"refs/tags/{self.tag}"
        self.history_prefix = f"refs/tags/{self.tag}-history/"
        if self.repo.run("check-ref-format", self.pointer_ref, check=False).returncode != 0:
            raise UsageError(f"--to {ref}: '{self.tag}' is not a valid tag name")
        self.remote = push
        self.remote_pointer: str | None = None

    @property
    def name(self) -> str:
        return str(self.ref)

    def history_ref(self, seq: int) -> str:
        return f"{self.history_prefix}{seq:06d}"

    # -- reading

    def _mirror_remote(self) -> None:
        """Make the local pointer and history refs exactly the remote's."""
        assert self.remote is not None
        listed = self.repo.run(
            "ls-remote", self.remote, self.pointer_ref, f"{self.history_prefix}*"
        ).stdout.decode()
        remote: dict[str, str] = {}
        for line in listed.splitlines():
            oid, _, name = line.partition("\t")
            if name and not name.endswith("^{}"):  # skip the peeled lines of annotated tags
                remote[name] = oid
        self.remote_pointer = remote.get(self.pointer_ref)
        local = dict(self.repo.refs(self.history_prefix))
        if self.repo.verify(self.pointer_ref):
            local[self.pointer_ref] = str(self.repo.verify(self.pointer_ref))
        for name in set(local) - set(remote):
            self.repo.run("update-ref", "-d", name)
        if remote:
            specs = [f"+{name}:{name}" for name in sorted(remote)]
            self.repo.run("fetch", "--no-tags", "--quiet", self.remote, *specs)

    def read(self) -> State:
        from mlci.sources.history import State

        if self.remote is not None:
            self._mirror_remote()
        # The pointer and history refs change together but are read one by one: read until
        # the pointer is the same before and after the history, so the two agree.
        for _ in range(10):
            token = self.repo.verify(self.pointer_ref)
            entries = self._entries()
            if self.repo.verify(self.pointer_ref) == token:
                break
        pointer = self.repo.verify(f"{self.pointer_ref}^{{commit}}") if token else None
        return State(pointer, tuple(sorted(entries, key=lambda e: e.seq)), token)

    def _entries(self) -> list[Entry]:
        entries = []
        for name, oid in self.repo.refs(self.history_prefix):
            if self.repo.text("cat-file", "-t", oid) != "tag":
                continue
            entry, _ = parse_message(self.repo.tag_message(oid), name)
            entries.append(entry)
        return entries

    # -- versions

    def candidate(self, model: str | None, document: Results | None) -> Candidate:
        from mlci.sources import reference as refs

        text = model or f"git:HEAD:{self.path}"
        try:
            ref = refs.parse_source(text)
        except refs.SourceSyntaxError as exc:
            raise UsageError(f"--model: {exc}") from None
        if not isinstance(ref, refs.GitSource) or ref.path != self.path:
            raise UsageError(f"--model {text}: the pointer's model file is git:REV:{self.path}")
        found = self.repo.resolve_commit(ref.rev)
        if found is None:
            raise UsageError(f"--model {text}: no commit '{ref.rev}' in {self.repo.root}")
        commit = found[0]
        return Candidate(commit, self.model_sha256(commit), f"git:{commit}:{self.path}")

    def model_sha256(self, target: str) -> str:
        from mlci.sources import reference as refs
        from mlci.sources.cache import ModelCache
        from mlci.sources.fetch import Request, fetch

        ref = refs.GitSource(target, self.path)
        return fetch(Request(ref, base_dir=self.repo.root), ModelCache.from_env()).digest

    def subjects(self, target: str, model_sha256: str) -> list[tuple[str, str]]:
        return [(f"git:{target}:{self.path}", model_sha256)]

    # -- writing

    def _tagger(self, entry: Entry) -> str:
        email = self.repo.run("config", "user.email", check=False).stdout.decode().strip()
        if not email:
            email = (
                f"{entry.actor}@users.noreply.github.com"
                if os.environ.get("GITHUB_ACTIONS") and entry.actor
                else "mlci@localhost"
            )
        name = (entry.actor or "mlci").replace("<", "").replace(">", "").strip() or "mlci"
        return f"{name} <{email}>"

    def _winner(self) -> str:
        try:
            entries = self.read().entries
        except GitError:
            entries = ()
        if not entries:
            return "another run"
        last = max(entries, key=lambda e: e.seq)
        return f"entry #{last.seq} ({last.action} {last.target[:12]} by {last.actor or '?'})"

    def commit(
        self, state: State, entry: Entry, bundle: dict[str, Any] | None, *, write: bool
    ) -> Entry:
        updates: list[tuple[str, str, str | None]] = []
        if write:
            assert bundle is not None
            entry = replace(entry, attestation=self.history_ref(entry.seq))
            message = tag_message(entry, self.path, self.tag, bundle)
            obj = self.repo.make_tag(
                entry.target, self.tag, self._tagger(entry), int(time.time()), message
            )
            updates.append((self.history_ref(entry.seq), obj, None))
        else:
            existing = self.repo.verify(self.history_ref(entry.seq))
            if existing is None:
                raise Lost(f"{self.name}: history entry #{entry.seq} is gone")
            obj = existing
        updates.append((self.pointer_ref, obj, state.token))
        try:
            self.repo.transaction(updates)
        except RefConflict as exc:
            raise Lost(
                f"{self.name}: {self._winner()} got there first; nothing changed ({exc.message})"
            ) from None
        if self.remote is not None:
            self._push(updates)
        return entry

    def _push(self, updates: list[tuple[str, str, str | None]]) -> None:
        assert self.remote is not None
        lease = f"--force-with-lease={self.pointer_ref}:{self.remote_pointer or ''}"
        specs = [f"{ref}:{ref}" for ref, _, _ in updates]
        done = self.repo.run(
            "push", "--atomic", "--porcelain", "--quiet", lease, self.remote, *specs, check=False
        )
        if done.returncode == 0:
            return
        # Undo locally what the remote refused, so local and remote agree again.
        for ref, new, old in updates:
            if old is None:
                self.repo.run("update-ref", "-d", ref, new, check=False)
            else:
                self.repo.run("update-ref", ref, old, new, check=False)
        detail = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
        raise Lost(
            f"{self.name}: {self.remote} refused the move (another run moved it first?): "
            f"{detail[-1] if detail else 'push failed'}"
        )
