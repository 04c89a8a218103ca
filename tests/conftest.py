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
