"""``mlci promote`` and ``mlci rollback``: move a production pointer, record why, sign it.

Promotion refuses unless the results' gate decided promote, its section is intact, and the
version named holds exactly the model the gate decided on. Both moves are idempotent (a
promotion already in place, or a rollback already done by the same request id, changes
nothing) and safe under concurrency (the store's claim protocol, :mod:`mlci.sources.targets`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from mlci.sources import history

if TYPE_CHECKING:
    from mlci.results import Results
    from mlci.results.promotion import Promotion
    from mlci.sources.history import Entry
    from mlci.sources.targets import Target
    from mlci.supply.signing import Signer


@dataclass(frozen=True)
class Outcome:
    """What a promotion or rollback did."""

    pointer: str
    entry: Entry
    changed: bool
    message: str

    def record(self) -> Promotion:
        from mlci.results.promotion import Promotion

        return Promotion(
            pointer=self.pointer,
            action=self.entry.action,
            target=self.entry.target,
            model_sha256=self.entry.model_sha256,
            previous=self.entry.previous,
            seq=self.entry.seq,
            changed=self.changed,
            attestation=self.entry.attestation,
            signer=self.entry.signer,
            actor=self.entry.actor,
            time=self.entry.time,
        )


def read_settled(target: Target) -> history.State:
    """The pointer's state, waiting out a move in progress: a store that cannot change pointer
    and history at once shows a racing run's move half done for a moment."""
    from mlci.sources.targets import settle

    state = target.read()
    for _ in range(3):
        versions = history.production(state.entries)
        if not versions or versions[-1].target == state.pointer:
            break
        settle()
        state = target.read()
    return state


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _apply(
    target: Target,
    plan: history.Plan,
    state: history.State,
    signer: Signer,
    *,
    document: Results | None,
    results_sha256: str | None,
) -> Outcome:
    entry = plan.entry
    if not plan.write and not plan.move:
        return Outcome(target.name, entry, False, plan.message)
    bundle = None
    if plan.write:
        entry = replace(entry, signer=signer.identity.identity)
        statement = history.statement(
            entry,
            pointer_kind=target.kind,
            pointer_name=target.name,
            subjects=target.subjects(entry.target, entry.model_sha256),
            document=document,
            results_sha256=results_sha256,
        )
        bundle = signer.sign_statement(statement)
    stored = target.commit(state, entry, bundle, write=plan.write)
    return Outcome(target.name, stored, True, plan.message)


def promote(
    target: Target,
    document: Results,
    *,
    where: str,
    results_sha256: str | None,
    model: str | None,
    signer: Signer,
    reason: str | None,
    env: Mapping[str, str],
    request: str | None = None,
) -> Outcome:
    """Point ``target`` at the version the gate of ``document`` decided to promote."""
    candidate = target.candidate(model, document)
    history.check_evidence(document, candidate.model_sha256, where)
    assert document.gate is not None
    state = read_settled(target)
    plan = history.plan_promote(
        state,
        target=candidate.target,
        model_sha256=candidate.model_sha256,
        document=document,
        reason=reason or f"the gate decided promote: {document.gate.reason}",
        who=history.who_from(env, request),
        time=now(),
        nonce=secrets.token_hex(16),
        pointer_name=target.name,
    )
    return _apply(target, plan, state, signer, document=document, results_sha256=results_sha256)


def rollback(
    target: Target,
    *,
    signer: Signer,
    reason: str | None,
    env: Mapping[str, str],
    request: str | None = None,
) -> Outcome:
    """Point ``target`` back at the version before the current one, from its history."""
    who = history.who_from(env, request)
    state = read_settled(target)
    plan = history.plan_rollback(
        state,
        reason=reason or f"rollback requested by {who.actor or 'an unknown user'}",
        who=who,
        time=now(),
        nonce=secrets.token_hex(16),
        pointer_name=target.name,
        model_sha256_of=target.model_sha256,
    )
    return _apply(target, plan, state, signer, document=None, results_sha256=None)
