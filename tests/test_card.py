"""The model card: CycloneDX 1.6 validated by the CycloneDX library, and `mlci card`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from documents import GOLDEN, dump, fixture, typed

from mlci.card.config import CardConfig
from mlci.card.cyclonedx import build_bom, validate_bom
from mlci.card.model import CardView
from mlci.card.model import build_card as build_typed_card
from mlci.commands import main
from mlci.errors import MlciError

FIELDS: dict[str, Any] = json.loads((GOLDEN / "fixtures" / "card.json").read_text())


def build_card(document: dict[str, Any], fields: dict[str, Any]) -> CardView:
    return build_typed_card(typed(document), CardConfig.model_validate(fields))


@pytest.mark.parametrize("name", ["promote", "hold", "block", "nogate"])
def test_cyclonedx_is_valid_under_the_strict_schema(name: str) -> None:
    bom = build_bom(build_card(fixture(name), FIELDS))
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom), all_errors=True)
    assert errors is None, list(errors)  # type: ignore[arg-type]
    assert bom["specVersion"] == "1.6"


def test_model_component_carries_the_model_card() -> None:
    doc = fixture("promote")
    bom = build_bom(build_card(doc, FIELDS))
    model = next(c for c in bom["components"] if c["type"] == "machine-learning-model")
    assert model["hashes"] == [{"alg": "SHA-256", "content": doc["model"]["sha256"]}]
    card = model["modelCard"]
    assert card["modelParameters"]["task"] == "binary classification"
    metrics = {
        (m["type"], m["slice"]): m for m in card["quantitativeAnalysis"]["performanceMetrics"]
    }
    auc = metrics[("roc_auc", "overall")]
    assert auc["confidenceInterval"] == {"lowerBound": "0.902", "upperBound": "0.922"}
    assert ("latency_p99_ms", "scenario single-stream") in metrics
    assert card["considerations"]["useCases"] == [FIELDS["intended_use"]]
    assert "Out of scope: business loans" in card["considerations"]["technicalLimitations"]
    # Datasets are data components referenced by the card, with their digests.
    refs = {d["ref"] for d in card["modelParameters"]["datasets"]}
    data = {c["bom-ref"]: c for c in bom["components"] if c["type"] == "data"}
    assert refs == set(data)
    digests = {h["content"] for c in data.values() for h in c["hashes"]}
    assert {doc["data"]["sha256"], FIELDS["training_data"][0]["sha256"]} == digests
    image = next(c for c in bom["components"] if c["type"] == "container")
    assert image["hashes"][0]["content"] == doc["image"]["digest"].split(":")[1]
    properties = {p["name"]: p["value"] for p in model["properties"]}
    assert properties["mlci:gate:decision"] == "promote"


def test_flagged_slices_become_fairness_assessments() -> None:
    bom = build_bom(build_card(fixture("block"), FIELDS))
    model = next(c for c in bom["components"] if c["type"] == "machine-learning-model")
    groups = [f["groupAtRisk"] for f in model["modelCard"]["considerations"]["fairnessAssessments"]]
    assert "employment=self-employed, channel=broker" in groups


def test_invalid_bom_is_rejected() -> None:
    bom = build_bom(build_card(fixture("promote"), FIELDS))
    model = next(c for c in bom["components"] if c["type"] == "machine-learning-model")
    model["modelCard"]["modelParameters"]["approach"] = {"type": "guesswork"}
    with pytest.raises(MlciError, match="CycloneDX"):
        validate_bom(bom)


def test_same_results_give_the_same_bom() -> None:
    card = build_card(fixture("promote"), FIELDS)
    assert build_bom(card) == build_bom(card)


def test_card_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.json"
    results.write_text(dump(fixture("promote")))
    (tmp_path / "train.csv").write_text("a,b\n1,2\n")
    config = tmp_path / "mlci.yaml"
    config.write_text(
        "version: 1\ndata: {path: eval.csv, target: y}\nmodels: [{name: m, path: m.onnx}]\n"
        "card:\n  intended_use: Ranking applications for review.\n"
        "  training_data: [{name: train, path: train.csv}]\n"
    )
    out = tmp_path / "card.cdx.json"
    assert main(["card", str(results), "-c", str(config), "-f", "cyclonedx", "-o", str(out)]) == 0
    bom = json.loads(out.read_text())
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out.read_text()) is None
    import hashlib

    digest = hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert any(h["content"] == digest for c in bom["components"] for h in c.get("hashes", []))
    assert main(["card", str(results), "-c", str(config)]) == 0
    text = capsys.readouterr().out
    assert "## Intended use\n\nRanking applications for review." in text
    assert digest in text
    # A card section with a typo points at the line.
    config.write_text(config.read_text().replace("intended_use", "intended_uses"))
    assert main(["card", str(results), "-c", str(config)]) == 2
    assert "mlci.yaml:5:3: card.intended_uses: unknown key" in capsys.readouterr().err
