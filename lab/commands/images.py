"""`lab images build|remove`: the lab host image."""
from __future__ import annotations

import click

from .. import ui


@click.group()
def images():
    """Build or remove the lab host image."""


@images.command("build")
@click.option("--offline", is_flag=True, help="Build the base from Debian packages (mmdebstrap) even if a registry is reachable.")
@click.option("--with", "toolchains", multiple=True, type=click.Choice(["c", "java"]),
              help="Also build a toolchain image: c (gcc, make) as socketlab-host:c, java (a headless "
                   "JDK) as socketlab-host:java; the host image plus the toolchain, by the same path.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def images_build(offline, toolchains, as_json):
    """Build the host image (idempotent); picks online or offline by itself."""
    from ..images import build
    built = build.build_all(offline=offline, toolchains=tuple(dict.fromkeys(toolchains)))
    if as_json:
        ui.print_json([b.as_dict() for b in built])
        return
    ui.table("socketlab images", ["image", "id", "size", "action", "seconds"],
             [[b.tag, b.id.split(":")[-1][:12], ui.human_size(b.size), b.action, f"{b.seconds:.1f}"] for b in built])


@images.command("remove")
def images_remove():
    """Remove every socketlab image from the engine (the next build starts from nothing)."""
    from ..images import build
    for tag in build.remove_all():
        ui.progress(f"removed {tag}")
