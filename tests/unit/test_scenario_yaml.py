"""Positioned, safe YAML loading (lab.scenario.yamlpos) and how its problems are reported."""
import pytest

from lab.scenario import load_text
from lab.programs.shared.problems import ScenarioError
from lab.scenario import yamlpos


def problems(text):
    with pytest.raises(ScenarioError) as info:
        load_text(text, "s.yaml")
    return info.value.lines


def test_positions_of_values_and_keys_are_1_based():
    doc, found = yamlpos.load("a: 1\nb:\n  - x\n  - {c: true}\n")
    assert found == []
    assert doc.data == {"a": 1, "b": ["x", {"c": True}]}
    assert doc.mark(("a",)) == (1, 4)
    assert doc.mark(("a",), key=True) == (1, 1)
    assert doc.mark(("b", 1, "c")) == (4, 9)
    assert doc.mark(("b", 1, "c"), key=True) == (4, 6)


def test_mark_falls_back_to_the_nearest_enclosing_value():
    doc, _ = yamlpos.load("a:\n  b: 1\n")
    assert doc.mark(("a", "missing", "deeper")) == (2, 3)


@pytest.mark.parametrize("text, value", [
    ("on", "on"), ("yes", "yes"), ("no", "no"), ("off", "off"),      # YAML 1.1 booleans stay text
    ("true", True), ("False", False), ("1:30", "1:30"),             # no base-60 numbers
    ("2001-12-14", "2001-12-14"),                                   # no timestamps
    ("10", 10), ("-3", -3), ("0x1f", 31), ("0o17", 15), ("1.5", 1.5), ("1e3", 1000.0),
    ("~", None), ("null", None), ("", None), ("'10'", "10"), ('"true"', "true"), ("!!str 10", "10"),
])
def test_scalars_follow_the_yaml_1_2_core_schema(text, value):
    doc, found = yamlpos.load(f"k: {text}\n")
    assert found == []
    assert doc.data["k"] == value and type(doc.data["k"]) is type(value)


def test_on_as_a_key_is_the_string_on():
    doc, _ = yamlpos.load("on: server\n")
    assert doc.data == {"on": "server"}


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['true']",
                                 "!!python/name:os.system", "!!python/object:object {}",
                                 "!!set {a, b}", "!custom x", "!!binary aGk="])
def test_tags_outside_plain_data_are_refused_with_their_position(tag):
    lines = problems(f"name: x\ndescription: {tag}\n")
    assert len(lines) == 1
    assert lines[0].startswith("s.yaml:2:14: description: YAML tag ")
    assert "is not allowed" in lines[0]


def test_a_refused_tag_is_not_also_reported_as_a_wrong_type():
    lines = problems("name: x\ndescription: d\ntopology: !!python/object:x {clients: 1}\n")
    assert lines == ["s.yaml:3:11: topology: YAML tag !!python/object:x is not allowed: "
                     "a scenario is plain data (strings, numbers, lists, mappings)"]


def test_explicit_standard_tags_must_fit_their_value():
    assert problems("name: x\ndescription: d\nversion: !!int one\n") == [
        "s.yaml:3:10: version: 'one' is not a valid !!int"]


def test_duplicate_keys_are_an_error_at_the_second_one():
    assert problems("name: a\ndescription: d\nname: b\n") == [
        "s.yaml:3:1: name: duplicate key 'name' (first written at line 1)"]


def test_nested_duplicate_keys_too():
    lines = problems("name: a\ndescription: d\nimpairments:\n  - link: clients -> servers\n"
                     "    loss: 1%\n    loss: 2%\n")
    assert lines == ["s.yaml:6:5: impairments[0].loss: duplicate key 'loss' (first written at line 5)"]


def test_alias_bomb_is_refused():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    found = problems("\n".join(lines) + "\n")
    assert len(found) == 1
    assert "expands to more than 100000 values" in found[0]


def test_recursive_alias_is_refused():
    found = problems("name: &r [*r]\ndescription: d\n")
    assert found == ["s.yaml:1:7: name[0]: an alias refers to a value that contains it (recursive alias)"]


def test_anchors_aliases_and_merge_keys_are_allowed():
    doc, found = yamlpos.load("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert found == []
    assert doc.data["other"] == {"x": 1, "y": 3}
    assert doc.mark(("other", "x")) == (1, 14)     # a merged value keeps its own position


def test_merge_sources_in_a_list_earlier_wins():
    doc, _ = yamlpos.load("a: &a {k: 1}\nb: &b {k: 2, j: 2}\nc:\n  <<: [*a, *b]\n")
    assert doc.data["c"] == {"k": 1, "j": 2}


def test_merging_a_scalar_is_an_error():
    _, found = yamlpos.load("a:\n  <<: 5\n")
    assert [p.message for p in found] == ["'<<' merges a mapping (or a list of mappings) only"]


def test_syntax_error_has_a_position():
    assert problems("name: x\ndescription: [unclosed\n") == [
        "s.yaml:3:1: YAML syntax: expected ',' or ']', but got '<stream end>'"]


def test_two_documents_are_refused():
    found = problems("name: x\ndescription: d\n---\nname: y\n")
    assert found == ["s.yaml:3:1: YAML syntax: expected a single document in the stream, "
                     "but found another document"]


def test_complex_keys_are_refused():
    _, found = yamlpos.load("? [a, b]\n: 1\n")
    assert [p.message for p in found] == ["a mapping key must be a plain string"]


def test_deep_nesting_is_refused():
    _, found = yamlpos.load("a: " + "[" * 70 + "]" * 70 + "\n")
    assert "nested more than 64 levels deep" in found[0].message


def test_empty_file():
    assert problems("") == ["s.yaml:1:1: the file is empty: a scenario needs at least name and description"]
    assert problems("# only a comment\n") == [
        "s.yaml:1:1: the file is empty: a scenario needs at least name and description"]


def test_a_list_at_the_top_is_the_wrong_type():
    assert problems("- a\n") == ["s.yaml:1:1: expected a mapping (key: value lines), got a list"]


def test_error_lists_every_problem_sorted_by_position():
    found = problems("descripton: d\nname: Bad\nextra: 1\n")
    assert found == [
        "s.yaml:1:1: descripton: unknown key for a scenario (did you mean 'description'?)",
        "s.yaml:1:1: missing required key 'description'",
        "s.yaml:2:7: name: 'Bad' is not a valid scenario name: lowercase letters, digits and '-', "
        "starting with a letter, at most 64",
        "s.yaml:3:1: extra: unknown key for a scenario; expected one of: version, name, description, "
        "topology, impairments, steps, expect",
    ]


def test_scenario_error_is_a_lab_error_with_the_lines_as_its_text():
    from lab.programs.shared.errors import LabError
    with pytest.raises(LabError) as info:
        load_text("name: x\n", "s.yaml")
    err = info.value
    assert isinstance(err, ScenarioError)
    assert err.exit_code == 2
    assert str(err) == "\n".join(err.lines) == "s.yaml:1:1: missing required key 'description'"
    assert err.problems[0].line == 1 and err.problems[0].path == ""
