"""The `tests:` section of mlci.yaml.

Every check is one entry of ``tests.checks`` with a ``kind`` and the parameters of that kind::

    tests:
      checks:
        - kind: metric
          metric: roc_auc
          min: 0.75
          slice: region=north
        - kind: invariance
          feature: application_id
        - kind: drift
          wasserstein: 0.1
      pytest: [tests/test_model.py]
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mlci.configbase import ConfigPath, Strict, enough_replicates
from mlci.results.tests import CheckKind

ContractPart = Literal["inputs", "outputs", "probabilities", "determinism", "parity"]
CONTRACT_PARTS: tuple[str, ...] = ("inputs", "outputs", "probabilities", "determinism", "parity")
IntegrityPart = Literal[
    "leakage", "new_categories", "spellings", "conflicting_labels", "relation_changed", "constant"
]
INTEGRITY_PARTS: tuple[str, ...] = (
    "leakage",
    "new_categories",
    "spellings",
    "conflicting_labels",
    "relation_changed",
    "constant",
)
DATA_KINDS = frozenset({"schema", "missing", "range", "drift", "multivariate_drift", "integrity"})
BEHAVIOURAL_KINDS = frozenset({"invariance", "directional", "robustness"})

_COMMON = {"kind", "id", "required"}
_ROWS = {"slice", "where"}
# How a check with an interval judges it.
_INTERVALS = {"evidence", "bootstrap", "confidence", "seed"}
# The parameters each kind takes (besides kind, id and required).
PARAMETERS: dict[str, frozenset[str]] = {
    "metric": frozenset({"metric", "min", "max", *_ROWS}),
    "invariance": frozenset(
        {"feature", "perturb", "within", "value", "tolerance", "max_rate", "seed", "class_", *_ROWS}
    ),
    "directional": frozenset(
        {"feature", "direction", "step", "tolerance", "max_rate", "class_", *_ROWS}
    ),
    "robustness": frozenset(
        {"features", "noise", "max_rate", "tolerance", "seed", "class_", *_ROWS}
    ),
    "contract": frozenset({"checks", "inputs", "tolerance", "rows"}),
    "schema": frozenset({"allow_extra"}),
    "missing": frozenset({"features", "max_share", "max_increase"}),
    "range": frozenset({"features", "margin", "max_share"}),
    "drift": frozenset(
        {
            "features",
            "wasserstein",
            "jensen_shannon",
            "psi",
            "ks_pvalue",
            "chi2_pvalue",
            "bins",
            "min_reference_share",
            *_INTERVALS,
        }
    ),
    "multivariate_drift": frozenset({"features", "max_auc", "max_rows", "folds", *_INTERVALS}),
    "integrity": frozenset(
        {"checks", "features", "max_share", "max_change", "dominant_share", "bins", *_INTERVALS}
    ),
    "trivial_model": frozenset({"metric", "margin", *_INTERVALS}),
}
# Parameters a kind cannot do without.
REQUIRED: dict[str, tuple[str, ...]] = {
    "metric": ("metric",),
    "invariance": ("feature",),
    "directional": ("feature",),
}
# Defaults that depend on the kind (None in the model means "the kind's default").
DEFAULT_TOLERANCE = {
    "invariance": 1e-6,
    "directional": 1e-6,
    "robustness": 0.0,
    "contract": 1e-4,
}
DEFAULT_MAX_RATE = {"invariance": 0.0, "directional": 0.0, "robustness": 0.05}
# robustness on a regressor: a prediction "flips" when noise of up to `noise` standard
# deviations on the inputs moves it by more than this many times `noise` standard deviations
# of the target: a model that amplifies the noise. A linear model moves by about
# noise / sqrt(3) of its spread and stays far inside; a model with sharp steps does not.
REGRESSION_ROBUSTNESS_FACTOR = 2.0
DEFAULT_MAX_SHARE = {"missing": None, "range": 0.01, "integrity": 0.0}

Scalar = str | int | float | bool


class CheckConfig(Strict):
    """One declarative model test or data check."""

    kind: CheckKind = Field(
        description="metric, invariance, directional, robustness, contract, trivial_model "
        "(model tests); schema, missing, range, drift, multivariate_drift, integrity (data "
        "checks against data.reference)."
    )
    id: str | None = Field(
        None,
        min_length=1,
        description="Stable name of the test in results (default: derived from kind and feature).",
    )
    required: bool = Field(
        True, description="A failure of a test that is not required is advisory for the gate."
    )
    slice: str | None = Field(
        None, description="Run on the rows of this declared slice (evaluation.slices), by name."
    )
    where: str | None = Field(
        None, description='Run on the rows matching this expression, e.g. "age < 30".'
    )
    # metric
    metric: str | None = Field(None, description="metric: the metric to check.")
    min: float | None = Field(None, description="metric: the lowest acceptable value.")
    max: float | None = Field(None, description="metric: the highest acceptable value.")
    # invariance / directional
    feature: str | None = Field(None, description="The feature to perturb.")
    perturb: Literal["shuffle", "replace"] = Field(
        "shuffle",
        description="invariance: shuffle the column across rows (within 'within' groups), or "
        "replace every value with 'value'.",
    )
    within: str | None = Field(
        None, description="invariance: shuffle only within groups of this column."
    )
    value: Scalar | None = Field(None, description="invariance: the replacement value.")
    direction: Literal["increasing", "decreasing"] = Field(
        "increasing",
        description="directional: raising the feature must not lower ('increasing') or raise "
        "('decreasing') the score.",
    )
    step: float | None = Field(
        None,
        gt=0,
        description="directional: how much to raise the feature (default: one standard deviation).",
    )
    # robustness
    features: list[str] | None = Field(
        None,
        min_length=1,
        description="robustness: numeric features to perturb (default: every numeric feature); "
        "data checks: features to check (default: every feature).",
    )
    noise: float = Field(
        0.1,
        gt=0,
        description="robustness: uniform noise bounded by this many standard deviations of each "
        "feature.",
    )
    seed: int = Field(0, ge=0, description="Seed of shuffles, noise, sampling and resampling.")
    tolerance: float | None = Field(
        None,
        ge=0,
        description="invariance: largest allowed change of a score; directional: largest "
        "allowed move against the direction; robustness (regression): largest allowed change "
        "of a prediction (default: twice `noise` in standard deviations of the target); contract: "
        "probability sum, determinism and parity tolerance (relative above 1).",
    )
    max_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of rows allowed to violate the test (robustness: label flips; "
        "default 0.05; otherwise 0).",
    )
    class_: Scalar | None = Field(
        None,
        alias="class",
        description="The class whose probability is the score (default: the positive class of a "
        "binary model; every class for invariance and robustness).",
    )
    # contract
    checks: list[ContractPart | IntegrityPart] | None = Field(
        None,
        min_length=1,
        description="contract: inputs, outputs, probabilities, determinism, parity; integrity: "
        "leakage, new_categories, spellings, conflicting_labels, relation_changed, constant "
        "(default: all).",
    )
    inputs: dict[str, Literal["float", "int", "string", "bool"]] | None = Field(
        None, description="contract: the model inputs expected, name -> type."
    )
    rows: int = Field(
        10_000, ge=1, description="contract: rows predicted again for determinism and parity."
    )
    # data checks
    allow_extra: bool = Field(
        True, description="schema: allow columns the reference does not have."
    )
    max_share: float | None = Field(
        None,
        ge=0,
        le=1,
        description="missing: highest share of missing values per feature (default: the "
        "reference's share plus max_increase); range: highest share of out-of-range values per "
        "feature (default 0.01); integrity: highest share of rows leaked, with a new category "
        "or with conflicting labels (default 0).",
    )
    max_increase: float = Field(
        0.01,
        ge=0,
        le=1,
        description="missing: allowed rise of the missing share over the reference.",
    )
    margin: float = Field(
        0.0,
        ge=0,
        description="range: widen the reference range by this fraction of its width on each "
        "side; trivial_model: how much better than the trivial model (majority class or mean) "
        "the candidate must be, in the metric's units.",
    )
    wasserstein: float | None = Field(
        0.1,
        gt=0,
        description="drift: highest Wasserstein distance of a numeric feature, in standard "
        "deviations of the reference (null: not checked).",
    )
    jensen_shannon: float | None = Field(
        0.1,
        gt=0,
        le=0.833,
        description="drift: highest Jensen-Shannon distance (natural log) between the category "
        "shares of a categorical feature (null: not checked).",
    )
    psi: float | None = Field(
        0.2, gt=0, description="drift: highest population stability index (null: not checked)."
    )
    ks_pvalue: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="drift: fail numeric features whose Kolmogorov-Smirnov p-value is below this "
        "(default: the p-value is only reported; with many rows any difference is significant).",
    )
    chi2_pvalue: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="drift: fail categorical features whose chi-square p-value is below this "
        "(default: the p-value is only reported).",
    )
    evidence: Literal["interval", "point"] = Field(
        "interval",
        description="drift, multivariate_drift, integrity, trivial_model: judge the whole "
        "confidence interval (a breach only when all of it is beyond the limit) or the point "
        "estimate.",
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Level of intervals.")
    bootstrap: int = Field(
        500, ge=0, le=100_000, description="Bootstrap replicates of intervals (0: point values)."
    )
    _enough_replicates = field_validator("bootstrap")(enough_replicates)
    max_auc: float = Field(
        0.55,
        gt=0.5,
        lt=1,
        description="multivariate_drift: highest ROC AUC of a classifier telling reference rows "
        "from evaluation rows (0.5: indistinguishable; 0.55: about a tenth of the rows lie "
        "where the reference has almost none).",
    )
    max_rows: int = Field(
        50_000,
        ge=100,
        description="multivariate_drift: rows drawn from each dataset to train the classifier.",
    )
    folds: int = Field(3, ge=2, le=10, description="multivariate_drift: cross-validation folds.")
    max_change: float = Field(
        0.2,
        gt=0,
        le=2,
        description="integrity (relation_changed): largest change of a feature's predictive "
        "power for the label (Gini for classifiers, correlation for regressors) between the "
        "reference and the evaluation data.",
    )
    dominant_share: float = Field(
        0.99,
        gt=0,
        le=1,
        description="integrity (constant): a feature whose most common value covers at least "
        "this share of the rows is almost constant.",
    )

    bins: int = Field(
        10, ge=2, le=100, description="drift: quantile bins of numeric features for PSI."
    )
    min_reference_share: float = Field(
        1e-4,
        gt=0,
        lt=1,
        description="drift: floor of a bin's share in PSI, so an empty bin does not divide by zero.",
    )

    @model_validator(mode="after")
    def _fits_kind(self) -> CheckConfig:
        allowed = PARAMETERS[self.kind] | _COMMON
        for name in self.model_fields_set:
            if name not in allowed:
                shown = "class" if name == "class_" else name
                takes = ", ".join(
                    sorted("class" if p == "class_" else p for p in PARAMETERS[self.kind])
                )
                raise ValueError(
                    f"'{shown}' does not apply to a {self.kind} test (it takes: {takes})"
                )
        for name in REQUIRED.get(self.kind, ()):
            if getattr(self, name) is None:
                raise ValueError(f"a {self.kind} test needs '{name}'")
        if self.slice is not None and self.where is not None:
            raise ValueError("give either 'slice' or 'where', not both")
        if self.kind == "metric" and self.min is None and self.max is None:
            raise ValueError("a metric test needs 'min' or 'max'")
        if self.kind == "invariance" and self.perturb == "replace" and self.value is None:
            raise ValueError("perturb: replace needs a 'value'")
        if self.kind == "invariance" and self.perturb != "shuffle" and self.within is not None:
            raise ValueError("'within' goes with perturb: shuffle")
        if self.kind == "drift" and all(
            getattr(self, name) is None
            for name in ("wasserstein", "jensen_shannon", "psi", "ks_pvalue", "chi2_pvalue")
        ):
            raise ValueError(
                "a drift check needs at least one of 'wasserstein', 'jensen_shannon', 'psi', "
                "'ks_pvalue', 'chi2_pvalue'"
            )
        if self.checks is not None:
            parts = {"contract": CONTRACT_PARTS, "integrity": INTEGRITY_PARTS}[self.kind]
            for name in self.checks:
                if name not in parts:
                    raise ValueError(
                        f"'{name}' is not a part of the {self.kind} check (parts: {', '.join(parts)})"
                    )
        return self

    def get_tolerance(self) -> float:
        """The tolerance, or the kind's default."""
        if self.tolerance is not None:
            return self.tolerance
        return DEFAULT_TOLERANCE.get(self.kind, 0.0)

    def get_max_rate(self) -> float:
        """The allowed share of violating rows, or the kind's default."""
        if self.max_rate is not None:
            return self.max_rate
        return DEFAULT_MAX_RATE.get(self.kind, 0.0)

    def params(self) -> dict[str, Any]:
        """The parameters of this check's kind, with their values."""
        return {p: getattr(self, p) for p in sorted(PARAMETERS[self.kind])}


class TestsConfig(Strict):
    """Model tests and data checks."""

    __test__ = False  # not a pytest test class despite the name

    checks: list[CheckConfig] = Field(
        default_factory=list, description="Declarative model tests and data checks, in order."
    )
    pytest: list[ConfigPath] = Field(
        default_factory=list,
        description="Your own pytest files of model tests (relative to mlci.yaml); they get the "
        "mlci fixtures and run with the declarative tests.",
    )
    timeout: float = Field(
        600, gt=0, description="Seconds the pytest files may run before they count as an error."
    )
