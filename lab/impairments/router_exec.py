"""Running commands and moving files in a router container: the one place the host side
touches the router's insides (every other module goes through ``RouterShell``).

``run`` raises ``RouterCommandError`` (with the command and its stderr) on a non-zero
exit; nothing here logs a failure and carries on.  Files go in and out as tar archives
(``put_archive``/``get_archive``), so no shell quoting is involved.
"""
from __future__ import annotations

import io
import tarfile
import time
from typing import Mapping, Sequence

from ..topology.docker_lab import ExecResult, exec_in
from .errors import RouterCommandError, RouterImpairmentError


class RouterShell:
    """Commands and files in one container (the router)."""

    def __init__(self, container):
        self.container = container
        self.api = container.client.api
        self._dirs: set = set()

    def run(self, argv: Sequence[str]) -> ExecResult:
        """Run one command; raise RouterCommandError unless it exits 0."""
        result = exec_in(self.container, list(argv))
        if result.exit_code != 0:
            raise RouterCommandError(list(argv), result)
        return result

    def try_run(self, argv: Sequence[str]) -> ExecResult:
        """Run one command and return its result whatever its exit status."""
        return exec_in(self.container, list(argv))

    def mkdir(self, directory: str) -> None:
        if directory not in self._dirs:
            self.run(["mkdir", "-p", directory])
            self._dirs.add(directory)

    def remove_dir(self, directory: str) -> None:
        """Remove ``directory`` and what is in it (whatever is there: nothing raises)."""
        self.try_run(["rm", "-rf", directory])
        self._dirs.discard(directory)

    def put_files(self, directory: str, files: Mapping[str, bytes], mode: int = 0o600) -> None:
        """Write files (full paths, all in ``directory``) into the container at once."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path, data in files.items():
                info = tarfile.TarInfo(path.rpartition("/")[2])
                info.size, info.mode, info.mtime = len(data), mode, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        self.mkdir(directory)
        if not self.container.put_archive(directory, buf.getvalue()):
            raise RouterImpairmentError(f"could not write {', '.join(files)} into the router")

    def get_file(self, path: str) -> bytes:
        """Read one regular file out of the container."""
        stream, _stat = self.container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            extracted = tar.extractfile(tar.getmembers()[0])
            if extracted is None:
                raise RouterImpairmentError(f"{path} in the router is not a regular file")
            return extracted.read()

    def read_text(self, path: str) -> str:
        return self.try_run(["cat", path]).stdout
