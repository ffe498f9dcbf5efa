"""The ``canary`` section: what a canary analysis decided under real traffic."""

from __future__ import annotations

from typing import Literal

from mlci.results.base import Section

CanaryDecision = Literal["promote", "hold", "rollback"]


class Canary(Section):
    decision: CanaryDecision
    reason: str = ""
