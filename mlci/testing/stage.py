"""The tests stage: declarative model tests, data checks and the user's pytest files.

Each entry of ``tests.checks`` becomes one or more results (a contract check one per part, a
drift check one per feature). A check that cannot run because of its own configuration is a
configuration error (exit 2); a model that raises while a check runs gives status "error".
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np

from mlci.errors import ConfigError, MlciError
from mlci.files import write_atomic
from mlci.results.base import jsonable
from mlci.results.tests import (
    ModelTestDetails,
    ModelTestResult,
    ModelTests,
    ModelTestSummary,
    TestKind,
)
from mlci.stages import ModelContext, StageSkipped
from mlci.suggest import did_you_mean
from mlci.testing import checks as C
from mlci.testing import data_checks as D
from mlci.testing import perturb
from mlci.testing.config import (
    CONTRACT_PARTS,
    DATA_KINDS,
    REGRESSION_ROBUSTNESS_FACTOR,
    CheckConfig,
    TestsConfig,
)
from mlci.testing.junit import read_cases, to_xml
from mlci.testing.outcome import Outcome, fmt, not_applicable
from mlci.testing.runners import EXTRA_CHECKS

JUNIT_NAME = "junit.xml"


def run(ctx: ModelContext) -> ModelTests:
    """Run the configured model tests and data checks; write junit.xml into the staging folder."""
    cfg = ctx.loaded.config.tests
    if cfg is None or (not cfg.checks and not cfg.pytest):
        raise StageSkipped("no tests configured")
    runner = Runner(ctx, cfg)
    results = runner.run_all()
    summary = ModelTestSummary(
        total=len(results),
        passed=sum(r.status == "passed" for r in results),
        failed=sum(r.status == "failed" for r in results),
        error=sum(r.status == "error" for r in results),
        skipped=sum(r.status == "skipped" for r in results),
    )
    write_atomic(ctx.staging / JUNIT_NAME, to_xml(results, f"mlci.{ctx.name}"))
    return ModelTests(summary=summary, junit=JUNIT_NAME, results=results)


class Runner:
    """Runs every check of one model, sharing predictions, slices and the reference data."""

    def __init__(self, ctx: ModelContext, cfg: TestsConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.data = ctx.data
        self.results: list[ModelTestResult] = []
        self._ids: dict[str, int] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def error(
        self, i: int, field: str | tuple[str | int, ...], message: str, tip: str | None = None
    ) -> ConfigError:
        loc = ("tests", "checks", i, *((field,) if isinstance(field, str) else field))
        return self.ctx.loaded.error(loc, message, tip=tip)

    def run_all(self) -> list[ModelTestResult]:
        if any(c.kind not in DATA_KINDS for c in self.cfg.checks):
            # Predict once up front so no single test carries the cost; a model that fails
            # here fails again, as an "error", in every test that needs its predictions.
            try:
                self.ctx.aligned  # noqa: B018
            except MlciError:
                pass
        for i, check in enumerate(self.cfg.checks):
            self.ctx.progress(f"test {i + 1}/{len(self.cfg.checks)}: {check.kind}")
            for test_id, outcome, duration in self.run_check(i, check):
                self.add(test_id, check.kind, outcome, duration, check.required)
        if self.cfg.pytest:
            self.ctx.progress(f"running {len(self.cfg.pytest)} pytest file(s)")
            for test_id, outcome, duration in run_pytest(self.ctx, self.cfg):
                self.add(test_id, "pytest", outcome, duration, True)
        return self.results

    def add(
        self, test_id: str, kind: TestKind, outcome: Outcome, duration: float, required: bool
    ) -> None:
        seen = self._ids.get(test_id, 0)
        self._ids[test_id] = seen + 1
        if seen:
            test_id = f"{test_id}#{seen + 1}"
        self.results.append(
            ModelTestResult(
                id=test_id,
                kind=kind,
                status=outcome.status,
                message=outcome.message,
                observed=jsonable(outcome.observed),
                threshold=jsonable(outcome.threshold),
                duration_s=round(duration, 4),
                required=required,
                details=ModelTestDetails.model_validate(jsonable(outcome.details)),
            )
        )

    def timed(self, i: int, fn: Callable[[], Outcome]) -> tuple[Outcome, float]:
        """Run one check; a model or data failure at run time is an "error" outcome."""
        started = time.perf_counter()
        try:
            outcome = fn()
        except ConfigError:
            raise
        except C.CheckError as exc:
            raise self.error(i, exc.field, str(exc)) from None
        except MlciError as exc:
            outcome = Outcome("error", exc.diagnostics())
        except Exception as exc:  # the model itself raised: report it, keep testing
            outcome = Outcome("error", f"the model raised {exc.__class__.__name__}: {exc}"[:500])
        return outcome, time.perf_counter() - started

    def run_check(self, i: int, check: CheckConfig) -> Iterator[tuple[str, Outcome, float]]:
        kind = check.kind
        if kind in EXTRA_CHECKS:
            yield from EXTRA_CHECKS[kind](self, i, check)
        elif kind in ("schema", "missing", "range", "drift"):
            yield from self.data_check(i, check)
        elif kind == "contract":
            yield from self.contract(i, check)
        else:
            rows = self.rows(i, check)
            test_id = check.id or self.default_id(check)
            if rows is not None and len(rows) == 0:
                yield test_id, Outcome("skipped", f"no rows match {self.scope(check)}"), 0.0
                return
            runner = getattr(self, kind)
            outcome, duration = self.timed(i, lambda: runner(i, check, rows))
            yield test_id, outcome, duration

    def default_id(self, check: CheckConfig) -> str:
        if check.kind == "metric":
            base = f"metric:{check.metric}"
        elif check.kind == "robustness":
            base = "robustness" + (f":{','.join(check.features)}" if check.features else "")
        else:
            base = f"{check.kind}:{check.feature}"
        if check.slice is not None:
            base += f"[{check.slice}]"
        elif check.where is not None:
            base += f"[{check.where}]"
        return base

    @staticmethod
    def scope(check: CheckConfig) -> str:
        if check.slice is not None:
            return f"slice '{check.slice}'"
        if check.where is not None:
            return f"'{check.where}'"
        return "the data"

    # -- shared state -----------------------------------------------------------------------

    @cached_property
    def slices(self) -> dict[str, np.ndarray]:
        from mlci.evaluate.rows import slice_masks

        return slice_masks(self.ctx.loaded, self.data)

    def rows(self, i: int, check: CheckConfig) -> np.ndarray | None:
        """Indices of the rows a check runs on (None: every row)."""
        if check.slice is not None:
            if check.slice not in self.slices:
                from mlci.evaluate.slicing import suggest_slice

                names = list(self.slices)
                shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
                raise self.error(
                    i,
                    "slice",
                    f"no declared slice '{check.slice}'{suggest_slice(check.slice, names)}",
                    tip=f"slices declared in evaluation.slices: {shown}"
                    if names
                    else "declare slices in evaluation.slices, or use 'where'",
                )
            return np.flatnonzero(self.slices[check.slice])
        if check.where is not None:
            from mlci.evaluate.rows import ExpressionError, where_mask

            try:
                return np.flatnonzero(where_mask(check.where, self.data))
            except ExpressionError as exc:
                raise self.error(i, "where", str(exc)) from None
        return None

    @cached_property
    def frame(self) -> dict[str, np.ndarray]:
        return dict(self.ctx.frame(self.ctx.candidate))

    @property
    def base(self) -> Any:
        return self.ctx.predictions[0]

    def subset(self, rows: np.ndarray | None) -> tuple[dict[str, np.ndarray], Any, np.ndarray]:
        frame = self.frame
        if rows is None:
            return frame, self.base, np.arange(1, self.data.rows + 1)
        return {k: v[rows] for k, v in frame.items()}, C.take(self.base, rows), rows + 1

    def require_column(self, i: int, field: str | tuple[str | int, ...], name: str) -> None:
        if name not in self.data.columns:
            raise self.error(
                i,
                field,
                f"no column '{name}' in {self.data.display}{did_you_mean(name, self.data.columns)}",
            )

    def input_dtype(self, name: str) -> str:
        for spec in self.ctx.candidate.info.inputs:
            if spec.name == name:
                return spec.dtype
        return "float"

    def std(self, name: str) -> float:
        values = np.asarray(self.data.columns[name], dtype=np.float64)
        s = float(np.nanstd(values)) if np.isfinite(values).any() else 0.0
        return s if s > 0 else 1.0

    def predict(self, frame: C.Frame) -> Any:
        return self.ctx.candidate.predict(frame)

    # -- model tests ------------------------------------------------------------------------

    def metric(self, i: int, check: CheckConfig, rows: np.ndarray | None) -> Outcome:
        from mlci.evaluate.evaluator import Evaluator
        from mlci.evaluate.metrics import check_metric_names

        aligned = self.ctx.aligned
        task = self.ctx.task
        out = aligned.outputs[0]
        assert check.metric is not None
        try:
            check_metric_names([check.metric], task, out.proba is not None)
        except ValueError as exc:
            raise self.error(i, "metric", str(exc)) from None
        weight = self.data.columns[self.data.weight] if self.data.weight else None
        evaluator = Evaluator(
            task,
            aligned.y_true,
            metrics=[check.metric],
            n_classes=len(aligned.classes) if aligned.classes is not None else None,
            weight=weight,
            n_boot=0,
        )
        value = evaluator.estimate(out, rows)[check.metric].value
        n = self.data.rows if rows is None else len(rows)
        where = "" if rows is None else f" on {self.scope(check)}"
        details = {"examples": [], "count": n, "rows": n, "min": check.min, "max": check.max}
        if value != value:
            return Outcome(
                "failed",
                f"{check.metric} is undefined{where} ({n:,} rows)",
                None,
                check.min if check.min is not None else check.max,
                details,
            )
        problems = []
        if check.min is not None and value < check.min:
            problems.append(f"below the minimum {fmt(check.min)} by {fmt(check.min - value)}")
        if check.max is not None and value > check.max:
            problems.append(f"above the maximum {fmt(check.max)} by {fmt(value - check.max)}")
        threshold = check.min if check.min is not None else check.max
        if problems:
            return Outcome(
                "failed",
                f"{check.metric} is {value:.4g}{where} ({n:,} rows), {' and '.join(problems)}",
                value,
                threshold,
                details,
            )
        bounds = " and ".join(
            b
            for b in (
                f">= {fmt(check.min)}" if check.min is not None else "",
                f"<= {fmt(check.max)}" if check.max is not None else "",
            )
            if b
        )
        return Outcome(
            "passed",
            f"{check.metric} is {value:.4g}{where} ({n:,} rows), {bounds}",
            value,
            threshold,
            details,
        )

    def invariance(self, i: int, check: CheckConfig, rows: np.ndarray | None) -> Outcome:
        feature = check.feature
        assert feature is not None
        self.require_column(i, "feature", feature)
        if check.within is not None:
            self.require_column(i, "within", check.within)
        if feature not in self.frame:
            return Outcome(
                "passed",
                f"the model does not read '{feature}', so no prediction can depend on it",
                0.0,
                check.get_max_rate(),
                {"examples": [], "count": 0},
            )
        frame, base, numbers = self.subset(rows)
        column = C.class_column(base, check.class_, single=False)
        values = frame[feature]
        rng = np.random.default_rng(check.seed)
        if check.perturb == "replace":
            perturbed = perturb.replace(values, check.value)
            how = f"replacing with {fmt(check.value)}"
        else:
            groups = None
            if check.within is not None:
                groups = (
                    self.data.columns[check.within]
                    if rows is None
                    else self.data.columns[check.within][rows]
                )
            perturbed = perturb.shuffle(values, rng, groups)
            how = "shuffling" + (f" within '{check.within}'" if check.within else "")
        return C.invariance(
            self.predict,
            frame,
            base,
            feature,
            perturbed,
            how=how,
            tolerance=check.get_tolerance(),
            max_rate=check.get_max_rate(),
            column=column,
            rows=numbers,
        )

    def numeric_model_feature(self, i: int, field: str | tuple[str | int, ...], name: str) -> None:
        self.require_column(i, field, name)
        if self.data.kinds[name] not in ("numeric", "bool"):
            raise self.error(i, field, f"'{name}' is {self.data.kinds[name]}, not numeric")
        if name not in self.frame:
            raise self.error(
                i,
                field,
                f"model '{self.ctx.name}' does not read '{name}'",
                tip=f"it reads: {', '.join(list(self.frame)[:10])}",
            )

    def directional(self, i: int, check: CheckConfig, rows: np.ndarray | None) -> Outcome:
        feature = check.feature
        assert feature is not None
        self.numeric_model_feature(i, "feature", feature)
        frame, base, numbers = self.subset(rows)
        column = C.class_column(base, check.class_, single=True)
        step = check.step if check.step is not None else self.std(feature)
        if self.input_dtype(feature) in ("int", "bool"):
            step = float(max(1, round(step)))
        return C.directional(
            self.predict,
            frame,
            base,
            feature,
            step=step,
            direction=check.direction,
            tolerance=check.get_tolerance(),
            max_rate=check.get_max_rate(),
            column=column,
            rows=numbers,
        )

    def robustness(self, i: int, check: CheckConfig, rows: np.ndarray | None) -> Outcome:
        if check.features is not None:
            for j, f in enumerate(check.features):
                self.numeric_model_feature(i, ("features", j), f)
            features = list(check.features)
        else:
            features = [f for f in self.frame if self.data.kinds.get(f) == "numeric"]
            if not features:
                raise self.error(i, "kind", "the model reads no numeric feature to add noise to")
        frame, base, numbers = self.subset(rows)
        tolerance = check.get_tolerance()
        if check.tolerance is None and base.values is not None:
            tolerance = REGRESSION_ROBUSTNESS_FACTOR * check.noise * self.std(self.data.target)
        return C.robustness(
            self.predict,
            frame,
            base,
            features,
            noise=check.noise,
            stds={f: self.std(f) for f in features},
            integer=[f for f in features if self.input_dtype(f) == "int"],
            max_rate=check.get_max_rate(),
            tolerance=tolerance,
            seed=check.seed,
            rows=numbers,
        )

    # -- contract ---------------------------------------------------------------------------

    def contract(self, i: int, check: CheckConfig) -> Iterator[tuple[str, Outcome, float]]:
        parts = list(check.checks or CONTRACT_PARTS)
        explicit = check.checks is not None
        prefix = check.id or "contract"
        model = self.ctx.candidate
        n_rows = min(check.rows, self.data.rows)
        sample = np.arange(n_rows)
        tolerance = check.get_tolerance()
        for part in parts:
            test_id = f"{prefix}:{part}"
            if part == "inputs":
                outcome, took = self.timed(
                    i,
                    lambda: C.contract_inputs(
                        model.info.inputs,
                        list(self.frame),
                        self.data.kinds,
                        check.inputs,
                        tensor_input=model.info.extra.get("input_mode") == "tensor",
                    ),
                )
            elif part == "outputs":
                outcome, took = self.timed(i, lambda: C.contract_outputs(self.base, self.data.rows))
            elif part == "probabilities":
                if self.ctx.task == "regression":
                    outcome, took = not_applicable("a regression model gives no probabilities"), 0.0
                elif self.base.proba is None and not explicit:
                    outcome, took = not_applicable("the model gives no probabilities"), 0.0
                else:
                    outcome, took = self.timed(
                        i,
                        lambda: C.contract_probabilities(
                            self.base, tolerance, np.arange(1, self.data.rows + 1)
                        ),
                    )
            elif part == "determinism":
                outcome, took = self.timed(
                    i,
                    lambda: C.contract_determinism(
                        C.take(self.base, sample),
                        self.predict({k: v[:n_rows] for k, v in self.frame.items()}),
                        sample + 1,
                        tolerance,
                    ),
                )
            else:
                outcome, took = self.timed(i, lambda: self.parity(n_rows, tolerance))
            yield test_id, outcome, took

    def parity(self, n_rows: int, tolerance: float) -> Outcome:
        from mlci.models.sklearn import SklearnModel

        model = self.ctx.candidate
        if not isinstance(model, SklearnModel):
            return not_applicable(
                f"the model is {model.info.format} only; parity compares a scikit-learn model "
                "with its ONNX conversion"
            )
        from mlci.models.convert import convert_to_onnx

        sample = {k: v[:n_rows] for k, v in self.frame.items()}
        with tempfile.TemporaryDirectory(prefix="mlci-parity-") as tmp:
            result = convert_to_onnx(
                model, sample, Path(tmp) / "model.onnx", atol=tolerance, rtol=tolerance
            )
        if result.status == "failed":
            return Outcome("skipped", f"no ONNX conversion to compare with: {result.message}")
        return C.contract_parity(
            result.max_abs_diff,
            result.label_agreement,
            tolerance,
            result.rows_checked,
            within_tolerance=result.status == "converted",
        )

    # -- data checks ------------------------------------------------------------------------

    def reference(self, i: int, kind: str) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
        path = self.ctx.loaded.config.data.reference
        if path is None:
            raise self.error(
                i,
                "kind",
                f"a {kind} check compares with reference data, but data.reference is not set",
                tip="set data.reference to the training data (CSV or Parquet)",
            )
        return self._reference

    @cached_property
    def _reference(self) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
        from mlci.data import read_columns

        path = self.ctx.loaded.config.data.reference
        assert path is not None
        _, _, columns, kinds = read_columns(path)
        return columns, dict(kinds), str(path)

    def data_features(
        self, i: int, check: CheckConfig, ref_columns: dict[str, np.ndarray]
    ) -> list[str]:
        if check.features is None:
            return [f for f in self.data.features if f in ref_columns]
        for j, f in enumerate(check.features):
            self.require_column(i, ("features", j), f)
            if f not in ref_columns:
                raise self.error(
                    i,
                    ("features", j),
                    f"no column '{f}' in the reference data{did_you_mean(f, ref_columns)}",
                )
        return list(check.features)

    def data_check(self, i: int, check: CheckConfig) -> Iterator[tuple[str, Outcome, float]]:
        ref_columns, ref_kinds, ref_name = self.reference(i, check.kind)
        kind = check.kind
        if kind == "schema":
            outcome, took = self.timed(
                i,
                lambda: D.check_schema(
                    ref_kinds,
                    self.data.kinds,
                    allow_extra=check.allow_extra,
                    reference=f"reference ({ref_name})",
                ),
            )
            yield check.id or "schema", outcome, took
            return
        features = self.data_features(i, check, ref_columns)
        if kind == "missing":
            outcome, took = self.timed(
                i,
                lambda: D.check_missing(
                    ref_columns,
                    self.data.columns,
                    features,
                    max_share=check.max_share,
                    max_increase=check.max_increase,
                ),
            )
            yield check.id or "missing", outcome, took
        elif kind == "range":
            max_share = check.max_share if check.max_share is not None else 0.01
            outcome, took = self.timed(
                i,
                lambda: D.check_range(
                    ref_columns,
                    self.data.columns,
                    self.data.kinds,
                    features,
                    margin=check.margin,
                    max_share=max_share,
                ),
            )
            yield check.id or "range", outcome, took
        else:
            prefix = check.id or "drift"
            for f in features:
                kind_now, kind_ref = self.data.kinds[f], ref_kinds[f]
                if (kind_now == "numeric") != (kind_ref == "numeric"):
                    yield (
                        f"{prefix}:{f}",
                        Outcome(
                            "failed",
                            f"'{f}' is {kind_ref} in the reference but {kind_now} now; drift cannot be "
                            "measured (see the schema check)",
                            kind_now,
                            kind_ref,
                        ),
                        0.0,
                    )
                    continue
                outcome, took = self.timed(
                    i,
                    partial(
                        D.check_drift,
                        f,
                        ref_columns[f],
                        self.data.columns[f],
                        kind_now,
                        wasserstein=check.wasserstein,
                        jensen_shannon=check.jensen_shannon,
                        psi=check.psi,
                        ks_pvalue=check.ks_pvalue,
                        chi2_pvalue=check.chi2_pvalue,
                        bins=check.bins,
                        floor=check.min_reference_share,
                        evidence=check.evidence,
                        n_boot=check.bootstrap,
                        confidence=check.confidence,
                        seed=check.seed,
                    ),
                )
                yield f"{prefix}:{f}", outcome, took


# --------------------------------------------------------------------------- pytest files


def run_pytest(ctx: ModelContext, cfg: TestsConfig) -> Iterator[tuple[str, Outcome, float]]:
    """Run the user's pytest files with the mlci plugin and turn their cases into results."""
    base = ctx.loaded.path.parent
    files = []
    for j, raw in enumerate(cfg.pytest):
        path = raw if raw.is_absolute() else base / raw
        if not path.exists():
            shown = path.relative_to(base) if path.is_relative_to(base) else path
            raise ctx.loaded.error(("tests", "pytest", j), f"no such test file '{shown}'")
        files.append(str(path))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlci-pytest-") as tmp:
        xml = Path(tmp) / "pytest.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "--mlci-config",
            str(ctx.loaded.path.resolve()),
            "--mlci-model",
            ctx.name,
            f"--junitxml={xml}",
            "-o",
            "junit_family=xunit2",
            "-p",
            "no:cacheprovider",
            "-q",
            "--no-header",
            *files,
        ]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            proc = subprocess.run(
                command,
                cwd=base,
                capture_output=True,
                text=True,
                timeout=cfg.timeout,
                env=env,
            )
        except subprocess.TimeoutExpired:
            yield (
                "pytest",
                Outcome("error", f"the pytest files ran longer than {cfg.timeout:g} s"),
                (time.perf_counter() - started),
            )
            return
        took = time.perf_counter() - started
        cases = read_cases(xml) if xml.is_file() else []
    for case in cases:
        name = (
            f"pytest:{case['classname']}::{case['name']}"
            if case["classname"]
            else f"pytest:{case['name']}"
        )
        yield (
            name,
            Outcome(case["status"], case["message"], details={"examples": [], "count": 0}),
            case["time"],
        )
    if not cases or proc.returncode not in (0, 1):
        tail = [line for line in (proc.stdout + "\n" + proc.stderr).splitlines() if line.strip()]
        last = tail[-1].strip() if tail else "no output"
        if proc.returncode == 5:
            message = f"no tests collected from {', '.join(map(str, cfg.pytest))}"
        else:
            message = f"pytest exited with code {proc.returncode}: {last}"[:500]
        if proc.returncode != 0 or not cases:
            yield "pytest", Outcome("error", message), took
