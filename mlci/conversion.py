"""`mlci convert`: scikit-learn models to ONNX, with a parity check on the evaluation data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlci.config import LoadedConfig
from mlci.data import load_dataset
from mlci.errors import UsageError
from mlci.stages import load_source, model_frame
from mlci.suggest import did_you_mean

if TYPE_CHECKING:
    from mlci.models.convert import ConversionResult


def convert_models(
    loaded: LoadedConfig, out: Path, only: str | None = None
) -> list[tuple[str, ConversionResult]]:
    """Convert every configured scikit-learn model (or just ``only``) into ``out``."""
    from mlci.models.convert import convert_to_onnx
    from mlci.models.sklearn import SklearnModel

    names = [m.name for m in loaded.config.models]
    if only is not None and only not in names:
        raise UsageError(f"no model named '{only}' in {loaded.path}{did_you_mean(only, names)}")
    data = load_dataset(loaded)
    results = []
    for spec in loaded.config.models:
        if only is not None and spec.name != only:
            continue
        model = load_source(spec, spec.name, loaded)
        if not isinstance(model, SklearnModel):
            if only is not None:
                raise UsageError(
                    f"model '{spec.name}' is {model.info.format}, not scikit-learn; nothing to convert"
                )
            continue
        out.mkdir(parents=True, exist_ok=True)
        results.append(
            (spec.name, convert_to_onnx(model, model_frame(model, data), out / f"{spec.name}.onnx"))
        )
    if not results:
        raise UsageError(f"{loaded.path}: no scikit-learn models to convert")
    return results
