"""A lab's work folder (`--work`, a grade's submission copy, the plugin's folders) on an
engine that cannot see this machine's files: copied into each host by archive, and the
changes brought back by archive when the lab is removed (docs/remote-engines.md).

The rule, the same wherever the engine is:

* before a host starts, the folder is copied into its /work (`put_archive`), with a
  manifest of what was copied (each file's SHA-256) at MANIFEST in the host;
* when the lab is removed (`lab down`, the end of `lab run`, a test's lab closing), each
  host's /work comes back (`get_archive`): a regular file that is new or differs from the
  manifest is written into the folder; files a host deleted stay; links, devices and
  paths leaving the folder are never written;
* each host has its own copy while the lab runs: a file one host writes is not seen by
  another until it comes back. Two hosts that changed the same file: the first in host
  order (router, servers, clients...) is written, and the conflict is reported.

A local engine (it sees this machine's files) bind-mounts the folder instead, which gives
the same folder at the end (and sharing while it runs); SOCKETLAB_BIND_MOUNTS=0 forces
archives there too. Pure planning (`pack`, `changes`, `plan_back`) apart from the I/O
(`put_into`, `take_from`, `bring_back`).
"""
from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional

MANIFEST = "/.socketlab-work.json"   # in each host: the files copied in, path -> sha256
WORK = "work"                         # the folder in each host: /work
SPOOL_BYTES = 64 << 20                # a host's /work is kept in memory up to this, then on disk


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(folder: Path) -> tuple[bytes, dict[str, str]]:
    """A tar of `folder` as /work (owned by root, as the hosts' programs run), with its
    manifest at MANIFEST; and the manifest. Links are kept as links; only regular files
    are in the manifest. (The changes since nothing was sent: every file.)"""
    data, manifest, _changed = pack_changes(folder, {})
    return data, manifest


def signature(folder: Path) -> dict[str, tuple[int, int]]:
    """Each regular file's (size, mtime in ns): cheap to read before every run, to see
    whether the folder changed at all since the last push."""
    out: dict[str, tuple[int, int]] = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            out[path.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def pack_changes(folder: Path, sent: Mapping[str, str]) -> tuple[bytes, dict[str, str], list[str]]:
    """What reaches hosts that already have `sent` (path -> sha256): a tar of the folder's
    regular files that are new or differ from `sent` (with every folder and link, so new
    ones exist), and the new manifest at MANIFEST; the new manifest; the files changed.
    A file deleted from the folder keeps its entry, so a host's untouched copy of it does
    not count as the host's change when the lab is removed."""
    buf = io.BytesIO()
    manifest = dict(sent)
    changed: list[str] = []
    with tarfile.open(fileobj=buf, mode="w") as tar:
        root = _as_root(tar.gettarinfo(str(folder), arcname=WORK))
        root.mode = 0o777            # any program of any user in the host may write its outputs
        tar.addfile(root)
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            info = _as_root(tar.gettarinfo(str(path), arcname=f"{WORK}/{rel}"))
            if info.isfile():
                data = path.read_bytes()
                digest = _digest(data)
                if sent.get(rel) != digest:
                    manifest[rel] = digest
                    changed.append(rel)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            elif info.isdir() or info.issym():
                tar.addfile(info)
        text = json.dumps(manifest, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST.lstrip("/"))
        info.size, info.mode = len(text), 0o644
        tar.addfile(info, io.BytesIO(text))
    return buf.getvalue(), manifest, changed


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def safe_name(name: str) -> Optional[str]:
    """A member of a host's /work archive as a path inside the folder, or None if it would
    leave the folder ("..", absolute) or is the folder itself."""
    parts = name.split("/", 1)
    if parts[0] != WORK or len(parts) == 1:
        return None
    rel = posixpath.normpath(parts[1])
    if rel in (".", "") or rel.startswith(("/", "../")) or rel == "..":
        return None
    return rel


def changes(manifest: Mapping[str, str], files: Mapping[str, str]) -> set[str]:
    """Of a host's regular files (path -> sha256), those new or changed since it got `manifest`."""
    return {path for path, digest in files.items() if manifest.get(path) != digest}


@dataclass
class BackPlan:
    """Which host each changed file comes back from, and the files changed on several."""
    take: dict[str, str] = field(default_factory=dict)          # path -> host
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # path -> hosts, first is taken


def plan_back(manifest: Mapping[str, str], hosts: Iterable[tuple[str, Mapping[str, str]]]) -> BackPlan:
    """From each host's files (in host order) what to write back. Two hosts with the same
    new content are no conflict; different contents are: the first host's is taken."""
    plan = BackPlan()
    taken_digest: dict[str, str] = {}
    for host, files in hosts:
        for path in sorted(changes(manifest, files)):
            if path not in plan.take:
                plan.take[path], taken_digest[path] = host, files[path]
            elif files[path] != taken_digest[path]:
                plan.conflicts.setdefault(path, [plan.take[path]]).append(host)
    return plan


# --- I/O -------------------------------------------------------------------------------

def put_into(api, container: str, archive: bytes) -> None:
    """Copy a `pack`ed folder into a created (not yet started) container."""
    api.put_archive(container, "/", archive)


@dataclass
class HostWork:
    """A host's /work as it came back: its regular files' digests, and the archive to read them from."""
    host: str
    files: dict[str, str]
    manifest: dict[str, str]
    tar: object = None                       # an open file holding the tar

    def read(self, path: str) -> bytes:
        self.tar.seek(0)
        with tarfile.open(fileobj=self.tar, mode="r") as t:
            member = t.getmember(f"{WORK}/{path}")
            return t.extractfile(member).read()


def take_from(api, container: str, host: str) -> Optional[HostWork]:
    """A host's /work and its manifest (None: a host with no manifest, made with a bind mount)."""
    import docker.errors
    try:
        stream, _ = api.get_archive(container, MANIFEST)
        manifest_tar = io.BytesIO(b"".join(stream))
        stream, _ = api.get_archive(container, "/work")
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=manifest_tar, mode="r") as t:
        member = t.next()
        manifest = json.loads(t.extractfile(member).read()) if member else {}
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    for chunk in stream:
        spool.write(chunk)
    spool.seek(0)
    files: dict[str, str] = {}
    with tarfile.open(fileobj=spool, mode="r") as t:
        for member in t:
            rel = safe_name(member.name)
            if rel is not None and member.isfile():
                files[rel] = _digest(t.extractfile(member).read())
    return HostWork(host, files, manifest, spool)


def write_back(folder: Path, works: list[HostWork]) -> BackPlan:
    """Write what the hosts changed into `folder` (the plan of plan_back). A path whose
    parent in the folder is a link, or is not a folder, is not written."""
    manifest = works[0].manifest if works else {}
    plan = plan_back(manifest, [(w.host, w.files) for w in works])
    by_host = {w.host: w for w in works}
    root = folder.resolve()
    for path, host in sorted(plan.take.items()):
        target = root / path
        existing = target.parent
        while not existing.exists() and not existing.is_symlink():
            existing = existing.parent
        if existing.resolve() != existing or not existing.is_dir():
            continue          # through a link, or under a file: never outside the folder
        if target.is_symlink() or (target.exists() and not target.is_file()):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(by_host[host].read(path))
    for w in works:
        w.tar.close()
    return plan


ROLE_ORDER = {"router": 0, "server": 1, "client": 2}


def bring_back(api, filters: dict, machine: str) -> list[str]:
    """Before a lab's hosts are removed: bring each one's /work back into the folder named
    on it (labels.LABEL_WORK), for the hosts this machine made by archive. Returns what
    could not be brought back, and the conflicts, one line each (nothing: all is well)."""
    import docker.errors
    from .. import labels
    found: dict[str, list[tuple[tuple, str, str]]] = {}
    for ctr in api.containers(all=True, filters=filters):
        tags = ctr.get("Labels") or {}
        folder = tags.get(labels.LABEL_WORK)
        if folder and labels.machine_of(tags) == machine:
            host = tags.get(labels.LABEL_HOST, ctr["Id"][:12])
            key = (ROLE_ORDER.get(tags.get(labels.LABEL_ROLE, ""), 3), host)
            found.setdefault(folder, []).append((key, ctr["Id"], host))
    problems = []
    for folder, hosts in found.items():
        works = []
        for _, ctr_id, host in sorted(hosts):
            try:
                work = take_from(api, ctr_id, host)
            except (docker.errors.APIError, tarfile.TarError, ValueError) as exc:
                problems.append(f"{host}'s /work could not be brought back to {folder}: {exc}")
                continue
            if work is not None:
                works.append(work)
        if not Path(folder).is_dir():
            problems.append(f"the work folder {folder} is gone: the hosts' /work was not brought back")
            continue
        plan = write_back(Path(folder), works)
        problems += [f"{path} was changed on {', '.join(hosts)}: {folder} has {hosts[0]}'s"
                     for path, hosts in sorted(plan.conflicts.items())]
    return problems
