"""Packet capture on a router: one ``pcap-capture`` (lab/programs/pcap_capture.py) per
interface on a lab network, started and stopped as background processes.

    capture = CaptureProcesses(shell, ifnames)  # ifnames: network -> interface
    paths = capture.start("/run/socketlab-capture")   # ifname -> pcap path in the router
    pcaps = capture.stop()                      # ifname -> the pcap file's bytes

``start`` returns once every capture is listening; ``stop`` sends SIGINT, so each file
ends on a whole packet, and raises if a capture failed.
"""
from __future__ import annotations

from typing import Dict, Mapping

from .errors import RouterImpairmentError
from .router_exec import RouterShell
from .router_processes import Process, Processes

CAPTURE_DIR = "/run/socketlab-capture"
PROGRAM = "pcap-capture"


class CaptureProcesses:
    """The pcap-capture processes on the router, one per lab interface."""

    def __init__(self, shell: RouterShell, ifnames: Mapping[str, str], timeout: float = 15.0):
        self.shell, self.ifnames = shell, dict(ifnames)
        self.procs = Processes(shell, timeout)
        self._running: Dict[str, tuple] = {}   # ifname -> (process, pcap path)

    @property
    def running(self) -> bool:
        return bool(self._running)

    def start(self, dir_in_router: str = CAPTURE_DIR) -> Dict[str, str]:
        if self._running:
            raise RouterImpairmentError("a capture is already running")
        paths = {}
        try:
            for ifname in sorted(self.ifnames.values()):
                path = f"{dir_in_router}/{ifname}.pcap"
                proc = self.procs.spawn(f"capture-{ifname}", [PROGRAM, ifname, path], dir_in_router)
                self._running[ifname] = (proc, path)
                paths[ifname] = path
                self.procs.wait_text(proc, f"listening on {ifname}")
        except BaseException:
            self._stop_all()
            raise
        return paths

    def stop(self) -> Dict[str, bytes]:
        if not self._running:
            raise RouterImpairmentError("no capture is running")
        running = dict(self._running)
        self._stop_all()
        return {ifname: self.shell.get_file(path) for ifname, (_proc, path) in running.items()}

    def _stop_all(self) -> None:
        running, self._running = self._running, {}
        problems = []
        for proc, _path in running.values():
            if proc.pid is not None and self.procs.running(proc):
                self.shell.try_run(["kill", "-INT", str(proc.pid)])
        for ifname, (proc, _path) in running.items():
            try:
                self.procs.wait_ended(proc)
            except RouterImpairmentError:
                self.procs.kill(proc)
                problems.append(f"{ifname}: did not stop on SIGINT (killed)")
                continue
            code = self.procs.exit_code(proc)
            if code != 0:
                problems.append(f"{ifname}: exit status {code}: {self.procs.tail(proc.err_file)}")
        if problems:
            raise RouterImpairmentError("packet capture failed: " + "; ".join(problems))
