"""What a run step's result holds, so expectations can be checked before the run.

Every result has the runner's fields (``COMMON_FIELDS``).  When the command starts with
one of the lab's measuring programs, its JSON result's fields are known too: they are
read from the program's own ``new_result`` (never written down twice), so an
expectation on ``probe.delivry`` fails validation with a did-you-mean instead of
failing after a long run.  Any other command (a student's program) may print any
JSON object: its fields are not checked.
"""
from __future__ import annotations

import errno
import shlex
import socket
from functools import lru_cache
from typing import Any, Dict, Optional, Tuple

from ..programs.shared.fieldtypes import did_you_mean

# Fields the runner adds to every host's result of a run step.
COMMON_FIELDS: Dict[str, Any] = {
    "exit_code": 0,        # the command's exit status
    "elapsed": 0.0,        # seconds from its start to its end
    "timed_out": False,    # killed by the step's timeout
    "host": "",            # the lab host it ran on
    "output": "",          # its raw output (stdout then stderr), up to the output cap
    "output_dropped": 0,   # bytes of output over the cap, not kept
    "started_at": 0.0,     # the host's clock (s since the epoch) when it started: the program's own, else step-exec's
    "ended_at": 0.0,       # the host's clock when it ended (the same way)
    "leftovers": 0,        # processes it started still alive when it ended (ended with the step)
}

# Command -> (module, arguments that make its parser accept a minimal command line).
PROGRAMS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "udp-measure": ("udp_measure", ("--count", "1")),
    "tcp-measure": ("tcp_measure", ("--bytes", "1")),
    "udp-client": ("udp_client", ("x",)),
    "tcp-client": ("tcp_client", ("x",)),
}

# The names a result's `error` can hold (lab.programs.common.error_name): errno names,
# name-resolution errors, and the programs' own.  A close miss (ECONREFUSED) is a typo.
ERROR_NAMES = frozenset(errno.errorcode.values()) | {n for n in dir(socket) if n.startswith("EAI_")} | {
    "EAI_UNKNOWN", "TIMEOUT", "EOF", "BAD_REPLY", "MISMATCH"}

_UNIT_SUFFIXES = (("_ms", "ms"), ("_s", "s"))


def program_of(command: str) -> Optional[str]:
    """The lab program a shell command runs, if it plainly starts with one."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    while words and "=" in words[0] and not words[0].startswith("="):
        words = words[1:]          # VAR=value prefixes
    if not words:
        return None
    if words[0] in PROGRAMS:
        return words[0]
    if len(words) >= 3 and words[0].startswith("python") and words[1] == "-m":
        module = words[2].rsplit(".", 1)[-1]
        for name, (mod, _) in PROGRAMS.items():
            if module == mod and words[2] in (mod, f"lab.programs.{mod}"):
                return name
    return None


@lru_cache(maxsize=None)
def _template(program: str) -> Dict[str, Any]:
    import importlib
    module_name, argv = PROGRAMS[program]
    module = importlib.import_module(f"lab.programs.{module_name}")
    args = module.build_parser().parse_args(list(argv))
    return module.new_result(args)


def template(program: Optional[str]) -> Optional[Dict[str, Any]]:
    """A result of ``program`` with its fields at their initial values (None: unknown)."""
    if program is None:
        return None
    return {**_template(program), **COMMON_FIELDS}


def check_path(program: Optional[str], path: Tuple[str, ...]) -> Optional[str]:
    """Why ``path`` cannot be in the result of ``program`` (None when it can, or when the
    program is not one of ours)."""
    here = template(program)
    if here is None:
        if path and path[0] in COMMON_FIELDS and len(path) > 1:
            return f"{path[0]} has no fields"
        return None
    walked = []
    for part in path:
        if isinstance(here, dict):
            if part not in here:
                where = ".".join(walked) or f"a {program} result"
                return f"{where} has no field {part!r}{did_you_mean(part, list(here))}"
            here = here[part]
        elif isinstance(here, list):
            if not part.isdigit():
                return f"{'.'.join(walked)} is a list: index it with a number"
            here = None                         # list items: unknown shape
        elif here is None:
            return None                         # filled in at run time: unknown shape
        else:
            return f"{'.'.join(walked)} is a single value, it has no field {part!r}"
        walked.append(part)
    return None


def unit_of(path: Tuple[str, ...]) -> Optional[str]:
    """The unit of a result field, from its name: *_ms -> ms; *_s and elapsed -> s.
    The nearest named part decides (``rtt_ms.p99`` is in ms)."""
    for part in reversed(path):
        if part in ("elapsed", "started_at", "ended_at"):
            return "s"
        for suffix, unit in _UNIT_SUFFIXES:
            if part.endswith(suffix):
                return unit
    return None
