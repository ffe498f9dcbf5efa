"""The card stage: the model card in Markdown and CycloneDX 1.6, written beside the results."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mlci.card.config import CardConfig
from mlci.results import Results
from mlci.results.card import Card, CardFile
from mlci.stages import ModelContext

MARKDOWN = "card.md"
CYCLONEDX = "card.cdx.json"


def render_card(
    document: Results,
    config: CardConfig | None,
    fmt: Literal["markdown", "cyclonedx"] = "markdown",
    templates: Path | None = None,
) -> str:
    """The card of ``document`` as Markdown (``card.md.j2``) or CycloneDX 1.6 JSON."""
    from mlci.card.model import build_card

    card = build_card(document, config)
    if fmt == "cyclonedx":
        from mlci.card.cyclonedx import dumps_bom

        return dumps_bom(card)
    from mlci.report import render_template

    return render_template("card.md.j2", document, templates, card=card)


def run(ctx: ModelContext) -> Card:
    """Write card.md, and card.cdx.json when cyclonedx-python-lib is installed."""
    from mlci.files import write_atomic
    from mlci.hashing import sha256_file

    config = ctx.loaded.config
    templates = config.report.templates
    markdown = ctx.staging / MARKDOWN
    write_atomic(markdown, render_card(ctx.results, config.card, "markdown", templates))
    cyclonedx = None
    note = None
    try:
        import cyclonedx as _  # noqa: F401
    except ImportError:
        note = "CycloneDX card not written: install mlci[card] (cyclonedx-python-lib)"
    else:
        path = ctx.staging / CYCLONEDX
        write_atomic(path, render_card(ctx.results, config.card, "cyclonedx"))
        cyclonedx = CardFile(path=CYCLONEDX, sha256=sha256_file(path))
    return Card(
        markdown=CardFile(path=MARKDOWN, sha256=sha256_file(markdown)),
        cyclonedx=cyclonedx,
        note=note,
    )
