"""Test suites shipped with socketlab, run with `pytest --pyargs lab.suites.NAME`."""
