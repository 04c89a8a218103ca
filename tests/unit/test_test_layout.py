"""The suite's own layout: pytest imports test modules by basename (rootdir-relative
imports, no __init__.py), so two test files of one name in different folders break
collection of the whole suite. Caught here, by name, before a CI run finds it."""
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_basename():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []
