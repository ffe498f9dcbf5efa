"""Generate the credit example's data and train its two models.

Usage::

    python examples/credit/train.py

The story
---------
A consumer lender scores personal-loan applications for the probability of default
(``defaulted`` = 1 when the loan went 90+ days past due within a year).

Each application records the applicant's ``age``, ``region``, ``employment`` status,
``home_ownership`` and the ``channel`` the application came through (``branch``,
``online`` or ``broker``), the ``loan_amount`` and ``term_months``, two credit-bureau
fields (``credit_history_years`` and ``late_payments`` in the last two years), the
applicant's stated annual ``income`` and the monthly ``debt_to_income`` ratio computed from
it (existing debt service plus the new instalment, over stated monthly income).

Default is driven by true affordability (debt service over *true* income), an unobserved
financial fragility that also shows up as late payments, a thin credit file, a mild
U-shape in age, renting, and some risk by employment status and channel.

For almost everyone, stated income is verified (payslips, pension statements, tax
returns for self-employed applicants who come directly), so stated income is true income
up to rounding. The exception is **self-employed applicants introduced by brokers**:
their income is self-certified through the broker. Brokers pad it the more the applicant
is under financial pressure (to get the file past the affordability check), while
comfortable applicants declare their taxable profit, often well below what they live on.
In that group a low stated debt-to-income is a warning sign rather than a comfort. Applicants in that group also
tend to be more fragile: many turned to a broker after being declined elsewhere.

The lender's broker partnership for self-employed applicants started only recently, so the
training window (``data/train.csv``) holds very few of them, while the latest quarter
(``data/eval.csv``) holds about 2,400.

The two models
--------------
* ``models/baseline.onnx`` — the production scorecard: a logistic regression on the
  application and bureau fields. It predates the affordability data and ignores
  ``income`` and ``debt_to_income``.
* ``models/candidate.onnx`` — a gradient-boosted model on every field, including the
  affordability features. Affordability is the strongest signal in the data, so the
  candidate is clearly better overall; but it trusts stated income everywhere, so it is
  clearly worse than the scorecard on self-employed applicants introduced by brokers.

Both models take the same inputs, one ONNX input per column, and output class
probabilities as a plain tensor. The script checks that ONNX Runtime reproduces
scikit-learn's probabilities, then checks the story above on the evaluation data with a
paired bootstrap and prints a summary.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
MODELS_DIR = HERE / "models"

SEED = 20_240_601
N_TRAIN = 40_000
N_EVAL = 20_000
N_REFERENCE = 5_000
BOOTSTRAP_REPLICATES = 500
# ONNX Runtime computes in float32; anything above this is a conversion bug, not rounding.
ONNX_TOLERANCE = 1e-4

TARGET = "defaulted"
ID = "application_id"
CATEGORICAL = ["region", "employment", "channel", "home_ownership"]
NUMERIC = [
    "age",
    "income",
    "loan_amount",
    "term_months",
    "credit_history_years",
    "late_payments",
    "debt_to_income",
]
FEATURES = NUMERIC + CATEGORICAL
# The scorecard was built before stated income was captured in a usable form.
BASELINE_NUMERIC = [c for c in NUMERIC if c not in ("income", "debt_to_income")]

REGIONS = {"north": 0.22, "south": 0.24, "east": 0.18, "west": 0.16, "central": 0.20}
REGION_RISK = {"north": -0.05, "south": 0.10, "east": 0.05, "west": -0.10, "central": 0.0}
EMPLOYMENT = {
    "salaried": 0.55,
    "self-employed": 0.15,
    "contractor": 0.12,
    "retired": 0.11,
    "student": 0.07,
}
EMPLOYMENT_RISK = {
    "salaried": 0.0,
    "self-employed": 0.25,
    "contractor": 0.30,
    "retired": -0.05,
    "student": 0.35,
}
# Mean log annual income by employment status, at age 25.
EMPLOYMENT_LOG_INCOME = {
    "salaried": 10.9,
    "self-employed": 10.8,
    "contractor": 10.85,
    "retired": 10.3,
    "student": 9.6,
}
CHANNELS = ("branch", "online", "broker")
# Channel mix (branch, online, broker) by employment; self-employed is set per window.
CHANNEL_MIX = {
    "salaried": (0.40, 0.45, 0.15),
    "contractor": (0.40, 0.45, 0.15),
    "retired": (0.70, 0.20, 0.10),
    "student": (0.15, 0.80, 0.05),
}
CHANNEL_RISK = {"branch": 0.0, "online": 0.10, "broker": 0.20}
HOME_RISK = {"own": -0.20, "mortgage": 0.0, "rent": 0.25}

# Share of self-employed applicants who come through a broker, before and after the
# broker partnership for self-employed applicants started.
BROKER_SHARE_SELF_EMPLOYED_TRAIN = 0.02
BROKER_SHARE_SELF_EMPLOYED_EVAL = 0.80
# Extra (unobserved) financial fragility of self-employed applicants who come through a broker.
SUBGROUP_FRAGILITY_SHIFT = 0.6

SUBGROUP_NAME = 'self-employed via broker (employment == "self-employed" and channel == "broker")'


def in_subgroup(frame: pd.DataFrame) -> np.ndarray:
    """Rows of the subgroup where stated income cannot be trusted."""
    mask = (frame["employment"] == "self-employed") & (frame["channel"] == "broker")
    return mask.to_numpy(dtype=bool)


def _pick(rng: np.random.Generator, shares: dict[str, float], n: int) -> np.ndarray:
    return rng.choice(list(shares), size=n, p=list(shares.values())).astype(object)


def _lookup(table: dict[str, float], keys: np.ndarray) -> np.ndarray:
    return np.array([table[k] for k in keys], dtype=float)


def generate_applications(
    n: int, rng: np.random.Generator, broker_share_self_employed: float, first_id: int
) -> pd.DataFrame:
    """Draw ``n`` loan applications and their outcomes (see the module docstring)."""
    employment = _pick(rng, EMPLOYMENT, n)
    region = _pick(rng, REGIONS, n)

    age = np.clip(rng.normal(41, 11, n), 20, 67)
    students = employment == "student"
    retired = employment == "retired"
    age[students] = rng.uniform(18, 28, students.sum())
    age[retired] = rng.uniform(60, 85, retired.sum())
    age = np.round(age)

    channel = np.empty(n, dtype=object)
    mix = dict(CHANNEL_MIX)
    b = broker_share_self_employed
    mix["self-employed"] = ((1 - b) / 2, (1 - b) / 2, b)
    for status, shares in mix.items():
        rows = employment == status
        channel[rows] = rng.choice(CHANNELS, size=rows.sum(), p=shares)
    subgroup = (employment == "self-employed") & (channel == "broker")

    # Older applicants more often own their home; mortgages peak in mid-life.
    p_own = np.clip((age - 25) / 60, 0.02, 0.8)
    p_mortgage = np.clip(0.5 - np.abs(age - 42) / 50, 0.05, 0.5)
    u = rng.uniform(size=n)
    home = np.where(u < p_own, "own", np.where(u < p_own + p_mortgage, "mortgage", "rent"))
    home = home.astype(object)

    history = np.clip((age - 18) * rng.uniform(0.2, 0.9, n) + rng.normal(0, 1, n), 0, None)
    history = np.round(history, 1)

    # Unobserved financial fragility; applicants who turn to a broker as self-employed have
    # often been declined elsewhere.
    fragility = rng.normal(0, 1, n) + SUBGROUP_FRAGILITY_SHIFT * subgroup
    late_payments = rng.poisson(np.exp(-1.2 + 0.6 * fragility))

    log_income = (
        _lookup(EMPLOYMENT_LOG_INCOME, employment)
        + 0.01 * np.clip(age - 25, 0, 30)
        - 0.15 * fragility  # fragile households earn a little less
    )
    true_income = np.exp(rng.normal(log_income, 0.4))
    loan_amount = np.exp(rng.normal(np.log(true_income) - 1.2, 0.5))
    loan_amount = np.clip(np.round(loan_amount / 500) * 500, 1_000, 80_000)
    term_months = rng.choice([12, 24, 36, 60], size=n, p=[0.10, 0.30, 0.35, 0.25])
    existing_debt_service = (true_income / 12) * np.clip(
        rng.gamma(2.0, 0.07, n) + 0.05 * fragility, 0, None
    )
    instalment = loan_amount / term_months * 1.06  # about 6% interest over the term
    debt_service = existing_debt_service + instalment
    true_dti = debt_service / (true_income / 12)

    # Verified income is true income within a few percent. Broker-certified income for
    # self-employed applicants moves with financial pressure: padded for fragile applicants,
    # declared as (low) taxable profit by comfortable ones. So in that group a *low* stated
    # debt-to-income goes with *high* risk.
    padding = rng.normal(0, 0.03, n)
    pressure = fragility[subgroup] - SUBGROUP_FRAGILITY_SHIFT
    noise = rng.normal(0, 0.1, subgroup.sum())
    padding[subgroup] = np.clip(0.1 + pressure, -0.9, 1.6) + noise
    income = np.maximum(np.round(true_income * np.exp(padding), -2), 1_000)
    debt_to_income = np.round(debt_service / (income / 12), 3)

    logit = (
        -1.8
        + 1.8 * np.log(true_dti / 0.3)
        + 3.0 * np.clip(true_dti - 0.45, 0, None)  # steeper once repayments bite
        + 0.35 * np.minimum(late_payments, 5)
        - 0.07 * np.minimum(history, 15)
        + 0.0006 * (age - 45) ** 2  # the youngest and the oldest default a little more
        + _lookup(EMPLOYMENT_RISK, employment)
        + _lookup(CHANNEL_RISK, channel)
        + _lookup(HOME_RISK, home)
        + _lookup(REGION_RISK, region)
        + 0.6 * fragility
    )
    defaulted = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)

    return pd.DataFrame(
        {
            ID: np.arange(first_id, first_id + n),
            "age": age.astype(int),
            "income": income.astype(int),
            "loan_amount": loan_amount.astype(int),
            "term_months": term_months,
            "credit_history_years": history,
            "late_payments": late_payments,
            "debt_to_income": debt_to_income,
            "region": region,
            "employment": employment,
            "channel": channel,
            "home_ownership": home,
            TARGET: defaulted,
        }
    )


def write_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write train, eval and reference CSVs; return train and eval as read back from disk."""
    rng = np.random.default_rng(SEED)
    train = generate_applications(N_TRAIN, rng, BROKER_SHARE_SELF_EMPLOYED_TRAIN, 1_000_001)
    evaluation = generate_applications(
        N_EVAL, rng, BROKER_SHARE_SELF_EMPLOYED_EVAL, 1_000_001 + N_TRAIN
    )
    reference = train.sample(n=N_REFERENCE, random_state=SEED).sort_values(ID)

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    paths = {name: DATA_DIR / f"{name}.csv" for name in ("train", "eval", "reference")}
    train.to_csv(paths["train"], index=False)
    evaluation.to_csv(paths["eval"], index=False)
    reference.to_csv(paths["reference"], index=False)
    # Train and evaluate on exactly what mlci will read from disk.
    return pd.read_csv(paths["train"]), pd.read_csv(paths["eval"])


def build_baseline() -> Pipeline:
    """The production scorecard: logistic regression without the affordability features."""
    features = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("numeric", StandardScaler(), BASELINE_NUMERIC),
        ],
        remainder="drop",
        sparse_threshold=0.0,
    )
    return Pipeline([("features", features), ("classifier", LogisticRegression(max_iter=1000))])


def build_candidate() -> Pipeline:
    """Gradient boosting on every field, affordability included."""
    features = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            # Trees need no scaling; passing raw values through keeps sklearn's and ONNX
            # Runtime's float32 split comparisons identical.
            ("numeric", "passthrough", NUMERIC),
        ],
        sparse_threshold=0.0,
    )
    classifier = GradientBoostingClassifier(
        n_estimators=150, max_depth=3, learning_rate=0.1, subsample=0.7, random_state=SEED
    )
    return Pipeline([("features", features), ("classifier", classifier)])


def onnx_inputs(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """One [n, 1] array per feature column, typed as the ONNX inputs declare."""
    feeds: dict[str, np.ndarray] = {}
    for column in FEATURES:
        dtype = object if column in CATEGORICAL else np.float32
        feeds[column] = frame[column].to_numpy(dtype=dtype).reshape(-1, 1)
    return feeds


def export_onnx(pipeline: Pipeline, path: Path, check: pd.DataFrame) -> None:
    """Convert ``pipeline`` to ONNX and fail unless ONNX Runtime agrees with sklearn."""
    # Both models declare every feature, so they accept the same application record.
    initial_types = [
        (c, StringTensorType([None, 1]) if c in CATEGORICAL else FloatTensorType([None, 1]))
        for c in FEATURES
    ]
    classifier = pipeline.named_steps["classifier"]
    onnx_model = to_onnx(
        pipeline,
        initial_types=initial_types,
        # Probabilities as a [n, 2] tensor instead of a list of {class: probability} maps.
        options={id(classifier): {"zipmap": False}},
        name=path.stem,
    )
    # skl2onnx collects opsets in a set, so their order (and the file's sha256) would change
    # from run to run with Python's string hashing; sort them for byte-identical files.
    opsets = sorted(onnx_model.opset_import, key=lambda opset: opset.domain)
    del onnx_model.opset_import[:]
    onnx_model.opset_import.extend(opsets)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_model.SerializeToString())

    expected = pipeline.predict_proba(check[FEATURES])
    got = onnx_predict(path, check)[1]
    diff = float(np.max(np.abs(expected - got)))
    if not diff < ONNX_TOLERANCE:
        raise RuntimeError(
            f"{path.name}: ONNX Runtime probabilities differ from scikit-learn's by {diff:.2e}"
        )
    print(
        f"exported {path.relative_to(HERE)} ({path.stat().st_size / 1024:.0f} KiB, "
        f"max |onnx - sklearn| = {diff:.1e})"
    )


def onnx_predict(path: Path, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Labels and class probabilities from ONNX Runtime."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, proba = session.run(None, onnx_inputs(frame))
    return np.asarray(labels).ravel(), np.asarray(proba)


def weighted_auc(y: np.ndarray, score_rank: np.ndarray, n_ranks: int, w: np.ndarray) -> float:
    """ROC AUC with row weights, given each row's dense score rank (ties count half).

    Ranking once and reweighting makes each bootstrap replicate O(n) instead of a sort.
    """
    pos = np.bincount(score_rank, weights=w * y, minlength=n_ranks)
    neg = np.bincount(score_rank, weights=w * (1 - y), minlength=n_ranks)
    neg_below = np.cumsum(neg) - neg
    return float((pos * (neg_below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


@dataclass(frozen=True)
class Comparison:
    """Baseline and candidate values of one metric, and the bootstrap interval of the gap."""

    metric: str
    baseline: float
    candidate: float
    low: float
    high: float

    @property
    def difference(self) -> float:
        return self.candidate - self.baseline

    def __str__(self) -> str:
        return (
            f"{self.metric:<9} baseline {self.baseline:.3f}  candidate {self.candidate:.3f}  "
            f"diff {self.difference:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"
        )


def compare(
    y: np.ndarray,
    base_score: np.ndarray,
    cand_score: np.ndarray,
    base_label: np.ndarray,
    cand_label: np.ndarray,
    rng: np.random.Generator,
) -> tuple[Comparison, Comparison]:
    """ROC AUC and accuracy of both models with paired-bootstrap 95% intervals of the gap."""
    n = len(y)
    ranks = [np.unique(s, return_inverse=True) for s in (base_score, cand_score)]
    (base_u, base_r), (cand_u, cand_r) = ranks
    base_ok = (base_label == y).astype(float)
    cand_ok = (cand_label == y).astype(float)

    auc_gaps = np.empty(BOOTSTRAP_REPLICATES)
    acc_gaps = np.empty(BOOTSTRAP_REPLICATES)
    for b in range(BOOTSTRAP_REPLICATES):
        # Paired: both models are scored on the same resampled rows.
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        auc_gaps[b] = weighted_auc(y, cand_r, len(cand_u), w) - weighted_auc(
            y, base_r, len(base_u), w
        )
        # Elementwise, not a BLAS dot: threaded BLAS on tiny vectors only adds contention.
        acc_gaps[b] = (w * (cand_ok - base_ok)).sum() / w.sum()

    auc = (roc_auc_score(y, base_score), roc_auc_score(y, cand_score))
    # The fast bootstrap AUC must agree with scikit-learn on the unweighted sample.
    ones = np.ones(n)
    fast = (weighted_auc(y, base_r, len(base_u), ones), weighted_auc(y, cand_r, len(cand_u), ones))
    if max(abs(fast[0] - auc[0]), abs(fast[1] - auc[1])) > 1e-9:
        raise RuntimeError(f"bootstrap ROC AUC {fast} disagrees with scikit-learn's {auc}")
    acc = (accuracy_score(y, base_label), accuracy_score(y, cand_label))
    auc_low, auc_high = np.quantile(auc_gaps, [0.025, 0.975])
    acc_low, acc_high = np.quantile(acc_gaps, [0.025, 0.975])
    return (
        Comparison("roc_auc", auc[0], auc[1], float(auc_low), float(auc_high)),
        Comparison("accuracy", acc[0], acc[1], float(acc_low), float(acc_high)),
    )


def check_story(evaluation: pd.DataFrame) -> list[str]:
    """Print overall and subgroup metrics; return the parts of the story that do not hold."""
    y = evaluation[TARGET].to_numpy()
    base_label, base_proba = onnx_predict(MODELS_DIR / "baseline.onnx", evaluation)
    cand_label, cand_proba = onnx_predict(MODELS_DIR / "candidate.onnx", evaluation)
    rng = np.random.default_rng(SEED)
    subgroup = in_subgroup(evaluation)

    problems: list[str] = []
    for name, rows in (("overall", np.ones(len(y), dtype=bool)), (SUBGROUP_NAME, subgroup)):
        auc, acc = compare(
            y[rows],
            base_proba[rows, 1],
            cand_proba[rows, 1],
            base_label[rows],
            cand_label[rows],
            rng,
        )
        print(f"\n{name}: {rows.sum()} rows, default rate {y[rows].mean():.3f}")
        print(f"  {auc}\n  {acc}")
        if name == "overall":
            if not auc.low > 0:
                problems.append("candidate's ROC AUC is not clearly better overall")
            if acc.difference < 0:
                problems.append("candidate's accuracy is worse overall")
        else:
            if not 1_000 <= rows.sum() <= 3_000:
                problems.append(f"subgroup has {rows.sum()} rows, expected 1,000-3,000")
            if not auc.high < 0:
                problems.append("candidate's ROC AUC is not clearly worse on the subgroup")
            if not acc.high < 0:
                problems.append("candidate's accuracy is not clearly worse on the subgroup")
    return problems


def main() -> int:
    start = time.perf_counter()
    train, evaluation = write_data()
    print(
        f"wrote {N_TRAIN} training, {N_EVAL} evaluation and {N_REFERENCE} reference rows "
        f"to {DATA_DIR.relative_to(HERE)}/"
    )

    for name, pipeline in (("baseline", build_baseline()), ("candidate", build_candidate())):
        pipeline.fit(train[FEATURES], train[TARGET])
        export_onnx(pipeline, MODELS_DIR / f"{name}.onnx", evaluation)

    problems = check_story(evaluation)
    print(f"\ndone in {time.perf_counter() - start:.1f} s")
    if problems:
        print("\nthe example no longer tells its story:", *problems, sep="\n  - ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
