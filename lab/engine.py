"""The one place that connects to the Docker Engine, and chooses which one.

The engine is chosen the way the `docker` CLI chooses it (docs/remote-engines.md):

1. ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY`` / ``DOCKER_CERT_PATH``), else
2. the context named by ``DOCKER_CONTEXT``, else
3. the ``currentContext`` of the docker config (``$DOCKER_CONFIG/config.json``, else
   ``~/.docker/config.json``), else
4. the ``default`` context: the local socket.

Contexts are read through the Docker SDK's own context API (``docker.context``): that is
how Docker Desktop, Colima, OrbStack, Rancher Desktop and Podman users are selected. The
SDK's current-context lookup reads only the config file, so the order above is applied on
top of it here. Endpoints: ``unix://``, ``tcp://`` (with TLS from the context or the
environment) and ``ssh://`` (needs paramiko: ``pip install 'socketlab[ssh]'``).

Whether the engine is *local* (it sees this machine's files, so a bind mount of a folder
here mounts that folder) is judged by the engine's own host name: the same as this
machine's, over a unix socket or tcp, is local; anything else (a VM of Docker Desktop, a
class server, the CI's VM) is remote.
"""
from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass, field
from typing import Optional

import docker
import docker.errors

from .programs.shared.errors import LabEnvironmentError

# The label keys and filters of what socketlab creates are in labels.py.

# Connections each client keeps to the engine: scenario runs stream many execs at once,
# and a lab's bring-up follows every host's output at once (more than the default 10).
POOL_SIZE = 64
BIND_MOUNTS_ENV = "SOCKETLAB_BIND_MOUNTS"   # "0": always copy work folders by archive


@dataclass(frozen=True)
class EngineChoice:
    """Which engine, where, and why (pure data: `choose` makes it, `client` uses it)."""
    context: str          # the context's name, or "DOCKER_HOST"
    source: str           # what chose it: DOCKER_HOST, DOCKER_CONTEXT, the docker config, default
    host: str             # the endpoint: unix:///var/run/docker.sock, tcp://h:2376, ssh://u@h
    tls: object = field(default=None, compare=False)   # docker.tls.TLSConfig, or a bool from the env

    @property
    def scheme(self) -> str:
        """unix, tcp, ssh or npipe (the SDK writes unix as http+unix, tcp as http(s))."""
        raw = self.host.split("://", 1)[0] if "://" in self.host else "unix"
        return {"http+unix": "unix", "http": "tcp", "https": "tcp", "http+docker": "unix"}.get(raw, raw)

    def describe(self) -> str:
        tls = bool(self.tls) or self.host.startswith("https://")
        how = {"unix": "a unix socket", "npipe": "a named pipe", "ssh": "ssh",
               "tcp": "TCP with TLS" if tls else "TCP without TLS"}.get(self.scheme, self.scheme)
        via = "DOCKER_HOST" if self.source == "DOCKER_HOST" else f"context {self.context!r} ({self.source})"
        return f"{self.host} over {how}, chosen by {via}"


def _current_context_name() -> str:
    from docker.context.config import get_current_context_name
    return get_current_context_name() or "default"


def choose(environ: Optional[dict] = None) -> EngineChoice:
    """The engine the `docker` CLI would use, from `environ` (default: os.environ) and the
    docker config. A context that does not exist is an error, as it is for the CLI."""
    from docker.context import ContextAPI
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        params = docker.utils.kwargs_from_env(environment=env)
        return EngineChoice("DOCKER_HOST", "DOCKER_HOST", params.get("base_url") or env["DOCKER_HOST"],
                            params.get("tls"))
    if env.get("DOCKER_CONTEXT"):
        name, source = env["DOCKER_CONTEXT"], "DOCKER_CONTEXT"
    else:
        name = _current_context_name()
        source = "default" if name == "default" else "the docker config's currentContext"
    try:
        ctx = ContextAPI.get_context(name)
    except docker.errors.DockerException as exc:
        raise LabEnvironmentError(f"the Docker context {name!r} (from {source}) cannot be read: {exc}",
                                  hint="`docker context ls` lists the contexts") from None
    if ctx is None:
        raise LabEnvironmentError(f"the Docker context {name!r} (from {source}) does not exist",
                                  hint="`docker context ls` lists the contexts; `docker context use NAME` "
                                       "or DOCKER_CONTEXT=NAME chooses one")
    return EngineChoice(name, source, ctx.Host or docker.constants.DEFAULT_UNIX_SOCKET, ctx.TLSConfig)


def _needs_paramiko(choice: EngineChoice) -> None:
    if choice.scheme != "ssh":
        return
    try:
        import paramiko  # noqa: F401
    except ImportError:
        raise LabEnvironmentError(
            f"the engine {choice.host} is reached over ssh, which needs paramiko",
            hint="pip install 'socketlab[ssh]' (or choose a tcp/unix engine)") from None


def _connect(choice: EngineChoice, timeout: int, version: Optional[str] = None) -> docker.DockerClient:
    _needs_paramiko(choice)
    kwargs = {"base_url": choice.host, "timeout": timeout, "max_pool_size": POOL_SIZE}
    if version:
        kwargs["version"] = version
    if choice.tls:
        kwargs["tls"] = choice.tls
    return docker.DockerClient(**kwargs)


@functools.lru_cache(maxsize=1)
def chosen() -> EngineChoice:
    return choose()


@functools.lru_cache(maxsize=1)
def client() -> docker.DockerClient:
    choice = chosen()
    try:
        c = _connect(choice, 120)
        c.ping()
    except docker.errors.DockerException as exc:
        raise LabEnvironmentError(
            f"cannot reach the Docker Engine at {choice.host} ({choice.describe().split(', ', 1)[1]}): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            hint="start it (sudo systemctl start docker), or choose another with DOCKER_HOST, "
                 "DOCKER_CONTEXT or `docker context use`; your user needs access to the engine") from None
    except OSError as exc:   # an ssh host that refuses, a name that does not resolve
        raise LabEnvironmentError(f"cannot reach the Docker Engine at {choice.host}: {exc}",
                                  hint="check the address and that the engine listens there") from None
    except Exception as exc:  # noqa: BLE001 - paramiko's own errors (refused key, bad host key) are no OSError
        if not type(exc).__module__.startswith("paramiko"):
            raise
        raise LabEnvironmentError(f"cannot reach the Docker Engine at {choice.host} over ssh: "
                                  f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                                  hint="check that `ssh HOST docker version` works without a prompt") from None
    return c


@functools.lru_cache(maxsize=1)
def stream_client() -> docker.APIClient:
    """A low-level client for long output streams: a step may print nothing for
    minutes (a server waiting for clients), longer than the normal request timeout."""
    return _connect(chosen(), 7 * 24 * 3600, version=client().api.api_version).api


def is_local(engine_name: str, here: Optional[str] = None) -> bool:
    """Whether an engine whose host is named `engine_name` (its `docker info` Name) is this
    machine: then it sees this machine's files (pure)."""
    return bool(engine_name) and engine_name == (here if here is not None else socket.gethostname())


@functools.lru_cache(maxsize=1)
def engine_name() -> str:
    return str(client().info().get("Name") or "")


def local() -> bool:
    """The engine runs on this machine (an ssh endpoint never counts as local)."""
    return chosen().scheme != "ssh" and is_local(engine_name())


def bind_mounts() -> bool:
    """Whether work folders may be bind-mounted (a local engine, not turned off by
    SOCKETLAB_BIND_MOUNTS=0); otherwise they go in and out by archive."""
    return os.environ.get(BIND_MOUNTS_ENV, "1") != "0" and local()


def kind_of(version: dict, info: dict) -> tuple[str, bool]:
    """What serves the API ("Docker Engine" or "Podman", from `version`'s components) and
    whether it runs rootless (`info`'s security options), as the engine itself says (pure)."""
    names = " ".join(str(c.get("Name", "")) for c in version.get("Components") or [])
    kind = "Podman" if "podman" in names.lower() or "podman" in str(version.get("Platform", {})).lower() \
        else "Docker Engine"
    rootless = any("rootless" in str(opt) for opt in info.get("SecurityOptions") or [])
    return kind, rootless

