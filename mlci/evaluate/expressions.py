"""Boolean expressions over columns, for slices such as ``age < 30 and region == 'north'``.

Expressions are parsed with Python's own grammar and evaluated by walking a small whitelist of
node types over numpy columns, so a configuration file can never run code.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from mlci.suggest import did_you_mean

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


class ExpressionError(ValueError):
    """An expression that is not valid or names an unknown column."""


def parse(expression: str, columns: Collection[str]) -> ast.Expression:
    """Parse and check an expression; every name must be a column."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"invalid expression {expression!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in columns:
            raise ExpressionError(f"no column '{node.id}'{did_you_mean(node.id, columns)}")
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(
                f"'{ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__}' "
                "is not allowed in a slice expression; use columns, constants, comparisons, "
                "'in', 'and', 'or', 'not' and + - * /"
            )
    return tree


def evaluate(expression: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Evaluate to a boolean mask with one entry per row; missing values never match."""
    tree = parse(expression, columns)
    n = len(next(iter(columns.values())))
    with np.errstate(invalid="ignore", divide="ignore"):
        result = _eval(tree.body, columns)
    mask = np.asarray(result)
    if mask.dtype != bool:
        raise ExpressionError(
            f"expression {expression!r} is not a condition (true or false per row)"
        )
    return np.asarray(np.broadcast_to(mask, (n,)).copy())


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
        return -np.asarray(operand) if isinstance(node.op, ast.USub) else operand
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
    if array.dtype == object:
        raise ExpressionError("arithmetic needs numeric columns")
    return value


def _compare(op: ast.cmpop, left: Any, right: Any) -> np.ndarray:
    if isinstance(op, (ast.In, ast.NotIn)):
        if not isinstance(right, list):
            raise ExpressionError("'in' needs a list of values, e.g. region in ['north', 'south']")
        found = np.isin(np.asarray(left, dtype=object), np.asarray(right, dtype=object))
        return found if isinstance(op, ast.In) else ~found & _present(left)
    if isinstance(op, (ast.Is, ast.IsNot)):
        raise ExpressionError("use == and != instead of 'is'")
    left_a, right_a = np.asarray(left), np.asarray(right)
    if (left_a.dtype == object) != (right_a.dtype == object) and not isinstance(
        op, (ast.Eq, ast.NotEq)
    ):
        raise ExpressionError("cannot order text against numbers; compare text with == or !=")
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


_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Compare,
    *_COMPARE,
    ast.In,
    ast.NotIn,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Set,
)
