"""What the Docker Engine's kernel can do for impairments, asked of the kernel itself.

``probe_kernel()`` runs the in-host probe (``lab/programs/kernel_probe.py``) in a
throwaway, labelled container with no network and returns its JSON report, which
``model.Capabilities.from_probe`` reads.  `lab run` asks before it plans a scenario's
impairments, `lab doctor` before it reports; both import it from here.
"""
from __future__ import annotations

import json
import secrets

import docker.errors
import docker.types

from .. import engine, labels
from ..images import definition


# The engine's host's module files, read-only: whether its kernel has sch_netem as a
# module is a question about the engine's kernel, never about this machine's.
MODULES = docker.types.Mount("/lib/modules", "/lib/modules", type="bind", read_only=True)


def probe_kernel() -> dict:
    """Run the kernel probe in a throwaway, labelled container with no network, with the
    engine's host's /lib/modules mounted read-only (left out where it has none)."""
    c = engine.client()
    settings = dict(network_mode="none", cap_drop=["ALL"], cap_add=["NET_ADMIN", "NET_RAW"],
                    labels=labels.lab_labels("doctor", secrets.token_hex(6), labels.current_owner(),
                                             **{labels.LABEL_ROLE: "probe"}))
    try:
        container = c.containers.create(definition.HOST_IMAGE, ["kernel-probe"], mounts=[MODULES], **settings)
    except docker.errors.APIError as exc:
        if "/lib/modules" not in str(exc):
            raise
        container = c.containers.create(definition.HOST_IMAGE, ["kernel-probe"], **settings)
    try:
        container.start()
        container.wait(timeout=60)
        output = container.logs(stderr=False).decode().strip().splitlines()
    finally:
        container.remove(force=True)
    return json.loads(output[-1])
