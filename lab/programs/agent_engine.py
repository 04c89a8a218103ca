"""The NFQUEUE engine's life cycle, inside the router: start, reload, stats, stop, and
"is it alive?".  Used by ``impair_agent`` only (standard library only).

The engine (``lab.programs.impairer``) runs as its own session, detached from the
agent that started it: the agent is one short ``docker exec``, the engine outlives it
and is reaped by the container's init.  What the agent needs to find it again (pid,
generation, output files) is a small dict the agent keeps in its state file, so any
later agent call (from ``lab run``, ``lab impair`` or ``lab watch``) can talk to it.

The engine prints JSON lines on stdout (ready / reloaded / reload_failed / stats /
exit); each wait here reads that file with a deadline.  The engine fails open
(``--queue-bypass``), so a death must be reported, never passed silently:
``EngineDied`` carries the message callers show.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Callable, List, Optional, Sequence

MODULE = "lab.programs.impairer"
POLL_S = 0.02


class EngineError(Exception):
    """The engine did not start, reload or stop as it should."""


class EngineDied(EngineError):
    """The engine is gone: the links it handled pass packets unimpaired (fail-open)."""


def alive(pid: Optional[int]) -> bool:
    """Is ``pid`` a live (not zombie) impairer process?"""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X") and MODULE.encode() in cmdline


def events(out_file: str, names: Sequence[str]) -> List[dict]:
    """The complete JSON lines in ``out_file`` whose "event" is one of ``names``."""
    try:
        with open(out_file) as f:
            text = f.read()
    except OSError:
        return []
    found = []
    for line in text.split("\n")[:-1]:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("event") in names:
            found.append(obj)
    return found


def tail(path: str, lines: int = 6) -> str:
    try:
        with open(path) as f:
            return "\n            ".join(f.read().splitlines()[-lines:])
    except OSError:
        return ""


def death_message(info: dict, links: Sequence[str]) -> str:
    return (f"the impairment engine (pid {info.get('pid')}) died: the links it handled "
            f"({', '.join(links) or 'none'}) now pass packets UNIMPAIRED (fail-open)\n"
            f"    stderr: {tail(info['err']) or '(empty)'}\n    stdout: {tail(info['out']) or '(empty)'}")


def wait_event(info: dict, names: Sequence[str], after: int, timeout: float, links=(),
               running: Optional[Callable[[], bool]] = None) -> dict:
    """The first ``names`` event after the first ``after`` of them; EngineDied if the engine
    ends first, EngineError after ``timeout`` seconds. ``running`` says whether it still
    runs (default: ``alive(pid)``)."""
    running = running or (lambda: not info.get("pid") or alive(info["pid"]))
    deadline = time.monotonic() + timeout
    while True:
        found = events(info["out"], names)
        if len(found) > after:
            return found[after]
        if not running():
            found = events(info["out"], names)
            if len(found) > after:
                return found[after]
            raise EngineDied(f"the engine ended before printing '{'/'.join(names)}': "
                             + death_message(info, links))
        if time.monotonic() > deadline:
            raise EngineError(f"the engine printed no '{'/'.join(names)}' within {timeout:g} s; "
                              f"stderr: {tail(info['err']) or '(empty)'}")
        time.sleep(POLL_S)


def write_config(path: str, config: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def start(work_dir: str, generation: int, config: dict, seed: Optional[int],
          timeout: float) -> dict:
    """Start an engine with ``config``; returns its info dict once it printed ready."""
    config_file = f"{work_dir}/engine.json"
    write_config(config_file, config)
    info = {"generation": generation, "config": config_file,
            "out": f"{work_dir}/engine-{generation}.out", "err": f"{work_dir}/engine-{generation}.err"}
    argv = ["python3", "-m", MODULE, "--config", config_file]
    if seed is not None:
        argv += ["--seed", str(seed)]
    with open(info["out"], "w") as out, open(info["err"], "w") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)
    info["pid"] = proc.pid
    try:
        # Our own child: ask it, not /proc/PID/cmdline, which can still be empty just after
        # the exec (the kernel closes the exec-status pipe Popen waits on before it sets the
        # new command line up): seen under emulation as an engine "dead" before it began.
        ready = wait_event(info, ("ready",), 0, timeout, running=lambda: proc.poll() is None)
    except BaseException:
        kill(info)
        raise
    info["pid"] = ready["pid"]
    return info


def reload(info: dict, config: dict, timeout: float, links=()) -> None:
    write_config(info["config"], config)
    before = len(events(info["out"], ("reloaded", "reload_failed")))
    send(info, signal.SIGHUP, links)
    event = wait_event(info, ("reloaded", "reload_failed"), before, timeout, links)
    if event["event"] == "reload_failed":
        raise EngineError(f"the engine refused the new config (the old one stays in force): "
                          f"{event.get('error')}")


def stats(info: dict, timeout: float, links=()) -> dict:
    before = len(events(info["out"], ("stats",)))
    send(info, signal.SIGUSR1, links)
    return wait_event(info, ("stats",), before, timeout, links)


def stop(info: dict, timeout: float, links=()) -> dict:
    """SIGTERM, wait for the exit line (the final counters) and for the process to end."""
    send(info, signal.SIGTERM, links)
    try:
        exit_line = wait_event(info, ("exit",), 0, timeout, links)
    except EngineDied:
        raise
    except EngineError:
        kill(info)
        raise
    deadline = time.monotonic() + timeout
    while alive(info["pid"]):
        if time.monotonic() > deadline:
            kill(info)
            raise EngineError(f"the engine (pid {info['pid']}) did not end after its exit line")
        time.sleep(POLL_S)
    return exit_line


def send(info: dict, signum: int, links=()) -> None:
    if not alive(info.get("pid")):
        raise EngineDied(death_message(info, links))
    os.kill(info["pid"], signum)


def kill(info: dict) -> None:
    """Last resort: SIGKILL, ignoring a process already gone."""
    if alive(info.get("pid")):
        try:
            os.kill(info["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
