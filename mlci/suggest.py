"""Spelling suggestions for names a user probably mistyped."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The closest spelling among ``choices``, if any is close enough."""
    matches = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    match = closest(name, choices)
    return f" (did you mean '{match}'?)" if match else ""
