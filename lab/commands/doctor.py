"""`lab doctor`: check this machine."""
from __future__ import annotations

import sys

import click

from .. import ui
from ..programs.shared.errors import EXIT_ENVIRONMENT


@click.command()
@click.option("--json", "as_json", is_flag=True)
def doctor(as_json):
    """Check this machine: engine, images, Compose, kernel abilities, free subnets."""
    from dataclasses import asdict
    from .. import doctor as doc
    checks = doc.run_checks()
    if as_json:
        ui.print_json([asdict(c) for c in checks])
    else:
        doc.print_report(checks)
    if any(c.status == "fail" for c in checks):
        sys.exit(EXIT_ENVIRONMENT)  # what failed is this machine
