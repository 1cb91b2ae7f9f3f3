"""The only evaluator BPMN expressions and scripts ever reach (SPIFF-NOTES: Spiff's default is eval).

Expressions go through simpleeval (no imports, no dunder attributes, no builtins beyond a short
whitelist). Scripts are limited to the same subset: a sequence of `name = expression` statements
and bare expressions, parsed with `ast` and each right-hand side evaluated by simpleeval.
"""
from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

import simpleeval
from simpleeval import EvalWithCompoundTypes


class UnsafeExpression(ValueError):
    """The text uses something outside the safe subset (or is not valid Python syntax)."""


SAFE_FUNCTIONS: dict[str, Callable] = {
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "sum": sum,
    "any": any,
    "all": all,
    "sorted": sorted,
}

_ALLOWED_STATEMENTS = (ast.Assign, ast.AugAssign, ast.Expr)
_MAX_SOURCE = 10_000


def _evaluator(names: Mapping[str, Any], functions: Mapping[str, Callable]) -> EvalWithCompoundTypes:
    # simpleeval looks names up in a dict; pass the live mapping so scripts see earlier assignments.
    return EvalWithCompoundTypes(names=names, functions=dict(functions))


def check_expression(expression: str, extra_functions: Mapping[str, Callable] | None = None) -> None:
    """Static check used by validation: syntax and the node types simpleeval accepts."""
    if not isinstance(expression, str) or len(expression) > _MAX_SOURCE:
        raise UnsafeExpression("expression is not a string or is too long")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise UnsafeExpression(f"syntax error: {exc.msg}") from exc
    _check_nodes(tree)


def check_script(script: str) -> None:
    if not isinstance(script, str) or len(script) > _MAX_SOURCE:
        raise UnsafeExpression("script is not a string or is too long")
    try:
        module = ast.parse(script)
    except SyntaxError as exc:
        raise UnsafeExpression(f"syntax error on line {exc.lineno}: {exc.msg}") from exc
    for stmt in module.body:
        _check_statement(stmt)
        _check_nodes(stmt)


def _check_statement(stmt: ast.stmt) -> None:
    if not isinstance(stmt, _ALLOWED_STATEMENTS):
        raise UnsafeExpression(f"statement '{type(stmt).__name__}' is not allowed (only assignments and expressions)")
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
    for target in targets:
        if target is not None and not isinstance(target, ast.Name):
            raise UnsafeExpression("only plain variable names can be assigned")
        if target is not None and target.id.startswith("_"):
            raise UnsafeExpression(f"variable '{target.id}' may not start with an underscore")


_FORBIDDEN_NODES = (ast.Lambda, ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr, ast.Starred)


def _check_nodes(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, _FORBIDDEN_NODES):
            raise UnsafeExpression(f"'{type(node).__name__}' is not allowed")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise UnsafeExpression(f"attribute '{node.attr}' is not allowed")
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            raise UnsafeExpression(f"name '{node.id}' is not allowed")


def evaluate(expression: str, names: Mapping[str, Any], functions: Mapping[str, Callable] | None = None) -> Any:
    check_expression(expression)
    fns = {**SAFE_FUNCTIONS, **(functions or {})}
    try:
        return _evaluator(names, fns).eval(expression.strip())
    except simpleeval.InvalidExpression as exc:
        raise UnsafeExpression(str(exc)) from exc


def execute(script: str, context: dict[str, Any], functions: Mapping[str, Callable] | None = None) -> None:
    """Run a script against `context` in place. All-or-nothing: on error `context` is unchanged."""
    check_script(script)
    fns = {**SAFE_FUNCTIONS, **(functions or {})}
    scratch = dict(context)
    evaluator = _evaluator(scratch, fns)
    module = ast.parse(script)
    try:
        for stmt in module.body:
            source = ast.unparse(stmt.value)
            value = evaluator.eval(source)
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    scratch[target.id] = value
            elif isinstance(stmt, ast.AugAssign):
                scratch[stmt.target.id] = _binop(stmt.op, scratch[stmt.target.id], value)
    except simpleeval.InvalidExpression as exc:
        raise UnsafeExpression(str(exc)) from exc
    except KeyError as exc:
        raise UnsafeExpression(f"name {exc} is not defined") from exc
    context.clear()
    context.update(scratch)


def _binop(op: ast.operator, left: Any, right: Any) -> Any:
    ev = EvalWithCompoundTypes(names={"left": left, "right": right}, functions={})
    symbol = {
        ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    }.get(type(op))
    if symbol is None:
        raise UnsafeExpression(f"operator {type(op).__name__} is not allowed in augmented assignment")
    return ev.eval(f"left {symbol} right")
