"""The router runs a change's commands as one script: which command failed, and its own stderr."""
import subprocess

from lab.impairments.router import batch_script, failed_command


def run_script(argvs):
    return subprocess.run(["sh", "-c", batch_script(argvs)], capture_output=True, text=True)


def test_commands_run_in_order_with_their_arguments_intact():
    done = run_script([["printf", "%s|", "a b", "it's"], ["echo", "$HOME;", "two"]])
    assert done.returncode == 0
    assert done.stdout == "a b|it's|$HOME; two\n"


def test_the_first_failure_stops_the_script_and_is_named():
    done = run_script([["true"], ["sh", "-c", "echo broken >&2; exit 3"], ["touch", "/nonexistent/x"]])
    assert done.returncode == 3
    assert failed_command(done.stderr) == (1, "broken\n")


def test_stderr_without_a_mark_is_blamed_on_the_first_command():
    assert failed_command("sh: cannot start\n") == (0, "sh: cannot start\n")
