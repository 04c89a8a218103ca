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

Every lab, class or ephemeral, also carries the **machine** that made it (`machine_id`:
$SOCKETLAB_MACHINE_ID, else /etc/machine-id, else an id made once in the user's state
folder). An engine may be shared (a class server, Docker Desktop's VM, a CI engine used by
two runners): a lab of another machine is never judged stale here (its pids mean nothing
on this machine), and `lab down --all` removes only this machine's labs unless told
`--any-owner`. `owner_gone` and `mine` are the rules, pure.
"""
from __future__ import annotations

import os
import secrets
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
# The machine that made a lab (class labs too): machine_id() of the `lab` that made it.
LABEL_MACHINE = "org.socketlab.machine"
MACHINE_ID_ENV = "SOCKETLAB_MACHINE_ID"
# On a host whose /work was copied in by archive (workdir.py): the folder on the making
# machine that its /work comes back into when the lab is removed.
LABEL_WORK = "org.socketlab.work"
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
    machine: str = ""      # machine_id() of the owner ("" on labs made before it existed)

    def labels(self) -> dict[str, str]:
        return {LABEL_OWNER_HOST: self.host, LABEL_OWNER_BOOT: self.boot, LABEL_OWNER_PIDNS: self.pidns,
                LABEL_OWNER_PID: str(self.pid), LABEL_OWNER_START: self.start, LABEL_MACHINE: self.machine}

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Optional["Owner"]:
        """The owner written on a resource, or None (a class lab, or labels we cannot read)."""
        try:
            return cls(labels[LABEL_OWNER_HOST], labels.get(LABEL_OWNER_BOOT, ""),
                       int(labels[LABEL_OWNER_PID]), labels.get(LABEL_OWNER_START, ""),
                       labels.get(LABEL_OWNER_PIDNS, ""), labels.get(LABEL_MACHINE, ""))
        except (KeyError, ValueError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def lab_labels(lab: str, instance: str, owner: Optional[Owner], machine: Optional[str] = None,
               **extra: str) -> dict[str, str]:
    """The labels of one resource of a lab (owner None: a class lab), made on `machine`
    (default: the owner's machine, else this one)."""
    made_on = machine if machine is not None else (owner.machine if owner and owner.machine else machine_id())
    return {LABEL: "1", LABEL_LAB: lab, LABEL_INSTANCE: instance, LABEL_MACHINE: made_on,
            **(owner.labels() if owner else {}), **extra}


def machine_of(labels: Mapping[str, str]) -> str:
    """The machine a resource says made it ("" if it does not say: made by an older socketlab
    or by compose)."""
    return labels.get(LABEL_MACHINE, "")


def mine(labels: Mapping[str, str], here: str, any_owner: bool = False) -> bool:
    """Whether `lab down --all` on machine `here` removes this resource: with any_owner,
    everything; else what this machine made, and what says no machine (made before machines
    were labelled, or by compose from this checkout)."""
    return any_owner or machine_of(labels) in ("", here)


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

    Only owners on this machine, host and pid namespace can be judged: another machine's
    (an engine shared by several machines), another host's
    (another machine, a container with its own host name) or another namespace's (a
    container sharing the host name) might be alive, so their labs are left alone.
    On this host: a different boot, a pid that does not exist, or a pid that started at
    another time (reused) all mean the owner is gone. `start_of(pid)` reads a pid's start
    time, None if there is no such process.
    """
    if owner.machine and here.machine and owner.machine != here.machine:
        return False      # another machine's lab: its pids and boots mean nothing here
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
    return Owner(socket.gethostname(), _boot_id(), pid, process_start(pid) or "", _pid_namespace(), machine_id())


def choose_machine_id(env_value: str, etc_machine_id: str, stored: str) -> str:
    """The first of: $SOCKETLAB_MACHINE_ID, /etc/machine-id, the id stored in the user's
    state folder ("" if none: then one is made and stored). Pure."""
    for value in (env_value, etc_machine_id, stored):
        if value.strip():
            return value.strip()
    return ""


def state_dir() -> Path:
    """The user's state folder for socketlab ($XDG_STATE_HOME/socketlab, else ~/.local/state/socketlab)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "socketlab"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


_made = ""     # an id made here that could not be stored: the same for this whole process


def machine_id() -> str:
    """This machine's id (see choose_machine_id); made once and stored when it has none."""
    found = choose_machine_id(os.environ.get(MACHINE_ID_ENV, ""), _read(Path("/etc/machine-id")),
                              _read(state_dir() / "machine-id"))
    if found:
        return found
    global _made
    if _made:
        return _made
    made = _made = secrets.token_hex(16)
    try:
        state_dir().mkdir(parents=True, exist_ok=True)
        (state_dir() / "machine-id").write_text(made + "\n")
    except OSError:
        pass              # a read-only home: the id lasts as long as this process
    return made
