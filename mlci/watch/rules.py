"""Alarms: the configured rules judged on one window (pure)."""

from __future__ import annotations

from mlci.results.base import Number
from mlci.results.watch import Alarm, WatchMetric, WatchRule, Window
from mlci.watch.config import FloorRule, WatchConfig


def describe(cfg: WatchConfig) -> list[WatchRule]:
    """Every configured rule, as the results record it."""
    rules = [
        WatchRule(
            id=f"drift:{feature}",
            kind="drift",
            description=f"'{feature}' drifts (Benjamini-Hochberg q <= {cfg.drift.fdr:g}"
            + (f", PSI >= {cfg.drift.min_psi:g})" if cfg.drift.min_psi is not None else ")"),
        )
        for feature in cfg.critical_features
    ]
    if cfg.prediction_drift:
        rules.append(
            WatchRule(
                id="prediction_drift",
                kind="prediction_drift",
                description="the model's score drifts against its score on the reference",
            )
        )
    rules.extend(
        WatchRule(id=floor_id(f), kind="performance", description=_floor_text(f))
        for f in cfg.floors
    )
    return rules


def floor_id(floor: FloorRule) -> str:
    return f"floor:{floor.metric}"


def _floor_text(floor: FloorRule) -> str:
    source = {"any": "measured, else estimated", "measured": "measured", "estimated": "estimated"}
    judged = "its whole interval" if floor.evidence == "interval" else "its value"
    return f"{floor.metric} ({source[floor.source]}) below {floor.min:g}, judged by {judged}"


def alarms(window: Window, cfg: WatchConfig) -> list[Alarm]:
    """The rules that fire in ``window``."""
    found: list[Alarm] = []
    for drift in window.drift:
        if drift.critical and drift.drifted:
            test = "Kolmogorov-Smirnov" if drift.test == "ks" else "chi-square"
            found.append(
                Alarm(
                    rule=f"drift:{drift.feature}",
                    kind="drift",
                    feature=drift.feature,
                    observed=drift.psi,
                    threshold=cfg.drift.min_psi,
                    message=f"critical feature '{drift.feature}' drifted: {test} "
                    f"q = {_g(drift.q_value)}, PSI {_g(drift.psi)}"
                    + (
                        f"; largest shift in {drift.largest_shift}: {_pct(drift.reference_share)}"
                        f" of reference rows, {_pct(drift.current_share)} now"
                        if drift.largest_shift
                        else ""
                    ),
                )
            )
    prediction = window.prediction_drift
    if cfg.prediction_drift and prediction is not None and prediction.drifted:
        found.append(
            Alarm(
                rule="prediction_drift",
                kind="prediction_drift",
                feature=prediction.feature,
                observed=prediction.psi,
                threshold=cfg.drift.min_psi,
                message=f"the model's {prediction.feature} drifted: p = {_g(prediction.p_value)}, "
                f"PSI {_g(prediction.psi)}",
            )
        )
    for floor in cfg.floors:
        alarm = _floor(window, floor)
        if alarm is not None:
            found.append(alarm)
    return found


def _floor(window: Window, floor: FloorRule) -> Alarm | None:
    metric: WatchMetric | None = None
    if floor.source in ("any", "measured"):
        metric = window.measured.get(floor.metric)
    if (metric is None or metric.value is None) and floor.source in ("any", "estimated"):
        metric = window.estimated.get(floor.metric)
    if metric is None or metric.value is None:
        return None
    judged = metric.ci_high if floor.evidence == "interval" else metric.value
    if judged is None or judged >= floor.min:
        return None
    interval = f" [{_g(metric.ci_low)}, {_g(metric.ci_high)}]" if metric.ci_high is not None else ""
    return Alarm(
        rule=floor_id(floor),
        kind="performance",
        metric=floor.metric,
        source=metric.kind,
        observed=metric.value,
        threshold=floor.min,
        message=f"{metric.kind} {floor.metric} {_g(metric.value)}{interval} is below the floor "
        f"{floor.min:g}",
    )


def _g(value: Number) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _pct(value: Number) -> str:
    return "n/a" if value is None else f"{value:.1%}"
