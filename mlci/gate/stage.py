"""The gate stage: judges the document the stages before it wrote."""

from __future__ import annotations

from mlci.config import LoadedConfig
from mlci.gate.rules import evaluate_gate
from mlci.results import Results
from mlci.results.gate import Gate
from mlci.stages import ModelContext, StageSkipped


def run(ctx: ModelContext) -> Gate:
    """The ``gate`` section, or StageSkipped without a gate in mlci.yaml."""
    return judge(ctx.loaded, ctx.results)


def judge(loaded: LoadedConfig, document: Results) -> Gate:
    """The gate of mlci.yaml applied to ``document`` (also for ``mlci gate`` and merges)."""
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
