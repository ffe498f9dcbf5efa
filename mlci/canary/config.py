"""The ``canary:`` section of mlci.yaml: what to compare, how to replay, what to query, how
to judge.

Durations take seconds or a string with a unit (``"30s"``, ``"1m"``); fractions a number or a
percentage (``0.02`` or ``"2%"``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlci.bench.config import Fraction, Seconds
from mlci.configbase import ConfigPath, Strict, too_few_replicates

BadDirection = Literal["increase", "decrease", "either"]
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BUILTIN_VARIABLES = ("target", "primary", "canary", "interval")


# The serving runtime's own metrics (mlci.serve's /metrics), ready to use as templates.
# name: (PromQL, unit, harmful direction, relative tolerance, absolute tolerance, critical)
TEMPLATES: dict[str, tuple[str, str, BadDirection, float, float, bool]] = {
    "error_rate": (
        "(sum(rate(mlci_serve_inference_errors_total{ {{target}} }[{{interval}}])) or vector(0))"
        " / sum(rate(mlci_serve_inference_requests_total{ {{target}} }[{{interval}}]))",
        "ratio",
        "increase",
        0.0,
        0.01,
        True,
    ),
    "latency_mean": (
        "sum(rate(mlci_serve_inference_duration_seconds_sum{ {{target}} }[{{interval}}]))"
        " / sum(rate(mlci_serve_inference_duration_seconds_count{ {{target}} }[{{interval}}]))",
        "s",
        "increase",
        0.1,
        0.0,
        False,
    ),
    "latency_p50": (
        "histogram_quantile(0.5, sum by (le) "
        "(rate(mlci_serve_inference_duration_seconds_bucket{ {{target}} }[{{interval}}])))",
        "s",
        "increase",
        0.1,
        0.0,
        False,
    ),
    "latency_p99": (
        "histogram_quantile(0.99, sum by (le) "
        "(rate(mlci_serve_inference_duration_seconds_bucket{ {{target}} }[{{interval}}])))",
        "s",
        "increase",
        0.1,
        0.0,
        False,
    ),
}
TemplateName = Literal["error_rate", "latency_mean", "latency_p50", "latency_p99"]


def variables_in(query: str) -> list[str]:
    """The ``{{name}}`` variables a query template uses."""
    return _VARIABLE.findall(query)


def render(query: str, values: dict[str, str]) -> str:
    """The template with every ``{{name}}`` replaced (KeyError for an unknown one)."""
    return _VARIABLE.sub(lambda match: values[match.group(1)], query)


class EndpointConfig(Strict):
    """One of the two deployments: where the shadow replay reaches it, and how Prometheus
    tells its series apart."""

    url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="Base URL of its Open Inference Protocol server (http://host:port).",
    )
    image: str | None = Field(
        None,
        min_length=1,
        description="An image mlci starts through the Docker Engine API at DOCKER_HOST (Docker "
        "or Podman), on a loopback port, for the shadow replay; removed afterwards.",
    )
    port: int = Field(8080, ge=1, le=65535, description="image: the port it serves on.")
    model: str | None = Field(
        None, description="Model name in its URLs (default: the model's name in mlci.yaml)."
    )
    version: str | None = Field(None, description="Model version in its URLs (default: none).")
    digest: str | None = Field(
        None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="The image digest it runs, recorded and checked against the results "
        "(an image reference with @sha256: or the engine's record give it otherwise).",
    )
    target: str | None = Field(
        None,
        description="PromQL label matchers selecting its series, the {{target}} of every "
        'query (default with a version: model="MODEL",version="VERSION").',
    )

    @model_validator(mode="after")
    def _one_place(self) -> EndpointConfig:
        if self.url is not None and self.image is not None:
            raise ValueError("give 'url' or 'image', not both")
        if self.target is not None and ("{{" in self.target or "}}" in self.target):
            raise ValueError("'target' is a set of label matchers, not a template")
        return self


class ShadowLatencyConfig(Strict):
    """How the replay's latency is judged: per-request latencies are grouped into blocks of
    consecutive requests, and each block's median is one sample (requests close in time share
    the machine's state, so they are not independent samples)."""

    blocks: int = Field(10, ge=2, le=1000, description="Blocks of consecutive requests.")
    tolerance: Fraction = Field(0.2, description="Allowed slowdown, a fraction of the median.")
    tolerance_abs: Seconds | None = Field(None, description="Allowed slowdown in time.")
    weight: float = Field(1.0, gt=0)
    critical: bool = False


class ShadowConfig(Strict):
    """Replay the same requests to both deployments and compare what they answer."""

    file: ConfigPath | None = Field(
        None,
        description="JSON Lines file of Open Inference Protocol infer requests, one per line "
        "(default: the evaluation data's rows, so that slices can be compared).",
    )
    requests: int | None = Field(
        None, ge=1, le=10_000_000, description="Requests to mirror (default: one pass)."
    )
    duration: Seconds | None = Field(None, description="Stop mirroring after this long.")
    batch: int = Field(1, ge=1, le=100_000, description="Rows per request (data replay).")
    rate: float | None = Field(
        None, gt=0, le=1_000_000, description="Mirrored requests per second (default: no limit)."
    )
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight at once.")
    timeout: Seconds = Field(10.0, description="Longest wait for one answer.")
    slices: bool = Field(True, description="Compare predictions on every declared slice too.")
    max_flip_rate: Fraction = Field(
        0.02, description="Largest acceptable share of rows whose label changes."
    )
    max_mean_abs_diff: float = Field(
        0.02,
        ge=0,
        description="Largest acceptable mean absolute probability difference (value "
        "difference for regression).",
    )
    max_error_increase: Fraction = Field(
        0.01, description="Largest acceptable rise of the error rate (0.01: one point)."
    )
    bootstrap: int = Field(1000, ge=0, le=100_000, description="Replicates (requests resampled).")
    latency: ShadowLatencyConfig = Field(default_factory=ShadowLatencyConfig)


class LiveMetricConfig(Strict):
    """One metric queried from Prometheus for both deployments every interval."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:-]*$")
    template: TemplateName | None = Field(
        None, description="A ready-made query over mlci.serve's metrics."
    )
    query: str | None = Field(
        None,
        min_length=1,
        max_length=10_000,
        description="PromQL with {{target}} (this deployment's label matchers), {{interval}} "
        "(e.g. 60s), {{primary}}, {{canary}} and the variables of live.variables.",
    )
    unit: str | None = Field(
        None, description="Unit for reports: 's' shows milliseconds, 'ratio' percent."
    )
    bad: BadDirection | None = Field(
        None, description="Which change is harmful (default: the template's, else increase)."
    )
    tolerance: Fraction | None = Field(
        None, description="Allowed change as a fraction of the primary's median."
    )
    tolerance_abs: float | None = Field(None, ge=0, description="Allowed change in the unit.")
    weight: float = Field(1.0, gt=0, description="Share of the score.")
    critical: bool | None = Field(
        None, description="A harmful critical metric rolls back whatever the score."
    )

    @model_validator(mode="after")
    def _template_or_query(self) -> LiveMetricConfig:
        if (self.template is None) == (self.query is None):
            raise ValueError("give exactly one of 'template' or 'query'")
        if self.query is not None and "target" not in variables_in(self.query):
            raise ValueError(
                "the query must use {{target}}: it is run once for the primary and once for "
                "the canary"
            )
        return self

    @property
    def resolved(self) -> tuple[str, str, BadDirection, float, float, bool]:
        """(query, unit, bad, tolerance, tolerance_abs, critical) with the template's
        defaults filled in."""
        if self.template is not None:
            query, unit, bad, tol, tol_abs, critical = TEMPLATES[self.template]
        else:
            query, unit, bad, tol, tol_abs, critical = (
                self.query or "",
                "",
                "increase",
                0.1,
                0.0,
                False,
            )
        return (
            query,
            self.unit if self.unit is not None else unit,
            self.bad or bad,
            self.tolerance if self.tolerance is not None else tol,
            self.tolerance_abs if self.tolerance_abs is not None else tol_abs,
            self.critical if self.critical is not None else critical,
        )


class LiveConfig(Strict):
    """Query Prometheus for both deployments once per interval, as Flagger and Argo
    Rollouts do."""

    prometheus: str = Field(
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$", description="Prometheus's base URL."
    )
    interval: Seconds = Field(60.0, description="Time between queries; also {{interval}}.")
    iterations: int = Field(10, ge=2, le=10_000, description="Queries per metric and side.")
    min_iterations: int = Field(
        5, ge=2, description="Iterations before a clearly harmful critical metric may stop early."
    )
    variables: dict[str, str] = Field(
        default_factory=dict, description="More {{name}} variables for the queries."
    )
    metrics: list[LiveMetricConfig] = Field(min_length=1)

    @field_validator("variables")
    @classmethod
    def _own_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name in BUILTIN_VARIABLES:
                raise ValueError(f"'{name}' is set by mlci; choose another name")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"'{name}' is not a variable name (letters, digits, _)")
        return value

    @model_validator(mode="after")
    def _known_variables(self) -> LiveConfig:
        known = set(BUILTIN_VARIABLES) | set(self.variables)
        names: set[str] = set()
        for metric in self.metrics:
            if metric.name in names:
                raise ValueError(f"two metrics are named '{metric.name}'")
            names.add(metric.name)
            for variable in variables_in(metric.resolved[0]):
                if variable not in known:
                    raise ValueError(
                        f"metric '{metric.name}': unknown variable {{{{{variable}}}}}; known: "
                        + ", ".join(sorted(known))
                    )
        return self


class CanaryConfig(Strict):
    """Canary analysis: shadow replay and live metrics, one statistical judge."""

    primary: EndpointConfig = Field(description="The deployment serving production now.")
    canary: EndpointConfig = Field(description="The candidate's deployment.")
    weight: float = Field(
        0.0,
        ge=0,
        le=100,
        description="The canary's share of live traffic now, in percent (0: shadow only).",
    )
    steps: list[float] = Field(
        default_factory=lambda: [10.0, 25.0, 50.0, 100.0],
        min_length=1,
        description="The weights a rollout walks through; promote asks for the next one.",
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Level of every interval.")
    pass_score: float = Field(95.0, ge=0, le=100, description="Score to promote.")
    marginal_score: float = Field(
        75.0, ge=0, le=100, description="Below it: roll back; between it and pass_score: hold."
    )
    seed: int = Field(0, ge=0, description="Seed of the replay order and the bootstrap.")
    shadow: ShadowConfig | None = None
    live: LiveConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CanaryConfig:
        if self.shadow is None and self.live is None:
            raise ValueError("a canary needs 'shadow', 'live' or both")
        if self.marginal_score > self.pass_score:
            raise ValueError("'marginal_score' is above 'pass_score'")
        if any(not 0 < s <= 100 for s in self.steps) or sorted(set(self.steps)) != self.steps:
            raise ValueError("'steps' must be strictly increasing weights in (0, 100]")
        if self.shadow is not None:
            problem = too_few_replicates(self.shadow.bootstrap, self.confidence)
            if problem:
                raise ValueError(f"shadow.bootstrap: {problem}")
            for role, endpoint in (("primary", self.primary), ("canary", self.canary)):
                if endpoint.url is None and endpoint.image is None:
                    raise ValueError(f"the shadow replay needs {role}.url or {role}.image")
        if self.live is not None:
            if self.live.min_iterations > self.live.iterations:
                raise ValueError("live.min_iterations is above live.iterations")
            for role, endpoint in (("primary", self.primary), ("canary", self.canary)):
                if endpoint.target is None and endpoint.version is None:
                    raise ValueError(
                        f"live queries need {role}.target (PromQL label matchers) or {role}.version"
                    )
        return self


def target_of(endpoint: EndpointConfig, model: str) -> str:
    """The label matchers that select an endpoint's series."""
    if endpoint.target is not None:
        return endpoint.target
    name = (endpoint.model or model).replace("\\", "\\\\").replace('"', '\\"')
    version = (endpoint.version or "").replace("\\", "\\\\").replace('"', '\\"')
    return f'model="{name}",version="{version}"'
