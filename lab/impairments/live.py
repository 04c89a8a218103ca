"""`lab impair`, `lab partition`, `lab heal`: change a running lab's network while
students work on it (a lab from `lab up`, `lab run --keep`, or compose's class lab).

Each command is one change (``shared.impairment.Change``) sent to the router's own agent, which
plans it with the same backends as a scenario, applies it atomically and keeps what is
in force; so ``--show`` is true after any number of changes, from any shell.  Values
are read by the one-line parser (``shared.oneline``, which checks them with the
scenario format's own field types): a bad one is refused before the router is asked,
as ``lab impair: --loss: 120% is over 100%`` with exit status 2, and nothing changes.

``SOCKETLAB_BACKEND=fallback`` in the environment makes the router plan without netem.
"""
from __future__ import annotations

import sys
from typing import Dict, List, Optional

import click

from ..programs.shared.oneline import KEYS, OneLineError, impairment_of, links_of
from ..programs.shared.impairment import Change

LAB_OPTION = click.option("--lab", "lab_name", default=None, metavar="NAME",
                          help="The lab to change (default: the only one that is up).")
HELP = {
    "loss": "Random loss, e.g. 20%.", "loss-correlation": "Correlation of losses (needs --loss), e.g. 25%.",
    "gemodel": "Bursty loss (Gilbert-Elliott): P[,R[,1-H[,1-K]]] in %, e.g. 1%,30%.",
    "delay": "Added one-way delay, e.g. 50ms.", "jitter": "Variation around the delay (needs --delay).",
    "duplicate": "Chance of sending a packet twice.", "corrupt": "Chance of flipping a bit.",
    "reorder": "Share sent at once, overtaking delayed ones (needs --delay).",
    "rate": "Bandwidth limit, e.g. 1mbit.", "queue": "Packets the rate limiter may queue (needs --rate).",
}


def fail(command: str, message: str) -> None:
    click.echo(f"lab {command}: {message}", err=True)
    sys.exit(2)


# -- finding the lab's router ------------------------------------------------------------------

def find_router(lab_name: Optional[str]):
    """The router container of ``lab_name``, or of the only lab that is up."""
    from ..programs.shared.errors import LabError
    from ..labels import LABEL, LABEL_HOST, LABEL_LAB
    from ..topology.docker_lab import find_containers
    labs: Dict[str, List] = {}
    for ctr in find_containers(lab_name):
        if ctr.status == "running" and ctr.labels.get(LABEL) == "1":
            labs.setdefault(ctr.labels.get(LABEL_LAB, "?"), []).append(ctr)
    labs.pop("doctor", None)   # lab doctor's probe container, not a lab
    if not labs:
        where = f"lab {lab_name!r} is not up" if lab_name else "no lab is up"
        raise LabError(where, hint="`lab status` lists the labs; `lab up` starts one")
    if len(labs) > 1:
        raise LabError(f"several labs are up ({', '.join(sorted(labs))})", hint="pick one with --lab NAME")
    name, containers = next(iter(labs.items()))
    for ctr in containers:
        if (ctr.labels.get(LABEL_HOST) == "router"
                or ctr.labels.get("com.docker.compose.service") == "router"):
            return name, ctr
    raise LabError(f"lab {name!r} has no running router")


def router_for(lab_name: Optional[str], seed: Optional[int] = None):
    from .router import RouterImpairments
    name, container = find_router(lab_name)
    return name, RouterImpairments(container=container, seed=seed)   # reads SOCKETLAB_BACKEND


def send(command: str, router, change: Change) -> dict:
    """Send one change; input the router refuses (an unknown network, an impairment this
    kernel cannot apply) is exit 2 with nothing changed, like a bad value."""
    from ..programs.shared.backends import UnsupportedImpairment
    from .errors import ImpairmentRefused
    try:
        return router.change(change)
    except UnsupportedImpairment as exc:
        fail(command, f"this router cannot apply it: {exc}")
    except ImpairmentRefused as exc:
        fail(command, str(exc))


# -- showing what is in force ------------------------------------------------------------------

def describe(item: dict) -> Dict[str, str]:
    """kind -> its setting in the user's units, from one state entry."""
    out = {}
    if item.get("partition"):
        out["partition"] = "cut"
    if item.get("loss") is not None:
        corr = item.get("loss_correlation")
        out["correlated_loss" if corr else "loss"] = f"{item['loss']:g}%" + (f" (correlation {corr:g}%)" if corr else "")
    if item.get("gemodel"):
        ge = item["gemodel"]
        out["correlated_loss"] = (f"gemodel p {ge['p']:g}% r {ge['r']:g}% 1-h {ge['one_minus_h']:g}% "
                                  f"1-k {ge['one_minus_k']:g}%")
    if item.get("delay_ms") is not None:
        out["delay"] = f"{item['delay_ms']:g}ms" + (f" ± {item['jitter_ms']:g}ms" if item.get("jitter_ms") else "")
    for kind in ("duplicate", "corrupt", "reorder"):
        if item.get(kind) is not None:
            out[kind] = f"{item[kind]:g}%"
    if item.get("rate_kbit") is not None:
        rate = item["rate_kbit"]
        text = f"{rate / 1000:g}mbit" if rate >= 1000 else f"{rate:g}kbit"
        out["rate"] = text + (f" queue {item['queue_limit']}" if item.get("queue_limit") else "")
    return out


def shown(lab: str, answer: dict) -> dict:
    """The answer as ``--show --json`` prints it."""
    links = []
    for item in answer.get("state", []):
        link = item["link"]
        links.append({"link": link, "impairment": {k: v for k, v in item.items() if k != "link"},
                      "settings": describe(item), "backends": answer.get("backends", {}).get(link, {})})
    return {"lab": lab, "links": links, "engine": answer.get("engine"),
            "state_unknown": bool(answer.get("dirty"))}


def print_shown(data: dict) -> None:
    from .. import ui
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


# -- the commands -------------------------------------------------------------------------------

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
@click.option("--seed", type=int, help="Seed the engine's random choices (where the engine applies them).")
def impair(lab_name, link, clear, show, as_json, seed, **values):
    """Change a running lab's network: lab impair 'clients -> servers' --loss 20% --delay 50ms"""
    given = [(key.replace("_", "-"), text) for key, text in values.items() if text is not None]
    if show and (given or clear or link):
        fail("impair", "--show goes alone (with --json)")
    if clear and given:
        fail("impair", "--clear takes only a LINK, no values")
    change = None
    if not show:
        try:
            if clear:
                change = Change(clear=tuple(links_of(link, "LINK"))) if link else Change(clear_all=True)
            else:
                if not link:
                    fail("impair", "give a LINK ('clients -> servers' or 'clients <-> servers'), "
                                   "or --clear, or --show")
                if not given:
                    fail("impair", "give at least one of " + ", ".join(f"--{k}" for k in KEYS)
                         + " (or --clear LINK)")
                links = links_of(link, "LINK")
                imp = impairment_of(given)
                change = Change(impair={l: imp for l in links})
        except OneLineError as exc:
            key = "LINK" if exc.key in ("link", "LINK") else f"--{exc.key}" if exc.key else None
            fail("impair", f"{key}: {exc.message}" if key else exc.message)
    name, router = router_for(lab_name, seed)
    answer = router.show() if change is None else send("impair", router, change)
    data = shown(name, answer)
    if as_json:
        from .. import ui
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
        fail("partition", exc.message)
    name, router = router_for(lab_name)
    print_shown(shown(name, send("partition", router, Change(partition=tuple(links)))))


@click.command()
@LAB_OPTION
@click.argument("a", required=False)
@click.argument("b", required=False)
def heal(lab_name, a, b):
    """Join two networks again (or, with none given, every cut link): lab heal clients servers"""
    if (a is None) != (b is None):
        fail("heal", "give two networks, or none to heal every partition")
    try:
        change = Change(heal=tuple(links_of(f"{a} <-> {b}", "heal"))) if a else Change(heal_all=True)
    except OneLineError as exc:
        fail("heal", exc.message)
    name, router = router_for(lab_name)
    print_shown(shown(name, send("heal", router, change)))
