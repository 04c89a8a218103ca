"""The published JSON Schema: up to date, valid, and in agreement with the validator."""
import re
import textwrap
from pathlib import Path

import pytest

from lab.scenario import load_text
from lab.programs.shared.problems import ScenarioError
from lab.scenario import schema as scenario_schema
from lab.scenario import yamlpos

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema" / "scenario.schema.json"
DOCS = ROOT / "docs" / "scenarios.md"
EXAMPLES = sorted((Path(__file__).parent / "data").glob("scenario_*.yaml")) + \
    sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator():
    schema = scenario_schema.schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(validator, text):
    doc, found = yamlpos.load(text)
    assert doc is not None and not found
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc.data)]


def test_committed_schema_is_up_to_date():
    assert SCHEMA_FILE.read_text() == scenario_schema.text(), \
        "regenerate it: python -m lab.scenario.schema > schema/scenario.schema.json"


def test_schema_closes_every_object_and_describes_top_level_keys():
    schema = scenario_schema.schema()
    assert schema["additionalProperties"] is False
    for key, prop in schema["properties"].items():
        assert prop.get("description"), key
    text = scenario_schema.text()
    assert '"additionalProperties": true' not in text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_pass_both_the_validator_and_the_schema(validator, path):
    text = path.read_text()
    load_text(text, str(path))
    assert schema_errors(validator, text) == []


def docs_examples():
    if not DOCS.exists():
        return []
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    return [b for b in blocks if b.startswith("name:")]


def test_docs_have_complete_examples():
    assert len(docs_examples()) >= 2


@pytest.mark.parametrize("text", docs_examples(), ids=lambda t: t.split("\n")[0])
def test_docs_examples_are_valid(validator, text):
    load_text(text, "docs/scenarios.md")
    assert schema_errors(validator, text) == []


HEAD = "name: t\ndescription: d\n"

# Mistakes that both the validator and the schema catch (a few only the validator can,
# like unknown hosts or time order, are left out on purpose).
BOTH_REJECT = [
    "step: []",
    "version: 2",
    "topology: {clients: 101}",
    "topology: {server: upper}",
    "topology: {capture: yes}",
    "topology: {hosts: {Web: {network: servers}}}",
    "impairments: [{link: clients -> servers, loss: 120%}]",
    "impairments: [{link: clients -> servers, delay: 50}]",
    "impairments: [{link: clients -> servers, delay: -5ms}]",
    "impairments: [{link: clients -> servers, rate: 1mbps}]",
    "impairments: [{link: clients => servers}]",
    "impairments: [{link: clients -> servers, latency: 5ms}]",
    "impairments: [{loss: 1%}]",
    "steps: [{at: 0s, on: server}]",
    "steps: [{at: 0s, on: server, run: x, wait: 1s}]",
    "steps: [{at: 0s, wait: 1s, stagger: 1s}]",
    "steps: [{wait: 1s}]",
    "steps: [{at: 0s, partition: [clients]}]",
    "steps: [{at: 0s, host: {reboot: server}}]",
    "steps: [{at: 0s, name: My Step, wait: 1s}]",
    "expect: [{'probe..x': 1}]",
    "expect: [{avg(probe.x): 1}]",
    "expect: [{probe.x: {betwen: [1, 2]}}]",
    "expect: [{probe.x: {}}]",
    "expect: [{probe.x: 1, probe.y: 2}]",
    "expect: [{probe.x: [1, 2]}]",
]


@pytest.mark.parametrize("body", BOTH_REJECT)
def test_schema_and_validator_reject_the_same_mistakes(validator, body):
    text = HEAD + body + "\n"
    with pytest.raises(ScenarioError):
        load_text(text, "x.yaml")
    assert schema_errors(validator, text), body


def test_schema_accepts_the_format_at_its_widest(validator):
    text = HEAD + textwrap.dedent("""\
        version: 1
        x-anchor: &a {on: clients}
        topology: {clients: 0, networks: [dmz], hosts: {web: {network: dmz}}, server: idle, capture: false}
        impairments:
          - {link: servers <-> dmz, loss: 1, loss_correlation: 5%, delay: 1.5s, jitter: 500us,
             duplicate: 0.5%, corrupt: 0.1%, reorder: 5%, rate: 10Mbit, queue: 20}
          - {link: clients -> dmz, gemodel: {p: 1%, r: 10%, one_minus_h: 90%, one_minus_k: 0.1%}}
        steps:
          - {at: 0, name: a, on: [web], run: x, background: true, ready: up, ready_timeout: 5s, timeout: 1m}
          - {at: 1s, impair: {link: clients -> dmz}}
          - {at: 2s, partition: dmz -> servers}
          - {at: 3s, heal: [dmz, servers]}
          - {at: 4s, kill: [a]}
          - {at: 5s, restart: a}
          - {at: 6s, stop: a}
          - {at: 7s, host: {stop: [web]}}
          - {at: 8s, host: {start: web}}
          - {at: 9s, wait: 1s}
        expect:
          - a.x: ECONNREFUSED
          - count(a): {ge: 1, le: 1}
          - a.output: {matches: "u+p", contains: up, not: "", one_of: [up, null]}
          - sum(a): {consistent_with_loss: 1%, confidence: 95%}
          - a.rtt_ms: {between: [1ms, 2s]}
          - a.elapsed: {lt: 10s, gt: 0}
        """)
    load_text(text, "x.yaml")
    assert schema_errors(validator, text) == []
