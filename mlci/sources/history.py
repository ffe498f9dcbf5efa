"""Promotion history and the rules of promotion and rollback. Pure: no store, no network.

Every move of a production pointer is an :class:`Entry` in the pointer's history: ``promote``
(the gate said promote for exactly this model) or ``rollback`` (back to an earlier version).
Replaying the history gives the stack of versions that were in production: a promotion pushes
one, a rollback pops back to the one it restores. So rolling back twice after two promotions
returns to where the first began, and a promotion after a rollback stacks on the restored one.

The attestation of each move is an in-toto statement with predicate type
``https://mlci.dev/attestation/promotion/v1`` (:func:`statement`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from mlci.errors import InputError, MlciError

if TYPE_CHECKING:
    from mlci.results import Results

PREDICATE_TYPE = "https://mlci.dev/attestation/promotion/v1"
Action = Literal["promote", "rollback"]


class PromotionRefused(MlciError):
    """The evidence does not allow this move: no promote decision, or another model."""

    exit_code = 1


class HistoryError(InputError):
    """A history entry that cannot be read (written by something other than mlci)."""


@dataclass(frozen=True)
class Entry:
    """One move of the pointer."""

    seq: int
    action: Action
    target: str  # what the pointer points at afterwards
    model_sha256: str
    previous: str | None  # what it pointed at before
    reason: str
    time: str
    actor: str | None = None
    run: str | None = None  # the CI run that moved it (a URL)
    request: str | None = None  # the request id that makes a re-run a no-op
    decision: str | None = None  # the gate's decision (promote) or None for a rollback
    gate_digest: str | None = None  # the gate section's binding digest
    restores: int | None = None  # for a rollback: the entry whose version it restores
    nonce: str = ""
    attestation: str | None = None  # where the signed statement is kept
    signer: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: Any, where: str) -> Entry:
        if not isinstance(data, dict):
            raise HistoryError(f"{where}: a history entry is not a JSON object")
        known = set(cls.__dataclass_fields__)
        try:
            entry = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise HistoryError(f"{where}: a history entry lacks a field ({exc})") from None
        if (
            not isinstance(entry.seq, int)
            or entry.seq < 1
            or entry.action
            not in (
                "promote",
                "rollback",
            )
        ):
            raise HistoryError(f"{where}: a history entry has a bad seq or action")
        return entry

    @classmethod
    def loads(cls, text: str, where: str) -> Entry:
        try:
            return cls.from_json(json.loads(text), where)
        except ValueError:
            raise HistoryError(f"{where}: a history entry is not JSON") from None


@dataclass(frozen=True)
class Version:
    """A version that was in production, and the entry that put it there (None for the one
    that was there before mlci kept a history)."""

    target: str
    model_sha256: str | None
    entry: Entry | None


@dataclass(frozen=True)
class State:
    """What a pointer's store holds now: where the pointer is, and its history."""

    pointer: str | None
    entries: tuple[Entry, ...] = ()
    token: str | None = None  # what a store's compare-and-swap must find unchanged

    @property
    def next_seq(self) -> int:
        return max((e.seq for e in self.entries), default=0) + 1


def production(entries: Sequence[Entry]) -> list[Version]:
    """The stack of versions in production, oldest first; the last is the current one."""
    versions: list[Version] = []
    for entry in sorted(entries, key=lambda e: e.seq):
        if entry.action == "promote":
            if not versions and entry.previous is not None:
                versions.append(Version(entry.previous, None, None))
            if versions and versions[-1].target == entry.target:
                versions[-1] = Version(entry.target, entry.model_sha256, entry)
            else:
                versions.append(Version(entry.target, entry.model_sha256, entry))
        else:
            while versions and versions[-1].target != entry.target:
                versions.pop()
            if not versions:
                versions.append(Version(entry.target, entry.model_sha256, entry))
    return versions


@dataclass(frozen=True)
class Who:
    """Who moves the pointer, from where, and the id that makes a re-run harmless."""

    actor: str | None
    run: str | None
    request: str | None


def who_from(env: Mapping[str, str], request: str | None = None) -> Who:
    """The actor and run of a GitHub Actions job (or the local user)."""
    import getpass

    actor = env.get("GITHUB_ACTOR")
    if not actor:
        try:
            actor = getpass.getuser()
        except (KeyError, OSError):
            actor = None
    run = None
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        run = f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return Who(actor, run, request if request is not None else env.get("GITHUB_RUN_ID"))


@dataclass(frozen=True)
class Plan:
    """What to do: write ``entry`` and move the pointer, only move it (``resume``: the history
    already has the entry), or nothing (``entry`` is the one that already did it)."""

    entry: Entry
    write: bool
    move: bool
    message: str
    notes: list[str] = field(default_factory=list)


def check_evidence(document: Results, model_sha256: str, where: str) -> None:
    """Refuse unless the gate decided promote, its section is intact, and it decided on
    exactly the model ``model_sha256``."""
    gate = document.gate
    if gate is None:
        raise PromotionRefused(
            f"{where}: holds no gate decision",
            tip="run 'mlci check' (or 'mlci gate') with a gate in mlci.yaml first",
        )
    if gate.digest != gate.binding():
        raise PromotionRefused(
            f"{where}: the gate section was changed after the gate wrote it (its digest "
            f"{gate.digest[:12]} does not match its content)",
            tip="judge the evidence again with 'mlci gate'",
        )
    if gate.decision != "promote":
        raise PromotionRefused(f"{where}: the gate decided {gate.decision}: {gate.reason}")
    if gate.model_sha256 != document.model.sha256:
        raise PromotionRefused(
            f"{where}: the gate decided on model sha256 {str(gate.model_sha256)[:12]} but the "
            f"document describes {str(document.model.sha256)[:12]}"
        )
    if gate.model_sha256 != model_sha256:
        raise PromotionRefused(
            f"the gate decided on model sha256 {str(gate.model_sha256)}, not {model_sha256}",
            tip="promote exactly the model that was evaluated",
        )


def plan_promote(
    state: State,
    *,
    target: str,
    model_sha256: str,
    document: Results,
    reason: str,
    who: Who,
    time: str,
    nonce: str,
    pointer_name: str,
) -> Plan:
    """The move that puts ``target`` in production, or why it is already there."""
    versions = production(state.entries)
    top = versions[-1] if versions else None
    gate = document.gate
    assert gate is not None
    if top is not None and top.target == target and top.entry is not None:
        if state.pointer == target:
            return Plan(
                top.entry,
                write=False,
                move=False,
                message=f"{pointer_name} is already at {target} (entry #{top.entry.seq})",
            )
        return Plan(
            top.entry,
            write=False,
            move=True,
            message=f"entry #{top.entry.seq} put {target} in the history but the pointer did "
            "not move: moving it now",
        )
    if top is not None and top.entry is not None and state.pointer != top.target:
        raise PromotionRefused(
            f"{pointer_name} points at {state.pointer or 'nothing'} but its history's last "
            f"entry (#{top.entry.seq}) put {top.target} there: it was moved outside mlci or a "
            "move did not finish",
            tip=f"promote {top.target} again to finish that move, or set the pointer back",
        )
    entry = Entry(
        seq=state.next_seq,
        action="promote",
        target=target,
        model_sha256=model_sha256,
        previous=state.pointer,
        reason=reason,
        time=time,
        actor=who.actor,
        run=who.run,
        request=who.request,
        decision=gate.decision,
        gate_digest=gate.digest,
        nonce=nonce,
    )
    return Plan(entry, write=True, move=True, message=f"promoted {target}")


def plan_rollback(
    state: State,
    *,
    reason: str,
    who: Who,
    time: str,
    nonce: str,
    pointer_name: str,
    model_sha256_of: Callable[[str], str],
) -> Plan:
    """The move back to the version before the current one."""
    if who.request:
        done = [e for e in state.entries if e.action == "rollback" and e.request == who.request]
        if done:
            last = max(done, key=lambda e: e.seq)
            return Plan(
                last,
                write=False,
                move=state.pointer != last.target and _is_top(state, last),
                message=f"request {who.request} already rolled {pointer_name} back to "
                f"{last.target} (entry #{last.seq})",
            )
    versions = production(state.entries)
    if not versions:
        raise PromotionRefused(
            f"{pointer_name}: no promotion history to roll back",
            tip="mlci rolls back only what mlci promoted",
        )
    if state.pointer != versions[-1].target:
        raise PromotionRefused(
            f"{pointer_name} points at {state.pointer or 'nothing'} but its history says "
            f"{versions[-1].target}: it was moved outside mlci or a move did not finish",
            tip="finish or repeat the last promotion first",
        )
    if len(versions) < 2:
        raise PromotionRefused(
            f"{pointer_name}: {versions[-1].target} is the first version in its history; "
            "there is nothing earlier to roll back to"
        )
    back = versions[-2]
    sha = back.model_sha256 or model_sha256_of(back.target)
    entry = Entry(
        seq=state.next_seq,
        action="rollback",
        target=back.target,
        model_sha256=sha,
        previous=state.pointer,
        reason=reason,
        time=time,
        actor=who.actor,
        run=who.run,
        request=who.request,
        restores=None if back.entry is None else back.entry.seq,
        nonce=nonce,
    )
    return Plan(entry, write=True, move=True, message=f"rolled back to {back.target}")


def _is_top(state: State, entry: Entry) -> bool:
    return max((e.seq for e in state.entries), default=0) == entry.seq


def statement(
    entry: Entry,
    *,
    pointer_kind: str,
    pointer_name: str,
    subjects: Sequence[tuple[str, str]],
    document: Results | None,
    results_sha256: str | None,
) -> dict[str, Any]:
    """The in-toto statement that records a move: the pointer, the version, the decision and
    its evidence, and who moved it."""
    from mlci.supply.attest import STATEMENT_V1

    evidence: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    model: dict[str, Any] = {"sha256": entry.model_sha256}
    if document is not None:
        gate = document.gate
        model["name"] = document.model.name
        if gate is not None:
            decision = {
                "decision": gate.decision,
                "reason": gate.reason,
                "digest": gate.digest,
                "rules": [
                    {"id": r.id, "status": r.status, "required": r.required} for r in gate.rules
                ],
            }
        ev = document.evaluation
        evidence = {
            "resultsSha256": results_sha256,
            "resultsCreated": document.created,
            "dataSha256": document.data.sha256,
            "baselineSha256": None if document.baseline is None else document.baseline.sha256,
            "primaryMetric": None if ev is None else ev.primary_metric,
            "metrics": {}
            if ev is None
            else {
                name: {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high}
                for name, e in ev.metrics.candidate.items()
            },
        }
    predicate = {
        "pointer": {"kind": pointer_kind, "name": pointer_name},
        "action": entry.action,
        "seq": entry.seq,
        "target": entry.target,
        "previous": entry.previous,
        "restores": entry.restores,
        "model": model,
        "decision": decision,
        "evidence": evidence,
        "reason": entry.reason,
        "promotedBy": {"actor": entry.actor, "run": entry.run, "request": entry.request},
        "time": entry.time,
    }
    return {
        "_type": STATEMENT_V1,
        "subject": [
            {"name": name, "digest": {"sha256": hexdigest}} for name, hexdigest in subjects
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def signed(entry: Entry, *, attestation: str | None, signer: str | None) -> Entry:
    return replace(entry, attestation=attestation, signer=signer)
