"""A production pointer that is a tag in an OCI registry (``oci://HOST/REPO:TAG``).

The tag points at a ModelPack artifact's manifest. Its history is an artifact of its own,
tagged ``TAG.history``: an OCI artifact manifest (artifact type
``application/vnd.mlci.promotion.history.v1+json``) with one layer holding every entry. Each
move's signed attestation is a referrer of the promoted manifest, stored as ``mlci sign``
stores attestations (a Sigstore bundle, found through the referrers API or the
``sha256-<hex>`` fallback tag).

The distribution API has no compare-and-swap for tags, so a move checks the history tag
immediately before its write, reads it back after a settle delay (:func:`targets.settle`), and
moves the pointer tag only after that claim held, checking the tag before and after the write.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import UsageError
from mlci.sources.targets import Candidate, Lost, Target, settle
from mlci.supply.oci import (
    EMPTY_DIGEST,
    MEDIA_EMPTY,
    MEDIA_MANIFEST,
    Descriptor,
    canonical_json,
    sha256_digest,
)

if TYPE_CHECKING:
    from mlci.results import Results
    from mlci.sources.history import Entry, State
    from mlci.sources.reference import OciSource

HISTORY_TYPE = "application/vnd.mlci.promotion.history.v1+json"
ANNOTATION_POINTER = "dev.mlci.promotion.pointer"
ANNOTATION_SEQ = "dev.mlci.promotion.seq"


class OciTarget(Target):
    kind = "oci"

    def __init__(self, ref: OciSource) -> None:
        from mlci.supply.registry import Reference, RegistryClient

        assert ref.tag is not None
        self.ref = ref
        self.tag = ref.tag
        self.history_tag = f"{ref.tag}.history"
        if len(self.history_tag) > 128:
            raise UsageError(f"oci://{ref.image}: the tag is too long to keep a history beside it")
        self.client = RegistryClient(Reference.parse(ref.image))

    @property
    def name(self) -> str:
        return str(self.ref)

    def _head(self, tag: str) -> str | None:
        found = self.client.head_manifest(tag)
        return None if found is None else found.digest

    def _entries(self, digest: str | None) -> tuple[Entry, ...]:
        from mlci.sources.history import Entry, HistoryError

        if digest is None:
            return ()
        raw, _, _ = self.client.get_manifest(digest)
        where = f"{self.ref.repository}:{self.history_tag}"
        manifest = json.loads(raw)
        if manifest.get("artifactType") != HISTORY_TYPE:
            raise HistoryError(
                f"{where}: not an mlci promotion history ({manifest.get('artifactType')})"
            )
        layers = manifest.get("layers") or []
        if len(layers) != 1:
            raise HistoryError(f"{where}: the history artifact should hold one layer")
        data = json.loads(self.client.get_blob(Descriptor.from_json(layers[0]).digest))
        return tuple(Entry.from_json(e, where) for e in data.get("entries") or [])

    def read(self) -> State:
        from mlci.sources.history import State

        history = self._head(self.history_tag)
        return State(self._head(self.tag), self._entries(history), history)

    def candidate(self, model: str | None, document: Results | None) -> Candidate:
        from mlci.sources import reference as refs

        text = model
        if text is None and document is not None and document.model.source is not None:
            source = document.model.source
            if source.scheme == "oci" and source.resolved:
                text = f"oci://{source.resolved}"
        if text is None:
            raise UsageError(
                "name the artifact to promote with --model oci://HOST/REPO@sha256:... "
                "(mlci push-model prints it)"
            )
        try:
            ref = refs.parse_source(text)
        except refs.SourceSyntaxError as exc:
            raise UsageError(f"--model: {exc}") from None
        if not isinstance(ref, refs.OciSource) or ref.repository != self.ref.repository:
            raise UsageError(
                f"--model {text}: the artifact must be in the pointer's repository "
                f"{self.ref.repository}"
            )
        digest = ref.digest or self._head(str(ref.tag))
        if digest is None:
            raise UsageError(f"--model {text}: no such tag")
        return Candidate(digest, self.model_sha256(digest), f"{ref.repository}@{digest}")

    def model_sha256(self, target: str) -> str:
        from mlci.sources import reference as refs
        from mlci.sources.cache import ModelCache
        from mlci.sources.fetch import Request, fetch

        ref = refs.OciSource(self.ref.repository, digest=target)
        return fetch(Request(ref, base_dir=Path.cwd()), ModelCache.from_env()).digest

    def subjects(self, target: str, model_sha256: str) -> list[tuple[str, str]]:
        return [
            (self.ref.repository, target.split(":", 1)[1]),
            (f"{self.ref.repository}@{target}#model", model_sha256),
        ]

    def _history_manifest(self, entries: list[Entry], seq: int, when: str) -> bytes:
        blob = canonical_json({"pointer": self.name, "entries": [e.to_json() for e in entries]})
        self.client.push_blob(b"{}", EMPTY_DIGEST)
        self.client.push_blob(blob)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "artifactType": HISTORY_TYPE,
            "config": {"mediaType": MEDIA_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
            "layers": [
                {"mediaType": HISTORY_TYPE, "digest": sha256_digest(blob), "size": len(blob)}
            ],
            "annotations": {
                ANNOTATION_POINTER: self.name,
                ANNOTATION_SEQ: str(seq),
                "org.opencontainers.image.created": when,
            },
        }
        raw = canonical_json(manifest)
        self.client.put_manifest(raw, MEDIA_MANIFEST, sha256_digest(raw))
        return raw

    def _winner(self) -> str:
        entries = self.read().entries
        if not entries:
            return "another run"
        last = max(entries, key=lambda e: e.seq)
        return f"entry #{last.seq} ({last.action} {last.target[:19]} by {last.actor or '?'})"

    def commit(
        self, state: State, entry: Entry, bundle: dict[str, Any] | None, *, write: bool
    ) -> Entry:
        from mlci.supply import attest
        from mlci.supply.referrers import bundle_manifest
        from mlci.supply.store import RegistryStore

        raw, media_type, _ = self.client.get_manifest(entry.target)
        subject = Descriptor(media_type, entry.target, len(raw))
        if write:
            assert bundle is not None
            blob, referrer, annotations = bundle_manifest(bundle, subject, created=entry.time)
            entry = replace(entry, attestation=f"{self.ref.repository}@{sha256_digest(referrer)}")
            history = self._history_manifest(
                [*sorted(state.entries, key=lambda e: e.seq), entry], entry.seq, entry.time
            )
            mine = sha256_digest(history)
            if self._head(self.history_tag) != state.token:
                raise Lost(f"{self.name}: {self._winner()} was recorded first; nothing changed")
            self.client.put_manifest(history, MEDIA_MANIFEST, self.history_tag)
            settle()
            if self._head(self.history_tag) != mine:
                raise Lost(f"{self.name}: {self._winner()} was recorded first; nothing changed")
            store = RegistryStore(self.client)
            store.put_blob(b"{}")
            store.put_blob(blob)
            store.put_referrer(
                referrer,
                Descriptor(
                    MEDIA_MANIFEST,
                    sha256_digest(referrer),
                    len(referrer),
                    annotations=annotations,
                    artifact_type=attest.BUNDLE_MEDIA_TYPE,
                ),
                entry.target,
            )
        if self._head(self.tag) != state.pointer:
            raise Lost(
                f"{self.name}: the tag moved to {self._head(self.tag)} while this run was "
                "recording its move",
                tip="read the history with 'mlci promotions' and decide again",
            )
        self.client.put_manifest(raw, media_type, self.tag)
        now = self._head(self.tag)
        if now != entry.target:
            raise Lost(f"{self.name}: another run moved the tag to {now} right after this one")
        return entry
