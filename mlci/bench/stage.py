"""The benchmark stage: every configured scenario for the candidate (and the baseline).

Models run in ONNX Runtime on the device :func:`mlci.bench.devices.select_device` chose, with
sessions of their own (thread settings and providers from mlci.yaml) and queries built once
from the evaluation data through the model's own feed conversion. Models that are not ONNX
are not benchmarked: the stage is skipped (or, for a non-ONNX baseline, the candidate runs
alone) and says why.
"""

from __future__ import annotations

import math
import os
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.bench import compare as stats
from mlci.bench import devices, earlystop
from mlci.bench.config import BenchmarkConfig, ScenarioConfig, metric_quantile
from mlci.bench.scenarios import (
    NOT_ENOUGH,
    OK,
    Plan,
    Target,
    back_to_back_runner,
    interleave,
    max_rate_search,
    poisson_runner,
)
from mlci.bench.timing import Call, peak_bytes, reset_peak, resident_bytes
from mlci.errors import ModelError
from mlci.results.base import jsonable
from mlci.results.benchmark import Benchmark
from mlci.stages import ModelContext, StageSkipped

if TYPE_CHECKING:
    from mlci.models.onnx import OnnxModel

# Distinct prebuilt batches per batch size: enough variety to defeat caches, bounded memory.
MAX_DISTINCT_BATCHES = 64


class BenchModel:
    """One model's benchmark sessions, its queries by batch size, and load facts.

    Load time and peak memory are those of the first session (load plus one query at the
    largest batch size); the other sessions exist so that no verdict rests on where a single
    session happened to land in memory.
    """

    def __init__(
        self,
        model: OnnxModel,
        frame: dict[str, Any],
        choice: devices.DeviceChoice,
        cfg: BenchmarkConfig,
        rows: int,
    ) -> None:
        self.model = model
        self.cfg = cfg
        subset = {k: np.asarray(v)[:rows] for k, v in frame.items()}
        self.base_feeds = model._feeds(subset)
        self.rows = len(next(iter(self.base_feeds.values())))
        largest = max(
            [s.batch_size for s in cfg.scenarios if s.kind != "offline"]
            + [b for s in cfg.scenarios if s.kind == "offline" for b in s.batch_sizes]
        )
        reset_ok = reset_peak()
        before = resident_bytes()
        start = time.perf_counter()
        first = self._open(choice)
        self.load_s = time.perf_counter() - start
        self.choice = devices.confirm_device(choice, list(first.get_providers()))
        self.sessions = [first]
        self.io_binding = cfg.io_binding and self.choice.selected != "cpu"
        self.outputs = [o.name for o in first.get_outputs()]
        self._output_types = {o.name: o.type for o in first.get_outputs()}
        self._calls: dict[int, list[list[Call]]] = {}
        self._keep: list[Any] = []
        self._call(first, self._batch_feeds(largest)[0])()
        peak = peak_bytes()
        self.peak_memory_bytes = (
            max(0, peak - before) if reset_ok and peak is not None and before is not None else None
        )
        self._choice = choice

    def add_session(self) -> None:
        """Open one more session (the caller alternates models, so neither is always first)."""
        self.sessions.append(self._open(self._choice))
        self._calls.clear()

    def _open(self, choice: devices.DeviceChoice) -> Any:
        import onnxruntime as ort

        cfg = self.cfg
        try:
            return ort.InferenceSession(
                str(self.model.path),
                sess_options=devices.session_options(cfg.threads.intra_op, cfg.threads.inter_op),
                providers=devices.provider_options(choice, cfg.device_id, _engine_cache(choice)),
            )
        except Exception as exc:
            raise ModelError(
                f"{self.model.path}: ONNX Runtime cannot open the model for benchmarking ({exc})"
            ) from exc

    def _batch_feeds(self, batch: int) -> list[dict[str, np.ndarray]]:
        n = self.rows
        count = max(1, min(MAX_DISTINCT_BATCHES if batch > 1 else 1024, n // batch))
        feeds = []
        for i in range(count):
            index = (np.arange(batch) + i * batch) % n
            feeds.append({k: np.ascontiguousarray(v[index]) for k, v in self.base_feeds.items()})
        return feeds

    def calls(self, batch: int) -> list[list[Call]]:
        """Prebuilt queries of ``batch`` rows, one list per session, cycling through the rows."""
        if batch not in self._calls:
            feeds = self._batch_feeds(batch)
            self._calls[batch] = [[self._call(s, f) for f in feeds] for s in self.sessions]
        return self._calls[batch]

    def _call(self, session: Any, feed: dict[str, np.ndarray]) -> Call:
        if not self.io_binding:
            return partial(session.run, self.outputs, feed)
        import onnxruntime as ort

        # Inputs copied to the GPU once, outputs left there: the timed call excludes copies.
        # run_with_iobinding returns once the device has finished (ONNX Runtime synchronises
        # the execution provider at the end of Run unless told not to).
        binding = session.io_binding()
        device_id = self.cfg.device_id
        for name, array in feed.items():
            if array.dtype == object:
                binding.bind_cpu_input(name, array)
            else:
                value = ort.OrtValue.ortvalue_from_numpy(array, "cuda", device_id)
                self._keep.append(value)
                binding.bind_ortvalue_input(name, value)
        for name in self.outputs:
            kind = self._output_types[name]
            if kind.startswith("tensor(") and kind != "tensor(string)":
                binding.bind_output(name, "cuda", device_id)
            else:
                binding.bind_output(name)
        return partial(session.run_with_iobinding, binding)

    def record(self) -> dict[str, Any]:
        return {
            "name": self.model.info.name,
            "load_s": round(self.load_s, 6),
            "peak_memory_bytes": self.peak_memory_bytes,
            "size_bytes": self.model.info.size_bytes,
            "sessions": len(self.sessions),
        }


def _engine_cache(choice: devices.DeviceChoice) -> Path | None:
    """Where TensorRT keeps built engines between runs (MLCI_TENSORRT_CACHE, else ~/.cache)."""
    if choice.selected != "tensorrt":
        return None
    folder = Path(
        os.environ.get("MLCI_TENSORRT_CACHE") or Path.home() / ".cache" / "mlci" / "tensorrt"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def requested_device(cfg: BenchmarkConfig, ctx: ModelContext) -> str:
    value = os.environ.get(devices.DEVICE_ENV, "").strip().lower()
    if not value:
        return cfg.device
    if value not in ("auto", "cpu", "cuda", "tensorrt"):
        raise ctx.loaded.error(
            ("benchmark", "device"),
            f"{devices.DEVICE_ENV}={value!r} is not a device; use auto, cpu, cuda or tensorrt",
        )
    return value


def choose_device(requested: str) -> tuple[devices.DeviceChoice, devices.GpuProbe]:
    import onnxruntime as ort

    available = list(ort.get_available_providers())
    wants_gpu = requested != "cpu" and (devices.CUDA in available or devices.TENSORRT in available)
    gpu = devices.probe_gpu() if wants_gpu else devices.GpuProbe(False, "no GPU was probed")
    return devices.select_device(requested, available, gpu), gpu


def auto_min_queries(sc: ScenarioConfig, confidence: float) -> tuple[int, str]:
    """Fewest queries from LoadGen's early-stopping rule for the highest percentile judged."""
    judged = [*sc.compared_metrics(), *sc.budgets]
    if sc.kind == "server":
        judged.append(sc.bound_percentile)
    quantiles = [q for q in (metric_quantile(m) for m in judged) if q is not None]
    if not quantiles:
        return 30, "no percentile is judged: 30 queries"
    q = max(quantiles)
    need = earlystop.min_queries(q, confidence)
    return need, f"early stopping for p{q * 100:g} at {confidence:.0%} confidence"


def check_plan(
    ctx: ModelContext, cfg: BenchmarkConfig, i: int, sc: ScenarioConfig, models: int
) -> None:
    needed = cfg.warmup.seconds * models + sc.min_duration
    if needed > sc.time_budget:
        raise ctx.loaded.error(
            ("benchmark", "scenarios", i, "time_budget"),
            f"time_budget {sc.time_budget:g} s cannot hold the warm-up of {models} model(s) "
            f"({models} x {cfg.warmup.seconds:g} s) plus min_duration {sc.min_duration:g} s",
            tip="raise time_budget or lower min_duration / warmup.seconds",
        )


def run(ctx: ModelContext) -> Benchmark:
    """Run the configured latency and throughput scenarios."""
    from mlci.models.onnx import OnnxModel

    cfg = ctx.loaded.config.benchmark
    if cfg is None:
        raise StageSkipped("no benchmark configured")
    if not isinstance(ctx.candidate, OnnxModel):
        raise StageSkipped(
            f"the benchmark runs ONNX models in ONNX Runtime and the candidate is "
            f"{ctx.candidate.info.format} (tip: export it to ONNX, or set convert: true and "
            "point the model at the converted file)"
        )
    notes: list[str] = []
    baseline = None
    if ctx.baseline is not None and cfg.baseline:
        if isinstance(ctx.baseline, OnnxModel):
            baseline = ctx.baseline
        else:
            notes.append(
                f"the baseline is {ctx.baseline.info.format}, not ONNX: the candidate ran alone"
            )
    count = 2 if baseline is not None else 1
    for i, sc in enumerate(cfg.scenarios):
        check_plan(ctx, cfg, i, sc, count)

    requested = requested_device(cfg, ctx)
    choice, gpu = choose_device(requested)
    ctx.progress(f"benchmark on {choice.selected} ({choice.reason})")
    cand = BenchModel(ctx.candidate, ctx.frame(ctx.candidate), choice, cfg, cfg.rows)
    choice = cand.choice
    base = (
        BenchModel(baseline, ctx.frame(baseline), choice, cfg, cfg.rows)
        if baseline is not None
        else None
    )
    for i in range(cfg.sessions - 1):
        order = [cand, base] if i % 2 else [base, cand]
        for bench_model in order:
            if bench_model is not None:
                bench_model.add_session()
    if cfg.io_binding and choice.selected == "cpu":
        notes.append("io_binding applies to GPU runs only; on the CPU it was not used")
    threads = {"intra_op": cfg.threads.intra_op, "inter_op": cfg.threads.inter_op}

    results: list[dict[str, Any]] = []
    for i, sc in enumerate(cfg.scenarios):
        batches = sc.batch_sizes if sc.kind == "offline" else [sc.batch_size]
        for batch in batches:
            ctx.progress(
                f"benchmark: {sc.label()}" + (f" batch {batch}" if sc.kind == "offline" else "")
            )
            results.append(run_scenario(cfg, i, sc, batch, cand, base, choice, threads))

    comparisons = [c for r in results for c in (r["comparison"] or [])]
    verdicts = [c["verdict"] for c in comparisons]
    budgets = [b for r in results for b in r["budgets"]]
    section = {
        "summary": {
            "scenarios": len(results),
            "slower": verdicts.count(stats.SLOWER),
            "faster": verdicts.count(stats.FASTER),
            "no_difference": verdicts.count(stats.NO_DIFFERENCE),
            "inconclusive": verdicts.count(stats.INCONCLUSIVE),
            "not_enough_samples": sum(r["status"] == NOT_ENOUGH for r in results),
            "budgets_missed": sum(not b["met"] for b in budgets),
        },
        "device": choice.as_dict(),
        "fingerprint": devices.fingerprint(gpu, choice, threads),
        "models": {"candidate": cand.record(), "baseline": base.record() if base else None},
        "scenarios": results,
        "notes": notes,
    }
    return Benchmark.model_validate(jsonable(section))


def run_scenario(
    cfg: BenchmarkConfig,
    index: int,
    sc: ScenarioConfig,
    batch: int,
    cand: BenchModel,
    base: BenchModel | None,
    choice: devices.DeviceChoice,
    threads: dict[str, int],
) -> dict[str, Any]:
    """One scenario at one batch size, interleaved with the baseline when there is one."""
    es_conf = cfg.early_stopping_confidence
    if sc.min_queries == "auto":
        min_queries, why = auto_min_queries(sc, es_conf)
    else:
        min_queries, why = sc.min_queries, "set in mlci.yaml"
    plan = Plan(
        min_queries=min_queries,
        min_duration_s=sc.min_duration,
        time_budget_s=sc.time_budget,
        min_blocks=max(cfg.min_blocks, 2 * cfg.sessions),
        block_queries=cfg.block_queries,
        block_seconds=cfg.block_seconds,
        warmup_queries=cfg.warmup.queries,
        warmup_seconds=cfg.warmup.seconds,
        settle_queries=cfg.warmup.per_block,
    )
    seed = cfg.seed + 1000 * index + batch
    targets = [Target("candidate", cand.calls(batch))]
    if base is not None:
        targets.append(Target("baseline", base.calls(batch)))
    runner = (
        poisson_runner(sc.rate, seed) if sc.kind == "server" and sc.rate else back_to_back_runner
    )
    started = time.perf_counter_ns()
    outcome = interleave(targets, plan, runner, seed)
    weights = stats.resampling(outcome.rounds, cfg.bootstrap, seed) if outcome.rounds >= 2 else None
    metrics = sc.reported_metrics()
    models: dict[str, Any] = {}
    for target in targets:
        models[target.label] = model_result(target, sc, batch, metrics, cfg, weights)

    if sc.kind == "server" and sc.find_max_rate and sc.latency_bound is not None and sc.rate:
        bound_q = metric_quantile(sc.bound_percentile) or 0.99
        limit_ms = sc.latency_bound * 1000

        def meets(latencies: np.ndarray) -> bool:
            ordered = np.sort(latencies)
            upper = earlystop.estimate(ordered, bound_q, es_conf)
            value = upper if upper is not None else stats.quantile(ordered, bound_q)
            return value <= limit_ms

        deadline = started + int(sc.time_budget * 1e9)
        for k, target in enumerate(targets):
            # Each model gets an equal share of what is left of the budget.
            now = time.perf_counter_ns()
            share = (deadline - now) // (len(targets) - k)
            probe = min(1.0, max(0.1, share / 1e9 / 8))
            best, probes = max_rate_search(target, sc.rate, meets, probe, now + share, seed)
            models[target.label]["max_rate_per_s"] = best
            models[target.label]["rate_probes"] = probes

    comparison = None
    if base is not None:
        compared = sc.compared_metrics()
        comparison = [
            {
                "metric": c.metric,
                "ratio": _rounded(c.ratio.as_dict()),
                "max_regression": c.max_regression,
                "verdict": c.verdict,
            }
            for c in stats.compare(
                targets[0].blocks,
                targets[1].blocks,
                compared,
                {m: sc.tolerance(m) for m in compared},
                cfg.confidence,
                weights,
                enough=outcome.status == OK,
                groups=targets[0].groups,
            )
        ]

    budget_limits = dict(sc.budgets)
    if sc.kind == "server" and sc.latency_bound is not None:
        budget_limits.setdefault(sc.bound_percentile, sc.latency_bound)
    budgets = [
        budget(metric, limit, models["candidate"], es_conf)
        for metric, limit in budget_limits.items()
    ]

    name = sc.label() + (f" (batch {batch})" if sc.kind == "offline" else "")
    settings: dict[str, Any] = {
        "batch_size": batch,
        "metrics": metrics,
        "compare": sc.compared_metrics(),
        "min_queries": min_queries,
        "min_queries_rule": why,
        "min_duration_s": sc.min_duration,
        "time_budget_s": sc.time_budget,
        "warmup": {
            "queries": cfg.warmup.queries,
            "seconds": cfg.warmup.seconds,
            "per_block": cfg.warmup.per_block,
        },
        "blocks": {
            "queries": cfg.block_queries,
            "seconds": cfg.block_seconds,
            "min": max(cfg.min_blocks, 2 * cfg.sessions),
            "sessions_per_model": cfg.sessions,
            "rounds": outcome.rounds,
        },
        "confidence": cfg.confidence,
        "early_stopping_confidence": es_conf,
        "bootstrap": cfg.bootstrap,
        "device": choice.selected,
        "threads": threads,
        "io_binding": cand.io_binding,
        "copies": "excluded (I/O binding)"
        if cand.io_binding
        else ("included" if choice.selected != "cpu" else "none (CPU)"),
        "elapsed_s": round(outcome.elapsed_s, 3),
    }
    if sc.kind == "server":
        settings.update(
            rate_per_s=sc.rate,
            latency_bound_ms=None if sc.latency_bound is None else sc.latency_bound * 1000,
            bound_percentile=sc.bound_percentile,
            arrivals="poisson",
        )
    return {
        "name": name,
        "kind": sc.kind,
        "status": outcome.status,
        "reason": outcome.reason,
        "settings": settings,
        "candidate": models["candidate"],
        "baseline": models.get("baseline"),
        "comparison": comparison,
        "budgets": budgets,
    }


def model_result(
    target: Target,
    sc: ScenarioConfig,
    batch: int,
    metrics: list[str],
    cfg: BenchmarkConfig,
    weights: stats.Resampling | None,
) -> dict[str, Any]:
    blocks = target.blocks
    summary = stats.summarize(blocks, metrics, cfg.confidence, weights, target.groups)
    ordered = np.sort(np.concatenate(blocks)) if blocks else np.zeros(0)
    early: dict[str, Any] = {}
    for m in metrics:
        q = metric_quantile(m)
        if q is None:
            continue
        upper = (
            earlystop.estimate(ordered, q, cfg.early_stopping_confidence) if len(ordered) else None
        )
        early[m] = {
            "upper_ms": _round(upper),
            "min_queries": earlystop.min_queries(q, cfg.early_stopping_confidence),
        }
    busy_s = target.busy_ns / 1e9
    throughput = None
    mean = summary.get("mean") or stats.summarize(blocks, ["mean"], cfg.confidence, weights)["mean"]
    if sc.kind == "offline" and mean.value:
        # Samples per second while busy: batch / mean batch latency; the interval inverts the mean's.
        throughput = {
            "value": _round(batch * 1000 / mean.value),
            "ci_low": _round(batch * 1000 / mean.ci_high) if mean.ci_high else None,
            "ci_high": _round(batch * 1000 / mean.ci_low) if mean.ci_low else None,
        }
    elif sc.kind == "server" and busy_s > 0:
        throughput = {
            "value": _round(target.queries * batch / busy_s),
            "ci_low": None,
            "ci_high": None,
        }
    return {
        "queries": target.queries,
        "warmup_queries": target.warmup_queries,
        "blocks": len(blocks),
        "duration_s": round(busy_s, 4),
        "latency_ms": {m: _rounded(e.as_dict()) for m, e in summary.items()},
        "early_stopping": early,
        "throughput_per_s": throughput,
    }


def budget(
    metric: str, limit_s: float, result: dict[str, Any], confidence: float
) -> dict[str, Any]:
    """Whether ``metric`` stays under ``limit_s``, judged on a conservative upper bound.

    Percentiles use LoadGen's early-stopping estimate (an upper bound at ``confidence``), the
    mean its interval's upper end; with too few queries for either, the point estimate.
    """
    estimate = result["latency_ms"].get(metric) or {}
    observed = estimate.get("value")
    if metric_quantile(metric) is not None:
        upper = (result["early_stopping"].get(metric) or {}).get("upper_ms")
        basis = "early-stopping upper bound"
    else:
        upper = estimate.get("ci_high")
        basis = "interval upper end"
    if upper is None:
        upper, basis = observed, "point estimate (too few queries for a bound)"
    limit_ms = limit_s * 1000
    return {
        "metric": metric,
        "limit_ms": _round(limit_ms),
        "observed_ms": observed,
        "upper_ms": upper,
        "basis": basis,
        "met": upper is not None and upper <= limit_ms,
    }


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _rounded(entry: dict[str, float | None]) -> dict[str, float | None]:
    return {k: _round(v) for k, v in entry.items()}
