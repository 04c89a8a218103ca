"""Scenario files as pytest items: one test per file, run by `lab run`'s own runner.

A file that is not a valid scenario is a collection error listing every problem
(FILE:LINE:COL: field: message); a scenario that fails shows its expectations table
(lab/report/render.py) and its run errors.  Each run's folder (outputs, logs, captures,
results.json) goes under --socketlab-runs DIR, or pytest's temporary folder.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from .pytest_plugin import MARKER


class ScenarioFailed(Exception):
    def __init__(self, report):
        super().__init__(report.scenario)
        self.report = report


class ScenarioFile(pytest.File):
    def collect(self):
        from .scenario import load_file
        from .programs.shared.problems import ScenarioError
        try:
            scenario = load_file(self.path)
        except ScenarioError as exc:
            raise self.CollectError("\n".join(exc.lines)) from None
        item = ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario)
        item.add_marker(MARKER)
        yield item


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.progress: list[str] = []

    def _folder(self, option: str, name: str) -> Path:
        given = self.config.getoption(option)
        if given:
            return Path(given)
        return self.config._tmp_path_factory.mktemp(name)  # noqa: SLF001 - pytest's own tmp folders

    def runtest(self):
        from .runner.run import RunOptions, run_scenario
        opts = RunOptions(runs_dir=self._folder("socketlab_runs", "socketlab-runs"),
                          work_dir=self._folder("socketlab_work", "socketlab-work"),
                          keep=False, progress=self.progress.append)
        try:
            report = run_scenario(self.scenario, opts)
        finally:
            self.add_report_section("call", "socketlab progress", "\n".join(self.progress))
        if report.skipped:
            pytest.skip(f"{self.scenario.name}: {report.skipped}")
        if not report.passed:
            raise ScenarioFailed(report)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ScenarioFailed):
            from .report.render import report_text
            return report_text(excinfo.value.report)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"scenario {self.scenario.name}"
