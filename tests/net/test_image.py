"""What is inside the host image, checked in a real container."""
import docker
import pytest

from lab import labels
from lab.images import definition


@pytest.fixture(scope="module")
def run():
    client = docker.from_env()

    def _run(*argv):
        out = client.containers.run(definition.HOST_IMAGE, list(argv), remove=True, network_mode="none",
                                    labels={labels.LABEL: "1", labels.LABEL_LAB: "image-test"})
        return out.decode()
    return _run


def test_every_listed_package_is_installed(run):
    manifest = run("cat", "/usr/local/share/socketlab/manifest.txt")
    installed = {line.split()[0] for line in manifest.splitlines()}
    missing = set(definition.packages()) - installed
    assert not missing


def test_the_lab_programs_are_commands(run):
    out = run("sh", "-c", "for p in tcp-server udp-server tcp-client udp-client udp-measure tcp-measure "
                          "host-role kernel-probe impairer; do command -v $p; done")
    assert len(out.split()) == 9


def test_no_mirror_address_is_left_in_the_image(run):
    # The offline base is made through the host's apt sources; they must not stay inside.
    assert run("sh", "-c", "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | "
                           "grep -v '^#' | grep -c http || true").strip() in ("0", "")


def test_ping_needs_no_raw_socket_capability(run):
    assert "security.capability" not in run("python3", "-c", "import os; print(os.listxattr('/usr/bin/ping'))")


def test_image_stays_under_200_mb():
    size = docker.from_env().images.get(definition.HOST_IMAGE).attrs["Size"]
    assert size < 200_000_000, f"{size / 1e6:.0f} MB"
