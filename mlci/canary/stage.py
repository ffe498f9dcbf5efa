"""The canary stage: shadow replay and live metrics, judged into the ``canary`` section.

``mlci check`` runs it (after the image stages, before the gate) when mlci.yaml has a
``canary:`` section; ``mlci canary`` runs it alone against an existing results.json. Either
way the section records the digest of the image it judged, and the run refuses a canary
image other than the one the results describe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlci.canary.config import CanaryConfig, EndpointConfig, target_of
from mlci.errors import InputError, UsageError
from mlci.results.canary import Canary, Live, MetricJudgement, Side
from mlci.stages import ModelContext, StageFailed, StageSkipped

if TYPE_CHECKING:
    from mlci.canary.oip import Signature
    from mlci.canary.replay import Endpoint
    from mlci.canary.shadow import ShadowOutcome
    from mlci.config import LoadedConfig
    from mlci.data import Dataset
    from mlci.results import Results

Progress = Callable[[str], None]
ROLES = ("primary", "canary")


@dataclass(frozen=True)
class Binding:
    """What the results document says was built: the canary must be this image and model."""

    image_digest: str | None = None
    model_sha256: str | None = None

    @classmethod
    def of(cls, document: Results) -> Binding:
        digest = None
        if document.gate is not None and document.gate.image_digest:
            digest = document.gate.image_digest
        elif document.image is not None:
            digest = document.image.digest
        return cls(digest, document.model.sha256)


@dataclass(frozen=True)
class Overrides:
    """Command-line values that replace mlci.yaml's for one run."""

    weight: float | None = None
    endpoints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # role -> field

    def apply(self, config: CanaryConfig) -> CanaryConfig:
        from pydantic import ValidationError

        update: dict[str, Any] = {}
        if self.weight is not None:
            if not 0 <= self.weight <= 100:
                raise UsageError(f"--weight {self.weight:g}: a weight is a percentage, 0 to 100")
            update["weight"] = self.weight
        for role, values in self.endpoints.items():
            if not values:
                continue
            current = getattr(config, role).model_dump()
            if "url" in values or "image" in values:
                current.update(url=None, image=None)
            current.update(values)
            try:
                update[role] = EndpointConfig.model_validate(current)
            except ValidationError as exc:
                error = exc.errors()[0]
                shown = ", ".join(f"--{role}-{k}" for k in values)
                message = error["msg"].removeprefix("Value error, ")
                raise UsageError(f"{shown}: {message[0].lower()}{message[1:]}") from None
        return config.model_copy(update=update) if update else config


def run(ctx: ModelContext) -> Canary:
    """The ``canary`` section, or StageSkipped without a canary section in mlci.yaml."""
    config = ctx.loaded.config.canary
    if config is None:
        raise StageSkipped("no canary section in mlci.yaml")
    return analyse(
        ctx.loaded,
        config,
        model=ctx.name,
        data=ctx.data,
        binding=Binding.of(ctx.results),
        progress=ctx.progress,
    )


def _check_digest(binding: Binding, digest: str | None, what: str) -> None:
    if binding.image_digest and digest and digest != binding.image_digest:
        raise InputError(
            f"canary.canary: {what} is {digest}, not the image the results describe "
            f"({binding.image_digest})",
            tip="judge the image that was built and gated, or pass results of this image",
        )


def _check_model(binding: Binding, sha256: str | None, image: str) -> None:
    if binding.model_sha256 and sha256 and sha256 != binding.model_sha256:
        raise InputError(
            f"canary.canary: image {image} serves model sha256 {sha256[:12]}, not the candidate "
            f"the results describe ({binding.model_sha256[:12]})"
        )


def analyse(
    loaded: LoadedConfig,
    config: CanaryConfig,
    *,
    model: str,
    data: Dataset | None,
    binding: Binding = Binding(),
    progress: Progress = lambda _m: None,
) -> Canary:
    """Run the configured shadow replay and live analysis and judge them."""
    from mlci.canary.judge import decide, judge_metric

    began = time.perf_counter()
    _check_digest(binding, config.canary.digest, "canary.canary.digest")
    sides = {role: _side(getattr(config, role), model) for role in ROLES}
    judgements: list[MetricJudgement] = []
    shadow = None
    if config.shadow is not None:
        from mlci.canary.engine import inspect, started

        images = {
            role: inspect(endpoint.image, role, progress)
            for role in ROLES
            if (endpoint := getattr(config, role)).image is not None
        }
        for role, found in images.items():
            endpoint = getattr(config, role)
            sides[role] = sides[role].model_copy(
                update={
                    "digest": endpoint.digest or found.digest,
                    "model_sha256": found.model_sha256,
                }
            )
        # refuse another image before starting anything
        _check_digest(binding, sides["canary"].digest, f"image {config.canary.image}")
        _check_model(binding, sides["canary"].model_sha256, str(config.canary.image))
        with ExitStack() as stack:
            urls: dict[str, str] = {}
            for role in ROLES:
                endpoint = getattr(config, role)
                if endpoint.image is None:
                    urls[role] = endpoint.url or ""
                    continue
                urls[role] = stack.enter_context(
                    started(endpoint.image, endpoint.port, role, progress)
                )
                sides[role] = sides[role].model_copy(update={"url": urls[role]})
            outcome = _shadow(loaded, config, model, data, urls, progress)
        shadow = outcome.section
        if outcome.primary_latency or outcome.canary_latency:
            judgements.append(
                judge_metric(
                    _latency_spec(config),
                    outcome.primary_latency,
                    outcome.canary_latency,
                    config.confidence,
                )
            )
    live = None
    stopped = ""
    if config.live is not None:
        live_judgements, live, stopped = _live(config, model, progress)
        judgements.extend(live_judgements)
    verdict = decide(
        judgements,
        shadow,
        pass_score=config.pass_score,
        marginal_score=config.marginal_score,
        weight=config.weight,
        steps=config.steps,
        stopped_early=stopped,
    )
    reasons = list(verdict.reasons)
    if binding.image_digest and not sides["canary"].digest:
        reasons.append(
            "the canary's image digest is not known (give canary.canary.digest or "
            "--canary-digest), so the gate cannot bind this analysis to the image "
            f"{binding.image_digest[:19]}"
        )
    return Canary(
        decision=verdict.decision,
        reason=verdict.reason,
        reasons=reasons,
        weight=config.weight,
        next_weight=verdict.next_weight,
        score=verdict.score,
        pass_score=config.pass_score,
        marginal_score=config.marginal_score,
        confidence=config.confidence,
        model_sha256=binding.model_sha256,
        primary=sides["primary"],
        canary=sides["canary"],
        metrics=judgements,
        shadow=shadow,
        live=live,
        duration_s=round(time.perf_counter() - began, 3),
    )


def _side(endpoint: EndpointConfig, model: str) -> Side:
    digest = endpoint.digest
    if digest is None and endpoint.image and "@sha256:" in endpoint.image:
        digest = "sha256:" + endpoint.image.rsplit("@sha256:", 1)[1][:64]
    return Side(
        url=endpoint.url,
        image=endpoint.image,
        digest=digest,
        model=endpoint.model or model,
        version=endpoint.version,
    )


def _latency_spec(config: CanaryConfig) -> Any:
    from mlci.canary.judge import MetricSpec

    assert config.shadow is not None
    latency = config.shadow.latency
    return MetricSpec(
        name="shadow latency",
        source="shadow",
        bad="increase",
        tolerance=latency.tolerance,
        tolerance_abs=latency.tolerance_abs or 0.0,
        weight=latency.weight,
        critical=latency.critical,
        unit="s",
    )


def _endpoint(config: CanaryConfig, role: str, url: str, model: str) -> Endpoint:
    from mlci.canary.replay import Endpoint

    endpoint: EndpointConfig = getattr(config, role)
    return Endpoint.from_url(url, endpoint.model or model, endpoint.version)


def _signature(endpoint: Endpoint, role: str, timeout: float) -> Signature:
    import orjson

    from mlci.canary.oip import ProtocolError, Signature

    where = f"{endpoint.url}{endpoint.model_path}"
    try:
        status, body = endpoint.get(endpoint.model_path, timeout)
    except OSError as exc:
        raise StageFailed(f"canary.{role}: {where} cannot be reached ({exc})") from None
    if status == 404:
        raise InputError(
            f"canary.{role}: {where} answered 404: no model '{endpoint.model}'"
            + (f" version '{endpoint.version}'" if endpoint.version else ""),
            tip=f"set canary.{role}.model (and version) to what the server serves",
        )
    if status != 200:
        raise StageFailed(f"canary.{role}: {where} answered HTTP {status}")
    try:
        return Signature.parse(orjson.loads(body), where)
    except (orjson.JSONDecodeError, ProtocolError) as exc:
        raise StageFailed(
            f"canary.{role}: {where}: not Open Inference Protocol metadata ({exc})"
        ) from None


def _shadow(
    loaded: LoadedConfig,
    config: CanaryConfig,
    model: str,
    data: Dataset | None,
    urls: dict[str, str],
    progress: Progress,
) -> ShadowOutcome:
    from mlci.canary.engine import wait_ready
    from mlci.canary.replay import mirror
    from mlci.canary.shadow import compare_answers, plan_from_data, plan_from_file

    shadow = config.shadow
    assert shadow is not None
    endpoints = {role: _endpoint(config, role, urls[role], model) for role in ROLES}
    for endpoint in endpoints.values():
        wait_ready(endpoint.url, 30.0)
    signatures = {role: _signature(e, role, shadow.timeout) for role, e in endpoints.items()}
    differs = signatures["primary"].compatible(signatures["canary"])
    if differs:
        raise InputError(
            f"canary.canary: the canary's model takes other inputs than the primary's ({differs})",
            tip="a shadow replay sends both the same requests",
        )
    slices: list[Any] = []
    if shadow.file is not None:
        plan = plan_from_file(shadow.file, shadow)
    else:
        if data is None:
            raise UsageError("the shadow replay of the evaluation data needs the data")
        plan = plan_from_data(signatures["primary"], data, shadow, config.seed)
        if shadow.slices:
            from mlci.evaluate.rows import declared_slices

            slices = declared_slices(loaded, data)
    rate = f" at {shadow.rate:g}/s" if shadow.rate else ""
    progress(
        f"shadow replay: mirroring {len(plan.bodies):,} requests{rate}, "
        f"{shadow.concurrency} at a time"
    )
    replayed = mirror(
        plan.bodies,
        endpoints["primary"],
        endpoints["canary"],
        rate=shadow.rate,
        concurrency=shadow.concurrency,
        duration=shadow.duration,
        timeout=shadow.timeout,
        progress=progress,
    )
    return compare_answers(
        plan, replayed, signatures["primary"], slices, shadow, config.confidence, config.seed
    )


def _live(
    config: CanaryConfig, model: str, progress: Progress
) -> tuple[list[MetricJudgement], Live, str]:
    from mlci.canary.judge import judge_metric
    from mlci.canary.live import live_metrics, run_live
    from mlci.canary.prometheus import Prometheus

    live = config.live
    assert live is not None
    primary = target_of(config.primary, model)
    canary = target_of(config.canary, model)
    metrics = live_metrics(live, primary, canary, "canary.live")
    client = Prometheus(live.prometheus)
    progress(
        f"live analysis: {len(metrics)} metric(s) every {live.interval:g}s, "
        f"{live.iterations} iterations"
    )
    try:
        samples = run_live(live, metrics, client, config.confidence, progress)
    finally:
        client.close()
    judgements = [
        judge_metric(
            m.spec,
            samples.primary[m.spec.name],
            samples.canary[m.spec.name],
            config.confidence,
        )
        for m in metrics
    ]
    record = Live(
        prometheus=live.prometheus,
        primary_target=primary,
        canary_target=canary,
        interval_s=live.interval,
        iterations_planned=live.iterations,
        iterations_run=samples.iterations,
        stopped_early=bool(samples.stop_reason),
        stop_reason=samples.stop_reason,
    )
    return judgements, record, samples.stop_reason
