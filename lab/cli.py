"""The `lab` command line: the group, its exit-code handling, and the registration of the
commands (lab/commands/, one module per family; each a thin layer over the library)."""
from __future__ import annotations

import signal
import sys

import click
import docker.errors

from . import ui
from .commands import doctor, grade, images, lifecycle, live, run, trace, watch
from .programs.shared.errors import EXIT_CODES_HELP, EXIT_ENVIRONMENT, EXIT_SIGINT, EXIT_SIGTERM, LabError, Terminated


class LabGroup(click.Group):
    """Turns LabError into a one-line message and its exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LabError as exc:
            ui.error(str(exc), getattr(exc, "__notes__", []), exc.hint,  # notes: what also went wrong
                     label=getattr(exc, "label", "lab: error:"))  # commands.options.Refused
            sys.exit(exc.exit_code)
        except Terminated:
            ui.err.print("lab: terminated (SIGTERM); interrupted")
            sys.exit(EXIT_SIGTERM)
        except KeyboardInterrupt:
            ui.err.print("lab: interrupted")
            sys.exit(EXIT_SIGINT)
        except docker.errors.DockerException as exc:  # what the engine refused, in its words
            ui.error(str(exc), label="lab: the Docker Engine said:")
            sys.exit(EXIT_ENVIRONMENT)


@click.group(cls=LabGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="socketlab", prog_name="lab")  # the installed package's version
@click.option("--subnets", metavar="POOL", envvar="SOCKETLAB_SUBNETS", show_envvar=True,
              help="Where labs take their /24 subnets (default 10.77.0.0/16).")
@click.pass_context
def cli(ctx, subnets):
    """socketlab: socket programs on real separate hosts, joined by a router."""
    from .topology import lifecycle as labs
    labs.use_pool(subnets)
    if ctx.invoked_subcommand not in ("validate", "down"):   # `down` reaps by itself
        labs.reap_and_say(ui.err, quiet_errors=True)


for _command in (lifecycle.up, lifecycle.down, lifecycle.status, lifecycle.exec_, lifecycle.shell,
                 run.validate, run.run, trace.trace, grade.grade, doctor.doctor, images.images,
                 live.impair, live.partition, live.heal, watch.watch):
    cli.add_command(_command)


def _interrupt(signum, frame):
    raise Terminated


def main() -> None:
    # A SIGTERM (CI cancelling, `kill`) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    cli(prog_name="lab")


if __name__ == "__main__":      # `python -m lab.cli` runs `lab`, not nothing
    main()
