import json
import os
import shutil
from pathlib import Path

import pytest

from lab.topology.docker_lab import DockerLab, remove_lab
from lab.topology.model import LabSpec

LECTURE = Path(__file__).resolve().parents[1] / "lecture"


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/net/" in str(item.fspath):
            item.add_marker(pytest.mark.network)


def lab_name(tag: str) -> str:
    return f"t{os.getpid() % 100000}-{tag}"


def copy_lecture_programs(work):
    for f in LECTURE.glob("*.py"):
        shutil.copy(f, work / f.name)


@pytest.fixture(scope="session")
def class_lab(tmp_path_factory):
    """The default class lab with two clients, shared by the read-only tests.
    The lecture programs are in its /work too."""
    work = tmp_path_factory.mktemp("work")
    copy_lecture_programs(work)
    lab = DockerLab.plan(LabSpec(lab=lab_name("class"), clients=2), work)
    with lab:
        for client in lab.topology.clients:
            lab.wait_for_output(client.name, ("demo done",), timeout=90)
        yield lab


@pytest.fixture(scope="session")
def idle_lab(tmp_path_factory):
    """A lab whose server runs nothing, with the lecture programs in /work."""
    work = tmp_path_factory.mktemp("work")
    copy_lecture_programs(work)
    spec = LabSpec(lab=lab_name("idle"), clients=1, server_command=("host-role", "idle"),
                   client_command=("host-role", "idle"))
    with DockerLab.plan(spec, work) as lab:
        yield lab


def run_json(lab, host, argv):
    result = lab.exec(host, argv)
    assert result.stdout.strip(), f"{argv} printed nothing: {result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(autouse=True, scope="session")
def _no_leftovers():
    yield
    # Whatever happened, leave no lab of this test session behind.
    for tag in ("class", "idle"):
        remove_lab(lab_name(tag))


@pytest.fixture(autouse=True, scope="session")
def _image_up_to_date():
    """Network tests run the programs in lab/programs: make sure the image has this
    tree's version (idempotent, instant when nothing changed)."""
    from lab.images.build import build_all
    build_all()
