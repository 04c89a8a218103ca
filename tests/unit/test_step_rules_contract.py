"""The step rules are a mixin of the scenario builder: what they use of it is declared in
StepRules' annotations (the contract), and the builder provides all of it."""
import ast
import inspect
import textwrap

from lab.scenario import step_rules, validate


def class_node(cls) -> ast.ClassDef:
    return ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]


def self_attributes(node: ast.AST) -> set:
    return {n.attr for n in ast.walk(node)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"}


def defined_in(node: ast.ClassDef) -> set:
    return {n.name for n in node.body if isinstance(n, ast.FunctionDef)}


def test_the_mixin_uses_only_what_it_defines_or_declares():
    node = class_node(step_rules.StepRules)
    declared = set(step_rules.StepRules.__annotations__)
    assert self_attributes(node) - defined_in(node) - declared == set()
    assert declared - self_attributes(node) == set()   # no stale declarations


def test_the_builder_provides_everything_the_mixin_declares():
    node = class_node(validate._Builder)
    init = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assigned = {t.attr for n in ast.walk(init) if isinstance(n, (ast.Assign, ast.AnnAssign))
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                for t in ([t] if not isinstance(t, ast.Tuple) else t.elts)
                if isinstance(t, ast.Attribute)}
    provided = assigned | defined_in(node)
    assert set(step_rules.StepRules.__annotations__) - provided == set()
