"""The ONE place that uses the router's packet capture API (it may move: the router module is
being split; only this file changes then).

    with router_capture(lab, directory) as cap:
        ... traffic ...
    cap.pcaps    # interface name -> pcap bytes
    cap.ifnames  # network name -> the router's interface on it
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Dict, Iterator


@dataclass
class RouterCapture:
    ifnames: Dict[str, str] = field(default_factory=dict)
    pcaps: Dict[str, bytes] = field(default_factory=dict)


@contextlib.contextmanager
def router_capture(lab, directory: str) -> Iterator[RouterCapture]:
    """Capture every router interface of a running ``lab`` (a DockerLab) while the block
    runs, into ``directory`` inside the router (removed afterwards).  Never changes the
    router's impairments: it only starts and stops the capture processes."""
    from ..impairments.router import RouterImpairments
    router = RouterImpairments(lab)
    result = RouterCapture(ifnames=router.ifnames)
    router.start_capture(directory)
    try:
        yield result
    finally:
        try:
            result.pcaps = router.stop_capture()
        finally:
            router.shell.run(["rm", "-rf", directory])
