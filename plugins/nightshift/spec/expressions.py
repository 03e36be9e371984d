"""Safe arithmetic for derived features (`debt / income`), without `eval`.

A spec's expression is parsed with `ast` and only arithmetic over column names, numbers and a
short list of numpy functions is accepted, so a hostile spec cannot run code.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from typing import Any

FUNCTIONS = ("log", "log1p", "sqrt", "abs", "exp", "minimum", "maximum")
_BINARY = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide", ast.Pow: "power"}


@lru_cache(maxsize=1024)
def _parse(expr: str) -> ast.expr:
    try:
        tree = ast.parse(expr, mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"cannot parse expression '{expr}': {exc.msg}") from None
    _check(tree, expr)
    return tree


def _check(node: ast.AST, expr: str) -> None:
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, expr)
        _check(node.right, expr)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        _check(node.operand, expr)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        if node.keywords or not node.args:
            raise ValueError(f"'{node.func.id}' takes positional arguments only in '{expr}'")
        for arg in node.args:
            _check(arg, expr)
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise ValueError(f"'{node.id}' is a function, call it with arguments in '{expr}'")
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        pass
    else:
        raise ValueError(
            f"'{ast.unparse(node)}' is not allowed in '{expr}': use column names, numbers, + - * / ** "
            f"and {', '.join(FUNCTIONS)}"
        )


def referenced_columns(expr: str) -> list[str]:
    """Column names an expression reads, in order of appearance."""
    tree = _parse(expr)
    names = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in FUNCTIONS]
    return list(dict.fromkeys(names))


def evaluate(expr: str, columns: dict[str, Any]) -> Any:
    """Evaluate over numpy arrays; division by zero and invalid logs give NaN, never an error."""
    import numpy as np

    def walk(node: ast.expr) -> Any:
        if isinstance(node, ast.BinOp):
            return getattr(np, _BINARY[type(node.op)])(walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Call):
            return getattr(np, node.func.id)(*[walk(a) for a in node.args])
        if isinstance(node, ast.Name):
            return np.asarray(columns[node.id], dtype="float64")
        return float(node.value)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        result = np.asarray(walk(_parse(expr)), dtype="float64")
    result[~np.isfinite(result)] = np.nan
    return result
