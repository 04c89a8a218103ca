import pytest

from lab.images import definition as d

DEB822 = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://other.example/repo
Suites: nodistro
Components: main
"""


def test_debian_sources_keep_only_bookworm_main_binary_entries():
    text = d.debian_sources({"debian.sources": DEB822})
    assert "mirror.example/debian\n" in text and "debian-security" in text
    assert "other.example" not in text and "deb-src" not in text
    assert "contrib" not in text
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" in text


def test_one_line_sources_are_read_too():
    text = d.debian_sources({"sources.list": "# comment\ndeb [signed-by=/k.gpg] http://m.example/debian bookworm main\n"
                                             "deb http://m.example/debian buster main\n"})
    assert "URIs: http://m.example/debian" in text and "Suites: bookworm\n" in text
    assert "buster" not in text and "Signed-By: /k.gpg" in text


def test_a_host_of_another_release_builds_bookworm_from_its_own_mirror():
    trixie = DEB822.replace("bookworm", "trixie") + (
        "\nTypes: deb\nURIs: http://mirror.example/debian\nSuites: trixie-backports\nComponents: main\n")
    text = d.debian_sources({"debian.sources": trixie})
    assert "trixie" not in text
    assert "URIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n" in text
    assert "URIs: http://mirror.example/debian-security\nSuites: bookworm-security\n" in text
    assert "backports" not in text and "other.example" not in text
    old = d.debian_sources({"sources.list": "deb http://m.example/debian-security buster/updates main\n"})
    assert "Suites: bookworm-security\n" in old


def test_other_vendors_suites_are_not_debian():
    assert d.debian_sources({"sources.list": "deb http://archive.example/ubuntu jammy main\n"}) == ""


def test_a_mirror_named_by_hand_gets_the_bookworm_suites():
    text = d.mirror_sources("http://m.example/debian", keyring="/nonexistent")
    assert "URIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n" in text
    assert "Signed-By" not in text


def test_package_list_and_filters_are_the_shared_files():
    pkgs = d.packages()
    for needed in ("python3", "iproute2", "nftables", "iptables", "tcpdump", "iperf3", "procps",
                   "netcat-openbsd", "iputils-ping"):
        assert needed in pkgs
    assert any(f.startswith("path-exclude=/usr/share/doc") for f in d.dpkg_filters())


def test_mmdebstrap_gets_no_mirror_address_from_the_project():
    argv = d.mmdebstrap_argv(["python3"], ["path-exclude=/x/*"], "/tmp/host.sources")
    assert argv[-3:] == [d.SUITE, "-", "/tmp/host.sources"]
    assert not any("http" in a for a in argv)
    assert "--dpkgopt=path-exclude=/x/*" in argv


def test_base_tag_changes_with_its_inputs():
    assert d.base_tag(["a"], []) == d.base_tag(["a"], [])
    assert d.base_tag(["a"], []) != d.base_tag(["a", "b"], [])


def test_context_holds_the_dockerfile_and_programs_and_nothing_else():
    names = [n for n, _ in d.context_files()]
    assert "images/host/Dockerfile" in names and "images/host/packages.txt" in names
    assert "lab/programs/tcp_server.py" in names
    assert "lab/programs/shared/impairment.py" in names
    assert all(n.startswith(("images/host/", "lab/programs/")) for n in names)
    digest = d.context_digest(d.context_files(), "base1")
    assert digest == d.context_digest(d.context_files(), "base1") != d.context_digest(d.context_files(), "base2")


def test_the_dockerfile_copies_the_programs_folder_whole():
    """The image takes lab/programs/ as it is: no list of modules to keep in step."""
    text = (d.HOST_DIR / "Dockerfile").read_text()
    copied = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY lab/")]
    assert copied == [["lab/programs/"]]


def test_the_programs_folder_imports_alone_without_third_party_packages(tmp_path):
    """What the image holds imports with the standard library alone (no yaml, docker...)
    and nothing from outside lab/programs/: every module, from a copy of that folder only."""
    import shutil
    import subprocess
    import sys
    root = d.PROJECT_ROOT / "lab" / "programs"
    shutil.copytree(root, tmp_path / "lab" / "programs", ignore=shutil.ignore_patterns("__pycache__"))
    modules = sorted(".".join(("lab", "programs", *p.relative_to(root).with_suffix("").parts))
                     .removesuffix(".__init__") for p in root.rglob("*.py"))
    assert "lab.programs.shared.oneline" in modules and "lab.programs.impair_agent" in modules
    done = subprocess.run([sys.executable, "-S", "-c", f"import {', '.join(modules)}"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_toolchain_images_sit_next_to_the_host_image():
    assert d.toolchain_image("c", "socketlab-host:latest") == "socketlab-host:c"
    assert d.toolchain_image("java", "socketlab-host:latest") == "socketlab-host:java"
    assert d.toolchain_image("c", "socketlab-host:mine") == "socketlab-host:mine-c"
    assert d.toolchain_image("c", "registry:5000/socketlab-host") == "registry:5000/socketlab-host:c"
    with pytest.raises(ValueError, match="toolchains: c, java"):
        d.toolchain_image("rust", "socketlab-host:latest")


def test_a_toolchain_base_is_a_base_of_its_own():
    assert d.offline_base_image(d.TOOLCHAINS["c"]) != d.offline_base_image()
    assert d.offline_base_image(d.TOOLCHAINS["c"]) != d.offline_base_image(d.TOOLCHAINS["java"])
    assert "gcc" in d.TOOLCHAINS["c"] and "make" in d.TOOLCHAINS["c"]
