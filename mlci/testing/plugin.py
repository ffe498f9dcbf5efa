"""The mlci pytest plugin (registered through the ``pytest11`` entry point).

With ``--mlci-config PATH`` it provides fixtures for the configured model, its baseline, the
evaluation and reference data and the declared slices, and collects the pytest files listed
under ``tests.pytest`` in mlci.yaml when no test paths are given. Without the option the
fixtures skip with a message saying so, and nothing else changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlci")
    group.addoption(
        "--mlci-config",
        action="store",
        default=None,
        metavar="PATH",
        help="mlci.yaml whose models, data and slices the mlci fixtures provide",
    )
    group.addoption(
        "--mlci-model",
        action="store",
        default=None,
        metavar="NAME",
        help="the model of mlci.yaml the fixtures load (default: the first one)",
    )


def pytest_configure(config: pytest.Config) -> None:
    option = config.getoption("--mlci-config", None)
    if not option:
        return
    # `pytest --mlci-config mlci.yaml` with no test paths runs the files listed in mlci.yaml.
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    from mlci.config import load_config
    from mlci.errors import MlciError

    try:
        loaded = load_config(Path(option))
    except MlciError as exc:
        raise pytest.UsageError(f"--mlci-config: {exc.diagnostics()}") from None
    tests = loaded.config.tests
    if tests is not None and tests.pytest:
        base = loaded.path.parent
        config.args = [str(p if p.is_absolute() else base / p) for p in tests.pytest]


class _Session:
    """What the fixtures share: the configuration, loaded once per test session."""

    def __init__(self, config: pytest.Config) -> None:
        option = config.getoption("--mlci-config", None)
        self.option = option
        self.model_name = config.getoption("--mlci-model", None)
        self._cache: dict[str, Any] = {}

    def need(self) -> None:
        if not self.option:
            pytest.skip(
                "mlci fixtures need a configuration: run pytest with --mlci-config PATH/mlci.yaml"
            )

    def get(self, key: str, make: Any) -> Any:
        if key not in self._cache:
            from mlci.errors import MlciError

            try:
                self._cache[key] = make()
            except MlciError as exc:
                raise pytest.UsageError(f"mlci: {exc.diagnostics()}") from None
        return self._cache[key]

    @property
    def loaded(self) -> Any:
        self.need()
        from mlci.config import load_config

        return self.get("loaded", lambda: load_config(Path(self.option)))

    @property
    def spec(self) -> Any:
        loaded = self.loaded
        models = loaded.config.models
        if self.model_name is None:
            return models[0]
        for model in models:
            if model.name == self.model_name:
                return model
        from mlci.suggest import did_you_mean

        names = [m.name for m in models]
        raise pytest.UsageError(
            f"--mlci-model: no model '{self.model_name}' in {loaded.path}"
            f"{did_you_mean(self.model_name, names)}"
        )

    @property
    def data(self) -> Any:
        from mlci.data import load_dataset

        loaded = self.loaded
        return self.get("data", lambda: load_dataset(loaded))


_STATE = pytest.StashKey[_Session]()


def _session(request: pytest.FixtureRequest) -> _Session:
    config = request.config
    if _STATE not in config.stash:
        config.stash[_STATE] = _Session(config)
    return config.stash[_STATE]


@pytest.fixture(scope="session")
def mlci_config(request: pytest.FixtureRequest) -> Any:
    """The loaded mlci.yaml (``mlci.config.LoadedConfig``)."""
    return _session(request).loaded


@pytest.fixture(scope="session")
def mlci_model(request: pytest.FixtureRequest) -> Any:
    """The candidate model (``mlci.models.interface.Model``)."""
    state = _session(request)
    spec, loaded = state.spec, state.loaded
    from mlci.stages import load_source

    return state.get(f"model:{spec.name}", lambda: load_source(spec, spec.name, loaded))


@pytest.fixture(scope="session")
def mlci_baseline(request: pytest.FixtureRequest) -> Any:
    """The production baseline of the candidate; skips when mlci.yaml gives none."""
    state = _session(request)
    spec, loaded = state.spec, state.loaded
    if spec.baseline is None:
        pytest.skip(f"model '{spec.name}' has no baseline in {loaded.path}")
    from mlci.stages import load_source

    return state.get(
        f"baseline:{spec.name}",
        lambda: load_source(spec.baseline, f"{spec.name} (baseline)", loaded, candidate=spec),
    )


@pytest.fixture(scope="session")
def mlci_data(request: pytest.FixtureRequest) -> Any:
    """The evaluation data (``mlci.data.Dataset``)."""
    return _session(request).data


@pytest.fixture(scope="session")
def mlci_reference(request: pytest.FixtureRequest) -> Any:
    """The reference (training) data of ``data.reference``; skips when it is not set."""
    state = _session(request)
    loaded = state.loaded
    if loaded.config.data.reference is None:
        pytest.skip(f"no data.reference in {loaded.path}")
    from mlci.testing.assertions import load_reference

    return state.get("reference", lambda: load_reference(loaded, state.data))


@pytest.fixture(scope="session")
def mlci_slices(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The declared slices of ``evaluation.slices``: name -> boolean row mask."""
    state = _session(request)
    loaded, data = state.loaded, state.data
    from mlci.evaluate.rows import slice_masks

    masks: dict[str, Any] = state.get("slices", lambda: slice_masks(loaded, data))
    return masks
