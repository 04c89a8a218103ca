"""What the network tests share, as fixtures (a test module never imports this file or
another test module: it asks for a fixture by name)."""
import json
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab.programs.router_counters import row_growth
from lab.programs.shared.topology import LabSpec
from lab.scenario.stats import acceptance_interval
from lab.topology.docker_lab import DockerLab, remove_lab

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


def _lab_name(tag: str) -> str:
    return f"t{SESSION}-{tag}"


def _copy_lecture_programs(work):
    for f in LECTURE.glob("*.py"):
        shutil.copy(f, work / f.name)


@pytest.fixture(scope="session")
def lab_exe() -> Path:
    """The `lab` console script, as a user runs it."""
    return LAB


@pytest.fixture(scope="session")
def lecture() -> Path:
    """The folder of the lecture's own programs (TCPClient.py, UDPServer.py, ...)."""
    return LECTURE


@pytest.fixture(scope="session")
def lab_name():
    """tag -> a lab name unique to this test session (removed at its end if left)."""
    return _lab_name


@pytest.fixture(scope="session")
def copy_lecture_programs():
    """folder -> the lecture's programs copied into it."""
    return _copy_lecture_programs


@pytest.fixture(scope="session")
def class_lab(tmp_path_factory):
    """The default class lab with two clients, shared by the read-only tests.
    The lecture programs are in its /work too."""
    work = tmp_path_factory.mktemp("work")
    _copy_lecture_programs(work)
    lab = DockerLab.plan(LabSpec(lab=_lab_name("class"), clients=2), work)
    with lab:
        lab.wait_for_outputs({client.name: ("demo done",) for client in lab.topology.clients}, timeout=90)
        yield lab


def _default_signals() -> None:
    """In the child, before exec: SIGINT and SIGTERM at their defaults. A child inherits
    ignored dispositions (a shell starts a background job with SIGINT ignored), and Python
    then never turns SIGINT into KeyboardInterrupt: a test that sends it would fail for
    reasons of how the suite was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _lab_cli(*args, **kwargs) -> subprocess.Popen:
    kwargs.setdefault("preexec_fn", _default_signals)
    return subprocess.Popen([str(LAB), *map(str, args)], **kwargs)


@pytest.fixture(scope="session")
def lab_cli():
    """`lab ARGS...` started in a subprocess (Popen keyword arguments after), through the
    installed console script, with SIGINT and SIGTERM at their defaults whatever this
    process's dispositions."""
    return _lab_cli


def _lab_run_json(paths, tmp_path, work=None) -> tuple[int, list, str]:
    work = work or tmp_path / "work"
    done = subprocess.run([str(LAB), "run", *map(str, paths), "--json", "--runs-dir", str(tmp_path / "runs"),
                           "--work", str(work)], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


@pytest.fixture(scope="session")
def lab_command():
    """(*args, check=True, timeout=600, **run_kwargs) -> `lab ARGS...` run to its end, its
    output captured as text; no traceback ever, and (``check``) exit status 0. The timeout
    catches a hung command; how long one takes is the machine's (`lab up` took over 120 s
    in the netem VM under emulation, beside other work)."""
    def run(*args, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        done = subprocess.run([str(LAB), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                              **kwargs)
        assert "Traceback" not in done.stderr, done.stderr
        if check:
            assert done.returncode == 0, done.stderr + done.stdout
        return done
    return run


@pytest.fixture(scope="session")
def lab_run_json():
    """(paths, tmp_path, work=None) -> `lab run PATHS --json` as an instructor runs it:
    (exit code, reports (one per file), stderr)."""
    return _lab_run_json


RUN_TIMEOUT = 180      # s for a whole `lab run` of a tiny scenario (a few s; the machine may be busy)


def _labs_brought_up(stderr: str) -> list[str]:
    return re.findall(r"bringing up lab (\S+)", stderr)


@pytest.fixture(scope="session")
def labs_brought_up():
    """stderr -> the labs a run announced in its progress (printed before anything is created)."""
    return _labs_brought_up


@pytest.fixture
def own_labs():
    """Names of the labs this test's runs brought up: removed afterwards, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        remove_lab(name)


@pytest.fixture
def lab_run(own_labs, tmp_path):
    """(*args, timeout=RUN_TIMEOUT) -> `lab run --runs-dir TMP/runs --work TMP/work ARGS...`
    to its end (bounded), the labs it announced added to ``own_labs``."""
    def run(*args, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
        proc = _lab_cli("run", "--runs-dir", tmp_path / "runs", "--work", tmp_path / "work", *args,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=30)
            own_labs.extend(_labs_brought_up(err))
            pytest.fail(f"`lab run {' '.join(map(str, args))}` took over {timeout} s; stderr:\n{err}")
        own_labs.extend(_labs_brought_up(err))
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return run


@pytest.fixture(scope="session")
def failed_expectations():
    """report -> one line per failed expectation of a `lab run --json` report."""
    def failed(report: dict) -> list[str]:
        return [f"{e['text']}: observed {e['observed']!r}; {e['detail']}"
                for e in report["expectations"] if not e["passed"]]
    return failed


@pytest.fixture(scope="session")
def submission_with_a_bug():
    """folder -> the lecture's programs in it, but the TCP server forgets to upper-case its reply."""
    def make(folder: Path) -> Path:
        folder.mkdir()
        for program in LECTURE.glob("*.py"):
            (folder / program.name).write_text(program.read_text())
        server = folder / "TCPServer.py"
        text = server.read_text()
        assert "sentence.upper()" in text
        server.write_text(text.replace("sentence.upper()", "sentence"))
        return folder
    return make


@pytest.fixture(scope="session")
def compose_command():
    """() -> the Compose command this machine has (v2 `docker compose`, else v1)."""
    def command() -> list[str]:
        if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
            return ["docker", "compose"]
        if shutil.which("docker-compose"):
            return ["docker-compose"]
        pytest.fail("neither `docker compose` nor `docker-compose` is installed")
    return command


# Statistics: each count is checked at level 1 - 1e-5, so a check wrongly fails once in
# 100,000 runs when all works, and the 40-odd checks of a CI run (the VM runs the impairment
# file twice) about once in 2,500 CI runs: a CI stage that fails by chance blocks every
# landing. The intervals still catch a wrong rate: at n = 10,000 the 20 % loss check accepts
# 18.3-21.8 %. (At 1 - 0.01/5 each, as before, a CI run failed by chance about once in 15.)
BINOMIAL_LEVEL = 1 - 1e-5


@pytest.fixture(scope="session")
def assert_binomial():
    """(count, n, p, what) -> fails unless ``count`` is in the exact two-sided acceptance
    interval of Binomial(n, p) at BINOMIAL_LEVEL (lab.scenario.stats.acceptance_interval)."""
    def check(count: int, n: int, p: float, what: str) -> None:
        lo, hi = acceptance_interval(n, p, BINOMIAL_LEVEL)
        assert lo <= count <= hi, (f"{what}: {count} of {n} ({count / n:.4f}), but Binomial({n}, {p:.4f}) "
                                   f"gives {lo}..{hi} at the {BINOMIAL_LEVEL:.2%} level")
    return check


class RouterCounts:
    """What the router itself did on each link between two readings of its counters
    (router_counters: forwarded is what left it, after its egress qdisc; lost is the
    loss rule's drops, or netem's, which are its qdisc's; duplicated, corrupted,
    reordered are the rules' or the impairer's own counts). A statistical test judges
    these, never what a slow receiver failed to read: on a busy or emulated machine the
    receiving side drops what the router never touched."""

    def __init__(self, router):
        self.router, self.before = router, router.counters()["links"]

    def since(self, link) -> dict:
        now, then = self.router.counters()["links"][str(link)], self.before[str(link)]
        counts = row_growth(now, then)
        counts["lost"] = counts["dropped_loss"] + counts["dropped_queue"]
        counts["arrived"] = counts["forwarded_packets"] + counts["lost"]
        return counts


@pytest.fixture(scope="session")
def router_counts():
    """router -> RouterCounts from now on (``.since(link)``: what the router did since)."""
    return RouterCounts


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


def _run_json(lab, host, argv):
    result = lab.exec(host, argv)
    assert result.stdout.strip(), f"{argv} printed nothing: {result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def run_json():
    """(lab, host, argv) -> the last line ``argv`` printed on ``host``, as JSON."""
    return _run_json


@pytest.fixture(scope="session")
def read_lines():
    """stream -> a Lines reader of it (``wait_for(text, timeout)``, ``text()``)."""
    return Lines


@pytest.fixture(autouse=True, scope="session")
def _no_leftovers():
    yield
    # Whatever happened, leave no lab of this test session behind.
    for tag in ("class",):
        remove_lab(_lab_name(tag))


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
