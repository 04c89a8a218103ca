"""What runs inside the hosts (lab/programs/, copied whole into the image) imports only
the standard library and lab/programs/ itself: read from the source's syntax tree, so
an import under `if TYPE_CHECKING:` or inside a function counts too. Host-side code may
import lab.programs.shared; never the other way round."""
import ast
import sys
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).resolve().parents[2] / "lab" / "programs"
FILES = sorted(PROGRAMS.rglob("*.py"))


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, a module of `package`."""
    parts = package.split(".")
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = parts[:len(parts) - (node.level - 1)]
            found.append((node.lineno, ".".join([*base, *([node.module] if node.module else [])])))
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module))
    return sorted(found)


def refused(source: str, package: str) -> list[str]:
    """The imports of an in-host module that reach outside the standard library and lab.programs."""
    def allowed(module: str) -> bool:
        top = module.split(".")[0]
        return (module == "lab.programs" or module.startswith("lab.programs.")
                or (top != "lab" and top in sys.stdlib_module_names))
    return [f"{line}: {module}" for line, module in imported_modules(source, package) if not allowed(module)]


def package_of(path: Path) -> str:
    return ".".join(["lab", "programs", *path.parent.relative_to(PROGRAMS).parts])


def test_there_are_programs_and_shared_modules():
    names = {p.relative_to(PROGRAMS).as_posix() for p in FILES}
    assert {"impair_agent.py", "shared/impairment.py", "shared/oneline.py"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(PROGRAMS).as_posix())
def test_in_host_modules_import_only_the_standard_library_and_lab_programs(path):
    assert refused(path.read_text(), package_of(path)) == []


def test_the_check_refuses_host_side_and_third_party_imports():
    source = ("import os\nfrom . import units\nfrom lab.programs import common\n"
              "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ...scenario import yamlpos\n"
              "def f():\n    import yaml\n    from lab.errors import LabError\n"
              "from .. import common\nfrom ... import errors\nimport lab\n")
    assert refused(source, "lab.programs.shared") == [
        "6: lab.scenario", "8: yaml", "9: lab.errors", "11: lab", "12: lab"]
