"""The card's content: measured facts from the results, words from mlci.yaml. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlci.card.config import CardConfig, Risk
from mlci.hashing import sha256_file
from mlci.results import ModelInput, ModelRecord, Results
from mlci.results.base import Estimate
from mlci.results.benchmark import DeviceChoice, Fingerprint, Scenario
from mlci.results.evaluation import Delta, SliceResult
from mlci.results.fairness import Fairness
from mlci.results.gate import Gate
from mlci.results.image import Image, Signature
from mlci.results.importance import Importance

TASK_NAMES = {
    "binary": "binary classification",
    "multiclass": "multiclass classification",
    "regression": "regression",
}


@dataclass(frozen=True)
class Dataset:
    """A dataset the card names."""

    name: str
    description: str | None
    path: str | None
    sha256: str | None
    rows: int | None = None


@dataclass(frozen=True)
class CardView:
    """Everything the Markdown card and the CycloneDX modelCard show."""

    name: str
    version: str | None
    description: str | None
    owners: list[str]
    license: str | None
    architecture: str | None
    task: str
    model: ModelRecord
    baseline: ModelRecord | None
    intended_use: str | None
    users: list[str]
    out_of_scope: list[str]
    limitations: list[str]
    risks: list[Risk]
    training_data: list[Dataset]
    evaluation_data: Dataset
    primary_metric: str | None
    confidence: float | None
    metrics: dict[str, Estimate]
    deltas: dict[str, Delta]
    slices: list[SliceResult]
    slice_count: int
    flagged_count: int
    fairness: list[str]
    latency: list[Scenario]
    device: DeviceChoice | None
    fingerprint: Fingerprint | None
    image: Image | None
    signers: list[Signature]
    gate: Gate | None
    created: str
    mlci_version: str
    inputs: list[ModelInput] = field(default_factory=list)
    fairness_summary: Fairness | None = None
    importance: Importance | None = None


def training_data(card: CardConfig) -> list[Dataset]:
    """The training datasets of the card, each with its digest (reads the files named)."""
    datasets = []
    for note in card.training_data:
        digest = note.sha256
        if digest is None and note.path is not None and Path(note.path).is_file():
            digest = sha256_file(Path(note.path))
        datasets.append(
            Dataset(
                note.name,
                note.description,
                None if note.path is None else Path(note.path).name,
                digest,
            )
        )
    return datasets


def build_card(document: Results, config: CardConfig | None) -> CardView:
    """The card of ``document`` with the free-text fields of ``config``."""
    card = config or CardConfig()
    ev = document.evaluation
    slices = [s for s in ev.slices if s.status == "evaluated"] if ev else []
    watched = set(card.fairness)
    shown = [s for s in slices if s.flagged or s.name in watched]
    if not shown:
        shown = [s for s in slices if s.source == "declared"][:20]
    data = document.data
    bench = document.benchmark
    image = document.image
    return CardView(
        name=document.model.name,
        version=card.version,
        description=card.description,
        owners=list(card.owners),
        license=card.license,
        architecture=card.architecture,
        task=TASK_NAMES.get(document.model.task, document.model.task),
        model=document.model,
        baseline=document.baseline,
        intended_use=card.intended_use,
        users=list(card.users),
        out_of_scope=list(card.out_of_scope),
        limitations=list(card.limitations),
        risks=list(card.risks),
        training_data=training_data(card),
        evaluation_data=Dataset(
            Path(data.path).name,
            f"evaluation data: {data.rows:,} rows, target '{data.target}'",
            data.path,
            data.sha256,
            data.rows,
        ),
        primary_metric=ev.primary_metric if ev else None,
        confidence=ev.confidence if ev else None,
        metrics=dict(ev.metrics.candidate) if ev else {},
        deltas=dict(ev.metrics.delta or {}) if ev else {},
        slices=shown,
        slice_count=len(ev.slices) if ev else 0,
        flagged_count=len(ev.flagged) if ev else 0,
        fairness=sorted(watched),
        latency=list(bench.scenarios) if bench else [],
        device=bench.device if bench else None,
        fingerprint=bench.fingerprint if bench else None,
        image=image,
        signers=[s for s in image.signatures if s.verified] if image else [],
        gate=document.gate,
        created=document.created,
        mlci_version=document.mlci_version,
        inputs=list(document.model.inputs),
        fairness_summary=ev.fairness if ev else None,
        importance=ev.importance if ev else None,
    )
