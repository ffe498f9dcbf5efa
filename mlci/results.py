"""The results document: the one JSON file every stage writes and every renderer reads."""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from mlci.errors import InputError, MlciError
from mlci.files import write_atomic as write_atomic  # files follow the user's umask

SCHEMA_VERSION = "1.0"


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema that results.json follows (shipped inside the package)."""
    folder = resources.files("mlci").joinpath("schemas")
    data: dict[str, Any] = json.loads(folder.joinpath("results.schema.json").read_text("utf-8"))
    # Each stage describes its section in a file of its own under schemas/sections/
    for entry in folder.joinpath("sections").iterdir():
        if entry.name.endswith(".json"):
            data["$defs"][entry.name[: -len(".json")]] = json.loads(entry.read_text("utf-8"))
    return data


def jsonable(value: Any) -> Any:
    """Turn numpy scalars, tuples and non-finite floats into plain JSON values (NaN -> null)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def validate(document: dict[str, Any]) -> None:
    """Raise MlciError when ``document`` does not follow the results schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise MlciError(f"results document is invalid at {where}: {error.message}")


def dumps(document: dict[str, Any]) -> str:
    """The document as it is written to disk: validated, stable key order, no NaN."""
    clean = jsonable(document)
    validate(clean)
    return json.dumps(clean, indent=2, allow_nan=False) + "\n"


def load(path: Path) -> dict[str, Any]:
    """Read and validate a results.json file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable results document ({exc})") from None
    except RecursionError:  # JSON nested thousands deep
        raise InputError(f"{path}: not a readable results document (nested too deeply)") from None
    if not isinstance(document, dict):
        raise InputError(f"{path}: not a results document (expected a JSON object)")
    try:
        validate(document)
    except MlciError as exc:
        raise InputError(f"{path}: {exc.message}") from None
    return document
