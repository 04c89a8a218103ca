"""What every `lab` command does around labs' lifetimes, kept out of cli.py.

* `use_pool`: the --subnets option, passed on as SOCKETLAB_SUBNETS (topology.pool() reads
  only that, so child processes and library code see the same pool).
* `reap_and_say`: remove the ephemeral labs whose owner process is gone, and say so in
  one line. Every command that talks to the engine calls it first: there is no daemon,
  the next command is the cleaner.
* `limits_option`: `lab up --pids/--memory/--cpus` as a topology.Limits.
"""
from __future__ import annotations

import os

import docker.errors

from ..programs.shared.errors import LabError
from ..programs.shared.topology import Limits


def use_pool(subnets: str | None) -> None:
    if subnets:
        os.environ["SOCKETLAB_SUBNETS"] = subnets


def reap_and_say(console, quiet_errors: bool = False) -> list[str]:
    """Reap stale labs; one line on `console` if any were removed. With quiet_errors,
    an engine that cannot be reached is left for the command itself to report."""
    from .docker_lab import reap_stale
    try:
        removed = reap_stale()
    except (LabError, docker.errors.DockerException):
        if quiet_errors:
            return []
        raise
    if removed:
        console.print(f"lab: removed {len(removed)} lab{'s' if len(removed) > 1 else ''} whose run, test "
                      f"or benchmark had ended: {', '.join(removed)}", markup=False, highlight=False,
                      soft_wrap=True)
    return removed


def limits_option(pids: int, memory: str, cpus: float) -> Limits:
    from ..programs.shared.units import parse_size
    try:
        size = parse_size(memory)
    except ValueError as exc:
        raise LabError(f"--memory: {exc}", hint="e.g. --memory 256MiB or --memory 1GiB") from None
    if size < Limits.MIN_MEMORY:
        raise LabError(f"--memory: {memory} is less than {Limits.MIN_MEMORY // 2**20} MiB")
    return Limits(pids=pids, memory=size, cpus=cpus)


def image_options(images: tuple[str, ...], hosts: tuple[str, ...]) -> tuple[dict, dict]:
    """`lab up --image server=REF --image clients=REF --host NAME=NETWORK[:REF]` as LabSpec's
    ``images`` and ``extra_hosts`` (HostSpecs: their image's own command, up when running)."""
    import re
    from ..programs.shared import spec
    from ..programs.shared.topology import HOST_NAME, HostSpec
    ref_ok = re.compile(spec.IMAGE_REF).match
    out_images = {}
    for item in images:
        role, sep, ref = item.partition("=")
        if not sep or role not in ("server", "clients") or not ref_ok(ref):
            raise LabError(f"--image {item}: write server=REF or clients=REF",
                           hint="e.g. --image server=myservice:test")
        out_images[role] = HostSpec("servers" if role == "server" else "clients", ref)
    out_hosts = {}
    for item in hosts:
        name, sep, rest = item.partition("=")
        network, _, ref = rest.partition(":")
        if not sep or not HOST_NAME.match(name) or not HOST_NAME.match(network or "-") or (ref and not ref_ok(ref)):
            raise LabError(f"--host {item}: write NAME=NETWORK or NAME=NETWORK:IMAGE",
                           hint="e.g. --host app=servers:myservice:test")
        if re.match(r"^(?:router|server|clients|client[0-9]+)$", name):
            raise LabError(f"--host {item}: {name!r} is one of the lab's own names")
        if network not in ("clients", "servers"):
            raise LabError(f"--host {item}: no network {network!r}: a class lab has clients and servers")
        out_hosts[name] = HostSpec(network, ref or None)
    return out_images, out_hosts
