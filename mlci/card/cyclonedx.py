"""The model card as a CycloneDX 1.6 BOM: a ``machine-learning-model`` component with a
``modelCard``, the datasets as ``data`` components, and the serving image when there is one.

The CycloneDX library builds the BOM; it does not model ``modelCard``, so that is added to
the JSON and the whole document is then checked with the library's strict validator.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from mlci.card.model import CardView
from mlci.errors import MlciError
from mlci.report import number
from mlci.results.base import Estimate
from mlci.results.fairness import Fairness

# Serial numbers are derived from the content, so the same results give the same BOM.
NAMESPACE = uuid.UUID("6f1d3c1e-2b8a-4f57-9a53-0c7d6e3f8b21")


def _text(value: float | None) -> str:
    return number(value, 6)


def model_card(card: CardView, dataset_refs: list[str]) -> dict[str, Any]:
    """The ``modelCard`` object of the model component."""
    metrics = []
    for name, est in card.metrics.items():
        metrics.append(_metric(name, est, "overall"))
    primary = card.primary_metric
    for s in card.slices:
        slice_est = s.metrics.candidate.get(primary) if primary else None
        if slice_est is not None and primary is not None:
            metrics.append(_metric(primary, slice_est, s.name))
    if card.fairness_summary is not None:
        for f in card.fairness_summary.features:
            for name, d in f.disparities.items():
                if name in ("demographic_parity", "equalized_odds"):
                    metrics.append(
                        _metric(f"{name}_difference", d.difference, f"feature {f.feature}")
                    )
                    metrics.append(_metric(f"{name}_ratio", d.ratio, f"feature {f.feature}"))
    if card.importance is not None:
        name = f"permutation_importance_{card.importance.metric}"
        metrics.extend(
            _metric(name, imp.candidate, f"feature {imp.feature}")
            for imp in card.importance.features
        )
    for scenario in card.latency:
        for stat, est in scenario.candidate.latency_ms.items():
            if est.value is not None:
                metrics.append(_metric(f"latency_{stat}_ms", est, f"scenario {scenario.name}"))
    considerations: dict[str, Any] = {}
    if card.users:
        considerations["users"] = list(card.users)
    uses = [card.intended_use] if card.intended_use else []
    if uses:
        considerations["useCases"] = uses
    limitations = list(card.limitations) + [f"Out of scope: {u}" for u in card.out_of_scope]
    if limitations:
        considerations["technicalLimitations"] = limitations
    if card.risks:
        considerations["ethicalConsiderations"] = [
            {k: v for k, v in (("name", r.name), ("mitigationStrategy", r.mitigation)) if v}
            for r in card.risks
        ]
    flagged = [s for s in card.slices if s.flagged]
    assessments = [
        {
            "groupAtRisk": s.name,
            "harms": s.reason or f"significantly worse than the baseline on {primary}",
        }
        for s in flagged
    ]
    if card.fairness_summary is not None:
        assessments.extend(_group_gaps(card.fairness_summary))
    if assessments:
        considerations["fairnessAssessments"] = assessments
    parameters: dict[str, Any] = {
        "approach": {"type": "supervised"},
        "task": card.task,
        "datasets": [{"ref": ref} for ref in dataset_refs],
        "inputs": [{"format": f"{i.name}: {i.dtype}"} for i in card.model.inputs],
    }
    if card.architecture:
        parameters["architectureFamily"] = card.architecture
    result: dict[str, Any] = {
        "bom-ref": f"model-card:{card.name}",
        "modelParameters": parameters,
        "quantitativeAnalysis": {"performanceMetrics": metrics},
    }
    if not parameters["inputs"]:
        del parameters["inputs"]
    if considerations:
        result["considerations"] = considerations
    return result


def _group_gaps(fairness: Fairness) -> list[dict[str, Any]]:
    """For each sensitive feature, the group least often given the favourable prediction."""
    out = []
    for f in fairness.features:
        rated = [
            g
            for g in f.groups
            if g.status == "evaluated" and g.candidate.get("selection_rate") is not None
        ]
        rates = [(g.candidate["selection_rate"].value, g.group) for g in rated]
        rates = [(r, g) for r, g in rates if r is not None]
        dp = f.disparities.get("demographic_parity")
        if len(rates) < 2 or dp is None:
            continue
        (low, worst), (high, best) = min(rates), max(rates)
        out.append(
            {
                "groupAtRisk": f"{f.feature}={worst}",
                "harms": f"selection rate {_text(low)} against {_text(high)} for "
                f"{f.feature}={best} (demographic parity difference {_text(dp.difference.value)})",
            }
        )
    return out


def _metric(name: str, est: Estimate, where: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": name, "value": _text(est.value), "slice": where}
    if est.ci_low is not None and est.ci_high is not None:
        entry["confidenceInterval"] = {
            "lowerBound": _text(est.ci_low),
            "upperBound": _text(est.ci_high),
        }
    return entry


def build_bom(card: CardView) -> dict[str, Any]:
    """The CycloneDX 1.6 document for ``card`` as JSON-ready data, validated."""
    try:
        import cyclonedx  # noqa: F401
    except ImportError:
        raise MlciError(
            "the CycloneDX model card needs cyclonedx-python-lib",
            tip="pip install 'mlci[card]'",
        ) from None
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.contact import OrganizationalEntity
    from cyclonedx.model.license import DisjunctiveLicense
    from cyclonedx.output.json import JsonV1Dot6

    def sha(content: str | None) -> list[HashType]:
        return [HashType(alg=HashAlgorithm.SHA_256, content=content)] if content else []

    model = card.model
    datasets = []
    for role, note in [("training", d) for d in card.training_data] + [
        ("evaluation", card.evaluation_data)
    ]:
        datasets.append(
            Component(
                type=ComponentType.DATA,
                name=note.name,
                bom_ref=f"data:{role}:{note.name}",
                description=note.description or f"{role} data",
                hashes=sha(note.sha256),
                properties=[Property(name="mlci:role", value=role)],
            )
        )
    properties = [Property(name="mlci:format", value=model.format)]
    gate = card.gate
    if gate:
        properties += [
            Property(name="mlci:gate:decision", value=gate.decision),
            Property(name="mlci:gate:digest", value=gate.digest),
        ]
    licenses = [DisjunctiveLicense(name=card.license)] if card.license else []
    component = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=card.name,
        version=card.version,
        bom_ref=f"model:{card.name}",
        description=card.description,
        hashes=sha(model.sha256),
        licenses=licenses,
        supplier=OrganizationalEntity(name=", ".join(card.owners)) if card.owners else None,
        properties=properties,
    )
    components = [component, *datasets]
    image = card.image
    if image and image.digest:
        algorithm, _, content = image.digest.partition(":")
        image_properties = [
            Property(name="mlci:signer", value=s.identity) for s in card.signers if s.identity
        ]
        if image.sbom is not None and image.sbom.attached:
            image_properties.append(Property(name="mlci:sbom", value="attached"))
        components.append(
            Component(
                type=ComponentType.CONTAINER,
                name=image.reference or card.name,
                bom_ref=f"image:{card.name}",
                hashes=sha(content) if algorithm == "sha256" else [],
                properties=image_properties,
            )
        )
    serial = uuid.uuid5(NAMESPACE, f"{model.sha256}:{card.evaluation_data.sha256}:{card.created}")
    bom = Bom(
        serial_number=serial,
        metadata=BomMetaData(
            timestamp=datetime.fromisoformat(card.created.replace("Z", "+00:00")),
            component=None,
        ),
        components=components,
    )
    data: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    # Tools (the library itself) carry its own version: leave them out for a stable document.
    data.get("metadata", {}).pop("tools", None)
    refs = [d.bom_ref.value for d in datasets]
    for entry in data["components"]:
        if entry.get("bom-ref") == f"model:{card.name}":
            entry["modelCard"] = model_card(card, [r for r in refs if r])
    data["components"].sort(key=lambda c: c.get("bom-ref", ""))
    validate_bom(data)
    return data


def validate_bom(data: dict[str, Any]) -> None:
    """Raise MlciError unless ``data`` is a valid CycloneDX 1.6 document (strict schema)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(data))
    if error is not None:
        raise MlciError(f"the CycloneDX model card is invalid: {error}")


def dumps_bom(card: CardView) -> str:
    """The CycloneDX JSON text."""
    return json.dumps(build_bom(card), indent=2, ensure_ascii=False) + "\n"
