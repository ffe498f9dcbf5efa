"""Which stages ``mlci check --only ... --skip ...`` runs.

Pure: the names come from the command line and mlci.yaml's ``stages``; availability from the
stage registry, so a stage that this build of mlci cannot run is an error, not a silent no-op.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from mlci.errors import UsageError
from mlci.suggest import did_you_mean

# Every stage name mlci knows, in the order `mlci check` runs them (the gate last).
STAGE_NAMES = ("evaluate", "tests", "benchmark", "card", "image", "sbom", "sign", "gate")


def parse_stage_list(text: str | None, option: str) -> list[str] | None:
    """``"evaluate, tests"`` -> ``["evaluate", "tests"]``; None when the option was not given."""
    if text is None:
        return None
    names = [n.strip() for n in text.replace(" ", ",").split(",") if n.strip()]
    for name in names:
        if name not in STAGE_NAMES:
            raise UsageError(
                f"{option}: unknown stage '{name}'{did_you_mean(name, STAGE_NAMES)}",
                tip=f"stages are {', '.join(STAGE_NAMES)}",
            )
    return names


def select_stages(
    configured: Sequence[str],
    only: Sequence[str] | None,
    skip: Sequence[str] | None,
    available: Collection[str],
) -> list[str]:
    """The stages to run: ``only`` (else the configured ones) minus ``skip``, in run order.

    ``available`` names the stages this build can run; asking for another one is an error.
    """
    chosen = set(only if only is not None else configured) - set(skip or ())
    missing = [n for n in STAGE_NAMES if n in chosen and n not in available]
    if missing and only is not None:
        raise UsageError(
            f"--only: stage '{missing[0]}' is not available in this version of mlci",
            tip=f"available stages: {', '.join(n for n in STAGE_NAMES if n in available)}",
        )
    selected = [n for n in STAGE_NAMES if n in chosen and n in available]
    if not selected:
        raise UsageError(
            "no stage left to run", tip="check --only and --skip against mlci.yaml's stages"
        )
    return selected
