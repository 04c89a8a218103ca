"""What the host image is made of. Pure functions: no Docker, no subprocesses.

Both build paths read the same two files in images/host/ (the package list and
the dpkg path filters) and the same Dockerfile, so they give the same contents.
"""
from __future__ import annotations

import hashlib
import os
import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOST_DIR = PROJECT_ROOT / "images" / "host"
# The host image's tag. SOCKETLAB_IMAGE names another (compose.yaml reads the same
# variable), so two checkouts with different programs can share one engine.
IMAGE_ENV = "SOCKETLAB_IMAGE"
DEFAULT_HOST_IMAGE = "socketlab-host:latest"
HOST_IMAGE = os.environ.get(IMAGE_ENV) or DEFAULT_HOST_IMAGE
BASE_REPOSITORY = "socketlab-base"
OFFICIAL_BASE = ("debian", "bookworm-slim")
SUITE = "bookworm"
# minbase is what the official slim image is made from (essential + apt).
VARIANT = "minbase"


# Toolchain images: the host image plus a compiler or a JDK, for students' programs in other
# languages (`lab images build --with c`). Made by the same two paths as the host image: the
# offline base then carries these packages too, and the Dockerfile installs what is missing.
TOOLCHAINS: dict[str, tuple[str, ...]] = {
    "c": ("gcc", "make", "libc6-dev"),
    "java": ("default-jdk-headless",),
}


def toolchain_image(name: str, host_image: str | None = None) -> str:
    """The tag of a toolchain image, next to the host image's: socketlab-host:latest gives
    socketlab-host:c; another tag (SOCKETLAB_IMAGE=socketlab-host:mine) socketlab-host:mine-c,
    so checkouts that share an engine keep their toolchain images apart too."""
    if name not in TOOLCHAINS:
        raise ValueError(f"no toolchain {name!r}; toolchains: {', '.join(TOOLCHAINS)}")
    ref = host_image or HOST_IMAGE
    repo, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        repo, tag = ref, "latest"
    return f"{repo}:{name}" if tag == "latest" else f"{repo}:{tag}-{name}"


def read_list(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a one-item-per-line file."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def packages() -> list[str]:
    return read_list(HOST_DIR / "packages.txt")


def dpkg_filters() -> list[str]:
    return read_list(HOST_DIR / "dpkg-excludes")


def context_files(root: Path = PROJECT_ROOT) -> list[tuple[str, Path]]:
    """(name in the build context, file on disk): what the Dockerfile COPYs."""
    files = sorted(p for p in (root / "images" / "host").iterdir() if p.is_file())
    files += sorted((root / "lab" / "programs").rglob("*.py"))
    return [(p.relative_to(root).as_posix(), p) for p in files if "__pycache__" not in p.parts]


def context_digest(files: list[tuple[str, Path]], base_id: str) -> str:
    """Identifies a host image: same files on the same base give the same digest."""
    h = hashlib.sha256(base_id.encode())
    for name, path in files:
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def programs_digest(files: list[tuple[str, Path]]) -> str:
    """Identifies what a host image holds of this checkout, whatever its base: a lab
    refuses an image whose programs are older than the tree's."""
    return context_digest(files, "")


def context_tar(files: list[tuple[str, Path]]) -> io.BytesIO:
    """The build context as an in-memory tar with fixed metadata (reproducible)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def base_tag(pkgs: list[str], filters: list[str]) -> str:
    """Tag of the offline base: changes whenever its inputs change."""
    h = hashlib.sha256("\n".join([SUITE, VARIANT, *pkgs, "--", *filters]).encode())
    return f"{SUITE}-{h.hexdigest()[:12]}"


def offline_base_image(extra: tuple[str, ...] = ()) -> str:
    """The offline base's image reference (repository:tag) for this checkout (with `extra`
    packages: a toolchain's base)."""
    return f"{BASE_REPOSITORY}:{base_tag([*packages(), *extra], dpkg_filters())}"


@dataclass(frozen=True)
class AptSource:
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str = ""

    def deb822(self) -> str:
        lines = [
            "Types: deb",
            f"URIs: {' '.join(self.uris)}",
            f"Suites: {' '.join(self.suites)}",
            f"Components: {' '.join(self.components)}",
        ]
        if self.signed_by:
            lines.append(f"Signed-By: {self.signed_by}")
        return "\n".join(lines) + "\n"


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Entries of a deb822 .sources file (only binary `deb`, only enabled ones)."""
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        sources.append(AptSource(
            tuple(fields.get("uris", "").split()),
            tuple(fields.get("suites", "").split()),
            tuple(fields.get("components", "").split()),
            fields.get("signed-by", ""),
        ))
    return sources


def parse_one_line_sources(text: str) -> list[AptSource]:
    """Entries of a one-line-style sources.list (`deb [opts] URI SUITE COMP...`)."""
    sources = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        signed_by = ""
        options = re.match(r"deb\s+\[([^\]]*)\]\s+", line)
        if options:
            for opt in options.group(1).split():
                if opt.startswith("signed-by="):
                    signed_by = opt.split("=", 1)[1]
            line = "deb " + line[options.end():]
        parts = line.split()
        if len(parts) >= 4:
            sources.append(AptSource((parts[1],), (parts[2],), tuple(parts[3:]), signed_by))
    return sources


# Debian's release names (and aliases): an entry naming one of these is a Debian
# mirror, whatever release the host runs. Ubuntu's and others' suites are not.
DEBIAN_SUITES = frozenset({
    "stretch", "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
    "oldoldstable", "oldstable", "stable", "testing", "unstable",
})
# The environment variable that names a Debian mirror where the host has none.
MIRROR_ENV = "SOCKETLAB_DEBIAN_MIRROR"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def suite_for(host_suite: str, suite: str) -> str | None:
    """The suite of `suite`'s release that plays the role `host_suite` plays for its
    own release, or None when it has no counterpart (or is not Debian's):
    trixie -> bookworm, trixie-updates -> bookworm-updates, trixie-security (and
    buster's `buster/updates`) -> bookworm-security. Backports, proposed-updates and
    experimental are left out: the image is made of the release itself."""
    release, sep, pocket = host_suite.replace("/updates", "-security").partition("-")
    if release not in DEBIAN_SUITES:
        return None
    if not sep:
        return suite
    if pocket in ("updates", "security"):
        return f"{suite}-{pocket}"
    return None


def debian_sources(files: dict[str, str], suite: str = SUITE) -> str:
    """The host's Debian apt entries, moved to `suite`, as one deb822 text.

    `files` maps a sources file's name to its text. Any Debian entry counts
    whatever release the host runs (a trixie host builds the bookworm image from
    its own mirror); its URIs and keys are kept, only the suite changes. Entries of
    other vendors' repositories are left out: the image needs only Debian main.
    """
    chosen: list[AptSource] = []
    for name, text in sorted(files.items()):
        parsed = parse_deb822_sources(text) if name.endswith(".sources") else parse_one_line_sources(text)
        for src in parsed:
            if "main" not in src.components:
                continue
            suites = tuple(dict.fromkeys(
                s for s in (suite_for(host, suite) for host in src.suites) if s))
            entry = AptSource(src.uris, suites, ("main",), src.signed_by)
            if suites and entry not in chosen:
                chosen.append(entry)
    return "\n".join(src.deb822() for src in chosen)


def mirror_sources(uri: str, suite: str = SUITE, keyring: str = DEBIAN_KEYRING) -> str:
    """Sources for a Debian mirror named by hand (SOCKETLAB_DEBIAN_MIRROR), for hosts
    whose own apt sources have none (Ubuntu, Fedora...)."""
    src = AptSource((uri,), (suite, f"{suite}-updates"), ("main",),
                    keyring if Path(keyring).is_file() else "")
    return src.deb822()


def mmdebstrap_argv(pkgs: list[str], filters: list[str], sources_file: str) -> list[str]:
    """mmdebstrap writing a root filesystem tar to stdout.

    The mirror comes only from `sources_file` (made from the host's own apt
    configuration); the hook removes it again so no address stays in the image.
    """
    argv = ["mmdebstrap", f"--variant={VARIANT}", f"--include={','.join(pkgs)}", "--format=tar"]
    argv += [f"--dpkgopt={f}" for f in filters]
    # The man pages are filtered out, but a JDK's postinst links its man pages as
    # alternatives and fails when /usr/share/man/man1 is missing (as on debian:*-slim).
    argv.append('--essential-hook=mkdir -p "$1"/usr/share/man/man1')
    argv.append('--customize-hook=rm -f "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*')
    argv += [SUITE, "-", sources_file]
    return argv
