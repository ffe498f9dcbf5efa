"""GitHub's published OpenAPI description, as a request validator and a source of responses.

The description is the npm package @octokit/openapi, pinned in scripts/fetch-github-openapi
(which prints where it put it). Tests that need it fail, never skip, when it is missing.

* :func:`description` loads it once per process (about 0.1 s for 13 MB) and turns OpenAPI 3.0's
  ``nullable`` into JSON Schema so that ``jsonschema`` can check instances (Draft 4 rules, which
  OpenAPI 3.0 schemas follow).
* :meth:`Spec.check_request` finds the operation for a method and path (literal path segments
  win over templated ones) and checks path and query parameters and the JSON body against it.
* :meth:`Spec.example` gives the description's own example for a response, and
  :meth:`Spec.instance` builds a minimal instance of any schema, for payloads without examples.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

ROOT = Path(__file__).resolve().parent.parent
VERSION = "23.0.2"
DEFAULT_PATH = (
    ROOT / ".cache" / "github-openapi" / VERSION / "package" / "generated" / "api.github.com.json"
)
METHODS = ("get", "post", "put", "patch", "delete", "head")
BASE = "urn:github-openapi"


def description_path() -> Path:
    """Where the description is: MLCI_GITHUB_OPENAPI, else the fetch script's cache."""
    path = Path(os.environ.get("MLCI_GITHUB_OPENAPI") or DEFAULT_PATH)
    if not path.is_file():
        pytest.fail(
            f"GitHub's OpenAPI description is missing at {path}: run scripts/fetch-github-openapi "
            "(needs npm) or point MLCI_GITHUB_OPENAPI at generated/api.github.com.json of "
            f"@octokit/openapi@{VERSION}",
            pytrace=False,
        )
    return path


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects to JSON Schema (nullable -> a "null" type), in place."""
    if isinstance(node, dict):
        for value in node.values():
            _to_json_schema(value)
        if node.pop("nullable", False) is True:
            kind = node.get("type")
            if isinstance(kind, str):
                node["type"] = [kind, "null"]
                if "enum" in node and None not in node["enum"]:
                    node["enum"] = [*node["enum"], None]
            elif "type" not in node:
                inner = {k: node.pop(k) for k in list(node) if k not in ("description", "title")}
                node["anyOf"] = [inner, {"type": "null"}]
    elif isinstance(node, list):
        for value in node:
            _to_json_schema(value)
    return node


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    literal_segments: int
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["operationId"])


class Spec:
    """The description, indexed by operation."""

    def __init__(self, raw: dict[str, Any], source: Path) -> None:
        self.raw = raw
        self.source = source
        self.version = raw["info"]["version"]
        self.schema_doc = _to_json_schema(copy.deepcopy({"components": raw["components"]}))
        self.registry = Registry().with_resource(
            BASE, Resource.from_contents(self.schema_doc, default_specification=DRAFT4)
        )
        self.operations: list[Operation] = []
        self.by_id: dict[str, Operation] = {}
        for template, item in raw["paths"].items():
            literal = sum(1 for part in template.split("/") if part and not part.startswith("{"))
            for method in METHODS:
                if method in item:
                    # A parameter marked x-multi-segment (a file's path) spans slashes.
                    multi = {
                        p["name"]
                        for p in (self.resolve(x) for x in item[method].get("parameters", []))
                        if p.get("in") == "path" and p.get("x-multi-segment")
                    }

                    def segment(found: re.Match[str], multi: set[str] = multi) -> str:
                        return "(.+)" if found.group(1) in multi else "([^/]+)"

                    regex = "^" + re.sub(r"\\\{([^}]+)\\\}", segment, re.escape(template)) + "$"
                    operation = Operation(
                        method, template, re.compile(regex), literal, item[method]
                    )
                    self.operations.append(operation)
                    self.by_id[operation.id] = operation
        self._validators: dict[str, Any] = {}

    # -- schemas ----------------------------------------------------------------------------

    def resolve(self, node: Any) -> Any:
        """Follow ``$ref`` (within the description) until a non-reference."""
        while isinstance(node, dict) and "$ref" in node:
            node = self.pointer(node["$ref"])
        return node

    def pointer(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"external reference {ref!r}")
        node: Any = self.raw
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def validator(self, schema: dict[str, Any]) -> Any:
        """A Draft 4 validator for an OpenAPI schema object (references resolved lazily)."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            converted = _to_json_schema(copy.deepcopy(schema))
            converted = _rebase(converted)
            self._validators[key] = jsonschema.Draft4Validator(converted, registry=self.registry)
        return self._validators[key]

    def errors(self, schema: dict[str, Any], instance: Any) -> list[str]:
        found = sorted(self.validator(schema).iter_errors(instance), key=lambda e: list(e.path))
        return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in found]

    def component(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    # -- operations ---------------------------------------------------------------------------

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        best: tuple[Operation, dict[str, str]] | None = None
        for operation in self.operations:
            if operation.method != method.lower():
                continue
            found = operation.pattern.match(path)
            if found and (best is None or operation.literal_segments > best[0].literal_segments):
                names = re.findall(r"\{([^}]+)\}", operation.template)
                best = (operation, dict(zip(names, found.groups(), strict=True)))
        return best

    def parameters(self, operation: Operation) -> list[dict[str, Any]]:
        item = self.raw["paths"][operation.template]
        merged = {}
        for param in [*item.get("parameters", []), *operation.data.get("parameters", [])]:
            param = self.resolve(param)
            merged[(param["name"], param["in"])] = param
        return list(merged.values())

    def check_request(
        self, method: str, path: str, query: str, body: bytes, content_type: str | None
    ) -> tuple[Operation | None, list[str]]:
        """The operation a request calls and everything wrong with the request."""
        found = self.match(method, path)
        if found is None:
            return None, [f"{method} {path}: no such operation in GitHub's description"]
        operation, path_values = found
        problems: list[str] = []
        values = parse_qs(query, keep_blank_values=True)
        declared = self.parameters(operation)
        names = {(p["name"], p["in"]) for p in declared}
        problems += [
            f"{operation.id}: unknown query parameter {name!r}"
            for name in values
            if (name, "query") not in names
        ]
        for param in declared:
            where, name = param["in"], param["name"]
            if where == "path":
                raw: list[str] | None = [path_values[name]] if name in path_values else None
            elif where == "query":
                raw = values.get(name)
            else:
                continue
            if raw is None:
                if param.get("required"):
                    problems.append(f"{operation.id}: missing required {where} parameter {name!r}")
                continue
            schema = param.get("schema", {})
            for value in raw:
                problems += [
                    f"{operation.id}: {where} parameter {name}={value!r}: {e}"
                    for e in self.errors(schema, _coerce(value, self.resolve(schema)))
                ]
        request_body = self.resolve(operation.data.get("requestBody"))
        if request_body is None:
            if body:
                problems.append(f"{operation.id}: takes no request body, got {len(body)} bytes")
        elif not body:
            if request_body.get("required"):
                problems.append(f"{operation.id}: request body required")
        else:
            if not (content_type or "").startswith("application/json"):
                problems.append(f"{operation.id}: body is {content_type!r}, not JSON")
            try:
                instance = json.loads(body)
            except ValueError as exc:
                problems.append(f"{operation.id}: body is not JSON ({exc})")
            else:
                schema = request_body["content"]["application/json"]["schema"]
                problems += [f"{operation.id}: body {e}" for e in self.errors(schema, instance)]
        return operation, problems

    def response_schema(self, operation_id: str, status: int) -> dict[str, Any] | None:
        operation = self.by_id[operation_id]
        response = self.resolve(operation.data["responses"].get(str(status)))
        if not response or "content" not in response:
            return None
        return response["content"]["application/json"].get("schema")

    def example(self, operation_id: str, status: int) -> Any:
        """The description's own example of a response (a deep copy)."""
        operation = self.by_id[operation_id]
        response = self.resolve(operation.data["responses"][str(status)])
        media = response["content"]["application/json"]
        examples = media.get("examples") or {}
        if examples:
            first = self.resolve(next(iter(examples.values())))
            return copy.deepcopy(first["value"])
        if "example" in media:
            return copy.deepcopy(media["example"])
        return self.instance(media["schema"])

    def instance(self, schema: Any, depth: int = 0) -> Any:
        """A minimal instance of a schema: required properties only, examples where given."""
        schema = self.resolve(schema)
        if depth > 40:
            return None
        if "example" in schema and schema["example"] is not None:
            return copy.deepcopy(schema["example"])
        if "enum" in schema:
            return next(v for v in schema["enum"] if v is not None)
        for key in ("allOf",):
            if key in schema:
                merged: dict[str, Any] = {}
                for part in schema[key]:
                    value = self.instance(part, depth + 1)
                    if isinstance(value, dict):
                        merged.update(value)
                return merged
        for key in ("oneOf", "anyOf"):
            if key in schema:
                options = [self.resolve(o) for o in schema[key]]
                options = [o for o in options if o.get("type") != "null"] or options
                return self.instance(options[0], depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object" or (kind is None and "properties" in schema):
            props = schema.get("properties", {})
            return {
                name: self.instance(props[name], depth + 1) if name in props else None
                for name in schema.get("required", [])
            }
        if kind == "array":
            return []
        if kind == "integer":
            return max(1, int(schema.get("minimum", 1)))
        if kind == "number":
            return 1.0
        if kind == "boolean":
            return False
        if kind == "string":
            fmt = schema.get("format")
            if fmt == "date-time":
                return "2026-01-01T00:00:00Z"
            if fmt == "uri":
                return "https://github.com/octo-org/octo-repo"
            if fmt == "email":
                return "octocat@github.com"
            return "x" * max(1, int(schema.get("minLength", 1)))
        if kind == "null":
            return None
        return {}


def _rebase(node: Any) -> Any:
    """Point local ``#/components/...`` references at the registered description."""
    if isinstance(node, dict):
        return {
            k: (
                BASE + v
                if k == "$ref" and isinstance(v, str) and v.startswith("#/")
                else _rebase(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            return value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value


@cache
def description() -> Spec:
    """GitHub's description, loaded once per test process."""
    path = description_path()
    return Spec(json.loads(path.read_text(encoding="utf-8")), path)
