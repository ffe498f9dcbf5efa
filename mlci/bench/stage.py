"""The benchmark stage."""

from __future__ import annotations

from typing import Any

from mlci.stages import ModelContext, StageSkipped


def run(ctx: ModelContext) -> dict[str, Any]:
    """Run the configured latency and throughput scenarios."""
    raise StageSkipped("no benchmark configured")
