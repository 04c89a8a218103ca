"""Every label socketlab puts on what it creates, and the filters that find it again.

This module is the one place that knows the label keys (compose.yaml and the Dockerfile,
which cannot import it, are held to it by a unit test); nothing else builds a
`label=...` filter by hand. Pure, except `current_owner`/`process_start`, which read /proc.

Two kinds of lab:
* a **class lab** (`lab up`) has no owner: it stays until `lab down`;
* an **ephemeral lab** (`lab run`, tests, benchmarks, DockerLab as a library) carries
  its owner's identity: host name, boot id, pid namespace, pid and the pid's start time
  (from /proc/PID/stat, so a reused pid is not mistaken for the owner). When that process
  is gone, any later `lab` command removes the lab (`reap_stale` in docker_lab.py).
  No daemon is needed, and a kill -9 leaves nothing behind for long.

Every resource of one DockerLab object also carries its instance id, so that a lab
tears down only what it made itself, even if another process picked the same name.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

LABEL = "org.socketlab"                  # "1" on every resource (and image)
LABEL_LAB = "org.socketlab.lab"          # the lab's name: `lab down NAME` removes by it
LABEL_ROLE = "org.socketlab.role"        # router / server / client / host / probe
LABEL_HOST = "org.socketlab.host"        # the host's name in its lab (client1, router, ...)
LABEL_INSTANCE = "org.socketlab.instance"  # one DockerLab object: what its own down() removes
# The owner of an ephemeral lab; a class lab has none of these.
LABEL_OWNER_HOST = "org.socketlab.owner.host"    # socket.gethostname() of the owner
LABEL_OWNER_BOOT = "org.socketlab.owner.boot"    # /proc/sys/kernel/random/boot_id
LABEL_OWNER_PIDNS = "org.socketlab.owner.pidns"  # /proc/self/ns/pid: pids mean nothing across namespaces
LABEL_OWNER_PID = "org.socketlab.owner.pid"
LABEL_OWNER_START = "org.socketlab.owner.start"  # field 22 of /proc/PID/stat (ticks since boot)
# On images: what the Dockerfile says (compose builds it too) and what `lab images build` adds.
LABEL_IMAGE = "org.socketlab.image"      # "host": the Dockerfile's own label (a unit test holds it to this)
LABEL_DIGEST = "org.socketlab.digest"    # the build context's digest: up to date or not
LABEL_PROGRAMS = "org.socketlab.programs"  # digest of lab/programs/: a lab refuses older programs


@dataclass(frozen=True)
class Owner:
    """The process an ephemeral lab belongs to."""
    host: str
    boot: str
    pid: int
    start: str
    pidns: str = ""

    def labels(self) -> dict[str, str]:
        return {LABEL_OWNER_HOST: self.host, LABEL_OWNER_BOOT: self.boot, LABEL_OWNER_PIDNS: self.pidns,
                LABEL_OWNER_PID: str(self.pid), LABEL_OWNER_START: self.start}

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Optional["Owner"]:
        """The owner written on a resource, or None (a class lab, or labels we cannot read)."""
        try:
            return cls(labels[LABEL_OWNER_HOST], labels.get(LABEL_OWNER_BOOT, ""),
                       int(labels[LABEL_OWNER_PID]), labels.get(LABEL_OWNER_START, ""),
                       labels.get(LABEL_OWNER_PIDNS, ""))
        except (KeyError, ValueError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def lab_labels(lab: str, instance: str, owner: Optional[Owner], **extra: str) -> dict[str, str]:
    """The labels of one resource of a lab (owner None: a class lab)."""
    return {LABEL: "1", LABEL_LAB: lab, LABEL_INSTANCE: instance,
            **(owner.labels() if owner else {}), **extra}


def filters(lab: Optional[str] = None, instance: Optional[str] = None, host: Optional[str] = None,
            ephemeral: bool = False) -> dict[str, list[str]]:
    """A Docker `filters` argument: everything of socketlab, narrowed by what is given."""
    wanted = [f"{LABEL}=1"]
    if lab is not None:
        wanted.append(f"{LABEL_LAB}={lab}")
    if instance is not None:
        wanted.append(f"{LABEL_INSTANCE}={instance}")
    if host is not None:
        wanted.append(f"{LABEL_HOST}={host}")
    if ephemeral:
        wanted.append(LABEL_OWNER_PID)   # the key alone: any value
    return {"label": wanted}


def owner_gone(owner: Owner, here: Owner, start_of: Callable[[int], Optional[str]]) -> bool:
    """Whether `owner` has certainly ended, judged from the process `here` (this one).

    Only owners on this host and in this pid namespace can be judged: another host's
    (another machine, a container with its own host name) or another namespace's (a
    container sharing the host name) might be alive, so their labs are left alone.
    On this host: a different boot, a pid that does not exist, or a pid that started at
    another time (reused) all mean the owner is gone. `start_of(pid)` reads a pid's start
    time, None if there is no such process.
    """
    if owner.host != here.host or (owner.pidns and here.pidns and owner.pidns != here.pidns):
        return False
    if owner.boot and here.boot and owner.boot != here.boot:
        return True
    started = start_of(owner.pid)
    if started is None:
        return True
    if not owner.start or not started:   # a start time we cannot compare: assume alive
        return False
    return started != owner.start


def process_start(pid: int) -> Optional[str]:
    """Field 22 (starttime) of /proc/PID/stat, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return ""            # exists, but unreadable: treat as alive with an unknown start
    return start_in_stat(stat)


def start_in_stat(stat: str) -> str:
    """Field 22 of a /proc/PID/stat line. The command name (field 2) may hold spaces
    and parentheses: count fields after the last ')'."""
    rest = stat.rsplit(")", 1)[-1].split()
    return rest[19] if len(rest) > 19 else ""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def current_owner() -> Owner:
    """This process, as the owner of the labs it makes."""
    pid = os.getpid()
    return Owner(socket.gethostname(), _boot_id(), pid, process_start(pid) or "", _pid_namespace())
