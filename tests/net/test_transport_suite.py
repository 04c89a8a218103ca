"""The shipped transport-behaviour suite, run as a user runs it (about two minutes)."""
import subprocess
import sys


def test_the_transport_suite_passes_on_this_machine(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE",
                           "--pyargs", "lab.suites.transport"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and " passed" in out, out[-6000:]
