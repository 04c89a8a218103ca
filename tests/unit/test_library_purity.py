"""The library packages (every module of lab/ but the command layer) neither use click
nor end the process: they raise LabErrors, and only lab/cli.py and lab/commands/ turn
those into messages and exit codes.  Read from each module's syntax tree, so a comment
or a string that mentions click is no finding, and an aliased import is one.

In-host programs (lab/programs/) are processes of their own, run inside the hosts:
they may end themselves; click they may not use either (the image is standard-library
only).  A module run as a program (`if __name__ == "__main__":`) may end itself there.
"""
import ast
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parents[2] / "lab"
COMMAND_LAYER = {LAB / "cli.py", LAB / "commands"}
PROGRAMS = LAB / "programs"


def library_modules():
    for path in sorted(LAB.rglob("*.py")):
        if not any(path == p or p in path.parents for p in COMMAND_LAYER):
            yield path


def _is_main_guard(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def findings(source: str, may_exit: bool) -> list[str]:
    """What in ``source`` is command-line code: click imports, and (unless ``may_exit``)
    sys.exit, exit from sys, or SystemExit outside a ``__main__`` guard."""
    tree = ast.parse(source)
    guarded = {id(n) for g in ast.walk(tree) if _is_main_guard(g) for n in ast.walk(g)}
    sys_names, exit_names, found = {"sys"}, set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "click":
                    found.append(f"line {node.lineno}: import {alias.name}")
                if alias.name == "sys":
                    sys_names.add(alias.asname or "sys")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "click":
                found.append(f"line {node.lineno}: from {node.module} import ...")
            if node.module == "sys":
                exit_names |= {a.asname or a.name for a in node.names if a.name == "exit"}
    if may_exit:
        return found
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Attribute) and node.attr == "exit" \
                and isinstance(node.value, ast.Name) and node.value.id in sys_names:
            found.append(f"line {node.lineno}: sys.exit")
        elif isinstance(node, ast.Name) and (node.id in exit_names or node.id == "SystemExit"):
            found.append(f"line {node.lineno}: {node.id}")
    return found


@pytest.mark.parametrize("path", list(library_modules()), ids=lambda p: str(p.relative_to(LAB)))
def test_library_module_has_no_command_line_code(path):
    assert findings(path.read_text(), may_exit=PROGRAMS in path.parents) == []


def test_the_walk_sees_the_library_and_skips_the_command_layer():
    modules = set(library_modules())
    assert LAB / "impairments" / "live.py" in modules and LAB / "runner" / "run.py" in modules
    assert LAB / "cli.py" not in modules and not any(LAB / "commands" in p.parents for p in modules)


@pytest.mark.parametrize("source, expected", [
    ("import click\n", ["line 1: import click"]),
    ("import click.testing as t\n", ["line 1: import click.testing"]),
    ("from click import echo\n", ["line 1: from click import ..."]),
    ("import sys\nsys.exit(2)\n", ["line 2: sys.exit"]),
    ("import sys as s\ndef f():\n    s.exit(2)\n", ["line 3: sys.exit"]),
    ("from sys import exit as bye\nbye(1)\n", ["line 2: bye"]),
    ("raise SystemExit(2)\n", ["line 1: SystemExit"]),
    ("import sys\nif __name__ == '__main__':\n    sys.exit(main())\n", []),
    ("'''import click; sys.exit(2)'''\n# import click\n", []),
    ("from .click import x\nimport clicker\n", []),
])
def test_findings_reads_the_syntax_not_the_text(source, expected):
    assert findings(source, may_exit=False) == expected


def test_programs_may_end_themselves_but_not_use_click():
    assert findings("import sys\nsys.exit(0)\n", may_exit=True) == []
    assert findings("import click\n", may_exit=True) == ["line 1: import click"]
