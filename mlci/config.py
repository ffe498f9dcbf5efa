"""The mlci.yaml schema and its loader.

Errors point at ``file:line:column`` and name the field, with the closest valid name when the
user probably mistyped one. Paths in the file resolve relative to the file itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlci.bench.config import BenchmarkConfig
from mlci.canary.config import CanaryConfig
from mlci.card.config import CardConfig
from mlci.configbase import ConfigPath, Strict, check_inside, enough_replicates
from mlci.errors import ConfigError
from mlci.evaluate.config import FairnessConfig, ImportanceConfig
from mlci.gate.config import GateConfig
from mlci.models.formats import ConfigFormat
from mlci.sources.config import SignaturePolicyConfig
from mlci.suggest import did_you_mean
from mlci.supply.config import ImageConfig
from mlci.testing.config import TestsConfig
from mlci.watch.config import WatchConfig

CONFIG_NAMES = ("mlci.yaml", "mlci.yml")
StageName = Literal[
    "evaluate", "tests", "benchmark", "image", "sbom", "sign", "canary", "gate", "card", "attest"
]
Loc = tuple[str | int, ...]

# Bounds on what a configuration file may ask the YAML loader to build. Aliases let a few
# lines of YAML stand for billions of nodes; no real mlci.yaml comes near these.
MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64  # lists and mappings inside each other (a real mlci.yaml has about 6)


class DataConfig(Strict):
    """The evaluation dataset."""

    path: ConfigPath = Field(description="CSV or Parquet file, relative to mlci.yaml.")
    format: Literal["auto", "csv", "parquet"] = Field(
        "auto", description="File format; 'auto' goes by the suffix."
    )
    target: str = Field(description="Column holding the true label or value.")
    id: str | None = Field(None, description="Column identifying each row (never a feature).")
    weight: str | None = Field(None, description="Column of non-negative sample weights.")
    group: str | None = Field(
        None,
        description="Column of clusters whose rows are correlated (a user, a session): the "
        "bootstrap resamples whole clusters, so intervals account for the correlation.",
    )
    features: list[str] | None = Field(
        None,
        description="Columns the model reads; default: every column but target, id, weight "
        "and group.",
    )
    reference: ConfigPath | None = Field(
        None,
        description="Reference (training) data with the same columns, for data checks and drift.",
    )

    @field_validator("id", "weight", "features")
    @classmethod
    def _distinct_roles(cls, value: Any, info: ValidationInfo) -> Any:
        # One column cannot be both the answer and an input (or an id or a weight): the model
        # would be scored on what it was given. Fields validate in order, so the roles before
        # this one are in info.data.
        if value is None:
            return value
        roles = {r: info.data.get(r) for r in ("target", "id", "weight") if r != info.field_name}
        taken = {column: role for role, column in roles.items() if column is not None}
        if info.field_name != "features":
            if value in taken:
                raise ValueError(f"'{value}' is already data.{taken[value]}; use another column")
            return value
        if not value:
            raise ValueError("the list is empty; list the columns the model reads, or drop it")
        listed: set[str] = set()
        for feature in value:
            if feature in taken:
                raise ValueError(
                    f"'{feature}' is data.{taken[feature]} and cannot also be a feature"
                )
            if feature in listed:
                raise ValueError(f"'{feature}' is listed twice")
            listed.add(feature)
        return value


class ModelSource(Strict):
    """Where a model comes from and how far to trust it."""

    path: ConfigPath | None = Field(
        None, description="Model file (.onnx, .skops, .pkl/.joblib), relative to mlci.yaml."
    )
    source: str | None = Field(
        None,
        description="Where to fetch the model: a path, git:REF:PATH, base-branch (baselines "
        "only: the candidate's path on the pull request's base branch), oci://HOST/REPO:TAG or "
        "@sha256:..., models:/NAME@ALIAS or models:/NAME/VERSION, or https://...#sha256=HEX.",
    )
    sha256: str | None = Field(
        None,
        pattern=r"^(sha256:)?[0-9a-f]{64}$",
        description="The model file's sha256: anything fetched with another digest is refused.",
    )
    verify: SignaturePolicyConfig | None = Field(
        None,
        description="Refuse the model unless it is signed by this key or identity (as mlci "
        "verify checks it): a referrer for oci://, FILE.sigstore.json beside a file.",
    )
    format: ConfigFormat = Field("auto", description="Model format; 'auto' goes by the suffix.")
    entrypoint: str | None = Field(
        None,
        description="'module:function' or 'file.py:function' returning an object with predict.",
    )
    trust_pickle: bool = Field(
        False,
        description="Allow pickle/joblib files. Unpickling runs code from the file: only for "
        "files you produced yourself.",
    )
    trusted_types: list[str] = Field(
        default_factory=list, description="Types a skops file may load beyond the safe defaults."
    )

    @field_validator("source")
    @classmethod
    def _parse_source(cls, value: str | None) -> str | None:
        if value is not None:
            from mlci.sources.reference import UnpinnedError, parse_source

            try:
                parse_source(value)
            except UnpinnedError:
                pass  # the pin may be the separate sha256 key, checked with the whole model
        return value

    @model_validator(mode="after")
    def _one_source(self, info: ValidationInfo) -> ModelSource:
        given = [k for k in ("path", "source", "entrypoint") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give either 'path' or 'entrypoint' or 'source' (only one)")
        if self.entrypoint is not None and self.format not in ("auto", "entrypoint"):
            raise ValueError("'entrypoint' goes with format 'entrypoint' (or 'auto')")
        if self.entrypoint is not None and (self.sha256 or self.verify):
            raise ValueError("an 'entrypoint' has no file to check: drop 'sha256' and 'verify'")
        if self.source is not None:
            from mlci.sources.reference import parse_source

            parse_source(self.source, self.sha256)
        target = (self.entrypoint or "").rpartition(":")[0]
        base = (info.context or {}).get("base_dir")
        if base is not None and (target.endswith(".py") or "/" in target or "\\" in target):
            # A file entry point is a path like any other (a module name is looked up on
            # sys.path and names no file).
            check_inside(target, Path(base) / target, info.context)
        return self


class ModelConfig(ModelSource):
    """A candidate model and the production baseline it must beat."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Short model name.")
    baseline: ModelSource | None = Field(None, description="The model in production.")
    convert: bool = Field(
        False,
        description="Convert a scikit-learn model to ONNX and check parity on the evaluation data.",
    )

    @model_validator(mode="after")
    def _base_branch(self) -> ModelConfig:
        from mlci.sources.reference import BASE_BRANCH, LocalSource, parse_source

        if self.source == BASE_BRANCH:
            raise ValueError("'source: base-branch' is for baselines: the candidate needs a file")
        if self.baseline is not None and self.baseline.source == BASE_BRANCH:
            local = self.path is not None or (
                self.source is not None and isinstance(parse_source(self.source), LocalSource)
            )
            if not local:
                raise ValueError(
                    "a baseline from 'base-branch' is the candidate's file on the base branch: "
                    "give the candidate as a local 'path'"
                )
        return self


class SliceConfig(Strict):
    """One declared slice definition; it may expand into several slices."""

    name: str | None = Field(None, description="Label for the slice (default: derived).")
    feature: str | None = Field(None, description="Column to slice by.")
    values: list[str | int | float | bool] | None = Field(
        None, description="Only these values of a categorical feature."
    )
    bins: list[Annotated[float, Field(allow_inf_nan=True)]] | None = Field(
        None, description="Bin edges for a numeric feature (.inf for an open end)."
    )
    quantiles: int | None = Field(
        None, ge=2, le=100, description="Quantile bins for a numeric feature."
    )
    where: str | None = Field(
        None,
        description="Boolean expression over columns, e.g. \"age < 30 and region == 'north'\".",
    )
    cross: list[str] | None = Field(
        None, min_length=2, max_length=2, description="Two features: one slice per pair of values."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> SliceConfig:
        kinds = [k for k in ("feature", "where", "cross") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a slice needs exactly one of 'feature', 'where' or 'cross'")
        numeric = [k for k in ("values", "bins", "quantiles") if getattr(self, k) is not None]
        if numeric and self.feature is None:
            raise ValueError(f"'{numeric[0]}' goes with 'feature'")
        if len(numeric) > 1:
            raise ValueError("use only one of 'values', 'bins' or 'quantiles'")
        if self.bins is not None and (len(self.bins) < 2 or sorted(set(self.bins)) != self.bins):
            raise ValueError("'bins' needs at least two strictly increasing edges")
        if self.where is not None and self.name is None:
            raise ValueError("a 'where' slice needs a 'name'")
        return self


class DiscoverConfig(Strict):
    """Automatic slice finding with SliceLine."""

    enabled: bool = True
    features: list[str] | None = Field(None, description="Features to slice on (default: all).")
    max_level: int = Field(2, ge=1, le=5, description="Most predicates in one slice.")
    top_k: int = Field(10, ge=1, le=100, description="How many slices to report.")
    alpha: float = Field(
        0.95, gt=0, le=1, description="Weight of slice error against slice size in the score."
    )
    min_support: int | None = Field(
        None, ge=1, description="Fewest rows in a slice (default: 1% of the rows, at least 30)."
    )
    numeric_bins: int = Field(5, ge=2, le=50, description="Quantile bins for numeric features.")
    holdout: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="Share of rows kept out of the search and used to measure and flag the "
        "slices found, so their tests are not biased by the search (0: search and test on "
        "the same rows).",
    )
    error: Literal["auto", "model", "regression"] = Field(
        "auto",
        description="Score slices by the candidate's error ('model') or by how much worse it is "
        "than the baseline ('regression'); 'auto' uses 'regression' when there is a baseline.",
    )


class EvaluationConfig(Strict):
    """Metrics, intervals, slices and comparison with the baseline."""

    metrics: list[str] | None = Field(
        None, description="Metrics to compute (default: all for the task)."
    )
    primary_metric: str | None = Field(
        None,
        description="Metric that decides slice flags (default: roc_auc, else accuracy, or rmse).",
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Level of every interval.")
    bootstrap: int = Field(1000, ge=0, le=100_000, description="Bootstrap replicates (0: none).")
    _enough_replicates = field_validator("bootstrap")(enough_replicates)
    seed: int = Field(0, ge=0, description="Seed of every random choice, for repeatable results.")
    min_slice_size: int = Field(
        30, ge=1, description="Slices with fewer rows are reported as too small."
    )
    fdr: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="False discovery rate for flagging slices (Benjamini-Hochberg).",
    )
    slices: list[SliceConfig] = Field(default_factory=list)
    discover: DiscoverConfig = Field(default_factory=DiscoverConfig)
    fairness: FairnessConfig | None = Field(
        None, description="Per-group rates and disparities for sensitive features."
    )
    importance: ImportanceConfig | None = Field(
        None, description="Permutation importance of every feature, candidate and baseline."
    )


class ReportConfig(Strict):
    """How reports are rendered."""

    templates: ConfigPath | None = Field(
        None,
        description="Folder of Jinja2 templates searched before the packaged ones (a file named "
        "like a packaged template replaces it).",
    )


class EngineConfig(Strict):
    """Where the models predict on the evaluation data."""

    @property
    def folds(self) -> bool:
        """Whether the evaluation is folded batch by batch (never holding every row)."""
        return self.kind == "stream" or (self.kind == "dask" and self.fold)

    kind: Literal["local", "dask", "stream"] = Field(
        "local",
        description="local: in this process; dask: on a Dask cluster's workers, each reading "
        "and predicting its share of the Parquet file's rows; stream: in this process, one "
        "batch of the Parquet file's rows at a time, in memory that does not grow with the "
        "rows (evaluate and gate stages, declared slices, SliceLine).",
    )
    scheduler: str | None = Field(
        None,
        pattern=r"^(tcp|tls)://\S+$",
        description="Address of a Dask scheduler (tcp://host:8786); none starts a local "
        "cluster of worker processes on this machine.",
    )
    workers: int = Field(2, ge=1, le=256, description="Worker processes of a local cluster.")
    fold: bool = Field(
        False,
        description="dask: workers also fold the statistics of their rows and the client only "
        "merges them, so neither holds the data (engine: stream's limits apply).",
    )
    partition_rows: int = Field(
        1_000_000,
        ge=1,
        description="Rows per Dask task or stream batch, rounded up to whole prediction chunks "
        "of 65,536 rows; each reads the Parquet row groups its rows lie in.",
    )


class PathsConfig(Strict):
    """Where the files mlci.yaml names may be."""

    allow_outside: bool = Field(
        False,
        description="Let paths in this file (data, reference, models, baselines, templates, "
        "pytest files, card datasets, entry point files) lead outside its folder.",
    )


class Config(Strict):
    """An mlci.yaml file."""

    version: Literal[1] = Field(description="Schema version of this file.")
    data: DataConfig
    models: list[ModelConfig] = Field(min_length=1)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    tests: TestsConfig | None = Field(None, description="Model tests and data checks.")
    benchmark: BenchmarkConfig | None = Field(None, description="Latency and throughput.")
    gate: GateConfig | None = Field(None, description="Promotion rules and the decision.")
    card: CardConfig | None = Field(None, description="Free-text fields of the model card.")
    image: ImageConfig | None = Field(
        None, description="The serving image: base, registry, push, SBOM and signing."
    )
    canary: CanaryConfig | None = Field(
        None, description="Canary analysis: shadow replay, live metrics, the judge."
    )
    report: ReportConfig = Field(default_factory=ReportConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    watch: WatchConfig | None = Field(
        None, description="Production watch: drift and performance on live traffic (mlci watch)."
    )
    paths: PathsConfig = Field(default_factory=PathsConfig)
    stages: list[StageName] = Field(
        default_factory=lambda: list(get_args(StageName)),
        description="Stages `mlci check` runs (always in the order evaluate, tests, benchmark, "
        "image, sbom, sign, canary, gate, card, attest); one without its section is skipped, "
        "saying why.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for model in self.models:
            if model.name in seen:
                raise ValueError(f"two models are named '{model.name}'; names must be unique")
            seen.add(model.name)
        return self


def json_schema() -> dict[str, Any]:
    """The JSON Schema of mlci.yaml, for editors."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mlci.yaml"
    return schema


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and where each of its values came from."""

    config: Config
    path: Path
    source: SourceMap

    def where(self, loc: Loc) -> str:
        """``file:line:col: dotted.field`` for a location in the file."""
        return f"{self.source.position(loc)}: {format_loc(loc)}"

    def error(self, loc: Loc, message: str, *, tip: str | None = None) -> ConfigError:
        """A ConfigError pointing at ``loc``."""
        return ConfigError(f"{self.where(loc)}: {message}", tip=tip)


class SourceMap:
    """Maps a field location to the line and column of the YAML node that set it."""

    def __init__(self, display: str, root: yaml.Node | None) -> None:
        self.display = display
        self.root = root

    def node(self, loc: Loc) -> yaml.Node | None:
        node = self.root
        found = node
        for part in loc:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                node = next((v for k, v in node.value if k.value == part), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                node = node.value[part] if 0 <= part < len(node.value) else None
            else:
                node = None
            if node is None:
                break
            found = node
        return found

    def key_node(self, loc: Loc) -> yaml.Node | None:
        """The key node of the last part of ``loc`` (for unknown keys)."""
        parent = self.node(loc[:-1])
        if isinstance(parent, yaml.MappingNode):
            for key, _ in parent.value:
                if key.value == loc[-1]:
                    return key
        return None

    def position(self, loc: Loc) -> str:
        """``file:line:col`` of the key that sets ``loc`` (or of the list item, or the parent)."""
        node = None
        if loc and isinstance(loc[-1], str):
            node = self.key_node(loc)
        if node is None:
            node = self.node(loc)
        if node is None:
            return self.display
        mark = node.start_mark
        return f"{self.display}:{mark.line + 1}:{mark.column + 1}"


def format_loc(loc: Loc) -> str:
    """``('evaluation', 'slices', 1, 'feature')`` -> ``evaluation.slices[1].feature``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def find_config(start: Path) -> Path:
    """The mlci.yaml in ``start`` (a file or a folder)."""
    if start.is_file():
        return start
    if start.is_dir():
        for name in CONFIG_NAMES:
            if (start / name).is_file():
                return start / name
        raise ConfigError(f"no mlci.yaml in {start}", tip="pass the file with --config PATH")
    raise ConfigError(
        f"{start}: no such configuration file", tip="pass the file with --config PATH"
    )


def load_config(path: Path) -> LoadedConfig:
    """Read, parse and validate an mlci.yaml file."""
    path = find_config(path)
    display = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{display}: the file is {size:,} bytes; a configuration may have at most "
                f"{MAX_CONFIG_BYTES:,}",
                tip="check that --config names mlci.yaml",
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{display}: cannot read ({exc.__class__.__name__})") from None
    root, data = parse_yaml(text, display)
    source = SourceMap(display, root)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{display}: expected a mapping of settings at the top level, found "
            f"{type(data).__name__ if data is not None else 'an empty file'}",
            tip="start from the example in the README",
        )
    try:
        # Read first whether paths may leave the folder, so every path below is judged by it.
        paths = PathsConfig.model_validate(data.get("paths") or {})
    except ValidationError as exc:
        raise _config_error(exc, source, ("paths",)) from None
    context = {"base_dir": path.parent, "allow_outside": paths.allow_outside}
    try:
        config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        raise _config_error(exc, source) from None
    return LoadedConfig(config=config, path=path, source=source)


def parse_yaml(text: str, display: str) -> tuple[yaml.Node | None, Any]:
    """Parse YAML into its node tree and Python data, refusing what could exhaust mlci.

    The node tree is checked before any Python object is built: at most ``MAX_YAML_NODES``
    nodes once aliases are expanded, no alias that contains itself, only plain keys, no
    duplicate keys.
    """
    loader = _BoundedLoader(text, display)
    try:
        root = loader.get_single_node()
        if root is not None:
            _check_nodes(root, display)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{display}:{mark.line + 1}:{mark.column + 1}" if mark else display
        raise ConfigError(f"{where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{display}: invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(
            f"{display}: invalid YAML: lists or mappings are nested too deeply"
        ) from None
    finally:
        loader.dispose()
    return root, data


class _BoundedLoader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader, refusing nesting deeper than MAX_YAML_DEPTH while it composes
    (its composer recurses once per level, so depth must be bounded before the stack is)."""

    def __init__(self, text: str, display: str) -> None:
        super().__init__(text)
        self.name = display  # what marks (positions in errors) call the file
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(
                    f"{mark.name}:{mark.line + 1}:{mark.column + 1}: invalid YAML: lists or "
                    f"mappings are nested more than {MAX_YAML_DEPTH} levels deep"
                )
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self.depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_nodes(root: yaml.Node, display: str) -> None:
    """Count nodes as if every alias were expanded, without expanding any (linear time)."""

    def at(node: yaml.Node) -> str:
        mark = node.start_mark
        return f"{display}:{mark.line + 1}:{mark.column + 1}"

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_YAML_NODES:
                raise ConfigError(
                    f"{at(node)}: this value expands to more than {MAX_YAML_NODES:,} YAML nodes "
                    "(aliases included)",
                    tip="a configuration this large is a mistake or an alias bomb; write it out",
                )
            if isinstance(node, yaml.MappingNode):
                _check_keys(node, at)
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ConfigError(f"{at(node)}: invalid YAML: an alias refers to a value containing it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _check_keys(node: yaml.MappingNode, at: Any) -> None:
    # PyYAML silently keeps the last of two equal keys; a typo'd copy would then go unnoticed.
    seen: set[str] = set()
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode):
            raise ConfigError(f"{at(key)}: invalid YAML: a key must be a plain name")
        if key.value in seen and key.tag != "tag:yaml.org,2002:merge":
            raise ConfigError(f"{at(key)}: duplicate key '{key.value}'")
        seen.add(key.value)


def _config_error(exc: ValidationError, source: SourceMap, prefix: Loc = ()) -> ConfigError:
    # Report the first problem only: one line the user can act on, then run again.
    err = _most_useful(exc.errors())
    loc: Loc = prefix + tuple(
        p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))
    )
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = did_you_mean(str(loc[-1]), allowed)
        where = source.position(loc)
        return ConfigError(
            f"{where}: {format_loc(loc)}: unknown key '{loc[-1]}'{hint}",
            tip=None if hint else f"valid keys here: {', '.join(sorted(allowed))}",
        )
    if kind == "missing":
        return ConfigError(f"{source.position(loc[:-1])}: {format_loc(loc)}: required but missing")
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "literal_error":
        message = f"{message}; got {err.get('input')!r}"
    return ConfigError(
        f"{source.position(loc)}: {format_loc(loc)}: {message[0].lower()}{message[1:]}"
    )


def _most_useful(errors: Sequence[Any]) -> Any:
    # Unions of literals produce one error per branch; an unknown key is the likeliest typo.
    for err in errors:
        if err["type"] == "extra_forbidden":
            return err
    return errors[0]


def _allowed_keys(loc: Loc) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        inner = _model_of(field.annotation)
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
