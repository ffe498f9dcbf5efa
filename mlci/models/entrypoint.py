"""Models built by user code: ``module:function`` or ``path/to/file.py:function``.

The function is called with no arguments and returns an object with ``predict`` (and
optionally ``predict_proba`` and ``classes_``), which is wrapped like a scikit-learn model.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from mlci.errors import ModelError
from mlci.hashing import sha256_file
from mlci.models.frames import one_line
from mlci.models.sklearn import SklearnModel

_FORM = "'module:function' or 'path/to/file.py:function'"


def parse_entrypoint(spec: str) -> tuple[str, str]:
    """Split ``spec`` into (module or file, function name); ModelError when malformed."""
    target, sep, func = spec.strip().rpartition(":")
    if not sep or not target or not func or not func.isidentifier():
        raise ModelError(
            f"entrypoint {spec!r}: expected {_FORM}",
            tip="for example entrypoint: my_package.model:build or models/build.py:build",
        )
    return target, func


def load_entrypoint(spec: str, *, name: str, base_dir: Path | None = None) -> SklearnModel:
    """Import the module or file named by ``spec``, call its function and wrap the result.

    A target ending in ``.py`` or containing a path separator is a file, relative to
    ``base_dir`` (default: the working directory); otherwise it is a module name, imported
    with ``base_dir`` on ``sys.path``.
    """
    target, func_name = parse_entrypoint(spec)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _import_file(spec, base / target)
    else:
        module = _import_module(spec, target, base)

    func = getattr(module, func_name, None)
    if func is None:
        public = [n for n in vars(module) if not n.startswith("_") and callable(vars(module)[n])]
        close = difflib.get_close_matches(func_name, public, n=1)
        raise ModelError(
            f"entrypoint {spec!r}: {_where(module)} has no function {func_name!r}",
            tip=f"did you mean {close[0]!r}?" if close else "define it, or fix the name after ':'",
        )
    if not callable(func):
        raise ModelError(
            f"entrypoint {spec!r}: {func_name!r} in {_where(module)} is not a function"
        )
    try:
        obj = func()
    except Exception as exc:
        raise ModelError(f"entrypoint {spec!r}: {func_name}() raised {one_line(exc)}") from exc
    if not callable(getattr(obj, "predict", None)):
        raise ModelError(
            f"entrypoint {spec!r}: {func_name}() returned a {type(obj).__name__} with no predict method",
            tip="return a fitted estimator or an object with predict(X) "
            "(and optionally predict_proba(X) and classes_)",
        )

    source = _source_file(module)
    return SklearnModel(
        obj,
        name=name,
        path=str(source) if source else spec,
        format="entrypoint",
        sha256=sha256_file(source) if source else "",
        size_bytes=source.stat().st_size if source else 0,
        extra={"entrypoint": spec},
    )


def _import_file(spec: str, path: Path) -> ModuleType:
    if not path.is_file():
        raise ModelError(f"entrypoint {spec!r}: {path}: no such file")
    # A name unique to the file, so two entry points called model.py do not collide.
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    mod_name = f"mlci_entrypoint_{path.stem}_{digest}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ModelError(f"entrypoint {spec!r}: {path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look the module up by name
    try:
        # Sibling helper modules next to the file are importable while it loads.
        with _on_path(path.parent):
            loader_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise ModelError(f"entrypoint {spec!r}: importing {path} failed ({one_line(exc)})") from exc
    return module


def _import_module(spec: str, target: str, base: Path) -> ModuleType:
    try:
        with _on_path(base):
            return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and (target == exc.name or target.startswith(exc.name + ".")):
            raise ModelError(
                f"entrypoint {spec!r}: no module named {target!r} (looked in {base} and sys.path)",
                tip="install the package, or give a file path such as models/build.py:build",
            ) from exc
        raise ModelError(
            f"entrypoint {spec!r}: importing {target!r} failed ({one_line(exc)})"
        ) from exc
    except Exception as exc:
        raise ModelError(
            f"entrypoint {spec!r}: importing {target!r} failed ({one_line(exc)})"
        ) from exc


@contextmanager
def _on_path(directory: Path) -> Any:
    entry = str(directory.resolve())
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def _source_file(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file)
    return path if path.is_file() and path.suffix == ".py" else None


def _where(module: ModuleType) -> str:
    source = _source_file(module)
    return str(source) if source else f"module {module.__name__!r}"
