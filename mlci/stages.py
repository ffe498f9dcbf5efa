"""The registry of stages and what every stage receives.

A stage is one module with a ``run(ctx: ModelContext)`` that returns its section of the
results document (a typed model from :mod:`mlci.results`), or raises :class:`StageSkipped` to
say why it could not run; the gate reads a skipped stage as missing evidence. Stages never
print and never write outside ``ctx.staging``. ``mlci check`` runs the selected stages in the
order of :data:`STAGES`; a stage whose ``needs`` did not run is skipped, saying which.

Adding a stage: write its module with ``run``, add its section model to the results document
and its configuration model to mlci.yaml's schema, and add one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import DataError, MlciError

if TYPE_CHECKING:
    from mlci.config import LoadedConfig, ModelConfig, ModelSource
    from mlci.data import Dataset
    from mlci.evaluate.alignment import Aligned
    from mlci.models.interface import Model, Predictions, Task
    from mlci.results import Results
    from mlci.results.base import Section
    from mlci.results.source import SourceRecord

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Stage:
    """A stage: the section it writes, where its ``run`` lives, and what it needs first."""

    name: str
    section: str
    target: str  # "module:function"
    needs: tuple[str, ...] = ()
    summary: str = ""

    def load(self) -> Callable[[ModelContext], Section]:
        module, function = self.target.split(":")
        run: Callable[[ModelContext], Section] = getattr(importlib.import_module(module), function)
        return run


# In the order `mlci check` runs them. The gate judges what the stages before it wrote; the
# card shows the decision; the evaluation attestation signs the final decision.
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("evaluate", "evaluation", "mlci.evaluate.stage:run", (), "metrics, slices, baseline"),
        Stage("tests", "tests", "mlci.testing.stage:run", (), "model tests and data checks"),
        Stage("benchmark", "benchmark", "mlci.bench.stage:run", (), "latency and throughput"),
        Stage("image", "image", "mlci.supply.stage:build", (), "build (and push) the image"),
        Stage("sbom", "image", "mlci.supply.stage:sbom", ("image",), "the image's SBOM"),
        Stage("sign", "image", "mlci.supply.stage:sign", ("image",), "sign image and SBOM"),
        Stage("canary", "canary", "mlci.canary.stage:run", (), "shadow replay, live metrics"),
        Stage("gate", "gate", "mlci.gate.stage:run", (), "the promotion decision"),
        Stage("card", "card", "mlci.card.stage:run", (), "the model card"),
        Stage("attest", "image", "mlci.supply.stage:attest", ("sign",), "sign the decision"),
    )
}


class StageSkipped(Exception):
    """A stage that did not run, and why (the gate reads this as missing evidence)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StageFailed(MlciError):
    """A stage that ran and failed (a registry that refused a push, say): recorded in the
    results, and the run exits 1 once every stage has had its turn."""


def load_source(
    source: ModelSource, name: str, loaded: LoadedConfig, candidate: ModelSource | None = None
) -> Model:
    """Load a candidate or baseline as mlci.yaml describes it (``candidate``: the model a
    ``base-branch`` baseline stands in for)."""
    return load_with_source(source, name, loaded, candidate)[0]


def load_models(spec: ModelConfig, loaded: LoadedConfig) -> list[tuple[Model, SourceRecord | None]]:
    """A model of mlci.yaml and, when it has one, its baseline, each with where it came from."""
    models = [load_with_source(spec, spec.name, loaded)]
    if spec.baseline is not None:
        name = f"{spec.name} (baseline)"
        models.append(load_with_source(spec.baseline, name, loaded, candidate=spec))
    return models


def load_with_source(
    source: ModelSource, name: str, loaded: LoadedConfig, candidate: ModelSource | None = None
) -> tuple[Model, SourceRecord | None]:
    """Fetch a model from its source (checked against its digest and signature policy), load
    it, and say where it came from."""
    from mlci.models.load import load_model
    from mlci.sources.fetch import materialize

    fetched = materialize(source, loaded, candidate=candidate)
    model = load_model(
        None if fetched is None else fetched.path,
        name=name,
        format=source.format,
        trust_pickle=source.trust_pickle,
        trusted_types=tuple(source.trusted_types),
        entrypoint=source.entrypoint,
        base_dir=loaded.path.parent,
    )
    return model, None if fetched is None else fetched.record()


def model_frame(model: Model, data: Dataset) -> dict[str, Any]:
    """The columns a model reads, in the order it reads them."""
    from mlci.suggest import did_you_mean

    features = model.info.features or data.features
    if data.features_declared_at is not None:
        # data.features is a promise about what the model reads; a model that reads more
        # would silently use columns the user meant to leave out.
        unlisted = [f for f in features if f not in data.features]
        if unlisted:
            shown = ", ".join(repr(f) for f in unlisted[:5]) + (
                ", ..." if len(unlisted) > 5 else ""
            )
            raise DataError(
                f"{data.features_declared_at}: model '{model.info.name}' also reads {shown}, "
                "which data.features leaves out",
                tip="list every column the model reads in data.features, or remove data.features",
            )
    missing = [f for f in features if f not in data.columns]
    if missing:
        raise DataError(
            f"{data.display}: model '{model.info.name}' expects input '{missing[0]}' that the data "
            f"lacks{did_you_mean(missing[0], data.columns)}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            tip="add the column to the data or fix data.features",
        )
    return {f: data.columns[f] for f in features}


class ModelContext:
    """One model, its baseline and the evaluation data, shared by every stage.

    Predictions on the evaluation data are computed once, on first use. ``results`` is the
    document as the stages before this one left it.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        data: Dataset,
        spec: ModelConfig,
        staging: Path,
        progress: Progress,
        options: RunOptions | None = None,
    ) -> None:
        self.loaded = loaded
        self.data = data
        self.spec = spec
        self.staging = staging
        self.options = options or RunOptions()
        self._progress = progress
        models = load_models(spec, loaded)
        self.candidate, self.candidate_source = models[0]
        self.baseline: Model | None = None
        self.baseline_source: SourceRecord | None = None
        if len(models) > 1:
            self.baseline, self.baseline_source = models[1]
        self._results: Results | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def results(self) -> Results:
        if self._results is None:
            raise RuntimeError("the results document is not started yet")
        return self._results

    @results.setter
    def results(self, value: Results) -> None:
        self._results = value

    def progress(self, message: str) -> None:
        self._progress(f"{self.spec.name}: {message}")

    def frame(self, model: Model) -> dict[str, Any]:
        """The evaluation data's columns that ``model`` reads."""
        return model_frame(model, self.data)

    @property
    def models(self) -> tuple[Model, ...]:
        """The candidate, then its baseline when it has one."""
        return (self.candidate,) if self.baseline is None else (self.candidate, self.baseline)

    @cached_property
    def predictions(self) -> tuple[Predictions, ...]:
        """Candidate (and baseline) predictions on the evaluation data.

        ``options.predict`` supplies them when they come from elsewhere (shard files, a Dask
        cluster); otherwise the models predict here, on every row at once.
        """
        if self.options.predict is not None:
            return self.options.predict(self)
        if self.loaded.config.engine.kind == "dask":
            from mlci.scale.dask_engine import predict_on_cluster

            return predict_on_cluster(self)
        self.progress(f"predicting on {self.data.rows} rows")
        return tuple(m.predict(self.frame(m)) for m in self.models)

    @cached_property
    def aligned(self) -> Aligned:
        """Target and outputs in one class order; ``outputs[1]`` is the baseline's."""
        from mlci.evaluate.alignment import AlignmentError, align, infer_task

        predictions = self.predictions
        task = infer_task(predictions[0], self.candidate.info.task)
        if self.baseline is not None:
            base_task = infer_task(predictions[1], self.baseline.info.task)
            if (base_task == "regression") != (task == "regression"):
                raise DataError(
                    f"{self.name}: the candidate is a {task} model but the baseline is a "
                    f"{base_task} model",
                    tip="compare models that solve the same task",
                )
        try:
            return align(task, self.data.columns[self.data.target], predictions)
        except AlignmentError as exc:
            raise DataError(f"{self.data.display}: model '{self.name}': {exc}") from None

    @property
    def task(self) -> Task:
        aligned = self.aligned
        if aligned.task == "regression":
            return "regression"
        return (
            "binary" if aligned.classes is not None and len(aligned.classes) == 2 else "multiclass"
        )


@dataclass(frozen=True)
class RunOptions:
    """What the command line adds to mlci.yaml for one run."""

    image_base: str | None = None  # overrides image.base
    push: bool | None = None  # overrides image.push
    sign: str | None = None  # overrides image.sign.method: none, key or keyless
    sign_key: Path | None = None  # overrides image.sign.key
    # Where the evaluation data's predictions come from when not from the models here.
    predict: Callable[[ModelContext], tuple[Predictions, ...]] | None = None
