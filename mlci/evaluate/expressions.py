"""Boolean expressions over columns, for slices such as ``age < 30 and region == 'north'``.

Expressions are read by a small parser of their own grammar (a subset of Python's
expressions) that builds Python ``ast`` nodes, and evaluated by walking those nodes over numpy
columns, so a configuration file can never run code. The parser is bounded: the text, the
number of nodes and the nesting depth all have limits, so no expression can exhaust the stack
or the memory of the process that reads it.

Grammar, loosest binding first::

    expr    := and ('or' and)*
    and     := not ('and' not)*
    not     := 'not' not | compare
    compare := sum (('<' | '<=' | '>' | '>=' | '==' | '!=' | 'in' | 'not' 'in') sum)*
    sum     := product (('+' | '-') product)*
    product := unary (('*' | '/') unary)*
    unary   := ('-' | '+') unary | atom
    atom    := NAME | NUMBER | STRING+ | True | False | None
             | '(' expr ')' | '(' [expr (',' expr)* [',']] ')' | '[' ... ']' | '{' ... '}'
"""

from __future__ import annotations

import ast
import io
import math
import operator
import tokenize
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from mlci.suggest import closest

MAX_LENGTH = 10_000  # characters
MAX_NODES = 5_000
MAX_DEPTH = 100  # levels of the expression tree (parentheses, operators, 'not')

_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ARITH = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_COMPARE_TOKENS: dict[str, type[ast.cmpop]] = {
    "==": ast.Eq,
    "!=": ast.NotEq,
    "<": ast.Lt,
    "<=": ast.LtE,
    ">": ast.Gt,
    ">=": ast.GtE,
}
_SUM_TOKENS: dict[str, type[ast.operator]] = {"+": ast.Add, "-": ast.Sub}
_PRODUCT_TOKENS: dict[str, type[ast.operator]] = {"*": ast.Mult, "/": ast.Div}
_CONSTANTS = {"True": True, "False": False, "None": None}
_CLOSING = {"(": ")", "[": "]", "{": "}"}
_ALLOWED = "use columns, constants, comparisons, 'in', 'and', 'or', 'not' and + - * /"
_LARGEST_INT = 2**63


class ExpressionError(ValueError):
    """An expression that is not valid or names an unknown column."""


def parse(expression: str, columns: Collection[str]) -> ast.Expression:
    """Parse and check an expression; every name must be a column."""
    tree = _Parser(expression).parse()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in columns:
            raise ExpressionError(_unknown_name(tree, node, columns))
    return tree


def evaluate(expression: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Evaluate to a boolean mask with one entry per row; missing values never match."""
    tree = parse(expression, columns)
    n = len(next(iter(columns.values())))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        result = _eval(tree.body, columns)
    mask = np.asarray(result)
    if mask.dtype != bool:
        raise ExpressionError(
            f"expression {_short(expression)} is not a condition (true or false per row)"
        )
    return np.asarray(np.broadcast_to(mask, (n,)).copy())


# --------------------------------------------------------------------------- parsing


class _Parser:
    """Recursive descent over Python's tokens, with a limit on depth and size."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tokenize.TokenInfo] = []
        self.position = 0
        self.depth = 0
        self.nodes = 0

    def parse(self) -> ast.Expression:
        text = self.text.strip()
        if not text:
            raise ExpressionError("the expression is empty")
        if len(text) > MAX_LENGTH:
            raise ExpressionError(
                f"the expression is {len(text):,} characters long; at most {MAX_LENGTH:,} "
                "are allowed"
            )
        self.tokens = _tokens(text)
        body = self.expr()
        token = self.peek()
        if token.type != tokenize.ENDMARKER:
            raise self.unexpected(token)
        tree = ast.Expression(body=body)
        ast.fix_missing_locations(tree)
        return tree

    # -- token helpers

    def peek(self, ahead: int = 0) -> tokenize.TokenInfo:
        return self.tokens[min(self.position + ahead, len(self.tokens) - 1)]

    def take(self) -> tokenize.TokenInfo:
        token = self.peek()
        self.position += 1
        return token

    def at(self, *strings: str) -> bool:
        token = self.peek()
        return token.type in (tokenize.OP, tokenize.NAME) and token.string in strings

    def expect(self, string: str) -> None:
        token = self.take()
        if token.string != string:
            if token.type == tokenize.ENDMARKER:
                raise ExpressionError(f"invalid expression: '{string}' is missing at the end")
            raise self.unexpected(token, expected=string)

    def unexpected(self, token: tokenize.TokenInfo, expected: str | None = None) -> ExpressionError:
        if token.type == tokenize.ENDMARKER:
            return ExpressionError("invalid expression: it ends too early")
        where = f"at character {token.start[1] + 1}"
        if token.type == tokenize.NAME and token.string in _KEYWORDS:
            return ExpressionError(
                f"'{token.string}' ({where}) is not allowed in a slice expression; {_ALLOWED}"
            )
        if expected is not None:
            return ExpressionError(
                f"invalid expression: expected '{expected}' {where}, found '{token.string}'"
            )
        return ExpressionError(
            f"'{token.string}' ({where}) is not allowed in a slice expression; {_ALLOWED}"
        )

    def node(self, node: ast.expr) -> ast.expr:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ExpressionError(f"the expression has more than {MAX_NODES:,} parts")
        if _depth(node) > MAX_DEPTH:
            raise ExpressionError(
                f"the expression is nested more than {MAX_DEPTH} levels deep; split it into "
                "simpler slices"
            )
        return node

    def nested(self, parse: Any) -> ast.expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(
                f"the expression is nested more than {MAX_DEPTH} levels deep; split it into "
                "simpler slices"
            )
        try:
            result: ast.expr = parse()
        finally:
            self.depth -= 1
        return result

    # -- grammar

    def expr(self) -> ast.expr:
        return self.nested(lambda: self.boolean("or", ast.Or, self.conjunction))

    def conjunction(self) -> ast.expr:
        return self.boolean("and", ast.And, self.negation)

    def boolean(self, word: str, op: type[ast.boolop], operand: Any) -> ast.expr:
        values: list[ast.expr] = [operand()]
        while self.at(word):
            self.take()
            values.append(operand())
        if len(values) == 1:
            return values[0]
        return self.node(ast.BoolOp(op=op(), values=values))

    def negation(self) -> ast.expr:
        if self.at("not") and not (self.peek(1).string == "in"):
            self.take()
            operand = self.nested(self.negation)
            return self.node(ast.UnaryOp(op=ast.Not(), operand=operand))
        return self.comparison()

    def comparison(self) -> ast.expr:
        left = self.sum()
        ops: list[ast.cmpop] = []
        comparators: list[ast.expr] = []
        while True:
            token = self.peek()
            if token.type == tokenize.OP and token.string in _COMPARE_TOKENS:
                self.take()
                ops.append(_COMPARE_TOKENS[token.string]())
            elif self.at("in"):
                self.take()
                ops.append(ast.In())
            elif self.at("not") and self.peek(1).string == "in":
                self.take()
                self.take()
                ops.append(ast.NotIn())
            elif self.at("is"):
                raise ExpressionError("use == and != instead of 'is'")
            else:
                break
            comparators.append(self.sum())
        if not ops:
            return left
        return self.node(ast.Compare(left=left, ops=ops, comparators=comparators))

    def sum(self) -> ast.expr:
        return self.binary(_SUM_TOKENS, self.product)

    def product(self) -> ast.expr:
        return self.binary(_PRODUCT_TOKENS, self.unary)

    def binary(self, table: dict[str, type[ast.operator]], operand: Any) -> ast.expr:
        left: ast.expr = operand()
        while self.peek().type == tokenize.OP and self.peek().string in table:
            op = table[self.take().string]()
            left = self.node(ast.BinOp(left=left, op=op, right=operand()))
        return left

    def unary(self) -> ast.expr:
        if self.at("-", "+"):
            op = ast.USub() if self.take().string == "-" else ast.UAdd()
            operand = self.nested(self.unary)
            return self.node(ast.UnaryOp(op=op, operand=operand))
        return self.trailers(self.atom())

    def trailers(self, atom: ast.expr) -> ast.expr:
        token = self.peek()
        if token.type == tokenize.OP and token.string in ("(", "[", "."):
            what = {"(": "calls", "[": "indexing", ".": "attribute access"}[token.string]
            raise ExpressionError(
                f"'{ast.unparse(atom)}{token.string}...' is not allowed in a slice expression: "
                f"{what} could run code; {_ALLOWED}"
            )
        return atom

    def atom(self) -> ast.expr:
        token = self.take()
        if token.type == tokenize.NAME:
            if token.string in _CONSTANTS:
                return self.node(ast.Constant(_CONSTANTS[token.string]))
            if token.string in _KEYWORDS:
                raise self.unexpected(token)
            return self.node(ast.Name(id=token.string, ctx=ast.Load()))
        if token.type == tokenize.NUMBER:
            return self.node(ast.Constant(_number(token.string)))
        if token.type == tokenize.STRING:
            text = _string(token.string)
            while self.peek().type == tokenize.STRING:  # 'a' 'b' is 'ab', as in Python
                text += _string(self.take().string)
            return self.node(ast.Constant(text))
        if token.type == tokenize.OP and token.string in _CLOSING:
            return self.nested(lambda: self.group(token.string))
        self.position -= 1
        raise self.unexpected(token)

    def group(self, opening: str) -> ast.expr:
        closing = _CLOSING[opening]
        items: list[ast.expr] = []
        trailing_comma = False
        while not self.at(closing):
            items.append(self.expr())
            trailing_comma = self.at(",")
            if not trailing_comma:
                break
            self.take()
        self.expect(closing)
        if opening == "(" and len(items) == 1 and not trailing_comma:
            return items[0]
        if opening == "{" and not items:
            raise ExpressionError("'{}' is an empty mapping; write an empty list as []")
        kind = {"(": ast.Tuple, "[": ast.List, "{": ast.Set}[opening]
        if kind is ast.Set:
            return self.node(ast.Set(elts=items))
        return self.node(kind(elts=items, ctx=ast.Load()))


_KEYWORDS = {
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
    "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
    "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
}  # fmt: skip


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    skip = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT}
    tokens = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.ERRORTOKEN and token.string in ("'", '"'):
                raise ExpressionError(
                    f"the text starting at character {token.start[1] + 1} has no closing quote"
                )
            if token.type == tokenize.ERRORTOKEN and not token.string.isspace():
                raise ExpressionError(
                    f"'{token.string}' (at character {token.start[1] + 1}) is not allowed in a "
                    f"slice expression; {_ALLOWED}"
                )
            if token.type == tokenize.COMMENT:
                raise ExpressionError("'#' starts a comment; quote text that contains it")
            if token.type not in skip:
                tokens.append(token)
    except (tokenize.TokenError, SyntaxError):
        raise ExpressionError("invalid expression: its brackets or quotes do not match") from None
    return tokens


def _number(text: str) -> int | float:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ExpressionError(f"{_short(text)} is not a number mlci can read") from None
    if isinstance(value, int) and abs(value) >= _LARGEST_INT:
        value = float(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ExpressionError(f"{_short(text)} is not a finite real number")
    return value


def _string(text: str) -> str:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ExpressionError(
            f"{_short(text)} is not allowed in a slice expression; write plain quoted text"
        ) from None
    if not isinstance(value, str):
        raise ExpressionError(f"{_short(text)} is not text; write plain quoted text")
    return value


def _depth(node: ast.AST) -> int:
    # Children are built before their parent, so theirs are known: one level at a time.
    deepest = 0
    for child in ast.iter_child_nodes(node):
        deepest = max(deepest, getattr(child, "_mlci_depth", 1))
    depth = deepest + 1
    node._mlci_depth = depth  # type: ignore[attr-defined]
    return depth


def _short(text: str, limit: int = 60) -> str:
    text = repr(text) if not text.startswith(("'", '"')) else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unknown_name(tree: ast.Expression, name: ast.Name, columns: Collection[str]) -> str:
    """Why ``name`` is not a column, and the likeliest fix."""
    match = closest(name.id, columns)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        inside = [
            e
            for o in node.comparators
            if isinstance(o, (ast.List, ast.Tuple, ast.Set))
            for e in o.elts
        ]
        if name not in operands and name not in inside:
            continue
        if any(isinstance(o, ast.Name) and o.id in columns and o is not name for o in operands):
            # A bare word compared with a column is almost always text that lost its quotes.
            fixed = ast.unparse(_quoted(node, name))
            return f"no column '{name.id}'; to compare with the text '{name.id}', quote it: {fixed}"
    return f"no column '{name.id}'" + (f" (did you mean '{match}'?)" if match else "")


def _quoted(compare: ast.Compare, name: ast.Name) -> ast.Compare:
    class Quote(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:  # noqa: N802
            return ast.Constant(node.id) if node is name else node

    copy = ast.Compare(left=compare.left, ops=compare.ops, comparators=compare.comparators)
    result = Quote().visit(copy)
    assert isinstance(result, ast.Compare)
    return result


# --------------------------------------------------------------------------- evaluation


def _eval(node: ast.AST, columns: Mapping[str, np.ndarray]) -> Any:
    if isinstance(node, ast.BoolOp):
        values = [np.asarray(_eval(v, columns), dtype=bool) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        result = values[0]
        for value in values[1:]:
            result = combine(result, value)
        return result
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, columns)
        if isinstance(node.op, ast.Not):
            return np.logical_not(np.asarray(operand, dtype=bool))
        return -_numeric(operand) if isinstance(node.op, ast.USub) else _numeric(operand)
    if isinstance(node, ast.BinOp):
        return _ARITH[type(node.op)](
            _numeric(_eval(node.left, columns)), _numeric(_eval(node.right, columns))
        )
    if isinstance(node, ast.Compare):
        matched: np.ndarray | None = None
        left = _eval(node.left, columns)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, columns)
            part = _compare(op, left, right)
            matched = part if matched is None else np.logical_and(matched, part)
            left = right
        return matched
    if isinstance(node, ast.Name):
        return columns[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_eval(e, columns) for e in node.elts]
    raise ExpressionError(f"unsupported expression part: {ast.dump(node)}")  # pragma: no cover


def _numeric(value: Any) -> Any:
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind in "US":
        raise ExpressionError("arithmetic needs numeric columns and numbers")
    return value


def _compare(op: ast.cmpop, left: Any, right: Any) -> np.ndarray:
    if isinstance(op, (ast.In, ast.NotIn)):
        if not isinstance(right, list):
            raise ExpressionError("'in' needs a list of values, e.g. region in ['north', 'south']")
        if any(np.ndim(v) for v in right):
            raise ExpressionError("the list after 'in' may hold only constants")
        found = np.isin(np.asarray(left, dtype=object), np.asarray(right, dtype=object))
        return found if isinstance(op, ast.In) else ~found & _present(left)
    left_a, right_a = np.asarray(left), np.asarray(right)
    if (left_a.dtype == object) != (right_a.dtype == object) and not isinstance(
        op, (ast.Eq, ast.NotEq)
    ):
        raise ExpressionError("cannot order text against numbers; compare text with == or !=")
    if isinstance(left, list) or isinstance(right, list):
        raise ExpressionError("a list goes only after 'in' or 'not in'")
    try:
        result = _COMPARE[type(op)](left_a, right_a)
    except TypeError as exc:
        raise ExpressionError(f"cannot compare these values ({exc})") from None
    result = np.asarray(result, dtype=bool)
    if isinstance(op, ast.NotEq):
        # A missing value is not "different from x": it is unknown, so it never matches.
        result &= _present(left) & _present(right)
    return result


def _present(value: Any) -> np.ndarray | bool:
    array = np.asarray(value)
    if array.dtype.kind == "f":
        return np.asarray(~np.isnan(array))
    if array.dtype == object:
        return np.fromiter(
            (v is not None and v == v for v in array.ravel()), bool, array.size
        ).reshape(array.shape)
    return True
