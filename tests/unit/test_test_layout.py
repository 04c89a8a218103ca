"""The suite's own layout: pytest imports test modules by basename (rootdir-relative
imports, no __init__.py), so two test files of one name in different folders break
collection of the whole suite. Caught here, by name, before a CI run finds it."""
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_basename():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []


def _modules():
    """Every test module and conftest under tests/, parsed."""
    import ast
    for path in sorted([*TESTS.rglob("test_*.py"), *TESTS.rglob("conftest.py")]):
        if "__pycache__" not in path.parts:
            yield path, ast.parse(path.read_text(), str(path))


def test_no_test_module_imports_another_or_conftest():
    """Shared helpers are fixtures (conftest.py) or helper modules; a test module imported
    by another is collected twice and couples files that should stand alone."""
    import ast
    wrong = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.split(".")[-1] == "conftest" or name.split(".")[-1].startswith("test_"):
                    wrong.append(f"{path.relative_to(TESTS)}:{node.lineno}: imports {name}")
    assert wrong == []


def test_no_two_fixtures_share_a_name():
    """One name, one fixture: a test asking for `lab` gets one meaning wherever it is."""
    import ast
    seen = Counter()
    for _path, tree in _modules():
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any(
                    "fixture" in ast.unparse(d) for d in node.decorator_list):
                seen[node.name] += 1
    assert [name for name, k in seen.items() if k > 1] == []
