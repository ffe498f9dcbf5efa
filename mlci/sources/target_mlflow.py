"""A production pointer that is an alias in the MLflow model registry (``models:/NAME@ALIAS``).

The history lives in the registered model's tags, one per move:
``mlci.promotion.<ALIAS>.<seq>`` holds the entry (as JSON). The signed attestation is a tag of
the same key on the model version it promoted, beside ``mlci.model_sha256`` (the model file's
digest, which later fetches of that version must match). MLflow has no compare-and-swap, so a
move checks that its entry's key is free, writes it, reads it back after the settle delay, and
sets the alias only after that claim held, checking the alias before and reading it after.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import UsageError
from mlci.sources import mlflow_registry as registry
from mlci.sources.targets import Candidate, Lost, Target, settle

if TYPE_CHECKING:
    from mlci.results import Results
    from mlci.sources.history import Entry, State
    from mlci.sources.reference import MlflowSource

PREFIX = "mlci.promotion."


class MlflowTarget(Target):
    kind = "mlflow"

    def __init__(self, ref: MlflowSource) -> None:
        assert ref.alias is not None
        self.ref = ref
        self.alias = ref.alias
        self.prefix = f"{PREFIX}{ref.alias}."
        self.mlflow = registry.client()

    @property
    def name(self) -> str:
        return str(self.ref)

    def key(self, seq: int) -> str:
        return f"{self.prefix}{seq:06d}"

    def _model(self) -> Any:
        name = self.ref.name
        return registry.call(
            f"models:/{name}",
            lambda: self.mlflow.get_registered_model(name),
            missing=f"no registered model '{name}'",
        )

    def read(self) -> State:
        from mlci.sources.history import Entry, State

        model = self._model()
        tags = dict(model.tags or {})
        entries = []
        for key, value in tags.items():
            rest = key[len(self.prefix) :] if key.startswith(self.prefix) else ""
            if rest.isdigit():
                entries.append(Entry.loads(value, f"{self.name} tag {key}"))
        aliases = dict(model.aliases or {})
        pointer = aliases.get(self.alias)
        seqs = [e.seq for e in entries]
        return State(
            None if pointer is None else str(pointer),
            tuple(sorted(entries, key=lambda e: e.seq)),
            str(max(seqs)) if seqs else None,
        )

    def candidate(self, model: str | None, document: Results | None) -> Candidate:
        from mlci.sources import reference as refs

        text = model
        if text is None and document is not None and document.model.source is not None:
            source = document.model.source
            if source.scheme == "mlflow" and source.resolved:
                text = source.resolved
        if text is None:
            raise UsageError(f"name the version to promote with --model models:/{self.ref.name}/N")
        try:
            ref = refs.parse_source(text)
        except refs.SourceSyntaxError as exc:
            raise UsageError(f"--model: {exc}") from None
        if not isinstance(ref, refs.MlflowSource) or ref.name != self.ref.name:
            raise UsageError(f"--model {text}: a version of registered model '{self.ref.name}'")
        version = str(registry.version_for(self.mlflow, ref.name, ref.version, ref.alias).version)
        return Candidate(version, self.model_sha256(version), f"models:/{ref.name}/{version}")

    def model_sha256(self, target: str) -> str:
        from mlci.sources import reference as refs
        from mlci.sources.cache import ModelCache
        from mlci.sources.fetch import Request, fetch

        ref = refs.MlflowSource(self.ref.name, version=target)
        return fetch(Request(ref, base_dir=Path.cwd()), ModelCache.from_env()).digest

    def subjects(self, target: str, model_sha256: str) -> list[tuple[str, str]]:
        return [(f"models:/{self.ref.name}/{target}", model_sha256)]

    def _owner(self, key: str) -> str | None:
        value = (self._model().tags or {}).get(key)
        if value is None:
            return None
        try:
            return str(json.loads(value).get("nonce"))
        except (ValueError, AttributeError):
            return None

    def _winner(self, seq: int) -> str:
        value = (self._model().tags or {}).get(self.key(seq))
        try:
            data = json.loads(value) if value else {}
        except ValueError:
            data = {}
        if not data:
            return "another run"
        return f"entry #{seq} ({data.get('action')} version {data.get('target')} by {data.get('actor')})"

    def commit(
        self, state: State, entry: Entry, bundle: dict[str, Any] | None, *, write: bool
    ) -> Entry:
        name = self.ref.name
        if write:
            assert bundle is not None
            key = self.key(entry.seq)
            entry = replace(entry, attestation=f"models:/{name}/{entry.target} tag {key}")
            if self.read().token != state.token or self._owner(key) is not None:
                raise Lost(
                    f"{self.name}: {self._winner(entry.seq)} was recorded first; nothing changed"
                )
            try:
                registry.call(
                    self.name,
                    lambda: self.mlflow.set_registered_model_tag(name, key, entry.dumps()),
                )
            except registry.MlflowError:
                # Two writers of one new tag: the server refuses one of them (a unique
                # constraint on SQLite or PostgreSQL). The other's claim stands.
                if self._owner(key) not in (None, entry.nonce):
                    raise Lost(
                        f"{self.name}: {self._winner(entry.seq)} was recorded first; "
                        "nothing changed"
                    ) from None
                raise
            settle()
            if self._owner(key) != entry.nonce:
                raise Lost(
                    f"{self.name}: {self._winner(entry.seq)} was recorded first; nothing changed"
                )
            version, sha = entry.target, entry.model_sha256
            signed = json.dumps(bundle, separators=(",", ":"))
            registry.call(
                self.name, lambda: self.mlflow.set_model_version_tag(name, version, key, signed)
            )
            registry.call(
                self.name,
                lambda: self.mlflow.set_model_version_tag(name, version, registry.TAG_SHA256, sha),
            )
        current = dict(self._model().aliases or {}).get(self.alias)
        if (None if current is None else str(current)) != state.pointer:
            raise Lost(
                f"{self.name}: the alias moved to version {current} while this run was recording "
                "its move",
                tip="read the history with 'mlci promotions' and decide again",
            )
        registry.call(
            self.name,
            lambda: self.mlflow.set_registered_model_alias(name, self.alias, entry.target),
        )
        now = str(registry.version_for(self.mlflow, name, None, self.alias).version)
        if now != entry.target:
            raise Lost(
                f"{self.name}: another run moved the alias to version {now} right after this one"
            )
        return entry
