"""`lab impair`, `lab partition`, `lab heal`: change a running lab's network while
students work on it (a lab from `lab up`, `lab run --keep`, or compose's class lab).

Each command is one change (``impairments.model.Change``) sent to the router's own agent,
which plans it with the same backends as a scenario, applies it atomically and keeps what
is in force; so ``--show`` is true after any number of changes, from any shell.  Values
are read by the one-line parser (``scenario.oneline``, which checks them with the
scenario format's own field types): a bad one is refused before the router is asked,
as ``lab impair: --loss: 120% is over 100%`` with exit status 2, and nothing changes.

``SOCKETLAB_BACKEND=fallback`` in the environment makes the router plan without netem.
"""
from __future__ import annotations

import click

from .. import ui
from ..impairments.live import shown
from ..running import RunningLab
from ..programs.shared.impairment import Change
from ..programs.shared.oneline import KEYS, OneLineError, impairment_of, links_of
from .options import LAB_OPTION, Refused

HELP = {
    "loss": "Random loss, e.g. 20%.", "loss-correlation": "Correlation of losses (needs --loss), e.g. 25%.",
    "gemodel": "Bursty loss (Gilbert-Elliott): P[,R[,1-H[,1-K]]] in %, e.g. 1%,30%.",
    "delay": "Added one-way delay, e.g. 50ms.", "jitter": "Variation around the delay (needs --delay).",
    "duplicate": "Chance of sending a packet twice.", "corrupt": "Chance of flipping a bit.",
    "reorder": "Share sent at once, overtaking delayed ones (needs --delay).",
    "rate": "Bandwidth limit, e.g. 1mbit.", "queue": "Packets the rate limiter may queue (needs --rate).",
}


def send(command: str, lab: RunningLab, change: Change) -> dict:
    """Send one change; input the router refuses (an unknown network, an impairment this
    kernel cannot apply) is exit 2 with nothing changed, like a bad value."""
    from ..programs.shared.backends import UnsupportedImpairment
    from ..impairments.errors import ImpairmentRefused
    try:
        return lab.change(change)
    except UnsupportedImpairment as exc:
        raise Refused(command, f"this router cannot apply it: {exc}") from None
    except ImpairmentRefused as exc:
        raise Refused(command, str(exc)) from None


def print_shown(data: dict) -> None:
    if not data["links"]:
        ui.out.print(f"lab {data['lab']}: no impairment in force")
    else:
        rows = []
        for link in data["links"]:
            for kind, setting in link["settings"].items():
                rows.append([link["link"], kind.replace("_", " "), setting, link["backends"].get(kind, "")])
        ui.table(f"lab {data['lab']}: in force on the router", ["link", "kind", "setting", "backend"], rows)
    if data["state_unknown"]:
        ui.err.print("[red]a change failed half-way: the router's state is unknown; "
                     "`lab impair --clear` removes what is there[/red]")


def _impair_options(func):
    for key in reversed(KEYS):
        func = click.option(f"--{key}", key.replace("-", "_"), metavar="VALUE", help=HELP[key])(func)
    return func


@click.command()
@LAB_OPTION
@click.argument("link", required=False)
@_impair_options
@click.option("--clear", is_flag=True, help="Remove the impairments of LINK (or of every link).")
@click.option("--show", is_flag=True, help="Show what is in force, per link and direction, with each backend.")
@click.option("--json", "as_json", is_flag=True, help="With --show (or a change): print JSON.")
@click.option("--seed", type=int, help="Seed the impairer's random choices (where the impairer applies them).")
def impair(lab_name, link, clear, show, as_json, seed, **values):
    """Change a running lab's network: lab impair 'clients -> servers' --loss 20% --delay 50ms"""
    given = [(key.replace("_", "-"), text) for key, text in values.items() if text is not None]
    if show and (given or clear or link):
        raise Refused("impair", "--show goes alone (with --json)")
    if clear and given:
        raise Refused("impair", "--clear takes only a LINK, no values")
    change = None
    if not show:
        try:
            if clear:
                change = Change(clear=tuple(links_of(link, "LINK"))) if link else Change(clear_all=True)
            else:
                if not link:
                    raise Refused("impair", "give a LINK ('clients -> servers' or 'clients <-> servers'), "
                                            "or --clear, or --show")
                if not given:
                    raise Refused("impair", "give at least one of " + ", ".join(f"--{k}" for k in KEYS)
                                  + " (or --clear LINK)")
                links = links_of(link, "LINK")
                imp = impairment_of(given)
                change = Change(impair={l: imp for l in links})
        except OneLineError as exc:
            key = "LINK" if exc.key in ("link", "LINK") else f"--{exc.key}" if exc.key else None
            raise Refused("impair", f"{key}: {exc.message}" if key else exc.message) from None
    lab = RunningLab.attach(lab_name, seed=seed)    # the router reads SOCKETLAB_BACKEND
    answer = lab.show() if change is None else send("impair", lab, change)
    data = shown(lab.name, answer)
    if as_json:
        ui.print_json(data)
    else:
        print_shown(data)


@click.command()
@LAB_OPTION
@click.argument("a")
@click.argument("b")
def partition(lab_name, a, b):
    """Cut two networks apart (both directions): lab partition clients servers"""
    try:
        links = links_of(f"{a} <-> {b}", "partition")
    except OneLineError as exc:
        raise Refused("partition", exc.message) from None
    lab = RunningLab.attach(lab_name)
    print_shown(shown(lab.name, send("partition", lab, Change(partition=tuple(links)))))


@click.command()
@LAB_OPTION
@click.argument("a", required=False)
@click.argument("b", required=False)
def heal(lab_name, a, b):
    """Join two networks again (or, with none given, every cut link): lab heal clients servers"""
    if (a is None) != (b is None):
        raise Refused("heal", "give two networks, or none to heal every partition")
    try:
        change = Change(heal=tuple(links_of(f"{a} <-> {b}", "heal"))) if a else Change(heal_all=True)
    except OneLineError as exc:
        raise Refused("heal", exc.message) from None
    lab = RunningLab.attach(lab_name)
    print_shown(shown(lab.name, send("heal", lab, change)))
