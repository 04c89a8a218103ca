"""Shared fixtures. Network tests (tests/net) run on real containers and need the
Docker Engine and the socketlab image; without them they fail loudly rather than
skip, unless SOCKETLAB_NO_DOCKER=1 says to leave them out on purpose."""
import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("SOCKETLAB_NO_DOCKER") == "1":
        skip = pytest.mark.skip(reason="SOCKETLAB_NO_DOCKER=1: network tests left out on purpose")
        for item in items:
            if "network" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def cpu_hogs():
    """start(k): k Python busy loops beside the test, each in its own process group,
    killed when the test ends (however it ends): a machine deliberately loaded."""
    import signal
    import subprocess
    import sys

    procs = []

    def start(count: int) -> None:
        procs.extend(subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
                     for _ in range(count))

    yield start
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
