"""The one place that connects to the Docker Engine."""
from __future__ import annotations

import functools

import docker
import docker.errors

from .programs.shared.errors import LabEnvironmentError

# The label keys and filters of what socketlab creates are in labels.py.

# Connections each client keeps to the engine: scenario runs stream many execs at once,
# and a lab's bring-up follows every host's output at once (more than the default 10).
POOL_SIZE = 64


@functools.lru_cache(maxsize=1)
def client() -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=120, max_pool_size=POOL_SIZE)
        c.ping()
    except docker.errors.DockerException as exc:
        raise LabEnvironmentError(
            f"cannot reach the Docker Engine: {exc}",
            hint="start it (sudo systemctl start docker) or set DOCKER_HOST; "
            "your user needs access to the docker socket",
        ) from None
    return c


@functools.lru_cache(maxsize=1)
def stream_client() -> docker.APIClient:
    """A low-level client for long output streams: a step may print nothing for
    minutes (a server waiting for clients), longer than the normal request timeout."""
    return docker.from_env(timeout=7 * 24 * 3600, max_pool_size=POOL_SIZE,
                           version=client().api.api_version).api
