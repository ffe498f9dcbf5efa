"""The Markdown model card."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def render_card(
    card: dict[str, Any], document: dict[str, Any], templates: Path | None = None
) -> str:
    """The model card in Markdown, from ``card.md.j2``."""
    from mlci.report import render_template

    return render_template("card.md.j2", document, templates, card=card)
