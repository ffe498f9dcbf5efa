"""The `benchmark:` section of mlci.yaml."""

from __future__ import annotations

from mlci.configbase import Strict


class BenchmarkConfig(Strict):
    """Latency and throughput scenarios."""
