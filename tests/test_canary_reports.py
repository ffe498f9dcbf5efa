"""The canary section in the pull-request comment, the report and the terminal."""

from __future__ import annotations

import copy
from typing import Any

from documents import fixture, typed

from mlci.report import GITHUB_COMMENT_LIMIT, headlines, render_comment, render_markdown


def rolled_back(slices: int) -> dict[str, Any]:
    doc = copy.deepcopy(fixture("promote"))
    canary = doc["canary"]
    canary["decision"] = "rollback"
    canary["next_weight"] = 0.0
    canary["reason"] = "Roll back: slice 'segment-0': labels flipped (and more)."
    template = canary["shadow"]["agreement"][1]
    canary["shadow"]["agreement"] += [
        {**template, "name": f"segment-{i}", "status": "fail",
         "explanation": f"slice 'segment-{i}': " + "x" * 200}
        for i in range(slices)
    ]  # fmt: skip
    return doc


def test_comment_shows_the_decision_and_what_failed() -> None:
    text = render_comment(typed(rolled_back(3)))
    assert "### Canary: ⛔ rollback at 10% of traffic" in text
    assert "Next weight: **0%**." in text
    assert "- ❌ Slice 'segment-2': " in text
    assert "- ❔ Slice 'channel=broker': " in text
    assert "1 of 5 slices agree within the limits." in text
    full = render_markdown(typed(rolled_back(3)))
    assert "| segment-2 | 1,290 |" in full and "| region=north | 1,290 |" in full


def test_comment_with_thousands_of_failing_slices_fits_githubs_limit() -> None:
    text = render_comment(typed(rolled_back(3000)))
    assert len(text) <= GITHUB_COMMENT_LIMIT
    assert "more not shown" in text and "### Canary: ⛔ rollback" in text


def test_terminal_headline() -> None:
    lines = headlines(typed(fixture("promote")))
    assert (
        "canary: PROMOTE (next weight 25%): Promote to 25% of traffic: no harmful change found "
        "(score 100)."
    ) in lines
