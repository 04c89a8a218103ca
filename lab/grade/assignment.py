"""An assignment: how `lab grade` builds and runs a student's four programs, in any language.

    # assignment.yaml
    toolchain: c                 # or image: REF (built on socketlab's host image)
    build: make                  # run once in the submission's folder before the checks
    tcp_server: ./tcpserver {port}
    udp_server: ./udpserver {port}
    tcp_client: ./tcpclient {host} {port}     # reads its line from stdin, like the lecture's
    udp_client: ./udpclient {host} {port}

Each role's command is a shell line run in the submission's folder (/work) with ``{host}``
(the server's name) and ``{port}`` (12000) filled in; a role left out is a program the
assignment does not have (its checks are reported as missing).  The lecture's Python
programs are the built-in assignment (``LECTURE``), so one set of checks and points grades
every language.  Pure: reading and checking the file, no engine.
"""
from __future__ import annotations

import hashlib
import shlex
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..images import definition
from ..programs.shared.errors import LabError
from ..programs.shared.fieldtypes import INVALID, Checker, Choice, Field, Record, Text
from ..programs.shared.problems import Problem, ScenarioError
from ..programs.shared.spec import IMAGE
from ..programs.shared.topology import DEFAULT_PORT

# role -> the lecture's file for it; the checks name the file they need (harness.FILES)
ROLES: Dict[str, str] = {"tcp_server": "TCPServer.py", "udp_server": "UDPServer.py",
                         "tcp_client": "TCPClient.py", "udp_client": "UDPClient.py"}
PLACEHOLDERS = ("host", "port")
MAX_FILE_BYTES = 64 << 10


def _template(text: str) -> str:
    """A role's command: every {name} one of PLACEHOLDERS ({{ and }} for braces)."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc} (write {{{{ and }}}} for literal braces)") from None
    bad = [n for n in names if n not in PLACEHOLDERS]
    if bad:
        raise ValueError(f"unknown placeholder {{{bad[0]}}}: a command may use {{host}} and {{port}}")
    return text


def _role(what: str) -> Field:
    return Field(Text(f"The shell command that runs the {what}, in the submission's folder; "
                      "{host} and {port} are filled in.", convert=_template))


ASSIGNMENT = Record("How `lab grade` builds and runs a student's programs.", {
    "name": Field(Text(), "A name shown in the report."),
    "image": Field(IMAGE, "The image every host runs: one built on socketlab's host image "
                          "(FROM socketlab-host), since our clients and servers run next to the student's."),
    "toolchain": Field(Choice("", list(definition.TOOLCHAINS)),
                       "A toolchain image built by `lab images build --with NAME` (c: gcc and make; java: a "
                       "headless JDK); instead of image."),
    "build": Field(Text(), "A shell command run once in the submission's folder before the checks "
                           "(make, javac *.java); when it fails, every check is reported as not run."),
    **{role: _role(role.replace("_", " ")) for role in ROLES},
}, title="an assignment")


@dataclass(frozen=True)
class Assignment:
    name: str
    roles: Dict[str, str]                 # role -> command template
    image: Optional[str] = None           # None: the lab's host image
    build: Optional[str] = None
    source: str = "<built-in>"
    image_line: int = 0                   # where the file names the image (for messages)
    lecture: bool = field(default=False)  # the built-in Python lecture: a role exists if its file does
    digest: str = ""                      # the file's content hash: class grading regrades when it changes

    def command(self, role: str, host: str = "server", port: int = DEFAULT_PORT) -> str:
        return self.roles[role].format(host=shlex.quote(host), port=port)

    def files(self, present: Tuple[str, ...]) -> Tuple[str, ...]:
        """The lecture file names standing for the roles this submission has (what the
        checks' ``needs`` look for): the lecture's files found, or the assignment's roles."""
        if self.lecture:
            return tuple(f for f in ROLES.values() if f in present)
        return tuple(ROLES[role] for role in ROLES if role in self.roles)


LECTURE = Assignment("the lecture's Python programs",
                     {role: f"python3 -u {file}" for role, file in ROLES.items()}, lecture=True)


def load(path: Path) -> Assignment:
    """Read and check an assignment file: every problem as FILE:LINE:COL: field: message
    (a ScenarioError, exit 2)."""
    from ..scenario.validate import read_text
    try:
        text = read_text(path, "assignment", MAX_FILE_BYTES)
    except ScenarioError as exc:
        raise _error(exc.filename, exc.problems) from None
    return load_text(text, str(path))


def load_text(text: str, filename: str = "<assignment>") -> Assignment:
    from ..scenario import yamlpos
    doc, problems = yamlpos.load(text)
    if doc is None:
        raise _error(filename, problems)
    ck = Checker(doc)
    if doc.data is None:
        ck.error((), "the file is empty: an assignment needs a command for at least one role "
                     f"({', '.join(ROLES)})")
        raise _error(filename, problems + ck.problems)
    data: Any = ASSIGNMENT.check(doc.data, (), ck)
    if data is not INVALID:
        roles = {role: data[role] for role in ROLES if data.get(role) is not None}
        if data["image"] is not None and data["toolchain"] is not None:
            ck.error(("toolchain",), "give image or toolchain, not both", key=True)
        if not roles and not ck.problems:
            ck.error((), f"no role: give a command for at least one of {', '.join(ROLES)}")
    problems += ck.problems
    if problems or data is INVALID:
        raise _error(filename, problems)
    image = data["image"] or (definition.toolchain_image(data["toolchain"]) if data["toolchain"] else None)
    where = "image" if data["image"] else "toolchain"
    line = doc.mark((where,))[0] if image else 0
    return Assignment(data["name"] or Path(filename).parent.name or filename, roles, image, data["build"],
                      filename, line, digest=hashlib.sha256(text.encode()).hexdigest())


def _error(filename: str, problems) -> ScenarioError:
    err = ScenarioError(filename, problems)
    err.hint = "see docs/own-programs-and-images.md for the assignment file"
    return err
