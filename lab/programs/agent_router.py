"""What the router's impair-agent knows of its own router: running commands there (one
error type, ``CommandFailed``, with the command and its stderr), its networks' names and
interfaces, its root qdiscs and socketlab's nftables tables.  Standard library only.
"""
from __future__ import annotations

import ipaddress
import json
import shlex
import subprocess
from typing import Dict, List, Optional

from lab.programs.shared.backends import MTU_TABLE_BASE, NFT_GUARD_TABLE, NFT_STREAMS_TABLE, NFT_TABLE

WORK_DIR = "/run/socketlab-impair"
NETWORKS_FILE = f"{WORK_DIR}/networks.json"   # written by `host-role router --network ...`


class AgentError(Exception):
    kind = "agent"


class InputError(AgentError):
    kind = "input"


class Unsupported(AgentError):
    kind = "unsupported"


class StateUnknown(AgentError):
    kind = "state"


class CommandFailed(AgentError):
    kind = "command"

    def __init__(self, argv: List[str], exit_code: int, stderr: str):
        self.argv, self.exit_code, self.stderr = argv, exit_code, stderr
        super().__init__(f"router command failed (exit {exit_code}): {shlex.join(argv)}\n    "
                         f"{stderr.strip() or '(no output)'}")


# -- running commands in this router ---------------------------------------------------------

def run(argv: List[str], stdin: Optional[str] = None) -> str:
    if stdin is not None:  # nft -f -: the ruleset goes through a file
        path = f"{WORK_DIR}/ruleset.nft"
        with open(path, "w") as f:
            f.write(stdin)
        argv = [path if a == "-" else a for a in argv]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise CommandFailed(list(argv), done.returncode, done.stderr or done.stdout)
    return done.stdout


def run_commands(commands) -> None:
    for command in commands:
        run(list(command.argv), command.stdin)


# -- the router's interfaces, qdiscs and tables ----------------------------------------------

def read_networks() -> Dict[str, str]:
    try:
        with open(NETWORKS_FILE) as f:
            return json.load(f)
    except FileNotFoundError:
        raise AgentError("this router does not know its networks' names (started without "
                         "`host-role router --network NAME=SUBNET`: a lab from an older "
                         "socketlab? recreate it)") from None


def discover_ifnames(networks: Dict[str, str]) -> Dict[str, str]:
    """network name -> this router's interface on it, from its addresses."""
    interfaces = json.loads(run(["ip", "-j", "-4", "addr", "show"]))
    found: Dict[str, str] = {}
    for name, subnet_text in sorted(networks.items()):
        subnet = ipaddress.ip_network(subnet_text)
        names = sorted({i["ifname"] for i in interfaces for a in i.get("addr_info", [])
                        if a.get("family") == "inet" and ipaddress.ip_address(a["local"]) in subnet})
        if len(names) != 1:
            raise AgentError(f"the router has {len(names) or 'no'} interface(s) on network {name} "
                             f"({subnet}): {names or 'none'}")
        found[name] = names[0]
    return found


def root_qdiscs(ifnames) -> Dict[str, str]:
    kinds = {}
    for ifname in ifnames:
        qdiscs = json.loads(run(["tc", "-j", "qdisc", "show", "dev", ifname]) or "[]")
        roots = [q["kind"] for q in qdiscs if q.get("root")]
        kinds[ifname] = roots[0] if roots else ""
    return kinds


def nft_tables() -> List[tuple]:
    tables = []
    for line in run(["nft", "list", "tables"]).splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table" and words[2] in (NFT_TABLE, NFT_GUARD_TABLE,
                                                                    NFT_STREAMS_TABLE):
            tables.append((words[1], words[2]))
    return tables


def mtu_rules() -> List[int]:
    """The preferences of the routing rules backends.plan adds for ``mtu`` (each also
    names its table), found by looking."""
    prefs = []
    for line in run(["ip", "-4", "rule", "show"]).splitlines():
        pref = line.split(":", 1)[0].strip()
        if pref.isdigit() and MTU_TABLE_BASE <= int(pref) < MTU_TABLE_BASE + 1000 and \
                f"lookup {pref}" in line:
            prefs.append(int(pref))
    return prefs
