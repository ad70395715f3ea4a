"""A safe calculator with τ-bench's ``calculate`` semantics: digits, + - * / ( ) . and spaces."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

ALLOWED = frozenset("0123456789+-*/(). ")
_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_RESULT_BITS = 4096
"""A power whose result would need more bits than this is refused (so ``9**9**9`` cannot hang)."""


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if (
            isinstance(node.op, ast.Pow)
            and abs(left) > 1
            and abs(right) * math.log2(abs(left)) > MAX_RESULT_BITS
        ):
            raise ValueError("result too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    raise ValueError("unsupported expression")


def calculate(expression: str) -> str:
    """Evaluate ``expression``; the result as ``str(round(value, 2))``, or an ``Error:`` string."""
    if not set(expression) <= ALLOWED:
        return "Error: invalid characters in expression"
    try:
        tree = compile(expression.lstrip(), "<string>", "eval", ast.PyCF_ONLY_AST)  # eval() strips too
        return str(round(float(_evaluate(tree)), 2))
    except (SyntaxError, ValueError, ArithmeticError, TypeError) as exc:
        return f"Error: {exc}"
    except (RecursionError, MemoryError):
        return "Error: expression too deeply nested"
