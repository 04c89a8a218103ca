"""`lab doctor`: is this machine ready for socketlab, and if not, how to fix it.

Each check returns Check values (pure data); `print_report` shows them. The only
I/O is asking the engine, looking for programs, and one throwaway probe container
that tries each kernel ability for real (netem, nftables, NFQUEUE, tbf, htb;
impairments/kernel.py).

The kernel rows (kernel, netem, impairment KIND) are always there, so a caller reading
``checks["netem"]`` never meets a KeyError: when the probe could not run (no engine, no
image, the engine's runtime refused the container) they say ``unknown`` and why.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker.errors

from . import engine, labels, ui
from .programs.shared.errors import LabError
from .images import definition
from .programs.shared import topology as model

COMPOSE_PLUGIN_DIRS = [Path.home() / ".docker/cli-plugins", Path("/usr/local/lib/docker/cli-plugins"),
                       Path("/usr/local/libexec/docker/cli-plugins"), Path("/usr/lib/docker/cli-plugins"),
                       Path("/usr/libexec/docker/cli-plugins")]


@dataclass
class Check:
    name: str
    status: str   # ok | warn | fail | info | unknown (not probed: the detail says why)
    detail: str
    fix: str = ""


def run_checks() -> list[Check]:
    checks = [check_engine()]
    if checks[0].status == "fail":
        return checks + unprobed_kernel("not probed: no engine to run the probe in")
    image = check_image()
    checks += [*check_engine_place(), image, check_toolchains(), *check_compose(),
               check_mmdebstrap(), check_subnets()]
    if image.status != "fail":
        checks += check_kernel()
    else:
        checks += unprobed_kernel("not probed: the probe runs in the host image, which is missing")
    return checks


def check_engine() -> Check:
    try:
        version = engine.client().version()
    except LabError as exc:
        return Check("docker engine", "fail", str(exc), exc.hint)
    return Check("docker engine", "ok", f"Engine {version.get('Version')} (API {version.get('ApiVersion')})")


def check_engine_place() -> list[Check]:
    """Which engine (as the docker CLI chooses it), how it is reached, and whether it is on
    this machine: that decides how work folders reach the hosts."""
    choice = engine.chosen()
    name = engine.engine_name() or "?"
    if engine.local():
        where = f"local: the engine's host is this machine ({name})"
        files = "bind mounts" if engine.bind_mounts() else \
            f"copied in and back by archive ({engine.BIND_MOUNTS_ENV}=0)"
    else:
        where = f"remote: the engine's host is {name}, not this machine"
        files = "copied into each host by archive, and back when the lab is removed (docs/remote-engines.md)"
    checks = [Check("engine endpoint", "info", choice.describe()),
              Check("engine host", "info", f"{where}; work folders: {files}")]
    version = engine.client().version()
    kind, rootless = engine.kind_of(version, engine.client().info())
    if kind != "Docker Engine" or rootless:
        checks.append(kind_check(kind, rootless, str(version.get("Version") or "")))
    return checks


def kind_check(kind: str, rootless: bool, version: str = "") -> Check:
    """What differs on this engine, and what socketlab does about it (pure)."""
    parts = [f"{kind} {version}".strip() + (" (rootless)" if rootless else " (rootful)" if kind == "Podman" else "")
             + ", through its Docker-compatible API"]
    if kind == "Podman":
        parts += ["lab networks are made through Podman's own API (its Docker API would put the router's "
                  "address on its bridge)",
                  "fewer default capabilities: the router asks for its own (NET_ADMIN, NET_RAW, SETUID, SETGID)",
                  "networks are connected by id"]
    if rootless:
        parts += ["rootless: it cannot load kernel modules (netem only if sch_netem is already loaded: the "
                  "kernel probe below decides, else the fallbacks are used), and its networking "
                  "(pasta/slirp4netns) may refuse bridge networks with fixed subnets"]
    return Check("engine kind", "warn" if rootless else "info", "; ".join(parts),
                 "a rootful engine for the full lab (docs/remote-engines.md#podman)" if rootless else "")


def check_image() -> Check:
    try:
        img = engine.client().images.get(definition.HOST_IMAGE)
    except docker.errors.ImageNotFound:
        return Check("host image", "fail", f"{definition.HOST_IMAGE} is not in the engine", "lab images build")
    size = ui.human_size(img.attrs["Size"])
    base = img.attrs.get("Config", {}).get("Labels", {}) or {}
    if not base.get(labels.LABEL_DIGEST):
        return Check("host image", "warn", f"{definition.HOST_IMAGE} ({size}) was not built by `lab images build`",
                     "lab images build")
    return Check("host image", "ok", f"{definition.HOST_IMAGE} {img.short_id.split(':')[-1]} ({size})")


def check_toolchains() -> Check:
    """Which toolchain images (`lab images build --with c|java`) are built: information only,
    the lecture needs none."""
    from .images.build import built_toolchains
    found = built_toolchains()
    built = [f"{name} ({tag})" for name, tag in found.items() if tag]
    missing = [name for name, tag in found.items() if not tag]
    detail = f"built: {', '.join(built) or 'none'}" + (f"; not built: {', '.join(missing)}" if missing else "")
    return Check("toolchain images", "info", detail,
                 " ".join(["lab images build", *(f"--with {m}" for m in missing)]) if missing else "")


def compose_versions() -> dict[str, str]:
    """Which Compose tools exist: v2 (a docker CLI plugin) and v1 (docker-compose)."""
    found = {}
    for plugin_dir in COMPOSE_PLUGIN_DIRS:
        plugin = plugin_dir / "docker-compose"
        if plugin.is_file():
            found["v2"] = _version_of([str(plugin), "version", "--short"])
            break
    if shutil.which("docker-compose"):
        found["v1" if _version_of(["docker-compose", "version", "--short"]).startswith("1.") else "v2-standalone"] = \
            _version_of(["docker-compose", "version", "--short"])
    return found


def check_compose() -> list[Check]:
    found = compose_versions()
    if not found:
        return [Check("compose", "warn", "neither `docker compose` (v2) nor `docker-compose` (v1) is installed",
                      "only needed for the class lab's compose.yaml: apt-get install docker-compose")]
    words = {"v2": "Compose v2: use `docker compose up`",
             "v1": "Compose v1: use `docker-compose up`; run `down` before `up` again after changes "
                   "(v1 can crash with KeyError: 'ContainerConfig' recreating containers on Engine 25+)",
             "v2-standalone": "Compose v2 (standalone binary): use `docker-compose up`"}
    return [Check(f"compose {kind}", "ok", f"{version}: {words[kind]}") for kind, version in found.items()]


def check_mmdebstrap() -> Check:
    if shutil.which("mmdebstrap"):
        return Check("mmdebstrap", "ok", "offline image builds possible (no registry needed)")
    return Check("mmdebstrap", "info", "not installed: image builds need a registry for debian:bookworm-slim",
                 "apt-get install mmdebstrap (for machines without a registry)")


def check_subnets() -> Check:
    from .topology.docker_lab import used_subnets
    used = used_subnets()
    clash = [str(s) for s in model.COMPOSE_SUBNETS if any(s.overlaps(u) for u in used)]
    free = len(model.subnet_candidates(used))
    fit = model.labs_that_fit(used)
    detail = (f"{fit} more labs fit in the pool {model.pool()} ({free} free /24s, "
              f"{model.NETWORKS_PER_LAB} per lab; --subnets or SOCKETLAB_SUBNETS choose the pool)")
    if clash:
        return Check("subnets", "info", detail + f"; {', '.join(clash)} in use (by the compose lab?)")
    return Check("subnets", "ok" if fit else "fail", detail,
                 "" if fit else f"`lab down --stale`, `lab down NAME`, remove Docker networks in {model.pool()}, "
                                "or choose another pool (--subnets / SOCKETLAB_SUBNETS)")


def netem_status(caps, probe: dict) -> Check:
    """Is tc netem used, and if not, why: the kernel has none, has it as a module that
    did not load, or SOCKETLAB_BACKEND chose the fallbacks. Everything is the engine's
    kernel's, as its probe container saw it (release, module files from the engine's
    /lib/modules, /proc/modules): never this machine's, which may not run the engine."""
    from .programs.shared.impairment import BACKEND_ENV
    if caps.netem:
        return Check("netem", "ok", "tc netem works in the engine's kernel: it applies loss, delay, jitter, "
                     "duplicate, corrupt and reorder")
    why = caps.why_not("netem")
    if BACKEND_ENV in why:
        return Check("netem", "info", f"present, not used: {BACKEND_ENV}=fallback chose the fallback backends",
                     f"unset {BACKEND_ENV} to use netem")
    kernel = probe.get("kernel") or "?"
    module = probe.get("netem_module") or {}
    if module.get("module") and not module.get("loaded"):
        return Check("netem", "warn", f"the engine's kernel {kernel} has sch_netem as a module, but it is not "
                     f"loaded (and did not load on demand): fallback backends are used ({why})",
                     "sudo modprobe sch_netem on the engine's host, then lab doctor again")
    unknown = " (its module files could not be read)" if module.get("module") is None else ""
    return Check("netem", "info", f"no sch_netem in the engine's kernel {kernel}{unknown}: fallback backends "
                 f"are used (nftables, tc htb/tbf, the NFQUEUE impairer) ({why})",
                 "none needed; for netem, a kernel with CONFIG_NET_SCH_NETEM")


def _backend_reason(kind: str, backend: str, caps) -> str:
    from .programs.shared import backends as b
    if backend == b.NETEM:
        return "netem in the kernel"
    if kind == "rate":
        return "per-link shaping (netem is not used for rate)"
    if kind == "partition":
        return "a drop rule, swapped atomically"
    if b.NETEM in backend:
        return ""
    return "netem not usable here" if not caps.netem else "netem cannot be applied per link"


def check_kernel() -> list[Check]:
    from .programs.shared.backends import describe_backends
    from .impairments.kernel import probe_kernel
    from .programs.shared.impairment import Capabilities
    try:
        probe = probe_kernel()
        caps = Capabilities.from_probe(probe)
    except (docker.errors.DockerException, ValueError, IndexError) as exc:
        reason = one_line(exc)
        return [Check("kernel probe", "fail", f"the probe container failed: {reason}"),
                *unprobed_kernel(f"not known: the kernel probe failed ({reason})")]
    abilities = {"netem": caps.netem, "nftables numgen": caps.nft_numgen, "nftables dup": caps.nft_dup,
                 "NFQUEUE": caps.iptables_nfqueue, "tc tbf": caps.tc_tbf, "tc htb": caps.tc_htb}
    checks = [Check("kernel", "info", ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in abilities.items())),
              netem_status(caps, probe)]
    for kind, backend in describe_backends(caps).items():
        bad = backend.startswith("unavailable")
        reason = "" if bad else _backend_reason(kind, backend, caps)
        checks.append(Check(f"impairment {kind}", "warn" if bad else "ok",
                            backend + (f": {reason}" if reason else ""),
                            "scenarios using it will be refused before they start" if bad else ""))
    return checks


def one_line(exc: BaseException) -> str:
    """An exception as one line: its first non-empty line, or its type's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def unprobed_kernel(why: str) -> list[Check]:
    """The kernel rows, status unknown, when the probe did not run or failed: the same
    names as check_kernel's (kernel, netem, impairment KIND), each saying ``why``."""
    from .programs.shared.impairment import KINDS
    return [Check("kernel", "unknown", why),
            Check("netem", "unknown", why, "fix the rows above, then lab doctor again"),
            *(Check(f"impairment {kind}", "unknown", why) for kind in KINDS)]


def print_report(checks: list[Check]) -> None:
    from rich.text import Text
    marks = {"ok": Text("ok", "green"), "warn": Text("warn", "yellow"), "fail": Text("FAIL", "red"),
             "info": Text("info", "blue"), "unknown": Text("?", "yellow")}
    ui.table("lab doctor", ["check", "", "detail", "how to fix"],
             [[c.name, marks[c.status], c.detail, c.fix] for c in checks])


def _version_of(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"
