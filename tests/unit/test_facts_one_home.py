"""Each fact has one home that code imports: the servers' port (topology.DEFAULT_PORT),
the label keys (lab.labels), the host image's tag (images.definition). The files that
cannot import them (compose.yaml, the Dockerfile, .ci/run) are held to them here."""
import ast
from pathlib import Path

import yaml

from lab import labels
from lab.images import definition
from lab.programs.shared.topology import DEFAULT_PORT

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
IMAGE_DEFAULT = f"${{{definition.IMAGE_ENV}:-{definition.DEFAULT_HOST_IMAGE}}}"


def test_the_port_is_written_as_a_number_only_in_its_home():
    found = [f"{path.relative_to(ROOT)}:{node.lineno}"
             for path in sorted((ROOT / "lab").rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Constant) and node.value == DEFAULT_PORT and type(node.value) is int]
    assert found == ["lab/programs/shared/topology.py:" + str(_home_line())]


def _home_line() -> int:
    text = (ROOT / "lab/programs/shared/topology.py").read_text().splitlines()
    return next(i for i, line in enumerate(text, 1) if line.startswith("DEFAULT_PORT = "))


def test_compose_uses_the_port_the_labels_and_the_image_tag():
    host = COMPOSE["x-host"]
    assert host["image"] == IMAGE_DEFAULT
    assert host["labels"] == {labels.LABEL: "1", labels.LABEL_LAB: "compose"}
    for network in COMPOSE["networks"].values():
        assert network["labels"] == {labels.LABEL: "1", labels.LABEL_LAB: "compose"}
    server = COMPOSE["services"]["server"]
    assert server["command"] == ["host-role", "server", "--port", str(DEFAULT_PORT)]
    assert f"sport = :{DEFAULT_PORT}'" in server["healthcheck"]["test"][1]


def test_the_dockerfile_labels_its_image_with_the_label_keys():
    lines = [line for line in (definition.HOST_DIR / "Dockerfile").read_text().splitlines()
             if line.startswith("LABEL ")]
    assert lines == [f'LABEL {labels.LABEL}="1" {labels.LABEL_IMAGE}="host"']


def test_ci_names_the_default_image_tag():
    assert IMAGE_DEFAULT in (ROOT / ".ci" / "run").read_text()
