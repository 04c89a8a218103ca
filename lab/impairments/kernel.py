"""What the Docker Engine's kernel can do for impairments, asked of the kernel itself.

``probe_kernel()`` runs the in-host probe (``lab/programs/kernel_probe.py``) in a
throwaway, labelled container with no network and returns its JSON report, which
``model.Capabilities.from_probe`` reads.  `lab run` asks before it plans a scenario's
impairments, `lab doctor` before it reports; both import it from here.
"""
from __future__ import annotations

import json
import secrets

from .. import engine, labels
from ..images import definition


def probe_kernel() -> dict:
    """Run the kernel probe in a throwaway, labelled container with no network."""
    c = engine.client()
    container = c.containers.create(
        definition.HOST_IMAGE, ["kernel-probe"], network_mode="none",
        cap_drop=["ALL"], cap_add=["NET_ADMIN", "NET_RAW"],
        labels=labels.lab_labels("doctor", secrets.token_hex(6), labels.current_owner(),
                                 **{labels.LABEL_ROLE: "probe"}))
    try:
        container.start()
        container.wait(timeout=60)
        output = container.logs(stderr=False).decode().strip().splitlines()
    finally:
        container.remove(force=True)
    return json.loads(output[-1])
