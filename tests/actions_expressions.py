"""GitHub Actions expressions (``${{ ... }}``), evaluated the way the runner evaluates them.

Written from GitHub's documentation of the expression syntax ("Evaluate expressions in
workflows and actions"): literals (``null``, booleans, numbers, single-quoted strings with
``''`` as the escape), contexts and property access (``a.b``, ``a['b']``, the ``*`` filter),
the operators ``!``, ``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``, ``&&``, ``||`` with the
documented loose equality (strings compare case-insensitively, other mixed types as numbers),
and the functions ``contains``, ``startsWith``, ``endsWith``, ``format``, ``join``, ``toJSON``,
``fromJSON``, ``hashFiles`` and the status checks ``success``, ``always``, ``cancelled``,
``failure``.

Everything GitHub refuses is an :class:`ExpressionError` here too: an unknown function, a
context that is not available where the expression is (``secrets`` in a composite action), a
wrong number of arguments, a syntax error.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUS_FUNCTIONS = ("success", "always", "cancelled", "failure")
FUNCTIONS: dict[str, tuple[int, int]] = {  # name -> (fewest, most) arguments
    "contains": (2, 2),
    "startswith": (2, 2),
    "endswith": (2, 2),
    "format": (1, 255),
    "join": (1, 2),
    "tojson": (1, 1),
    "fromjson": (1, 1),
    "hashfiles": (1, 255),
    "success": (0, 0),
    "always": (0, 0),
    "cancelled": (0, 0),
    "failure": (0, 0),
}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>0x[0-9a-fA-F]+|-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<string>'(?:[^']|'')*')
      | (?P<op>&&|\|\||==|!=|<=|>=|[!<>()\[\].,*])
      | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.VERBOSE,
)


class ExpressionError(Exception):
    """An expression GitHub would refuse to evaluate."""


class Filtered(list[Any]):
    """The result of a ``*`` filter: property access maps over its items."""


@dataclass
class Scope:
    """What an expression may see: its contexts, the status of the job, the workspace."""

    contexts: Mapping[str, Any]
    allowed: Sequence[str]
    status: str = "success"  # success, failure or cancelled: the state before this step
    workspace: Path | None = None
    functions: Sequence[str] = field(default_factory=lambda: tuple(FUNCTIONS))


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        found = _TOKEN.match(text, position)
        if not found or found.end() == position:
            raise ExpressionError(f"unexpected symbol at {text[position:]!r} in {text!r}")
        kind = found.lastgroup or ""
        tokens.append((kind, found.group(kind)))
        position = found.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            expected = f"'{value}'" if value else "more"
            raise ExpressionError(f"expected {expected} in {self.text!r}")
        self.index += 1
        return token

    def parse(self) -> Any:
        if not self.tokens:
            raise ExpressionError("an empty expression")
        node = self.or_()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in {self.text!r}")  # type: ignore[index]
        return node

    def or_(self) -> Any:
        node = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Any:
        node = self.equality()
        while self.peek() == ("op", "&&"):
            self.take()
            node = ("and", node, self.equality())
        return node

    def equality(self) -> Any:
        node = self.comparison()
        while self.peek() in (("op", "=="), ("op", "!=")):
            node = ("cmp", self.take()[1], node, self.comparison())
        return node

    def comparison(self) -> Any:
        node = self.unary()
        while self.peek() in (("op", "<"), ("op", "<="), ("op", ">"), ("op", ">=")):
            node = ("cmp", self.take()[1], node, self.unary())
        return node

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return ("not", self.unary())
        return self.postfix()

    def postfix(self) -> Any:
        node = self.primary()
        while True:
            token = self.peek()
            if token == ("op", "."):
                self.take()
                name = self.take()
                if name == ("op", "*"):
                    node = ("filter", node)
                elif name[0] == "name":
                    node = ("prop", node, ("lit", name[1]))
                else:
                    raise ExpressionError(f"expected a property name after '.' in {self.text!r}")
            elif token == ("op", "["):
                self.take()
                if self.peek() == ("op", "*"):
                    self.take()
                    node = ("filter", node)
                else:
                    node = ("prop", node, self.or_())
                self.take("]")
            else:
                return node

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "number":
            number = int(value, 16) if value.lower().startswith("0x") else float(value)
            return ("lit", number)
        if kind == "string":
            return ("lit", value[1:-1].replace("''", "'"))
        if kind == "op" and value == "(":
            node = self.or_()
            self.take(")")
            return node
        if kind == "name":
            lowered = value.lower()
            if lowered in ("true", "false"):
                return ("lit", lowered == "true")
            if lowered == "null":
                return ("lit", None)
            if self.peek() == ("op", "("):
                self.take()
                args = []
                if self.peek() != ("op", ")"):
                    args.append(self.or_())
                    while self.peek() == ("op", ","):
                        self.take()
                        args.append(self.or_())
                self.take(")")
                return ("call", lowered, value, args)
            return ("context", lowered, value)
        raise ExpressionError(f"unexpected {value!r} in {self.text!r}")


def parse(text: str) -> Any:
    """The syntax tree of one expression (without ``${{ }}``)."""
    return _Parser(text).parse()


# -- values ------------------------------------------------------------------------------------


def truthy(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True


def to_number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0.0
        try:
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        except ValueError:
            return math.nan
    return math.nan


def to_string(value: Any) -> str:
    """How a value reads when interpolated into a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (dict, list)):
        return "Object" if isinstance(value, dict) else "Array"
    return str(value)


def _primitive(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _equal(left: Any, right: Any) -> bool:
    if not (_primitive(left) and _primitive(right)):
        return left is right
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if left is None and right is None:
        return True
    if isinstance(left, bool) and isinstance(right, bool):
        return left == right
    # different types (or two numbers): compared as numbers, as GitHub documents
    a, b = to_number(left), to_number(right)
    return not (math.isnan(a) or math.isnan(b)) and a == b


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if isinstance(left, str) and isinstance(right, str):
        a: Any = left.casefold()
        b: Any = right.casefold()
    else:
        a, b = to_number(left), to_number(right)
        if math.isnan(a) or math.isnan(b):
            return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _property(value: Any, key: Any) -> Any:
    if isinstance(value, Filtered):
        found = Filtered()
        for item in value:
            got = _property(item, key)
            if got is not None:
                found.append(got)
        return found
    if isinstance(value, Mapping) and isinstance(key, str):
        if key in value:
            return value[key]
        for name, item in value.items():  # property names are case-insensitive
            if isinstance(name, str) and name.casefold() == key.casefold():
                return item
        return None
    if isinstance(value, list) and not isinstance(key, str):
        number = to_number(key)
        if not math.isnan(number) and number.is_integer() and 0 <= number < len(value):
            return value[int(number)]
    return None


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2)


def hash_files(workspace: Path | None, patterns: Sequence[str]) -> str:
    """``hashFiles``: sha256 over the sha256 of each matching file, in path order."""
    if workspace is None:
        raise ExpressionError("hashFiles is not available here")
    include: set[Path] = set()
    exclude: set[Path] = set()
    for pattern in patterns:
        negate = pattern.startswith("!")
        found = {
            Path(p)
            for p in glob.glob(str(workspace / pattern.lstrip("!")), recursive=True)
            if Path(p).is_file()
        }
        (exclude if negate else include).update(found)
    files = sorted(include - exclude)
    if not files:
        return ""
    outer = hashlib.sha256()
    for path in files:
        outer.update(hashlib.sha256(path.read_bytes()).digest())
    return outer.hexdigest()


def _format(template: str, args: Sequence[Any]) -> str:
    out: list[str] = []
    index = 0
    while index < len(template):
        char = template[index]
        if template.startswith("{{", index) or template.startswith("}}", index):
            out.append(char)
            index += 2
        elif char == "{":
            end = template.find("}", index)
            number = template[index + 1 : end] if end > 0 else ""
            if not number.isdigit() or int(number) >= len(args):
                raise ExpressionError(f"format: bad placeholder in {template!r}")
            out.append(to_string(args[int(number)]))
            index = end + 1
        elif char == "}":
            raise ExpressionError(f"format: unbalanced '}}' in {template!r}")
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _call(name: str, shown: str, args: list[Any], scope: Scope) -> Any:
    if name not in FUNCTIONS or name not in [f.lower() for f in scope.functions]:
        raise ExpressionError(f"Unrecognized function: '{shown}'")
    fewest, most = FUNCTIONS[name]
    if not fewest <= len(args) <= most:
        raise ExpressionError(f"{shown}: takes {fewest} to {most} arguments, got {len(args)}")
    if name == "success":
        return scope.status == "success"
    if name == "failure":
        return scope.status == "failure"
    if name == "cancelled":
        return scope.status == "cancelled"
    if name == "always":
        return True
    if name == "contains":
        haystack, needle = args
        if isinstance(haystack, list):
            return any(_equal(item, needle) for item in haystack)
        return to_string(needle).casefold() in to_string(haystack).casefold()
    if name == "startswith":
        return to_string(args[0]).casefold().startswith(to_string(args[1]).casefold())
    if name == "endswith":
        return to_string(args[0]).casefold().endswith(to_string(args[1]).casefold())
    if name == "format":
        return _format(to_string(args[0]), args[1:])
    if name == "join":
        separator = to_string(args[1]) if len(args) > 1 else ","
        items = args[0] if isinstance(args[0], list) else [args[0]]
        return separator.join(to_string(item) for item in items)
    if name == "tojson":
        return to_json(args[0])
    if name == "fromjson":
        try:
            return json.loads(to_string(args[0]))
        except ValueError as exc:
            raise ExpressionError(f"fromJSON: not JSON: {args[0]!r} ({exc})") from None
    if name == "hashfiles":
        return hash_files(scope.workspace, [to_string(a) for a in args])
    raise AssertionError(name)  # pragma: no cover


def evaluate(node: Any, scope: Scope) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "context":
        name = node[1]
        if name not in scope.allowed:
            raise ExpressionError(f"Unrecognized named-value: '{node[2]}'")
        return scope.contexts.get(name)
    if kind == "prop":
        return _property(evaluate(node[1], scope), evaluate(node[2], scope))
    if kind == "filter":
        value = evaluate(node[1], scope)
        if isinstance(value, Mapping):
            return Filtered(value.values())
        if isinstance(value, list):
            return Filtered(value)
        return Filtered()
    if kind == "not":
        return not truthy(evaluate(node[1], scope))
    if kind == "and":
        left = evaluate(node[1], scope)
        return evaluate(node[2], scope) if truthy(left) else left
    if kind == "or":
        left = evaluate(node[1], scope)
        return left if truthy(left) else evaluate(node[2], scope)
    if kind == "cmp":
        return _compare(node[1], evaluate(node[2], scope), evaluate(node[3], scope))
    if kind == "call":
        return _call(node[1], node[2], [evaluate(a, scope) for a in node[3]], scope)
    raise AssertionError(kind)  # pragma: no cover


def calls_status_function(node: Any) -> bool:
    if isinstance(node, list):
        return any(calls_status_function(item) for item in node)
    if not isinstance(node, tuple):
        return False
    if node[0] == "call" and node[1] in STATUS_FUNCTIONS:
        return True
    return any(calls_status_function(part) for part in node[1:])


def _split(text: str) -> list[tuple[bool, str]]:
    """Text and ``${{ expression }}`` pieces; ``}}`` inside a string does not end one."""
    pieces: list[tuple[bool, str]] = []
    index = 0
    while True:
        start = text.find("${{", index)
        if start < 0:
            pieces.append((False, text[index:]))
            return pieces
        pieces.append((False, text[index:start]))
        position = start + 3
        in_string = False
        while position < len(text):
            if text[position] == "'":
                in_string = not in_string
            elif not in_string and text.startswith("}}", position):
                break
            position += 1
        else:
            raise ExpressionError(f"an expression that never ends: {text[start:]!r}")
        pieces.append((True, text[start + 3 : position]))
        index = position + 2


def interpolate(text: Any, scope: Scope) -> Any:
    """A value with its ``${{ }}`` expressions evaluated (a lone expression keeps its type)."""
    if not isinstance(text, str):
        return text
    pieces = _split(text)
    expressions = [p for p in pieces if p[0]]
    if not expressions:
        return text
    if len(pieces) == 3 and pieces[0] == (False, "") and pieces[2] == (False, ""):
        return evaluate(parse(pieces[1][1]), scope)
    return "".join(to_string(evaluate(parse(p), scope)) if e else p for e, p in pieces)


def condition(text: Any, scope: Scope, default: str = "success()") -> bool:
    """Evaluate an ``if:``: ``success() && (...)`` unless it calls a status function."""
    if text is None or text == "":
        text = default
    if isinstance(text, bool):
        text = "true" if text else "false"
    source = str(text).strip()
    if source.startswith("${{") and source.endswith("}}") and len(_split(source)) == 3:
        source = source[3:-2]
    elif "${{" in source:
        # GitHub would read the rest as a string, which is always true: a classic mistake
        raise ExpressionError(f"if: mixes text and ${{{{ }}}}: {text!r}")
    node = parse(source)
    if not calls_status_function(node):
        node = ("and", ("call", "success", "success", []), node)
    return truthy(evaluate(node, scope))
