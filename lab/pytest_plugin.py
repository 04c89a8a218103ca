"""socketlab's pytest plugin (entry point ``pytest11``: active once socketlab is installed).

Fixtures, each a factory that brings up a lab (lab/testing.py) and removes it:

    socketlab          labs removed at the end of the test
    socketlab_module   ... at the end of the module (bring one up per module, share it)
    socketlab_session  ... at the end of the session

    def test_x(socketlab):
        lab = socketlab(clients=2)                 # a scenario's topology fields
        assert lab.run("client1", "tcp-client --json hi").json["received"] == "HI"

Options: ``--socketlab-keep`` leaves the labs of failed tests up (to look around with
`lab shell`), ``--socketlab-work DIR`` is the default /work of every lab.  The marker
``socketlab`` (set on every test that uses a fixture) means "needs the Docker Engine":
with no engine those tests are skipped with one reason; ini ``socketlab_require_docker
= true`` makes them fail instead (for CI where the engine must be there).  A missing or
stale host image is an error, never a skip.

Scenario files are collected as tests too (one item per file, failing with its
expectations table): any ``*.yaml`` under a folder named ``scenarios``, or every
``*.yaml`` with ``--socketlab-scenarios`` or ini ``socketlab_scenarios = true``.

Labs are DockerLab's ephemeral labs under random names, so pytest-xdist workers never
collide, and the next `lab` command reaps what a killed run left.  With
``--socketlab-keep`` they are made without an owner, so a kept lab stays until `lab down`.
"""
from __future__ import annotations

import functools
from pathlib import Path

import pytest

from .programs.shared.errors import LabError

MARKER = "socketlab"
NO_ENGINE_REASON = "socketlab: no Docker Engine reachable"


def pytest_addoption(parser):
    group = parser.getgroup("socketlab", "socketlab: labs of real containers for network tests")
    group.addoption("--socketlab-keep", action="store_true", default=False,
                    help="leave the labs of failed tests up (remove them with `lab down NAME`)")
    group.addoption("--socketlab-work", metavar="DIR", default=None,
                    help="the folder mounted as /work on every host (default: a new temporary one per lab)")
    group.addoption("--socketlab-scenarios", action="store_true", default=False,
                    help="collect every *.yaml file as a scenario (default: only under a 'scenarios' folder)")
    group.addoption("--socketlab-runs", metavar="DIR", default=None,
                    help="where scenario items keep their run folders (default: pytest's temporary folder)")
    parser.addini("socketlab_scenarios", type="bool", default=False,
                  help="collect every *.yaml file as a socketlab scenario")
    parser.addini("socketlab_require_docker", type="bool", default=False,
                  help="fail (instead of skip) socketlab tests when no Docker Engine is reachable")


def pytest_configure(config):
    config.addinivalue_line("markers", f"{MARKER}: needs the Docker Engine (a socketlab lab of real containers)")


# -- Docker or not -------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def engine_problem() -> str:
    """Why the Docker Engine cannot be used ("" when it can)."""
    from . import engine
    try:
        engine.client()
    except LabError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - whatever the SDK raises: no engine
        return f"{type(exc).__name__}: {exc}"
    return ""


FIXTURES = ("socketlab", "socketlab_module", "socketlab_session")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in FIXTURES):
            item.add_marker(MARKER)


def pytest_runtest_setup(item):
    if item.get_closest_marker(MARKER) is None:
        return
    problem = engine_problem()
    if problem and not item.config.getini("socketlab_require_docker"):
        pytest.skip(f"{NO_ENGINE_REASON} ({problem.splitlines()[0]})")
    if problem:
        pytest.fail(f"{NO_ENGINE_REASON}: {problem}", pytrace=False)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        item._socketlab_failed = True           # noqa: SLF001 - read by the fixtures' teardown
        item.session._socketlab_failed = True   # noqa: SLF001


# -- the fixtures ----------------------------------------------------------------------------

class LabFactory:
    """Call it like ``lab.testing.open_lab``; every lab it made is removed by ``close``
    (kept with --socketlab-keep if ``failed()`` says so)."""

    def __init__(self, config, tmp_path_factory, failed):
        self.config = config
        self.tmp_path_factory = tmp_path_factory
        self.failed = failed
        self.labs = []

    def __call__(self, **kwargs):
        from .testing import open_lab
        if engine_problem():   # a factory used outside a marked test (e.g. another fixture)
            pytest.skip(f"{NO_ENGINE_REASON} ({engine_problem().splitlines()[0]})")
        if kwargs.get("work") is None:
            work = self.config.getoption("socketlab_work")
            kwargs["work"] = Path(work) if work else self.tmp_path_factory.mktemp("socketlab-work")
        if self.config.getoption("socketlab_keep"):
            kwargs.setdefault("ephemeral", False)   # a kept lab must outlive this process
        lab = open_lab(**kwargs)
        self.labs.append(lab)
        return lab

    def close(self):
        keep = self.config.getoption("socketlab_keep") and self.failed()
        errors = []
        for lab in reversed(self.labs):
            try:
                lab.close(keep=keep)
            except Exception as exc:  # noqa: BLE001 - remove the other labs, then report
                errors.append(f"{lab.name}: {exc}")
        if keep:
            names = " ".join(lab.name for lab in self.labs)
            print(f"\nsocketlab: --socketlab-keep: labs left up: {names} (`lab down NAME` removes one)")
        if errors:
            raise LabError("removing labs failed: " + "; ".join(errors))


def _factory(request, tmp_path_factory, failed):
    factory = LabFactory(request.config, tmp_path_factory, failed)
    request.addfinalizer(factory.close)
    return factory


@pytest.fixture
def socketlab(request, tmp_path_factory):
    """A factory of labs, each removed at the end of the test."""
    return _factory(request, tmp_path_factory, lambda: getattr(request.node, "_socketlab_failed", False))


@pytest.fixture(scope="module")
def socketlab_module(request, tmp_path_factory):
    """A factory of labs, each removed at the end of the module."""
    return _factory(request, tmp_path_factory, lambda: getattr(request.session, "_socketlab_failed", False))


@pytest.fixture(scope="session")
def socketlab_session(request, tmp_path_factory):
    """A factory of labs, each removed at the end of the session."""
    return _factory(request, tmp_path_factory, lambda: getattr(request.session, "_socketlab_failed", False))


# -- scenario files as test items -------------------------------------------------------------

def pytest_collect_file(file_path, parent):
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    config = parent.config
    enabled = config.getoption("socketlab_scenarios") or config.getini("socketlab_scenarios")
    if not enabled and "scenarios" not in _folders_under_root(file_path, config.rootpath):
        return None
    from .pytest_scenarios import ScenarioFile
    return ScenarioFile.from_parent(parent, path=file_path)


def _folders_under_root(path: Path, root: Path) -> tuple:
    """The folder names from pytest's root down to ``path`` (a checkout that itself lies
    in some ``scenarios`` folder does not turn every YAML file into a scenario)."""
    try:
        return (root.name, *path.parent.relative_to(root).parts)
    except ValueError:
        return path.parent.parts
