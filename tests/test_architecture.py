"""The shape of ``helpers/``: its packages import one another without a cycle, no module
outgrows a reader (350 lines), and no function of the analysis outgrows a screen (60 lines)."""
import ast

from helpers.store.files import project_root

ROOT = project_root()
HELPERS = ROOT / "helpers"


def package(module: str) -> str:
    """``helpers.a.b`` -> ``a`` (a top-level package or module of helpers/)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports_between_packages() -> dict[str, set[str]]:
    """package -> the packages its modules import (lazy imports inside functions too)."""
    edges: dict[str, set[str]] = {}
    for path in HELPERS.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        here = ".".join(parts)
        base = parts if path.name == "__init__.py" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                root = base[: len(base) - node.level + 1] if node.level else []
                module = ".".join([*root, node.module] if node.module else root)
                targets = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("helpers.") and package(target) != package(here):
                    edges.setdefault(package(here), set()).add(package(target))
    return edges


def test_packages_import_each_other_without_a_cycle():
    edges = imports_between_packages()
    assert {"store", "report", "stages", "config"} <= set(edges) | {t for ts in edges.values() for t in ts}
    done, path = set(), []

    def visit(node):
        assert node not in path, f"import cycle: {' -> '.join(path[path.index(node):] + [node])}"
        if node in done:
            return
        path.append(node)
        for after in sorted(edges.get(node, ())):
            visit(after)
        path.pop()
        done.add(node)

    for node in sorted(edges):
        visit(node)


def test_a_cycle_is_found_where_there_is_one(monkeypatch):
    """The check above can fail: an import from store back into stages is a cycle."""
    edges = imports_between_packages()
    edges.setdefault("store", set()).add("stages")
    monkeypatch.setattr(__import__(__name__), "imports_between_packages", lambda: edges)
    try:
        test_packages_import_each_other_without_a_cycle()
    except AssertionError as error:
        assert "import cycle" in str(error)
    else:
        raise AssertionError("the cycle store -> stages -> store was not found")


def test_no_module_over_350_lines():
    long = {str(p.relative_to(ROOT)): n for p in HELPERS.rglob("*.py") if (n := len(p.read_text().splitlines())) > 350}
    assert not long, long


def test_no_function_of_the_analysis_over_60_lines():
    long = {}
    for path in (HELPERS / "analysis").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert not long, long
