"""Helpers shared by the lab programs.

Standard library only: this package is copied into the host image, which has
python3 and nothing else. Everything here that is pure logic (error naming,
percentiles, the stream header) is unit-tested without sockets.
"""

import argparse
import errno
import contextlib
import json
import os
import platform
import signal
import socket
import sys
import threading
import time

from lab.programs.shared.topology import DEFAULT_PORT

DEFAULT_HOST = "server"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_SIGINT = 130  # what a shell reports for a program stopped by Ctrl-C

# tcp-server switches from "uppercase" to "count and hash" when a connection
# starts with this line. A lecture client never sends it (it is upper case and
# a student types lower case), so lecture behaviour is unaffected.
STREAM_MAGIC = b"SOCKETLAB-STREAM "
MAX_STREAM_HEADER = 64

_EAI_NAMES = {
    getattr(socket, name): name for name in dir(socket) if name.startswith("EAI_")
}

_print_lock = threading.Lock()


# --- output -----------------------------------------------------------------

def setup_process():
    """Common start of every program: line-buffered stdout (the programs run
    under `docker exec` without a TTY and their lines are read live, so block
    buffering would hide them), a working Ctrl-C, and the start barrier: under
    step-exec --hold-in-program (SOCKETLAB_HOLD set), hold here, after Python's
    start-up and imports, until the runner releases every host at once."""
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    restore_sigint()
    release = os.environ.pop(HOLD_ENV, None)
    if release:
        hold_until(release)


HOLD_ENV = "SOCKETLAB_HOLD"
HELD_MARK = "SOCKETLAB-HELD"     # step-exec's own word for it too (lab/programs/step_exec.py)
HOLD_POLL_S = 0.002
HOLD_LIMIT_S = 600.0


def hold_until(path, limit=HOLD_LIMIT_S):
    """Say held on stderr, then wait until the file `path` exists (the release)."""
    sys.stderr.write(HELD_MARK + "\n")
    sys.stderr.flush()
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.stderr.write("never released: %s\n" % path)
            sys.exit(125)
        time.sleep(HOLD_POLL_S)   # a file another host creates: no event crosses hosts


def wall_clock():
    """This host's clock (seconds since the epoch, to the microsecond): the hosts of a lab
    share the kernel's clock, so their timestamps compare across hosts."""
    return round(time.time(), 6)


def emit_line(text):
    # The lock keeps lines from concurrent handler threads from interleaving.
    with _print_lock:
        print(text, flush=True)


def hold_output(timeout=1.0):
    """Take the print lock for good, just before the process exits: a daemon
    handler thread still writing to stdout during interpreter shutdown can
    make Python abort ("could not acquire lock ... at interpreter shutdown")."""
    _print_lock.acquire(timeout=timeout)


def to_json(obj):
    return json.dumps(obj, sort_keys=True)


def emit_json(obj):
    emit_line(to_json(obj))


def fmt_addr(addr):
    """('10.0.0.2', 5000) -> '10.0.0.2:5000'; None stays None."""
    if not addr:
        return None
    return "%s:%d" % (addr[0], addr[1])


def ms(seconds):
    """Seconds -> milliseconds rounded to microseconds (None stays None)."""
    if seconds is None:
        return None
    return round(seconds * 1000.0, 3)


def preview(data, limit=200):
    """Bytes -> printable text for logs, shortened so a big request stays one line."""
    text = data[:limit].decode("utf-8", "replace")
    if len(data) > limit:
        text += "..."
    return text


# --- errors -----------------------------------------------------------------

def error_name(exc):
    """Short, stable name for a socket-level failure.

    errno name for OSErrors (ECONNREFUSED, EADDRINUSE, ...), EAI_* for name
    resolution failures, TIMEOUT for a socket timeout (which has no errno, as
    opposed to the kernel's ETIMEDOUT after exhausting SYN retries).
    """
    if isinstance(exc, socket.gaierror):
        return _EAI_NAMES.get(exc.errno, "EAI_UNKNOWN")
    if isinstance(exc, OSError) and exc.errno in errno.errorcode:
        return errno.errorcode[exc.errno]
    if isinstance(exc, socket.timeout):
        return "TIMEOUT"
    return type(exc).__name__


def error_message(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or error_name(exc)


def report_bind_error(program, exc, bind, port):
    """A server that cannot bind (EADDRINUSE, EACCES, EADDRNOTAVAIL, ...)
    reports it as one JSON line, a result rather than a traceback."""
    emit_json({"program": program, "event": "error", "error": error_name(exc),
               "message": error_message(exc), "bind": bind, "port": port})
    return EXIT_ERROR


# --- signals ----------------------------------------------------------------

class Terminated(Exception):
    """Raised in the main thread when SIGTERM arrives (see raise_on_sigterm)."""


def restore_sigint():
    """Make SIGINT raise KeyboardInterrupt even if it was inherited as
    ignored: a non-interactive shell starts `prog &` with SIGINT ignored, and
    Python then installs no handler, so `kill -INT` would do nothing."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def signals_deferred():
    """Block SIGTERM and SIGINT for the duration; they are delivered right after."""
    held = {signal.SIGTERM, signal.SIGINT}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def raise_on_sigterm():
    """Turn SIGTERM into an exception so servers unwind through their
    `finally` blocks, close sockets and print a final line, instead of dying
    mid-write. Python delivers signals to the main thread only."""

    def _handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, _handler)


# --- addresses and sockets --------------------------------------------------

def resolve(host, port, socktype):
    """Resolve host to one IPv4 (address, port). IPv4 only, like the lecture
    (AF_INET): 'localhost' could otherwise resolve to ::1 and miss a server
    bound to 0.0.0.0. Raises socket.gaierror."""
    infos = socket.getaddrinfo(host, port, socket.AF_INET, socktype)
    return infos[0][4]


_SO_RCVBUFFORCE = 33  # Linux asm-generic value; Python does not export it


def client_result(program, args, **extra):
    """The result a lecture client (tcp-client, udp-client) fills in as it goes."""
    result = {
        "program": program, "host": args.host, "port": args.port, "repeat": args.repeat,
        "local": None, "local_address": None, "local_port": None,
        "remote": None, "remote_address": None, "remote_port": None,
        "sent": None, "sent_bytes": 0, "received": None, "received_bytes": 0,
        "connect_ms": None, "rtt_ms": None, "error": None, "message": None,
        "started_at": None, "ended_at": None,
    }
    result.update(extra)
    return result


def connect_tcp(host, port, timeout, result):
    """A connected TCP socket to host:port, noting remote, local and connect_ms in
    result (connect_ms also when connect() fails: a refusal comes at once, a lost
    SYN times out). The caller closes the socket."""
    remote = resolve(host, port, socket.SOCK_STREAM)
    set_address(result, "remote", remote)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    t0 = time.monotonic()
    try:
        sock.connect(remote)
    except BaseException:
        sock.close()
        raise
    finally:
        result["connect_ms"] = ms(time.monotonic() - t0)
    set_address(result, "local", sock.getsockname())
    return sock


def raise_rcvbuf(sock, nbytes):
    """Ask for a big receive buffer and return what the kernel granted.

    SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN; the
    plain SO_RCVBUF is silently capped at rmem_max. The numeric value is only
    used on architectures where it is known to be right."""
    if sys.platform.startswith("linux") and platform.machine() in (
        "x86_64", "aarch64", "armv7l", "i686", "riscv64"
    ):
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, nbytes)
            return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError:
            pass
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, nbytes)
    except OSError:
        pass
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def add_target_args(parser, timeout):
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="server name or address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="server port (default: %(default)s)")
    parser.add_argument("--timeout", type=positive_float, default=timeout,
                        help="seconds to wait for the network (default: %(default)s)")


def positive_float(text):
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0, got %s" % text)
    return value


def non_negative_float(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0, got %s" % text)
    return value


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1, got %s" % text)
    return value


# --- statistics -------------------------------------------------------------

def _percentile_sorted(values, p):
    # Linear interpolation between closest ranks (numpy's default method).
    k = (len(values) - 1) * (p / 100.0)
    lower = int(k)
    upper = min(lower + 1, len(values) - 1)
    return values[lower] + (values[upper] - values[lower]) * (k - lower)


def percentile(values, p):
    """p-th percentile (0..100) of values; None for an empty list."""
    if not 0 <= p <= 100:
        raise ValueError("percentile must be within 0..100")
    if not values:
        return None
    return _percentile_sorted(sorted(values), p)


def summarize(values, digits=3):
    """min/avg/p50/p99/max of values; all None when there are none."""
    keys = ("min", "avg", "p50", "p99", "max")
    if not values:
        return dict.fromkeys(keys)
    ordered = sorted(values)
    stats = {
        "min": ordered[0],
        "avg": sum(ordered) / len(ordered),
        "p50": _percentile_sorted(ordered, 50),
        "p99": _percentile_sorted(ordered, 99),
        "max": ordered[-1],
    }
    return {key: round(value, digits) for key, value in stats.items()}


# --- the SOCKETLAB-STREAM header (tcp-measure -> tcp-server) ----------------

def stream_header(nbytes):
    return STREAM_MAGIC + str(int(nbytes)).encode("ascii") + b"\n"


def is_stream_start(data):
    return data.startswith(STREAM_MAGIC)


def parse_stream_header(data):
    """b'SOCKETLAB-STREAM 5\\nabc' -> (5, b'abc').

    Returns None when data is not a stream request or the header line is not
    complete yet; raises ValueError for a malformed header."""
    if not is_stream_start(data):
        return None
    end = data.find(b"\n")
    if end < 0:
        if len(data) > MAX_STREAM_HEADER:
            raise ValueError("stream header too long")
        return None
    number = data[len(STREAM_MAGIC):end].strip()
    if not number.isdigit():
        raise ValueError("bad byte count in stream header: %r" % number[:20])
    return int(number), data[end + 1:]


# --- client plumbing (tcp-client, udp-client, udp-measure, tcp-measure) -----

PROMPT = "Input lowercase sentence: "


def read_sentence(to_stderr):
    """The lecture's input(); with --json the prompt goes to stderr so that
    stdout stays one JSON line. Raises EOFError when stdin is empty."""
    if not to_stderr:
        return input(PROMPT)
    sys.stderr.write(PROMPT)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError("no input")
    return line.rstrip("\n")


def set_error(result, exc):
    result["error"] = error_name(exc)
    result["message"] = error_message(exc)


def set_address(result, prefix, addr):
    """Fill <prefix>, <prefix>_address, <prefix>_port from a socket address."""
    result[prefix] = fmt_addr(addr)
    result[prefix + "_address"] = addr[0]
    result[prefix + "_port"] = addr[1]


def run_client(args, result, exchange, print_human=None):
    """Run exchange(args, result), turn failures into result["error"], print
    the result (one JSON line, or print_human's text) and return the exit
    status: 0 when error is null, 1 otherwise, 130 after Ctrl-C."""
    result["started_at"] = wall_clock()
    try:
        exchange(args, result)
    except KeyboardInterrupt:
        return EXIT_SIGINT
    except EOFError as exc:
        result["error"], result["message"] = "EOF", str(exc) or "no input"
    except OSError as exc:
        set_error(result, exc)
    result["ended_at"] = wall_clock()
    if print_human is None or getattr(args, "json", False):
        emit_json(result)
    else:
        print_human(result)
        if result["error"]:
            print("%s: %s: %s (%s:%s)" % (result["program"], result["error"], result["message"],
                                          result["host"], result["port"]),
                  file=sys.stderr, flush=True)
    return EXIT_ERROR if result["error"] else EXIT_OK
