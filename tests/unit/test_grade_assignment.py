"""Assignment files for `lab grade --assignment` (pure: reading and checking them)."""
from pathlib import Path

import pytest

from lab.grade.assignment import LECTURE, ROLES, load, load_text
from lab.images import definition
from lab.programs.shared.errors import LabError
from lab.programs.shared.problems import ScenarioError

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str) -> list:
    with pytest.raises(ScenarioError) as info:
        load_text(text, "a.yaml")
    return info.value.lines


def test_the_shipped_assignments_load():
    c = load(ROOT / "examples" / "assignments" / "c" / "assignment.yaml")
    assert c.image == definition.toolchain_image("c") and c.build == "make"
    assert c.command("tcp_client", host="server", port=12000) == "./tcpclient server 12000"
    assert c.command("udp_server") == "./udpserver 12000"
    assert c.files(()) == tuple(ROLES.values()) and c.image_line == 5
    java = load(ROOT / "examples" / "assignments" / "java" / "assignment.yaml")
    assert java.image == definition.toolchain_image("java") and java.build.startswith("javac")


def test_the_lecture_is_the_built_in_assignment():
    assert LECTURE.command("tcp_server") == "python3 -u TCPServer.py" and LECTURE.image is None
    assert LECTURE.files(("TCPServer.py", "UDPClient.py")) == ("TCPServer.py", "UDPClient.py")


def test_roles_left_out_are_programs_it_lacks():
    a = load_text("image: 'my/image:1'\ntcp_server: ./srv {port}\n", "a.yaml")
    assert a.image == "my/image:1" and a.files(()) == ("TCPServer.py",) and a.build is None
    assert load_text("tcp_server: 'echo {{literal}} {port}'\n").command("tcp_server") == "echo {literal} 12000"


@pytest.mark.parametrize("text, line", [
    ("toolchain: rust\ntcp_server: x\n", "a.yaml:1:12: toolchain: 'rust' is not one of: c, java"),
    ("tcp_server: ./srv {prot}\n", "a.yaml:1:13: tcp_server: unknown placeholder {prot}"),
    ("tcp_server: ./srv {port\n", "a.yaml:1:13: tcp_server: './srv {port'"),
    ("tcp_sever: ./srv\n", "a.yaml:1:1: tcp_sever: unknown key for an assignment (did you mean 'tcp_server'?)"),
    ("build: make\n", "a.yaml:1:1: no role: give a command for at least one of tcp_server"),
    ("image: x\ntoolchain: c\ntcp_server: y\n", "a.yaml:2:1: toolchain: give image or toolchain, not both"),
    ("tcp_server: [a, b]\n", "a.yaml:1:13: tcp_server: expected a string"),
    ("", "a.yaml:1:1: the file is empty"),
    ("tcp_server: x\ntcp_server: y\n", "a.yaml:2:1"),
])
def test_bad_assignment_files_name_file_line_and_field(text, line):
    found = problems(text)
    assert found and found[0].startswith(line), found
    assert ScenarioError("a.yaml", []).exit_code == 2


def test_an_unreadable_file_is_bad_input(tmp_path):
    with pytest.raises(LabError, match="cannot read assignment"):
        load(tmp_path / "nothing.yaml")
