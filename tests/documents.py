"""Results documents in tests: golden fixtures as JSON data, checked by the typed models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlci.results import Results, dumps, parse

GOLDEN = Path(__file__).parent / "golden"


def fixture(name: str) -> dict[str, Any]:
    """A golden results document as plain JSON data, for a test to edit."""
    document: dict[str, Any] = json.loads((GOLDEN / "fixtures" / f"{name}.json").read_text())
    return document


def typed(data: dict[str, Any] | Results) -> Results:
    """The document as mlci reads it (fails the test when it is not a valid document)."""
    return data if isinstance(data, Results) else parse(data, "test document")


def dump(data: dict[str, Any] | Results) -> str:
    """The document as mlci writes it."""
    return dumps(typed(data))


def plain(data: Results) -> dict[str, Any]:
    """A typed document (or section) as JSON data."""
    return dict(json.loads(dumps(data)))
