"""The results document: one JSON file per model that every stage writes a section of and
every renderer, gate and publisher reads.

The document is a tree of typed, frozen models; its JSON Schema (shipped in the package) is
generated from them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from mlci.errors import InputError
from mlci.models.formats import ModelFormat
from mlci.models.interface import Task
from mlci.results.base import Count, Label, Number, Seconds, Section, Sha256
from mlci.results.benchmark import Benchmark
from mlci.results.canary import Canary
from mlci.results.card import Card
from mlci.results.evaluation import Evaluation
from mlci.results.gate import Gate
from mlci.results.image import Image
from mlci.results.promotion import Promotion
from mlci.results.source import SourceRecord
from mlci.results.tests import ModelTests
from mlci.results.watch import Watch

SCHEMA_VERSION = "1.1"
StageStatus = Literal["ran", "skipped", "failed"]


class ConfigRef(Section):
    path: str
    sha256: Sha256


class ModelInput(Section):
    name: str
    dtype: str
    shape: list[int | str | None] = Field(default_factory=list)


class ModelRecord(Section):
    name: str
    path: str | None
    format: ModelFormat
    sha256: Sha256 | None
    size_bytes: Count | None
    task: Task
    classes: list[Label] | None = None
    inputs: list[ModelInput] = Field(default_factory=list)
    source: SourceRecord | None = None


class DataRecord(Section):
    path: str
    sha256: Sha256
    rows: int = Field(ge=1)
    format: Literal["csv", "parquet"]
    target: str
    features: list[str]
    id: str | None = None
    weight: str | None = None


class Conversion(Section):
    status: Literal["converted", "failed", "parity_lost"]
    message: str
    onnx_path: str | None = None
    onnx_sha256: Sha256 | None = None
    max_abs_diff: Number = None
    label_agreement: Number = None
    rows_checked: Count = 0


class StageOutcome(Section):
    """Whether a stage ran, was skipped (and why) or failed (and with what error)."""

    status: StageStatus
    reason: str | None = None
    duration_s: Seconds = 0.0


# The sections stages write, in the order readers expect them.
SECTIONS = (
    "conversion",
    "evaluation",
    "tests",
    "benchmark",
    "image",
    "gate",
    "card",
    "canary",
    "promotion",
    "watch",
)


class Results(Section):
    """Everything one mlci run found about one model. Every stage writes its section;
    renderers and publishers read only this document."""

    schema_version: Literal["1.0", "1.1"] = "1.1"
    mlci_version: str
    created: str = Field(json_schema_extra={"format": "date-time"})
    config: ConfigRef
    model: ModelRecord
    baseline: ModelRecord | None
    data: DataRecord
    stages: dict[str, StageOutcome] = Field(default_factory=dict)
    conversion: Conversion | None = None
    evaluation: Evaluation | None = None
    tests: ModelTests | None = None
    benchmark: Benchmark | None = None
    image: Image | None = None
    gate: Gate | None = None
    card: Card | None = None
    canary: Canary | None = None
    promotion: Promotion | None = None
    watch: Watch | None = None

    def with_section(self, name: str, value: Section | None) -> Results:
        return self.model_copy(update={name: value})

    def with_stage(self, name: str, outcome: StageOutcome) -> Results:
        return self.model_copy(update={"stages": {**self.stages, name: outcome}})

    def stage_reason(self, stage: str, section: str) -> str:
        """Why a section is absent, in words, from the stage that should have written it."""
        info = self.stages.get(stage)
        if info is None:
            return f"the {stage} stage did not run, so there is no {section} section."
        if info.status != "ran":
            verb = "was skipped" if info.status == "skipped" else info.status
            return f"the {stage} stage {verb}: {info.reason or 'no reason'}."
        return f"the results hold no {section} section."


def schema() -> dict[str, Any]:
    """The JSON Schema of results.json, generated from the models."""
    data = Results.model_json_schema(mode="serialization")
    data["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    data["$id"] = "https://mlci.dev/schemas/results-1.json"
    data["title"] = "mlci results document"
    return data


def dumps(document: Results) -> str:
    """The document as it is written to disk: sections no stage wrote are left out."""
    data = document.model_dump(mode="json")
    for section in SECTIONS:
        if data.get(section) is None:
            data.pop(section, None)
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def parse(data: Any, where: str) -> Results:
    """A results document from JSON data; InputError naming the first problem."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: not a results document (expected a JSON object)")
    try:
        return Results.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        at = "/".join(str(p) for p in err["loc"]) or "(top level)"
        raise InputError(f"{where}: results document is invalid at {at}: {err['msg']}") from None


def load(path: Path) -> Results:
    """Read and validate a results.json file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"{path}: not a readable results document ({exc.__class__.__name__})"
        ) from None
    except RecursionError:  # JSON nested thousands deep
        raise InputError(f"{path}: not a readable results document (nested too deeply)") from None
    return parse(data, str(path))


class MergeError(InputError):
    """Results files that cannot be merged; ``index`` is the offending file's position."""

    def __init__(self, index: int, message: str, *, tip: str | None = None) -> None:
        super().__init__(message, tip=tip)
        self.index = index


def _short(digest: str | None) -> str:
    return "n/a" if not digest else digest[:12]


def merge(documents: Sequence[Results]) -> Results:
    """One document from several that describe the same model, baseline and data.

    Each file contributes the sections its stages produced. Files that describe different
    models, baselines or data, or that disagree on a section both hold, are refused. The gate
    section is dropped: merged evidence must be judged again.
    """
    if not documents:
        raise MergeError(0, "nothing to merge")
    first = documents[0]
    merged: dict[str, Any] = {"stages": {}, "gate": None}
    for index, doc in enumerate(documents):
        for part, mine, theirs in (
            ("model", doc.model.sha256, first.model.sha256),
            ("baseline", _sha(doc.baseline), _sha(first.baseline)),
            ("data", doc.data.sha256, first.data.sha256),
        ):
            if mine != theirs:
                raise MergeError(
                    index,
                    f"describes a different {part} ({part} sha256 {_short(mine)} against "
                    f"{_short(theirs)})",
                    tip="merge only results of the same model, baseline and data",
                )
        for section in SECTIONS:
            if section in ("gate", "card", "promotion"):
                continue  # judged and written again from the merged evidence
            value = getattr(doc, section)
            if value is None:
                continue
            if merged.get(section) is not None and merged[section] != value:
                raise MergeError(
                    index,
                    f"holds a '{section}' section that differs from an earlier file's",
                    tip="run each stage in only one of the jobs you merge",
                )
            merged[section] = value
        for name, stage in doc.stages.items():
            if name in ("gate", "card"):
                continue
            known = merged["stages"].get(name)
            if known is None or known.status != "ran":
                merged["stages"][name] = stage
    merged["created"] = max(d.created for d in documents)
    return first.model_copy(update=merged)


def _sha(record: Any) -> str | None:
    return None if record is None else record.sha256
