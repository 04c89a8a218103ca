"""The `lab` commands, one module per family; `lab/cli.py` registers them on its group.

This package and `lab/cli.py` are the only places that use click or end the process
(`sys.exit`): a command reads its options, calls the library (every other package of
`lab/`), and prints through `lab/ui.py`.  The library raises `LabError`s, whose exit
codes the group in `lab/cli.py` turns into the process's status; a unit test
(tests/unit/test_library_purity.py) keeps it that way.
"""
