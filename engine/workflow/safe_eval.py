"""The only evaluator BPMN expressions and scripts ever reach (SPIFF-NOTES: Spiff's default is eval).

Expressions go through simpleeval (no imports, no dunder attributes, no builtins beyond a short
whitelist). Scripts are limited to the same subset: a sequence of `name = expression` statements
and bare expressions, parsed with `ast` and each right-hand side evaluated by simpleeval.

Every evaluation is bounded in time and memory (issue #11): an operation that would build a value
too large is refused *before* it runs (a width, a repetition, an exponent, a replacement), every
value a step computes is measured (its JSON size and nesting, shared references counted as often as
JSON would write them, but each container visited once), and an evaluation has a budget of steps,
of work (bytes produced) and of wall-clock time. Going past a bound raises `LimitExceeded`; the
runtime turns it into a clean failure of the step. What can be seen in the text alone (a constant
huge exponent, width or repetition, an out-of-range working-day count) is refused by
`check_expression` / `check_script`, so validation reports it before a version is published.
"""
from __future__ import annotations

import ast
import re
import time
import types
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import simpleeval
from simpleeval import DISALLOW_FUNCTIONS, EvalWithCompoundTypes, FeatureNotAvailable

from engine.workflow.workcal import MAX_WORKING_DAYS, MAX_WORKING_HOURS


class UnsafeExpression(ValueError):
    """The text uses something outside the safe subset (or is not valid Python syntax)."""


class LimitExceeded(UnsafeExpression):
    """An evaluation went past one of the bounds below (size, depth, steps, work, time)."""


# --- the bounds --------------------------------------------------------------------------------
MAX_STRING_LENGTH = 100_000     # characters an operation may build (repetition, padding, join, replace…)
MAX_VALUE_BYTES = 1024 * 1024   # estimated JSON size of any value (a whole dossier state is capped the same)
MAX_INT_BITS = 4_096            # about 1,233 digits; Python refuses to print an int of more than 4,300
MAX_DEPTH = 64                  # containers inside containers
MAX_ROUND_DIGITS = 400          # round(x, n): |n| (round(1, -10**7) runs for minutes)
MAX_SHIFT = simpleeval.MAX_SHIFT  # x << n, x >> n: n (and x below the largest float, as simpleeval checks)
MAX_STEPS = 100_000             # syntax nodes evaluated by one expression or one script
MAX_WORK = 8 * MAX_VALUE_BYTES  # estimated bytes of all values produced by one expression or script
MAX_SECONDS = 2.0               # wall-clock backstop for one expression or script
MAX_SYNTAX_DEPTH = 100          # nesting of the text (the evaluator recurses once per level)
_CLOCK_EVERY = 256              # steps between two looks at the clock (and after every new container)

# Functions the runtime injects, with the range of their (first) argument: a constant outside it is
# refused statically, a computed one at run time (runtime.SafeEnvironment).
ARGUMENT_RANGES: dict[str, tuple[float, float]] = {
    "working_days": (0, MAX_WORKING_DAYS),
    "working_hours": (0, MAX_WORKING_HOURS),
}


def _sum(values, start=0):
    # sum() of lists or tuples copies the growing total at every item: quadratic.
    if not isinstance(start, (int, float)):
        raise UnsafeExpression("sum() adds numbers only")
    return sum(values, start)


def _round(number, ndigits=None):
    if ndigits is not None and isinstance(ndigits, int) and abs(ndigits) > MAX_ROUND_DIGITS:
        raise LimitExceeded(f"round() to {ndigits} digits is beyond the limit of {MAX_ROUND_DIGITS}")
    return round(number, ndigits)


SAFE_FUNCTIONS: dict[str, Callable] = {
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "abs": abs,
    "min": min,
    "max": max,
    "round": _round,
    "sum": _sum,
    "any": any,
    "all": all,
    "sorted": sorted,
}

_ALLOWED_STATEMENTS = (ast.Assign, ast.AugAssign, ast.Expr)
_MAX_SOURCE = 10_000
# Methods that change a value in place: a script builds new values instead (`a.append(a)` would make a
# value contain itself, `a.extend(a)` double it without any operator seeing it).
MUTATORS = frozenset({
    "append", "extend", "insert", "remove", "pop", "popitem", "clear", "sort", "reverse", "update",
    "setdefault", "add", "discard", "difference_update", "intersection_update", "symmetric_difference_update",
})


# --- measuring values ----------------------------------------------------------------------------
_CONTAINERS = (list, tuple, dict, set, frozenset)
_SMALL = {bool: 4, float: 3, type(None): 4}


def _scalar_size(value) -> int:
    """A lower bound of the JSON text of a value that is not a container."""
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value) + 2
    if kind is int:
        bits = value.bit_length()
        if bits > MAX_INT_BITS:
            raise LimitExceeded(f"a number of {bits} bits is beyond the limit of {MAX_INT_BITS} bits")
        return bits * 3 // 10 + 1
    small = _SMALL.get(kind)
    if small is not None:
        return small
    if isinstance(value, types.ModuleType):
        raise FeatureNotAvailable("Sorry, modules are not allowed")
    if callable(value) and value in DISALLOW_FUNCTIONS:
        raise FeatureNotAvailable("This function is forbidden")
    return 2


class Meter:
    """Estimated JSON size of values, measured once per container (remembered by identity, the values
    kept alive so that an identity is never reused while remembered) and counted as often as it occurs,
    as JSON writes it: reference doubling (`a = [a, a]` twenty times) is measured in twenty steps and
    refused as soon as its size passes `limit`, instead of being walked (or serialized) 2**20 times."""

    def __init__(self, limit: int = MAX_VALUE_BYTES):
        self.limit = limit
        self._known: dict[int, tuple[Any, int, int]] = {}  # id → (value, size, depth)

    def size(self, value) -> int:
        if not isinstance(value, _CONTAINERS):
            return _scalar_size(value)
        known = self._known.get(id(value))
        if known is None:
            known = self._measure(value)
        return known[1]

    def _measure(self, root) -> tuple[Any, int, int]:
        known, on_path = self._known, {id(root)}
        stack = [(root, iter(_children(root)))]
        while stack:
            value, children = stack[-1]
            for child in children:
                if isinstance(child, _CONTAINERS) and id(child) not in known:
                    if id(child) in on_path:
                        raise LimitExceeded("a value contains itself")
                    on_path.add(id(child))
                    stack.append((child, iter(_children(child))))
                    break
            else:
                stack.pop()
                on_path.discard(id(value))
                known[id(value)] = entry = self._total(value)
        return entry

    def _total(self, value) -> tuple[Any, int, int]:
        known = self._known
        size, depth = 1, 0  # the brackets, less the separator not written after the last item
        for child in _children(value):
            if isinstance(child, _CONTAINERS):
                _, child_size, child_depth = known[id(child)]
                size += child_size + 1
                depth = max(depth, child_depth)
            else:
                size += _scalar_size(child) + 1  # and a comma (a colon after a key)
        if not value:
            size += 1
        depth += 1
        if depth > MAX_DEPTH:
            raise LimitExceeded(f"values are nested more than {MAX_DEPTH} levels deep")
        if size > self.limit:
            raise LimitExceeded(f"a value of more than {self.limit:,} bytes is beyond the limit")
        return value, size, depth


def _children(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield item
    else:
        yield from value


def measure(value, limit: int = MAX_VALUE_BYTES) -> int:
    """A lower bound of the JSON size of `value`; LimitExceeded when it passes `limit`, is nested too
    deeply or contains itself. Linear in the distinct containers of `value`."""
    size = Meter(limit).size(value)
    if size > limit:
        raise LimitExceeded(f"a value of more than {limit:,} bytes is beyond the limit")
    return size


# --- operations that build values: refused before they run when the result would be too large ----
def _too_long(length: int, what: str) -> None:
    if length > MAX_STRING_LENGTH:
        raise LimitExceeded(f"{what} would build {length:,} characters, more than the limit of "
                            f"{MAX_STRING_LENGTH:,}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _mult(a, b):
    if isinstance(a, int) and isinstance(b, int):
        if a.bit_length() + b.bit_length() > MAX_INT_BITS + 1:
            raise LimitExceeded(f"a product of more than {MAX_INT_BITS} bits is beyond the limit")
    elif isinstance(a, int) and hasattr(b, "__len__"):
        _too_long(a * len(b), "this repetition")
    elif isinstance(b, int) and hasattr(a, "__len__"):
        _too_long(b * len(a), "this repetition")
    return a * b


def _add(a, b):
    if hasattr(a, "__len__") and hasattr(b, "__len__"):
        _too_long(len(a) + len(b), "this concatenation")
    return a + b


def _power(a, b):
    if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        if b > MAX_INT_BITS or b * (abs(a).bit_length() - 1) > MAX_INT_BITS:
            raise LimitExceeded(f"{a} ** {b} is beyond the limit of {MAX_INT_BITS}-bit numbers")
    return a ** b


_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def _mod(a, b):
    if isinstance(a, (str, bytes)):
        fmt = a.decode("latin-1") if isinstance(a, bytes) else a
        fields = [f for f in _PERCENT_FIELD.findall(fmt) if f[2] != "%"]
        if any("*" in (width, precision) for width, precision, _ in fields):
            raise LimitExceeded("a '*' width in % formatting is not supported; write the width as a number")
        widest = max((int(n) for width, precision, _ in fields for n in (width, precision) if n), default=0)
        values = b.values() if isinstance(b, Mapping) else b if isinstance(b, tuple) else (b,)
        longest = max((_text_size(v) for v in values), default=0)
        _too_long(len(a) + len(fields) * max(widest, longest), "this % formatting")
    return a % b


def _text_size(value) -> int:
    return measure(value) if isinstance(value, _CONTAINERS) else len(value) if isinstance(value, (str, bytes)) \
        else 24


# simpleeval's own checks stay for shifts; its *, +, ** and % are replaced (its * computes `list * len(list)`
# when both sides are lists, its ** allows exponents up to four million, its % has no bound at all).
OPERATORS = {**simpleeval.DEFAULT_OPERATORS, ast.Mult: _mult, ast.Add: _add, ast.Pow: _power, ast.Mod: _mod}


def _padding(owner, args, kwargs, name):
    width = args[0] if args else kwargs.get("width")
    if isinstance(width, int):
        _too_long(width, f"{name}()")


def _expandtabs(owner, args, kwargs, name):
    size = args[0] if args else kwargs.get("tabsize", 8)
    if isinstance(size, int):
        _too_long(len(owner) + owner.count("\t" if isinstance(owner, str) else b"\t") * max(size, 0), "expandtabs()")


def _replace(owner, args, kwargs, name):
    if len(args) < 2 or not all(isinstance(a, type(owner)) for a in args[:2]):
        return  # Python refuses the call itself
    old, new = args[0], args[1]
    count = args[2] if len(args) > 2 else kwargs.get("count", -1)
    times = owner.count(old) if old else len(owner) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    _too_long(len(owner) + times * (len(new) - len(old)), "replace()")


def _join(owner, args, kwargs, name):
    if not args:
        return
    items = args[0] = list(args[0]) if not isinstance(args[0], (list, tuple)) else args[0]
    text = sum(len(i) for i in items if isinstance(i, (str, bytes)))
    _too_long(text + len(owner) * max(len(items) - 1, 0), "join()")


def _translate(owner, args, kwargs, name):
    table = args[0] if args else None
    if isinstance(table, Mapping):
        longest = max((len(v) for v in table.values() if isinstance(v, (str, bytes))), default=1)
        _too_long(len(owner) * max(longest, 1), "translate()")


def _to_bytes(owner, args, kwargs, name):
    length = args[0] if args else kwargs.get("length", 1)
    if isinstance(length, int):
        _too_long(length, "to_bytes()")


# Methods whose result can be much larger than their inputs, with the check run before the call.
_GROWING: dict[str, Callable] = {
    "ljust": _padding, "rjust": _padding, "center": _padding, "zfill": _padding,
    "expandtabs": _expandtabs, "replace": _replace, "join": _join, "translate": _translate, "to_bytes": _to_bytes,
}
_GROWING_OWNERS = (str, bytes, int)
_WIDTH = re.compile(r"\d+")


# --- the evaluator -------------------------------------------------------------------------------
class BoundedEval(EvalWithCompoundTypes):
    """simpleeval with the bounds above. One instance per expression or script: its budgets and its
    meter (which remembers the containers it measured) last as long as that one evaluation."""

    def __init__(self, names, functions):
        super().__init__(operators=OPERATORS, functions=dict(functions), names=names)
        self.meter = Meter()
        self.steps = 0
        self.work = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def _eval(self, node):
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise LimitExceeded(f"the evaluation took more than {MAX_STEPS:,} steps")
        if not self.steps % _CLOCK_EVERY:
            self._check_clock()
        try:
            handler = self.nodes[type(node)]
        except KeyError:
            raise FeatureNotAvailable(f"Sorry, {type(node).__name__} is not available in this evaluator") from None
        result = handler(node)
        self.charge(result)
        return result

    def charge(self, value) -> None:
        """Measure a value the evaluation produced (instead of simpleeval's unbounded recursive check for
        forbidden items, which the meter does on the way) and count it against the work budget."""
        kind = type(value)
        if kind is bool or kind is float or value is None:
            self.work += 1
        elif kind is str or kind is bytes:
            if len(value) > MAX_VALUE_BYTES:
                raise LimitExceeded(f"a text of {len(value):,} characters is beyond the limit")
            self.work += len(value) + 1
        else:
            self.work += self.meter.size(value)
            if isinstance(value, _CONTAINERS):
                self._check_clock()  # measuring a new container costs time in proportion to its items
        if self.work > MAX_WORK:
            raise LimitExceeded(f"the evaluation produced more than {MAX_WORK:,} bytes")

    def _check_clock(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"the evaluation took more than {MAX_SECONDS:g} s")

    def _eval_attribute(self, node):
        if node.attr in MUTATORS:
            raise FeatureNotAvailable(f"Sorry, '{node.attr}' changes a value in place; build a new value instead")
        return super()._eval_attribute(node)

    def _eval_call(self, node):
        if isinstance(node.func, ast.Attribute):
            func = self._eval(node.func)
        else:
            try:
                func = self.functions[node.func.id]
            except KeyError:
                raise simpleeval.FunctionNotDefined(node.func.id, self.expr) from None
            except AttributeError:
                raise FeatureNotAvailable("Lambda Functions not implemented") from None
            if func in DISALLOW_FUNCTIONS:
                raise FeatureNotAvailable("This function is forbidden")
        args = [self._eval(a) for a in node.args]
        kwargs = dict(self._eval(k) for k in node.keywords)
        check = _GROWING.get(getattr(func, "__name__", ""))
        if check is not None:
            owner = getattr(func, "__self__", None)
            if isinstance(owner, _GROWING_OWNERS):
                check(owner, args, kwargs, func.__name__)
            elif getattr(func, "__objclass__", None) in _GROWING_OWNERS and args \
                    and isinstance(args[0], _GROWING_OWNERS):  # str.ljust("x", n)
                rest = args[1:]
                check(args[0], rest, kwargs, func.__name__)
                args = [args[0], *rest]
        return func(*args, **kwargs)

    def _eval_formattedvalue(self, node):
        if node.format_spec:
            spec = self._eval(node.format_spec)
            if "{" in spec or "}" in spec:  # the spec is pasted into a format string: no fields of its own
                raise UnsafeExpression("braces are not allowed in a format specification")
            _too_long(max((int(n) for n in _WIDTH.findall(spec)), default=0), "this f-string format")
            return ("{:" + spec + "}").format(self._eval(node.value))
        return self._eval(node.value)


# --- checking texts: syntax, the safe subset, constants beyond the bounds ---------------------------
def check_expression(expression: str, extra_functions: Mapping[str, Callable] | None = None) -> None:
    """Static check used by validation: syntax, the node types simpleeval accepts, and constants that
    are already beyond the bounds (LimitExceeded)."""
    _parsed_expression(expression)


def check_script(script: str) -> None:
    _parsed_script(script)


@lru_cache(maxsize=1024)
def _parsed_expression(expression: str) -> ast.expr:
    if not isinstance(expression, str) or len(expression) > _MAX_SOURCE:
        raise UnsafeExpression("expression is not a string or is too long")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise UnsafeExpression(f"syntax error: {exc.msg}") from exc
    except (RecursionError, MemoryError):
        raise UnsafeExpression("the expression is nested too deeply") from None
    _check_nodes(tree)
    _check_constants(tree)
    return tree.body


@lru_cache(maxsize=256)
def _parsed_script(script: str) -> tuple[tuple[ast.stmt, str], ...]:
    """The statements of a checked script, each with the source of its right-hand side."""
    if not isinstance(script, str) or len(script) > _MAX_SOURCE:
        raise UnsafeExpression("script is not a string or is too long")
    try:
        module = ast.parse(script)
    except SyntaxError as exc:
        raise UnsafeExpression(f"syntax error on line {exc.lineno}: {exc.msg}") from exc
    except (RecursionError, MemoryError):
        raise UnsafeExpression("the script is nested too deeply") from None
    for stmt in module.body:
        _check_statement(stmt)
        _check_nodes(stmt)
    _check_constants(module)
    return tuple((stmt, ast.unparse(stmt.value)) for stmt in module.body)


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
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SYNTAX_DEPTH:
            raise UnsafeExpression(f"the text is nested more than {MAX_SYNTAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
        if isinstance(node, _FORBIDDEN_NODES):
            raise UnsafeExpression(f"'{type(node).__name__}' is not allowed")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise UnsafeExpression(f"attribute '{node.attr}' is not allowed")
        if isinstance(node, ast.Attribute) and node.attr in MUTATORS:
            raise UnsafeExpression(f"method '{node.attr}' changes a value in place; build a new value instead")
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            raise UnsafeExpression(f"name '{node.id}' is not allowed")


def _constant_number(node: ast.AST):
    """The value of a numeric literal (with its sign), else None."""
    sign = 1
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -sign if isinstance(node.op, ast.USub) else sign
        node = node.operand
    if isinstance(node, ast.Constant) and _is_number(node.value):
        return sign * node.value
    return None


def _literal_length(node: ast.AST) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
        return len(node.value)
    if isinstance(node, (ast.List, ast.Tuple)):
        return len(node.elts)
    return None


def _check_constants(tree: ast.AST) -> None:
    """Refuse what is beyond the bounds whatever the data: constant exponents, repetitions, shifts,
    widths, round() digits and working-time arguments."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            _scalar_size(node.value)
        elif isinstance(node, ast.BinOp):
            left, right = _constant_number(node.left), _constant_number(node.right)
            if isinstance(node.op, ast.Pow) and isinstance(right, int):
                if right > MAX_INT_BITS:
                    raise LimitExceeded(f"the exponent {right} is beyond the limit of {MAX_INT_BITS}")
                if isinstance(left, int):
                    _power_bound(left, right)
            elif isinstance(node.op, ast.Mult):
                for count, other in ((left, node.right), (right, node.left)):
                    length = _literal_length(other)
                    if isinstance(count, int) and length is not None:
                        _too_long(count * max(length, 1), "this repetition")
            elif isinstance(node.op, (ast.LShift, ast.RShift)) and isinstance(right, int) and abs(right) > MAX_SHIFT:
                raise LimitExceeded(f"a shift by {right} bits is beyond the limit of {MAX_SHIFT}")
            elif isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) \
                    and isinstance(node.left.value, str):
                widths = [int(n) for f in _PERCENT_FIELD.findall(node.left.value) for n in f[:2] if n.isdigit()]
                _too_long(max(widths, default=0), "this % formatting")
        elif isinstance(node, ast.Call):
            _check_call_constants(node)
        elif isinstance(node, ast.FormattedValue) and isinstance(node.format_spec, ast.JoinedStr):
            for part in node.format_spec.values:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    _too_long(max((int(n) for n in _WIDTH.findall(part.value)), default=0), "this f-string format")


def _power_bound(base: int, exponent: int) -> None:
    if exponent > 0 and exponent * (abs(base).bit_length() - 1) > MAX_INT_BITS:
        raise LimitExceeded(f"{base} ** {exponent} is beyond the limit of {MAX_INT_BITS}-bit numbers")


def _check_call_constants(node: ast.Call) -> None:
    first = _constant_number(node.args[0]) if node.args else None
    if isinstance(node.func, ast.Name):
        name = node.func.id
        if name in ARGUMENT_RANGES and first is not None:
            low, high = ARGUMENT_RANGES[name]
            if not low <= first <= high:
                raise LimitExceeded(f"{name}({first}) is outside the allowed range {low:g}…{high:g}")
        if name == "round" and len(node.args) > 1:
            digits = _constant_number(node.args[1])
            if isinstance(digits, int) and abs(digits) > MAX_ROUND_DIGITS:
                raise LimitExceeded(f"round() to {digits} digits is beyond the limit of {MAX_ROUND_DIGITS}")
    elif isinstance(node.func, ast.Attribute) and node.func.attr in _GROWING:
        numbers = [_constant_number(a) for a in node.args] + [_constant_number(k.value) for k in node.keywords]
        if node.func.attr in ("ljust", "rjust", "center", "zfill", "to_bytes"):
            for n in numbers:
                if isinstance(n, int):
                    _too_long(n, f"{node.func.attr}()")
        elif node.func.attr == "expandtabs":
            for n in numbers:
                if isinstance(n, int) and n > MAX_STRING_LENGTH:
                    _too_long(n, "expandtabs()")


# --- running ---------------------------------------------------------------------------------------
def _bounded(run):
    """Run `run()`, turning simpleeval's refusals into UnsafeExpression and exhausted resources (a
    nesting too deep for Python's stack, memory) into LimitExceeded."""
    try:
        return run()
    except simpleeval.InvalidExpression as exc:
        raise UnsafeExpression(str(exc)) from exc
    except RecursionError:
        raise LimitExceeded("the expression or its values are nested too deeply") from None
    except MemoryError:
        raise LimitExceeded("the evaluation ran out of memory") from None


def evaluate(expression: str, names: Mapping[str, Any], functions: Mapping[str, Callable] | None = None) -> Any:
    node = _parsed_expression(expression)
    evaluator = BoundedEval(names, {**SAFE_FUNCTIONS, **(functions or {})})
    return _bounded(lambda: evaluator.eval(expression, node))


def execute(script: str, context: dict[str, Any], functions: Mapping[str, Callable] | None = None) -> None:
    """Run a script against `context` in place. All-or-nothing: on error `context` is unchanged. The
    variables it leaves (the step's data) are measured as one value: at most MAX_VALUE_BYTES."""
    statements = _parsed_script(script)
    scratch = dict(context)
    evaluator = BoundedEval(scratch, {**SAFE_FUNCTIONS, **(functions or {})})

    def run():
        for stmt, source in statements:
            value = evaluator.eval(source, stmt.value)
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    scratch[target.id] = value
            elif isinstance(stmt, ast.AugAssign):
                value = _binop(stmt.op, scratch[stmt.target.id], value)
                evaluator.charge(value)
                scratch[stmt.target.id] = value
        evaluator.meter.size(scratch)

    try:
        _bounded(run)
    except KeyError as exc:
        raise UnsafeExpression(f"name {exc} is not defined") from exc
    context.clear()
    context.update(scratch)


_AUGMENTED = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)


def _binop(op: ast.operator, left: Any, right: Any) -> Any:
    if not isinstance(op, _AUGMENTED):
        raise UnsafeExpression(f"operator {type(op).__name__} is not allowed in augmented assignment")
    return OPERATORS[type(op)](left, right)


def argument_in_range(name: str, value) -> float:
    """The argument of an injected function of ARGUMENT_RANGES as a float: UnsafeExpression when it is no
    number, LimitExceeded when it is outside the function's range (or not finite)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise UnsafeExpression(f"{name}() takes a number, not {str(value)[:40]!r}") from None
    if isinstance(value, bool):
        raise UnsafeExpression(f"{name}() takes a number, not {value!r}")
    low, high = ARGUMENT_RANGES[name]
    if not low <= number <= high:  # NaN too
        raise LimitExceeded(f"{name}({str(value)[:40]}) is outside the allowed range {low:g}…{high:g}")
    return number
