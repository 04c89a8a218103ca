"""Building the host image in the Docker Engine (the I/O side of definition.py).

Two paths to the same image:
- online: FROM the official debian:bookworm-slim (pulled if missing);
- offline: mmdebstrap makes a base from Debian packages through this host's own
  apt sources, the engine imports it, and the same Dockerfile builds on top.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
import shutil

import docker.errors

from .. import engine, labels, ui
from ..programs.shared.errors import LabError
from . import definition as d

APT_SOURCE_FILES = [Path("/etc/apt/sources.list")]
APT_SOURCE_DIR = Path("/etc/apt/sources.list.d")


@dataclass
class BuiltImage:
    tag: str
    id: str
    size: int
    seconds: float
    action: str  # "built", "up to date", "pulled", "imported"

    def as_dict(self) -> dict:
        return {"tag": self.tag, "id": self.id, "size_bytes": self.size,
                "seconds": round(self.seconds, 1), "action": self.action}


def build_all(offline: bool = False, toolchains: tuple[str, ...] = ()) -> list[BuiltImage]:
    """Build (or confirm up to date) the base and the host image, and the toolchain
    images asked for (each the host image plus its packages: on the offline path, on a
    base of its own that carries them)."""
    official = None if offline else _official_base()
    base = official or _offline_base()
    built = [base, _host_image(base)]
    for name in toolchains:
        extra = d.TOOLCHAINS[name]
        tool_base = official or _offline_base(extra)
        if tool_base is not official:
            built.append(tool_base)
        built.append(_host_image(tool_base, d.toolchain_image(name), extra, name))
    return built


def built_toolchains() -> dict[str, str | None]:
    """Each toolchain's image tag if it is in the engine, else None (for `lab doctor`)."""
    c = engine.client()
    found: dict[str, str | None] = {}
    for name in d.TOOLCHAINS:
        tag = d.toolchain_image(name)
        try:
            c.images.get(tag)
            found[name] = tag
        except docker.errors.ImageNotFound:
            found[name] = None
    return found


def remove_all() -> list[str]:
    """Remove every socketlab image (host, offline bases, and earlier builds that a
    rebuild left untagged) from the engine; they all carry the org.socketlab label."""
    c = engine.client()
    removed = []
    images = c.images.list(filters=labels.filters())
    # Newest first: a host image must go before the base it was built on.
    for img in sorted(images, key=lambda i: i.attrs["Created"], reverse=True):
        c.images.remove(img.id, force=True)
        removed.append(", ".join(img.tags) or img.short_id.removeprefix("sha256:"))
    return removed


def _remove_replaced(image_id: str) -> None:
    """Remove the host image a rebuild replaced, unless a container still uses it
    (a lab that is up): then the engine refuses, and `lab images remove` takes it later."""
    try:
        engine.client().images.remove(image_id)
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: in use by a container
            raise


def _official_base() -> BuiltImage | None:
    c = engine.client()
    repo, tag = d.OFFICIAL_BASE
    started = time.monotonic()
    try:
        img = c.images.get(f"{repo}:{tag}")
        action = "present"
    except docker.errors.ImageNotFound:
        ui.progress(f"pulling {repo}:{tag} …")
        try:
            img = c.images.pull(repo, tag)
            action = "pulled"
        except docker.errors.APIError as exc:
            ui.progress(f"no registry reachable ({_first_line(exc)}): building offline")
            return None
    return BuiltImage(f"{repo}:{tag}", img.id, img.attrs["Size"], time.monotonic() - started, action)


def _offline_base(extra: tuple[str, ...] = ()) -> BuiltImage:
    c = engine.client()
    pkgs, filters = [*d.packages(), *extra], d.dpkg_filters()
    tag = d.offline_base_image(extra)
    started = time.monotonic()
    try:
        img = c.images.get(tag)
        return BuiltImage(tag, img.id, img.attrs["Size"], 0.0, "up to date")
    except docker.errors.ImageNotFound:
        pass
    if not shutil.which("mmdebstrap"):
        raise LabError("mmdebstrap is not installed, and the offline build needs it",
                       hint="sudo apt-get install mmdebstrap")
    sources = _debian_sources()
    with tempfile.TemporaryDirectory(prefix="socketlab-base-") as tmp:
        sources_file = Path(tmp) / "host.sources"
        sources_file.write_text(sources)
        rootfs = Path(tmp) / "rootfs.tar"
        _run_mmdebstrap(d.mmdebstrap_argv(pkgs, filters, str(sources_file)), rootfs)
        ui.progress(f"importing {rootfs.stat().st_size / 1e6:.0f} MB root filesystem as {tag} …")
        c.api.import_image_from_file(
            str(rootfs), repository=tag.split(":")[0], tag=tag.split(":")[1],
            changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     'CMD ["bash"]', f"LABEL {labels.LABEL}=1"])
    img = c.images.get(tag)
    return BuiltImage(tag, img.id, img.attrs["Size"], time.monotonic() - started, "imported")


def _debian_sources() -> str:
    """Where the offline build gets Debian bookworm from: the mirror named in
    SOCKETLAB_DEBIAN_MIRROR, else the host's own Debian entries (any release)."""
    named = os.environ.get(d.MIRROR_ENV, "").strip()
    if named:
        return d.mirror_sources(named)
    sources = d.debian_sources(_host_apt_sources())
    if not sources:
        raise LabError(f"no Debian entries in this host's apt sources ({APT_SOURCE_DIR}), "
                       "so there is no mirror to build the image from",
                       hint=f"name a Debian mirror: {d.MIRROR_ENV}=URI lab images build "
                            "(or build where a registry is reachable)")
    return sources


def _host_apt_sources() -> dict[str, str]:
    files = [p for p in APT_SOURCE_FILES if p.is_file()]
    if APT_SOURCE_DIR.is_dir():
        files += [p for p in APT_SOURCE_DIR.iterdir() if p.suffix in (".list", ".sources")]
    return {p.name: p.read_text() for p in files}


def _run_mmdebstrap(argv: list[str], rootfs: Path) -> None:
    ui.progress(f"mmdebstrap: building a Debian {d.SUITE} root filesystem from this host's apt sources …")
    tail: list[str] = []
    with rootfs.open("wb") as out, subprocess.Popen(
            argv, stdout=out, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stderr:
            line = line.rstrip()
            tail = (tail + [line])[-15:]
            # mmdebstrap's "I:" lines are its stages; show them as progress.
            if line.startswith("I: ") and "tempdir" not in line:
                ui.progress(f"  mmdebstrap {line[3:]}")
    if proc.returncode != 0:
        raise LabError("mmdebstrap failed:\n  " + "\n  ".join(tail))


def _host_image(base: BuiltImage, tag: str = "", extra: tuple[str, ...] = (), kind: str = "host") -> BuiltImage:
    """The host image (or, with `extra` packages, a toolchain image of `kind`) on `base`."""
    c = engine.client()
    tag = tag or d.HOST_IMAGE
    files = d.context_files()
    digest = d.context_digest(files, base.id + "".join(f"\0{p}" for p in extra))
    started = time.monotonic()
    previous = None
    try:
        img = c.images.get(tag)
        if img.labels.get(labels.LABEL_DIGEST) == digest and img.labels.get(labels.LABEL_PROGRAMS) == d.programs_digest(files):
            return BuiltImage(tag, img.id, img.attrs["Size"], 0.0, "up to date")
        previous = img.id
    except docker.errors.ImageNotFound:
        pass
    ui.progress(f"building {tag} on {base.tag} …")
    stream = c.api.build(
        fileobj=d.context_tar(files), custom_context=True, dockerfile="images/host/Dockerfile",
        tag=tag, buildargs={"BASE": base.tag, "EXTRA_PACKAGES": " ".join(extra)}, pull=False, rm=True,
        forcerm=True, decode=True,
        labels={labels.LABEL: "1", labels.LABEL_DIGEST: digest, labels.LABEL_PROGRAMS: d.programs_digest(files),
                **({labels.LABEL_IMAGE: kind} if kind != "host" else {})})
    log: list[str] = []
    for chunk in stream:
        if "error" in chunk:
            raise LabError("image build failed: " + chunk["error"].strip() + "\n  " + "\n  ".join(log[-15:]))
        text = chunk.get("stream", "").rstrip()
        if text:
            log.append(text)
            if text.startswith("Step "):
                ui.progress(f"  {text[:100]}")
    img = c.images.get(tag)
    if previous and previous != img.id:
        _remove_replaced(previous)
    return BuiltImage(tag, img.id, img.attrs["Size"], time.monotonic() - started, "built")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120]
