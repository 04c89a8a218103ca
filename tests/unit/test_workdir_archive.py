"""Work folders by archive (lab/topology/workdir.py): what goes in, what comes back (pure
planning; the I/O half is run against a fake engine that keeps archives in memory)."""
import io
import json
import tarfile

from lab.topology import workdir


def members(archive: bytes) -> dict:
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        return {m.name: (m, t.extractfile(m).read() if m.isfile() else None) for m in t}


def test_pack_puts_the_folder_at_work_owned_by_root_with_its_manifest(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("print(1)\n")
    (tmp_path / "sub" / "b.txt").write_bytes(b"bee")
    archive, manifest = workdir.pack(tmp_path)
    got = members(archive)
    assert set(got) == {"work", "work/a.py", "work/sub", "work/sub/b.txt", ".socketlab-work.json"}
    assert all(m.uid == 0 and m.gid == 0 for m, _ in got.values())
    assert got["work/sub/b.txt"][1] == b"bee"
    assert json.loads(got[".socketlab-work.json"][1]) == manifest == {
        "a.py": workdir._digest(b"print(1)\n"), "sub/b.txt": workdir._digest(b"bee")}


def test_only_new_or_changed_files_come_back():
    manifest = {"a": "1", "b": "2"}
    assert workdir.changes(manifest, {"a": "1", "b": "9", "c": "3"}) == {"b", "c"}


def test_the_first_host_in_order_wins_a_conflict_and_it_is_reported():
    plan = workdir.plan_back({"x": "0"}, [("router", {}), ("server", {"x": "1", "s": "5"}),
                                           ("client1", {"x": "2", "c": "7"}), ("client2", {"x": "1"})])
    assert plan.take == {"x": "server", "s": "server", "c": "client1"}
    assert plan.conflicts == {"x": ["server", "client1"]}


def test_the_same_new_content_on_two_hosts_is_no_conflict():
    plan = workdir.plan_back({}, [("server", {"out": "1"}), ("client1", {"out": "1"})])
    assert plan.take == {"out": "server"} and plan.conflicts == {}


def test_names_that_would_leave_the_folder_are_refused():
    assert workdir.safe_name("work/a/b.txt") == "a/b.txt"
    assert workdir.safe_name("work/a/../b") == "b"
    for bad in ("work", "work/", "work/..", "work/../etc/passwd", "other/x", "/work/x"):
        assert workdir.safe_name(bad) is None, bad


class FakeEngine:
    """put_archive/get_archive of one container, in memory: what a host's /work holds."""

    def __init__(self):
        self.files: dict[str, bytes] = {}

    def put_archive(self, container, path, data):
        assert path == "/"
        for name, (m, content) in members(data).items():
            if m.isfile():
                self.files[name] = content

    def get_archive(self, container, path):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for name, content in self.files.items():
                if name == path.lstrip("/") or name.startswith(path.lstrip("/") + "/"):
                    info = tarfile.TarInfo(name)
                    info.size = len(content)
                    t.addfile(info, io.BytesIO(content))
            evil = tarfile.TarInfo("work/link")
            evil.type, evil.linkname = tarfile.SYMTYPE, "/etc/passwd"
            if path == "/work":
                t.addfile(evil)
        return iter([buf.getvalue()]), {}


def test_a_hosts_changes_come_back_and_the_users_other_files_stay(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "given.txt").write_text("given")
    (folder / "mine.txt").write_text("as put in")
    archive, _ = workdir.pack(folder)
    host = FakeEngine()
    workdir.put_into(host, "c", archive)
    host.files["work/out/result.txt"] = b"made in the host"
    host.files["work/given.txt"] = b"changed in the host"
    (folder / "mine.txt").write_text("edited here meanwhile")   # unchanged in the host: stays
    work = workdir.take_from(host, "c", "server")
    plan = workdir.write_back(folder, [work])
    assert plan.take == {"out/result.txt": "server", "given.txt": "server"}
    assert (folder / "out" / "result.txt").read_text() == "made in the host"
    assert (folder / "given.txt").read_text() == "changed in the host"
    assert (folder / "mine.txt").read_text() == "edited here meanwhile"
    assert not (folder / "link").exists()                       # links never come back


def test_nothing_is_written_through_a_link_in_the_folder(tmp_path):
    folder, outside = tmp_path / "work", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (folder / "out").symlink_to(outside)
    host = FakeEngine()
    workdir.put_into(host, "c", workdir.pack(folder)[0])
    host.files["work/out/x"] = b"escape"
    workdir.write_back(folder, [workdir.take_from(host, "c", "server")])
    assert list(outside.iterdir()) == []


def test_a_push_carries_only_new_and_changed_files_and_keeps_deleted_ones_in_the_manifest(tmp_path):
    (tmp_path / "same.txt").write_text("same")
    (tmp_path / "changed.txt").write_text("old")
    (tmp_path / "gone.txt").write_text("gone")
    _, sent = workdir.pack(tmp_path)
    (tmp_path / "changed.txt").write_text("new")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "added.txt").write_text("added")
    archive, manifest, changed = workdir.pack_changes(tmp_path, sent)
    assert changed == ["changed.txt", "sub/added.txt"]
    files = members(archive)
    assert {"work/changed.txt", "work/sub/added.txt", "work/sub"} <= set(files)
    assert "work/same.txt" not in files and "work/gone.txt" not in files
    assert manifest["gone.txt"] == sent["gone.txt"]          # a host's untouched copy is no change
    assert manifest["same.txt"] == sent["same.txt"] and manifest["changed.txt"] != sent["changed.txt"]
    assert json.loads(files[workdir.MANIFEST.lstrip("/")][1]) == manifest
    assert workdir.pack_changes(tmp_path, manifest)[2] == []


def test_the_signature_sees_a_changed_size_or_time(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    before = workdir.signature(tmp_path)
    assert workdir.signature(tmp_path) == before
    (tmp_path / "a.txt").write_text("three")
    assert workdir.signature(tmp_path) != before
