"""Hosts that run an image of their own, on real containers: a service image as the server
behind the router (nothing of socketlab's inside it), ready conditions that fail bring-up
in bounded time with the host's last output, an image without a shell, and an unknown
image refused before anything starts."""
from __future__ import annotations

import io
import json
import secrets
import subprocess
import tarfile

import docker.errors
import pytest

from lab import engine, labels
from lab.images import definition
from lab.programs.shared.errors import LabError
from lab.testing import open_lab
from lab.topology.docker_lab import find_containers

TOKEN = secrets.token_hex(3)   # this session's own image tags

# The service: our host image with every socketlab program removed, answering TCP on 8080
# in upper case with a program of its own (the "engineer's service").
SERVICE = f"""FROM {definition.HOST_IMAGE}
RUN rm -rf /usr/local/lib/socketlab /usr/local/bin/* && mkdir /srv/app && printf '%s\\n' \\
 'import socket, sys' \\
 's = socket.create_server(("", int(sys.argv[1])), reuse_port=False)' \\
 'print("service listening", flush=True)' \\
 'while True:' \\
 '    c, _ = s.accept()' \\
 '    with c:' \\
 '        data = c.recv(1024)' \\
 '        c.sendall(data.upper())' > /srv/app/upper.py
WORKDIR /srv/app
CMD ["python3", "upper.py", "8080"]
"""
# No shell at all: one dynamically linked program and the libraries it needs.
BARE = f"""FROM {definition.HOST_IMAGE} AS build
RUN mkdir /out && cp --parents /usr/bin/sleep $(ldd /usr/bin/sleep | grep -o '/[^ ]*') /out
FROM scratch
COPY --from=build /out/ /
CMD ["/usr/bin/sleep", "infinity"]
"""


def _build(dockerfile: str, tag: str) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    api = engine.client().api
    for chunk in api.build(fileobj=buf, custom_context=True, tag=tag, pull=False, rm=True, forcerm=True,
                           decode=True, labels={labels.LABEL: "1"}):
        assert "error" not in chunk, chunk
    return tag


@pytest.fixture(scope="module")
def service_images():
    """A service image with none of our programs, and one with no shell: name -> tag."""
    service, bare = f"socketlab-test-service:{TOKEN}", f"socketlab-test-bare:{TOKEN}"
    _build(SERVICE, service)
    _build(BARE, bare)
    yield {"service": service, "bare": bare}
    for tag in (service, bare):
        try:
            engine.client().images.remove(tag, force=True)
        except docker.errors.NotFound:
            pass


def test_service_image_as_server_behind_the_router_under_loss(service_images, tmp_path):
    with open_lab(clients=1, images={"server": {"image": service_images["service"], "ready": {"port": 8080}}},
                  work=tmp_path) as lab:
        # nothing of ours inside it; yet its default route is the router (the gateway)
        assert lab.exec("server", ["test", "-e", "/usr/local/lib/socketlab"]).exit_code == 1
        assert lab.exec("server", ["which", "host-role"]).exit_code != 0
        lab.impair("clients <-> servers", loss="20%")
        with lab.capture() as cap:      # captured on the router, like every host's traffic
            results = [lab.run("client1", "tcp-client --json --host server --port 8080 --timeout 30 "
                                          f"'hello {i} through the router'", timeout=60) for i in range(3)]
        for i, r in enumerate(results):
            assert r.json and r.json.get("received") == f"HELLO {i} THROUGH THE ROUTER", r
        assert any(b"HELLO 0 THROUGH THE ROUTER" in data for data in cap.pcaps.values())
        # the same limits, labels and capabilities as every host
        ctr = engine.client().containers.get(f"{lab.name}-server")
        host_config = ctr.attrs["HostConfig"]
        assert host_config["PidsLimit"] == 512 and host_config["Memory"] == 512 * 2 ** 20
        assert host_config["CapDrop"] == ["NET_RAW"] and not host_config["CapAdd"]
        assert ctr.labels[labels.LABEL_LAB] == lab.name and ctr.labels[labels.LABEL_ROLE] == "server"
        assert ctr.attrs["Config"]["Image"] == service_images["service"]
        # its default route is the router's gateway address on its network
        trace = lab.exec("server", ["python3", "-c", "print(open('/proc/net/route').read())"])
        gateway_hex = "".join(reversed([f"{int(p):02X}" for p in lab.address("router", "servers").split(".")]))
        assert gateway_hex in trace.stdout, trace.stdout
    assert find_containers(lab.name) == []


def test_extra_host_whose_port_never_opens_fails_bring_up_in_bounded_time(service_images, tmp_path, lab_name):
    name = lab_name("neverready")
    with pytest.raises(LabError) as info:
        open_lab(clients=0, name=name, work=tmp_path,
                 hosts={"app": {"network": "servers", "image": service_images["service"],
                                "command": ["sh", "-c", "echo app booting; exec sleep infinity"],
                                "ready": {"port": 9999, "timeout": "5s"}}})
    message = str(info.value)
    assert "app did not become ready" in message and "port 9999" in message and "within 5 s" in message
    assert "app booting" in message, message       # its last output lines
    assert find_containers(name) == []


def test_host_that_exits_early_fails_bring_up_with_its_last_lines(service_images, tmp_path, lab_name):
    name = lab_name("exits")
    with pytest.raises(LabError) as info:
        open_lab(clients=0, name=name, work=tmp_path,
                 hosts={"app": {"network": "servers", "image": service_images["service"],
                                "command": ["sh", "-c", "echo starting up; echo cannot bind 8080 >&2; exit 3"],
                                "ready": {"log": "listening"}}})
    message = str(info.value)
    assert "app did not become ready" in message and "cannot bind 8080" in message, message
    assert find_containers(name) == []


@pytest.fixture
def _lab(lab_command):
    """`lab ARGS...`, whatever its exit status."""
    return lambda *args, **kwargs: lab_command(*args, check=False, timeout=180, **kwargs)


def test_lab_up_with_an_image_without_a_shell(service_images, _lab, lab_name):
    name = lab_name("bare")
    up = _lab("up", "--name", name, "--clients", "1", "--host", f"bare=servers:{service_images['bare']}", "--json")
    try:
        assert up.returncode == 0, up.stderr
        hosts = json.loads(up.stdout)["hosts"]
        assert hosts["bare"]["image"] == service_images["bare"] and "image" not in hosts["client1"]
        ran = _lab("exec", "--lab", name, "bare", "--", "/usr/bin/sleep", "0")
        assert ran.returncode == 0, ran.stderr
        shell = _lab("shell", "--lab", name, "bare", stdin=subprocess.DEVNULL)
        assert shell.returncode == 2, shell.stderr
        assert "bare has no shell" in shell.stderr and "lab exec bare --" in shell.stderr
        # and our own client still reaches it through the router (ping by the gateway route)
        ping = _lab("exec", "--lab", name, "client1", "--", "ping", "-c", "1", "-W", "5", "bare")
        assert ping.returncode == 0, ping.stdout + ping.stderr
    finally:
        _lab("down", name)
    assert find_containers(name) == []


def test_unknown_image_is_refused_before_anything_starts(tmp_path, _lab, lab_name):
    name = lab_name("noimage")
    up = _lab("up", "--name", name, "--image", "server=socketlab-no-such-image:never")
    assert up.returncode == 2, up.stderr
    assert "socketlab-no-such-image:never" in up.stderr and "not in the engine" in up.stderr
    assert find_containers(name) == []
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: x\ndescription: y\ntopology:\n  server: {image: 'socketlab-no-such-image:never'}\n")
    assert _lab("validate", str(scenario)).returncode == 0
    checked = _lab("validate", "--check-images", str(scenario))
    assert checked.returncode == 2 and "not in the engine" in checked.stdout, checked.stdout


def test_lab_run_with_a_service_image_as_the_server(service_images, tmp_path, _lab):
    scenario = tmp_path / "own-server.yaml"
    scenario.write_text(f"""name: own-server
description: our client through the router to a server of its own image
topology:
  server: {{image: '{service_images["service"]}', ready: {{port: 8080}}}}
steps:
  - at: 0s
    name: ask
    run: tcp-client --json --host server --port 8080 'to your service'
    on: client1
expect:
  - ask.received: TO YOUR SERVICE
""")
    done = _lab("run", scenario, "--json", "--runs-dir", tmp_path / "runs", "--work", tmp_path / "work")
    assert done.returncode == 0, done.stderr[-3000:]
