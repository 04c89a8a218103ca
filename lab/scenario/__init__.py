"""Scenario files: loading, strict validation with positions, the resolved model.

    from lab.scenario import load_file, ScenarioError
    scenario = load_file("scenarios/udp-under-loss.yaml")   # raises ScenarioError

The format is declared once in ``spec.py``; ``python -m lab.scenario.schema`` prints
the JSON Schema made from it.  docs/scenarios.md is the instructors' reference.
"""
from .expect import Expectation, Position
from .model import (HealStep, HostStep, ImpairStep, PartitionStep, RunStep, Scenario, SignalStep, Step,
                    Topology, WaitStep)
from .problems import Problem, ScenarioError
from .validate import load_file, load_text

__all__ = ["load_file", "load_text", "ScenarioError", "Problem", "Scenario", "Topology", "Step",
           "RunStep", "ImpairStep", "PartitionStep", "HealStep", "SignalStep", "HostStep", "WaitStep",
           "Expectation", "Position"]
