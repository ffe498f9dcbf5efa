"""The card's content: measured facts from the results, words from mlci.yaml. Pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlci.card.config import CardConfig
from mlci.hashing import sha256_file

TASK_NAMES = {
    "binary": "binary classification",
    "multiclass": "multiclass classification",
    "regression": "regression",
}


def card_fields(card: CardConfig | None) -> dict[str, Any]:
    """The free-text fields as plain data, with each training dataset's digest filled in.

    Reads the training files named in mlci.yaml (the only input/output of the card).
    """
    if card is None:
        card = CardConfig()
    fields = card.model_dump(mode="json", exclude={"training_data"})
    datasets = []
    for note in card.training_data:
        digest = note.sha256
        if digest is None and note.path is not None and Path(note.path).is_file():
            digest = sha256_file(Path(note.path))
        datasets.append(
            {
                "name": note.name,
                "description": note.description,
                "path": None if note.path is None else Path(note.path).name,
                "sha256": digest,
            }
        )
    fields["training_data"] = datasets
    return fields


def build_card(document: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """Everything the Markdown card and the CycloneDX modelCard show."""
    model = document["model"]
    ev = document.get("evaluation") or {}
    primary = ev.get("primary_metric")
    slices = [s for s in ev.get("slices", []) if s["status"] == "evaluated"]
    watched = set(fields.get("fairness") or [])
    shown_slices = [s for s in slices if s["flagged"] or s["name"] in watched]
    if not shown_slices:
        shown_slices = [s for s in slices if s["source"] == "declared"][:20]
    data = document["data"]
    evaluation_data = {
        "name": Path(data["path"]).name,
        "description": f"evaluation data: {data['rows']:,} rows, target '{data['target']}'",
        "path": data["path"],
        "sha256": data["sha256"],
        "rows": data["rows"],
    }
    bench = document.get("benchmark") or {}
    image = document.get("image") or {}
    return {
        "name": model["name"],
        "version": fields.get("version"),
        "description": fields.get("description"),
        "owners": fields.get("owners") or [],
        "license": fields.get("license"),
        "architecture": fields.get("architecture"),
        "task": TASK_NAMES.get(model["task"], model["task"]),
        "model": model,
        "baseline": document.get("baseline"),
        "intended_use": fields.get("intended_use"),
        "users": fields.get("users") or [],
        "out_of_scope": fields.get("out_of_scope") or [],
        "limitations": fields.get("limitations") or [],
        "risks": fields.get("risks") or [],
        "training_data": fields.get("training_data") or [],
        "evaluation_data": evaluation_data,
        "primary_metric": primary,
        "confidence": ev.get("confidence"),
        "metrics": (ev.get("metrics") or {}).get("candidate") or {},
        "deltas": (ev.get("metrics") or {}).get("delta") or {},
        "slices": shown_slices,
        "slice_count": len(ev.get("slices", [])),
        "flagged_count": sum(s["flagged"] for s in ev.get("slices", [])),
        "fairness": sorted(watched),
        "latency": bench.get("scenarios") or [],
        "device": bench.get("device"),
        "fingerprint": bench.get("fingerprint"),
        "image": image or None,
        "signers": [s for s in image.get("signatures") or [] if s.get("verified")],
        "gate": document.get("gate"),
        "created": document["created"],
        "mlci_version": document["mlci_version"],
    }
