"""The gate step: runs after every other stage, on the finished results document."""

from __future__ import annotations

from typing import Any

from mlci.config import LoadedConfig
from mlci.gate.rules import evaluate_gate
from mlci.stages import StageSkipped


def run(loaded: LoadedConfig, document: dict[str, Any]) -> dict[str, Any]:
    """The ``gate`` section for a finished document, or StageSkipped without a gate."""
    gate = loaded.config.gate
    if gate is None:
        raise StageSkipped("no gate configured")
    for i, rule in enumerate(gate.rules):
        check_rule(loaded, i, rule.kind, rule.metric)
    return evaluate_gate(document, gate)


def check_rule(loaded: LoadedConfig, index: int, kind: str, metric: str | None) -> None:
    """Reject metric names mlci does not know, pointing at the rule in mlci.yaml."""
    if metric is None or kind not in ("metric", "non_inferiority", "slices"):
        return
    from mlci.evaluate.metrics import METRICS
    from mlci.suggest import did_you_mean

    if metric not in METRICS:
        raise loaded.error(
            ("gate", "rules", index, "metric"),
            f"unknown metric '{metric}'{did_you_mean(metric, list(METRICS))}",
        )
