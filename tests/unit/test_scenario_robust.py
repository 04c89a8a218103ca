"""Whatever the file holds, loading ends in a Scenario or a ScenarioError, never a crash."""
import random
from pathlib import Path

import yaml

from lab.scenario import load_text, yamlpos
from lab.programs.shared.problems import ScenarioError

DATA = Path(__file__).parent / "data"
TEXTS = [p.read_text() for p in sorted(DATA.glob("scenario_*.yaml"))]
VALUES = [None, -1, 0, 2.5, "x", "", [], {}, ["clients"], "1mbps", True, "10%", "-5ms", "5s",
          "clients -> servers", "clients", {"stop": "server"}, {"link": "clients <-> servers"}, ["a", None],
          101, {"lt": 5}, {"between": [1]}, {"between": ["x", 2]}, {"consistent_with_loss": "10%"}, float("inf")]
CHARS = list(":-[]{}&*!|>'\"#%@`, \n\t?") + ["<<: *client\n", "!!python/object:x ", "&a ", "*a ", "  "]


def outcome(text):
    try:
        load_text(text, "f.yaml")
    except ScenarioError as err:
        assert err.problems and all(p.line >= 1 and p.column >= 1 for p in err.problems)


def mutate(value, rng):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            r = rng.random()
            if r < 0.05:
                continue
            out[key + ("x" if r < 0.08 else "")] = rng.choice(VALUES) if r < 0.1 else mutate(item, rng)
        return out
    if isinstance(value, list):
        out = [mutate(v, rng) for v in value if rng.random() > 0.05]
        return out + [rng.choice(VALUES)] if rng.random() < 0.1 else out
    return rng.choice(VALUES) if rng.random() < 0.15 else value


def test_mutated_values_never_crash():
    rng = random.Random(7)
    for _ in range(150):
        doc, _ = yamlpos.load(rng.choice(TEXTS))
        outcome(yaml.safe_dump(mutate(doc.data, rng), sort_keys=False))


def test_mutated_characters_never_crash():
    rng = random.Random(11)
    for _ in range(150):
        text = list(rng.choice(TEXTS))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(text))
            if rng.random() < 0.5:
                text.insert(pos, rng.choice(CHARS))
            else:
                del text[pos]
        outcome("".join(text))
