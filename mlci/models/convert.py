"""Convert a scikit-learn model to ONNX with skl2onnx and check the copy predicts the same.

skl2onnx computes in float32 where scikit-learn uses float64, so a converted model is only
as good as its parity check: probabilities (or regression values) within a tolerance and
labels that agree on (almost) every row of a sample.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mlci.errors import MlciError
from mlci.files import temp_file
from mlci.models.frames import frame_length, one_line
from mlci.models.interface import Frame, Predictions
from mlci.models.onnx import OnnxModel
from mlci.models.sklearn import SklearnModel

# Defaults for the parity check. float32 arithmetic leaves differences around 1e-7 on
# probabilities; 1e-4 is far above that noise yet far below any difference that changes a
# metric. The relative term lets regressors with large outputs (where float32 keeps ~7
# significant digits) pass on rounding alone. One disagreeing label in a thousand is allowed
# because rows sitting exactly on a decision boundary can flip under float32 rounding.
ATOL = 1e-4
RTOL = 1e-4
MIN_LABEL_AGREEMENT = 0.999

Status = Literal["converted", "failed", "parity_lost"]


@dataclass(frozen=True)
class ConversionResult:
    """Outcome of :func:`convert_to_onnx`; ``onnx_path`` is None when nothing was written."""

    status: Status
    message: str
    onnx_path: Path | None = None
    max_abs_diff: float | None = None
    label_agreement: float | None = None
    rows_checked: int = 0


def convert_to_onnx(
    model: SklearnModel,
    sample: Frame,
    out_path: Path,
    *,
    atol: float = ATOL,
    rtol: float = RTOL,
    min_label_agreement: float = MIN_LABEL_AGREEMENT,
    target_opset: int | None = None,
) -> ConversionResult:
    """Convert ``model`` to ONNX at ``out_path`` and check parity on ``sample``.

    Never raises for a model or sample that cannot be converted: the result says "failed"
    and no file is written. Parity holds when every probability (or value) satisfies
    ``|onnx - native| <= atol + rtol * |native|`` and labels agree on at least
    ``min_label_agreement`` of the rows; otherwise the result says "parity_lost" and the
    converted file is still written so it can be inspected. The file is written atomically.
    """
    out_path = Path(out_path)
    name = _name(model)
    try:
        rows = frame_length(sample, f"{name} sample")
    except MlciError as exc:
        return _failed(f"cannot convert {name}: {exc.message}")
    if rows == 0:
        return _failed(f"cannot convert {name}: the sample has no rows to check parity on")

    types = _initial_types(model, sample)
    if isinstance(types, str):
        return _failed(f"cannot convert {name}: {types}")
    try:
        proto = _to_onnx(model, types, sample, target_opset)
    except Exception as exc:
        return _failed(f"skl2onnx cannot convert {name}: {_conversion_reason(exc)}")

    tmp: Path | None = None
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = temp_file(out_path.parent, prefix=f".{out_path.name}.")
        tmp = Path(tmp_name)
        with os.fdopen(fd, "wb") as handle:
            handle.write(proto.SerializeToString())
        onnx_pred = OnnxModel(tmp, name=out_path.stem).predict(sample)
        native_pred = model.predict(sample)
        check = _parity(native_pred, onnx_pred, atol=atol, rtol=rtol, min_agree=min_label_agreement)
        os.replace(tmp, out_path)
        tmp = None
    except MlciError as exc:
        return _failed(f"converted {name} but could not check it: {exc.diagnostics()}")
    except Exception as exc:
        return _failed(f"converted {name} but could not check it: {one_line(exc)}")
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()

    ok, detail, max_diff, agreement = check
    if ok:
        return ConversionResult(
            "converted",
            f"converted {name} to {out_path}; parity on {rows} rows: {detail}",
            out_path,
            max_diff,
            agreement,
            rows,
        )
    return ConversionResult(
        "parity_lost",
        f"converted {name} to {out_path} but its predictions differ on {rows} rows: {detail}",
        out_path,
        max_diff,
        agreement,
        rows,
    )


def _failed(message: str) -> ConversionResult:
    return ConversionResult("failed", message)


def _name(model: SklearnModel) -> str:
    return str(model.info.extra.get("estimator") or type(model.estimator).__name__)


def _initial_types(model: SklearnModel, sample: Frame) -> list[tuple[str, Any]] | str:
    """skl2onnx input types derived from the sample, or a reason why there are none."""
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    if model.feature_names is not None:
        missing = [c for c in model.feature_names if c not in sample]
        if missing:
            return f"the sample lacks the model's feature column(s) {', '.join(map(repr, missing))}"
        types: list[tuple[str, Any]] = []
        for column in model.feature_names:
            kind = np.asarray(sample[column]).dtype.kind
            if kind in "OSU":
                types.append((column, StringTensorType([None, 1])))
            elif kind in "iu":
                types.append((column, Int64TensorType([None, 1])))
            else:
                # floats, and booleans, which scikit-learn treats as numbers
                types.append((column, FloatTensorType([None, 1])))
        return types

    text = [c for c, v in sample.items() if np.asarray(v).dtype.kind in "OSU"]
    if text:
        return (
            "a model fitted without feature names gets one float tensor, but the sample has "
            f"text column(s) {', '.join(map(repr, text))}; fit the model on a DataFrame"
        )
    width = len(sample)
    if model.n_features is not None and model.n_features != width:
        return f"the model was fitted on {model.n_features} columns but the sample has {width}"
    return [("X", FloatTensorType([None, width]))]


def _to_onnx(
    model: SklearnModel, types: list[tuple[str, Any]], sample: Frame, target_opset: int | None
) -> Any:
    from skl2onnx import to_onnx

    estimator = model.estimator
    if model.feature_names is not None:
        estimator = _with_named_inputs(estimator, model.feature_names, sample)
    options = None
    if model.task in ("binary", "multiclass"):
        # A plain probability tensor instead of ZipMap's list of dicts: faster to run and
        # easier for every consumer to read.
        options = {id(_final_step(model.estimator)): {"zipmap": False}}
    with warnings.catch_warnings():
        # skl2onnx warns about opsets and dtypes on stderr; the result carries what matters.
        warnings.simplefilter("ignore")
        try:
            return to_onnx(
                estimator, initial_types=types, options=options, target_opset=target_opset
            )
        except NameError as exc:
            if options is None or "zipmap" not in str(exc):
                raise
            # This classifier's converter has no zipmap option: take its default outputs.
            return to_onnx(estimator, initial_types=types, target_opset=target_opset)


def _with_named_inputs(estimator: Any, names: tuple[str, ...], sample: Frame) -> Any:
    """``estimator`` behind a ColumnTransformer, so the ONNX model takes one input per column.

    skl2onnx maps several named inputs onto features only through a ColumnTransformer; any
    other first step accepts a single tensor. A passthrough ColumnTransformer in front keeps
    the inputs named (and so matched by name, not position) without changing predictions.
    """
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    first = estimator.steps[0][1] if isinstance(estimator, Pipeline) else estimator
    if isinstance(first, ColumnTransformer):
        return estimator
    columns = ColumnTransformer([("features", "passthrough", list(names))])
    # Passthrough learns nothing but the column layout, so fitting on the sample is exact.
    columns.fit(pd.DataFrame({name: np.asarray(sample[name]) for name in names}))
    return Pipeline([("columns", columns), ("model", estimator)])


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    while isinstance(steps, list) and steps:
        estimator = steps[-1][1]
        steps = getattr(estimator, "steps", None)
    return estimator


def _conversion_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    # skl2onnx dumps every node attribute (megabytes for tree ensembles) into the message.
    text = text.split(" and attributes=")[0].strip()
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(reason) > 300:
        reason = reason[:297].rstrip() + "..."
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        reason += f" ({one_line(cause, 160)})"
    return reason


def _parity(
    native: Predictions, onnx: Predictions, *, atol: float, rtol: float, min_agree: float
) -> tuple[bool, str, float | None, float | None]:
    """(within tolerance, description, max abs diff, label agreement)."""
    if native.values is not None:
        if onnx.values is None:
            return False, "the ONNX model returns no regression values", None, None
        diff, ok = _close(native.values, onnx.values, atol, rtol)
        return ok, f"max |diff| {diff:.3g} (tolerance {atol:g} + {rtol:g}*|value|)", diff, None

    problems: list[str] = []
    parts: list[str] = []
    max_diff: float | None = None
    if native.proba is not None:
        proba = _aligned_proba(native, onnx)
        if proba is None:
            problems.append(
                f"classes differ (native {native.classes}, ONNX {onnx.classes})"
                if onnx.proba is not None
                else "the ONNX model returns no probabilities"
            )
        else:
            max_diff, ok = _close(native.proba, proba, atol, rtol)
            parts.append(f"max |diff| of probabilities {max_diff:.3g}")
            if not ok:
                problems.append(
                    f"probabilities differ by up to {max_diff:.3g} (tolerance {atol:g})"
                )
    agreement: float | None = None
    if native.labels is not None and onnx.labels is not None:
        agreement = _agreement(native.labels, onnx.labels)
        parts.append(f"labels agree on {agreement:.2%}")
        if agreement < min_agree:
            problems.append(f"labels agree on {agreement:.2%} of rows (need {min_agree:.1%})")
    elif native.labels is not None:
        problems.append("the ONNX model returns no labels")
    if problems:
        return False, "; ".join(problems), max_diff, agreement
    return True, ", ".join(parts), max_diff, agreement


def _close(
    expected: np.ndarray, actual: np.ndarray, atol: float, rtol: float
) -> tuple[float, bool]:
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        return float("inf"), False
    if expected.size == 0:
        return 0.0, True
    gap = np.abs(expected - actual)
    # NaN in one and not the other is a difference; NaN in both is agreement.
    both_nan = np.isnan(expected) & np.isnan(actual)
    gap = np.where(both_nan, 0.0, np.where(np.isnan(gap), np.inf, gap))
    ok = bool(np.all(gap <= atol + rtol * np.abs(np.nan_to_num(expected))))
    return float(gap.max()), ok


def _aligned_proba(native: Predictions, onnx: Predictions) -> np.ndarray | None:
    """ONNX probabilities with columns in the native class order, or None if they cannot be."""
    if onnx.proba is None or native.proba is None:
        return None
    if native.classes is None or onnx.classes is None:
        return onnx.proba if onnx.proba.shape == native.proba.shape else None
    index = {_key(c): i for i, c in enumerate(onnx.classes)}
    try:
        order = [index[_key(c)] for c in native.classes]
    except KeyError:
        return None
    return onnx.proba[:, order]


def _agreement(native: np.ndarray, onnx: np.ndarray) -> float:
    a = np.asarray(native).reshape(-1)
    b = np.asarray(onnx).reshape(-1)
    if len(a) != len(b):
        return 0.0
    if len(a) == 0:
        return 1.0
    same = np.fromiter((_key(x) == _key(y) for x, y in zip(a, b, strict=True)), bool, len(a))
    return float(same.mean())


def _key(label: Any) -> Any:
    # ONNX returns int64 where scikit-learn may keep int32 or bool, and str where it keeps
    # numpy str_: compare labels by plain value.
    if isinstance(label, np.generic):
        label = label.item()
    if isinstance(label, bool):
        return int(label)
    if isinstance(label, float) and label.is_integer():
        return int(label)
    return label
