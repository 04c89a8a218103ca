import json
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab.topology.docker_lab import DockerLab, remove_lab
from lab.programs.shared.topology import LabSpec

ROOT = Path(__file__).resolve().parents[2]
LECTURE = ROOT / "tests" / "lecture"
LAB = Path(sys.executable).parent / "lab"  # the console script, as a user runs it


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/net/" in str(item.fspath):
            item.add_marker(pytest.mark.network)


# One token per test session: sessions started at the same moment (CI jobs on one engine,
# or two checkouts) never pick the same lab names, whatever their pids.
SESSION = secrets.token_hex(3)


def lab_name(tag: str) -> str:
    return f"t{SESSION}-{tag}"


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
        lab.wait_for_outputs({client.name: ("demo done",) for client in lab.topology.clients}, timeout=90)
        yield lab


def lab_cli(*args, **kwargs) -> subprocess.Popen:
    """`lab ARGS...` in a subprocess, through the installed console script."""
    return subprocess.Popen([str(LAB), *map(str, args)], **kwargs)


def lab_run_json(paths, tmp_path, work=None) -> tuple[int, list, str]:
    """`lab run PATHS --json` as an instructor runs it: (exit code, reports (one per file), stderr)."""
    work = work or tmp_path / "work"
    done = subprocess.run([str(LAB), "run", *map(str, paths), "--json", "--runs-dir", str(tmp_path / "runs"),
                           "--work", str(work)], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


class Lines:
    """A process's text stream, read on a thread, so a test can wait for a line with a
    deadline instead of blocking on the pipe."""

    def __init__(self, stream):
        self._lines: list[str] = []
        self._done = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        try:
            for line in stream:
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> str:
        """The first line containing `text`; fails after `timeout` s or at the stream's end."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((line for line in self._lines if text in line), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    why = "the stream ended" if self._done else f"{timeout:g} s passed"
                    raise AssertionError(f"no line with {text!r} ({why}); so far:\n{''.join(self._lines)}")
                self._cond.wait(left)

    def text(self, timeout: float = 10) -> str:
        """Everything read; call it once the process has ended (waits for the end of the stream)."""
        self._thread.join(timeout)
        with self._cond:
            return "".join(self._lines)


def run_json(lab, host, argv):
    result = lab.exec(host, argv)
    assert result.stdout.strip(), f"{argv} printed nothing: {result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(autouse=True, scope="session")
def _no_leftovers():
    yield
    # Whatever happened, leave no lab of this test session behind.
    for tag in ("class",):
        remove_lab(lab_name(tag))


@pytest.fixture(autouse=True, scope="session")
def _image_up_to_date():
    """Network tests run the programs in lab/programs: make sure the image has this
    tree's version (idempotent, instant when nothing changed)."""
    from lab.images.build import build_all
    build_all()


@pytest.fixture(scope="session")
def toolchain_images():
    """The C and Java toolchain images of this tree (`lab images build --with c --with
    java`): built here if missing (minutes), instant when up to date. name -> tag."""
    from lab.images import definition
    from lab.images.build import build_all
    build_all(toolchains=("c", "java"))
    return {name: definition.toolchain_image(name) for name in ("c", "java")}
