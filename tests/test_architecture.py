"""The layout holds: no import circles, one module writes dossiers, the engine stays free of the web
framework and of SpiffWorkflow outside its wrapper. Read from the source, so it fails on the commit
that breaks it."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AGGREGATE = "engine/dossiers/aggregate.py"
DOSSIER_TABLES = {"Dossier", "HumanTask", "SupplementRequest", "Apology", "ServiceRating", "DossierFile",
                  "IdempotencyKey", "DOSSIERS", "TASKS"}


def modules(package: str) -> dict[str, ast.Module]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT)
        name = ".".join(rel.with_suffix("").parts)
        out[name.removesuffix(".__init__")] = (str(rel), ast.parse(path.read_text(encoding="utf-8")))
    return out


def imports(name: str, tree: ast.Module, known: set[str], top_level_only: bool) -> set[str]:
    """Engine modules `name` imports (at module level only, when asked: imports inside functions run late)."""
    found = set()
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else ".".join(name.split(".")[:-node.level] + [node.module])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    seen, stack, found = set(), [], []

    def visit(node):
        if node in stack:
            found.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    return found


def test_no_import_circles_between_modules_or_packages():
    mods = modules("engine")
    known = set(mods)
    graph = {name: imports(name, tree, known, top_level_only=False) for name, (_, tree) in mods.items()}
    # A package's __init__ re-exports its own modules; that is not a circle.
    graph = {n: {m for m in deps if not (n in {"engine.catalog", "engine.dossiers"} and m.startswith(n + "."))}
             for n, deps in graph.items()}
    assert cycles(graph) == []

    def package(mod: str) -> str:
        parts = mod.split(".")
        return ".".join(parts[:2]) if len(parts) > 2 or mod in {"engine.catalog", "engine.dossiers"} else mod

    packages: dict[str, set[str]] = {}
    for n, deps in graph.items():
        packages.setdefault(package(n), set()).update(package(d) for d in deps if package(d) != package(n))
    assert cycles(packages) == [], "packages import each other"


def _names(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def test_only_the_aggregate_locks_or_writes_a_dossier():
    offenders = []
    for package in ("engine", "webapp", "motcua"):
        for _, (rel, tree) in modules(package).items():
            if rel == AGGREGATE:
                continue
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if func in ("insert", "update", "delete") and node.args and _names(node.args[0]) & DOSSIER_TABLES:
                    offenders.append(f"{rel}:{node.lineno} {func}({ast.unparse(node.args[0])})")
                elif func == "with_for_update" and rel != "engine/dossiers/outbox.py":
                    offenders.append(f"{rel}:{node.lineno} with_for_update")
                elif func == "add" and node.args and isinstance(node.args[0], ast.Call) and \
                        _names(node.args[0].func) & DOSSIER_TABLES:
                    offenders.append(f"{rel}:{node.lineno} session.add({ast.unparse(node.args[0].func)}(…))")
    assert offenders == []


def test_the_engine_imports_neither_flask_nor_the_web_app_and_only_the_wrapper_imports_spiff():
    bad = []
    for _name, (rel, tree) in modules("engine").items():
        for node in ast.walk(tree):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for target in targets:
                if target.split(".")[0] in ("flask", "webapp", "werkzeug"):
                    bad.append(f"{rel}: {target}")
                if target.startswith("SpiffWorkflow") and rel != "engine/workflow/runtime.py":
                    bad.append(f"{rel}: {target}")
    assert bad == []


def test_the_architecture_check_sees_a_write_outside_the_aggregate():
    """The check above must be able to fail: a module that updates dossiers by hand is caught."""
    tree = ast.parse("from sqlalchemy import update\ndef f(s):\n    s.execute(update(Dossier).values(status='x'))\n")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "update"]
    assert calls and _names(calls[0].args[0]) & DOSSIER_TABLES
    graph = {"a": {"b"}, "b": {"a"}}
    assert cycles(graph)
