"""How labs look to people (tables) and to machines (dicts for JSON)."""
from __future__ import annotations

from .. import labels, ui
from ..labels import LABEL_HOST, LABEL_LAB, LABEL_ROLE, Owner
from .docker_lab import find_containers
from ..programs.shared.topology import Topology


def topology_dict(topo: Topology) -> dict:
    return {
        "lab": topo.lab,
        "networks": {n.name: {"subnet": str(n.subnet), "gateway": str(n.gateway)} for n in topo.networks},
        "hosts": {h.name: {"role": h.role, "addresses": {net: str(a) for net, a in h.addresses},
                           **({"image": h.image} if h.image else {})}
                  for h in topo.hosts},
    }


def print_topology(topo: Topology) -> None:
    nets = ", ".join(f"{n.name} {n.subnet} (gateway {n.gateway} = router)" for n in topo.networks)
    ui.table(f"lab {topo.lab}: {nets}", ["host", "role", "addresses"],
             [[h.name, h.role + (f" (image {h.image})" if h.image else ""),
               ", ".join(f"{a} ({net})" for net, a in h.addresses)] for h in topo.hosts])


def running_labs() -> dict:
    labs: dict[str, dict] = {}
    here = labels.machine_id()
    for ctr in find_containers():
        owner = Owner.from_labels(ctr.labels)
        machine = labels.machine_of(ctr.labels)
        lab = labs.setdefault(ctr.labels.get(LABEL_LAB, "?"), {
            "hosts": {},
            # ephemeral: removed by the next `lab` command once its owner process is gone
            "kind": "ephemeral" if owner else "class",
            "owner": {"host": owner.host, "pid": owner.pid} if owner else None,
            # the machine that made it ("" if it does not say); this_machine: `lab down --all` removes it
            "machine": machine, "this_machine": machine in ("", here)})
        nets = ctr.attrs["NetworkSettings"]["Networks"] or {}
        name = ctr.labels.get(LABEL_HOST) or ctr.name
        prefix = f"{ctr.labels.get(LABEL_LAB)}-"
        lab["hosts"][name] = {
            "container": ctr.name,
            "role": ctr.labels.get(LABEL_ROLE, ctr.labels.get("com.docker.compose.service", "")),
            "state": ctr.status,
            # Network names without the lab's prefix: "clients", not "lab-clients".
            "addresses": {net.removeprefix(prefix): cfg.get("IPAddress") for net, cfg in nets.items()},
        }
    return labs


def print_status(labs: dict) -> None:
    for name, lab in sorted(labs.items()):
        owner = lab.get("owner")
        kind = (f"ephemeral: goes when pid {owner['pid']} on {owner['host']} ends" if owner
                else "class lab: stays until `lab down`")
        machine = lab.get("machine", "")
        kind += ("; made by machine " + machine[:12] + ("" if not lab.get("this_machine") else " (this one)")
                 if machine else "")
        ui.table(f"lab {name} ({kind})", ["host", "role", "state", "addresses"],
                 [[h, v["role"], v["state"], ", ".join(f"{a} ({n})" for n, a in v["addresses"].items())]
                  for h, v in sorted(lab["hosts"].items())])
