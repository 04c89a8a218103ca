"""Scenario files: loading, strict validation with positions, the resolved model.

    from lab.scenario import load_file      # ScenarioError: lab.programs.shared.problems
    scenario = load_file("scenarios/udp-under-loss.yaml")   # raises ScenarioError

The format is declared once in ``spec.py``; ``python -m lab.scenario.schema`` prints
the JSON Schema made from it.  docs/scenarios.md is the instructors' reference.
"""
from importlib import import_module

# Where each public name lives.  Imported on first use, so a module that needs only the
# model (model.py) does not load PyYAML (validate.py).  The format's pure parts (spec,
# fieldtypes, units, problems, oneline) are in lab.programs.shared: the router uses them too.
_EXPORTS = {
    "Expectation": "expect", "Position": "expect",
    "HealStep": "model", "HostStep": "model", "ImpairStep": "model", "PartitionStep": "model",
    "RouterStep": "model", "RunStep": "model", "Scenario": "model", "SignalStep": "model",
    "Step": "model", "ScenarioTopology": "model", "WaitStep": "model",
    "load_file": "validate", "load_text": "validate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
