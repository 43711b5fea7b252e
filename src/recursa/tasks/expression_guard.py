"""Evaluating answer text without running the code in it, for third-party scorers.

Some Reasoning Gym scorers evaluate the model's answer as Python: `eval(answer)` to read a list
(n_queens, spiral_matrix, binary_matrix, string_insertion) or sympy's `parse_expr(answer)`
(countdown, puzzle24, polynomial and integration tasks), and sympy's parser evaluates its
input with Python's `eval` and every builtin in reach: an answer such as
`__import__('os').system(...)` would run. `install()` closes both doors in the process that
runs the scorers (the Reasoning Gym helper process, never the caller's):

- `eval(source)` without a namespace (how scorers read answers) accepts only literals and
  arithmetic on them (numbers, strings, lists, tuples, sets, dicts, operators): no names,
  calls, attributes or subscripts; it runs with no builtins.
- sympy's `eval_expr` (which `parse_expr` and `sympify` of a string go through) accepts
  names, calls of names, constants and operators, but no attribute access, subscripts,
  lambdas or comprehensions, and evaluates with only sympy's mathematical objects in scope
  (classes and constants such as `Integer`, `sin`, `pi`, plus `sqrt`-like helpers), no
  builtins.

Neither bounds time: `9**9**9**9` is valid arithmetic. The helper process's deadline does.
"""

from __future__ import annotations

import ast
import builtins
from typing import Any

_REAL_EVAL = builtins.eval

#: Nodes an answer read as a Python literal may hold.
_LITERAL_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression,
    ast.Constant,
    ast.Tuple,
    ast.List,
    ast.Set,
    ast.Dict,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.Load,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)
#: What a sympy expression may hold besides: names and calls of names.
_SYMPY_NODES: tuple[type[ast.AST], ...] = (*_LITERAL_NODES, ast.Name, ast.Call, ast.keyword)
#: Plain functions (not sympy classes) an answer may use.
_SYMPY_HELPERS = ("sqrt", "root", "cbrt", "real_root")


class UnsafeExpression(ValueError):
    """The text holds something other than a plain expression (names, calls, attributes...)."""


def _check(tree: ast.AST, allowed: tuple[type[ast.AST], ...]) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            raise UnsafeExpression(f"{type(node).__name__} is not allowed in an answer")
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Name):
            raise UnsafeExpression("only named functions may be called")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise UnsafeExpression("names starting with '_' are not allowed")


def guarded_eval(source: Any, globals: dict[str, Any] | None = None, locals: Any = None) -> Any:
    """`eval`, except that text evaluated without a namespace must be a literal expression,
    and runs with no builtins."""
    if globals is None and locals is None and isinstance(source, (str, bytes)):
        text = source.decode() if isinstance(source, bytes) else source
        tree = ast.parse(text.strip(), mode="eval")
        _check(tree, _LITERAL_NODES)
        return _REAL_EVAL(compile(tree, "<answer>", "eval"), {"__builtins__": {}}, {})
    return _REAL_EVAL(source, globals, locals)


def _mathematical(value: Any) -> bool:
    import sympy

    if isinstance(value, sympy.Basic):
        return True
    return isinstance(value, type) and issubclass(value, sympy.Basic)


def guarded_eval_expr(code: str, local_dict: dict[str, Any], global_dict: dict[str, Any]) -> Any:
    """sympy's `eval_expr` with the checks in the module docstring."""
    import sympy

    tree = ast.parse(code.strip(), mode="eval")
    _check(tree, _SYMPY_NODES)
    scope = {k: v for k, v in global_dict.items() if not k.startswith("_") and _mathematical(v)}
    scope.update({name: getattr(sympy, name) for name in _SYMPY_HELPERS})
    scope["__builtins__"] = {}
    return _REAL_EVAL(compile(tree, "<answer>", "eval"), scope, local_dict)


def install() -> None:
    """Guard `eval` and sympy's expression evaluation in this process (irreversible: call it
    only in a process that exists to run untrusted scoring)."""
    from sympy.parsing import sympy_parser

    builtins.eval = guarded_eval
    sympy_parser.eval_expr = guarded_eval_expr
