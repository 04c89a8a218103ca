"""Which engine `lab` talks to: the docker CLI's order, contexts read through the SDK's
context API, in temporary docker config folders (no engine is contacted)."""
import hashlib
import json

import pytest

from lab import engine
from lab.programs.shared.errors import LabEnvironmentError


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    """An empty docker config folder, with contexts 'colima' (unix) and 'server' (tcp)."""
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    for name, host in (("colima", "unix:///home/me/.colima/docker.sock"), ("server", "tcp://class.example:2375")):
        # what `docker context create NAME --docker host=HOST` writes
        meta = tmp_path / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
        meta.mkdir(parents=True)
        (meta / "meta.json").write_text(json.dumps({"Name": name, "Metadata": {}, "Endpoints": {
            "docker": {"Host": host, "SkipTLSVerify": False}}}))
    return tmp_path


def use(config, name):
    (config / "config.json").write_text(json.dumps({"currentContext": name}))


def test_no_context_chosen_is_the_local_socket(docker_config):
    choice = engine.choose()
    assert (choice.context, choice.source, choice.host) == ("default", "default", "unix:///var/run/docker.sock")
    assert choice.scheme == "unix" and "unix socket" in choice.describe()


def test_the_config_files_current_context_is_used(docker_config):
    use(docker_config, "colima")
    choice = engine.choose()
    assert choice.host == "unix:///home/me/.colima/docker.sock"
    assert choice.source == "the docker config's currentContext" and "'colima'" in choice.describe()


def test_docker_context_wins_over_the_config_file(docker_config, monkeypatch):
    use(docker_config, "colima")
    monkeypatch.setenv("DOCKER_CONTEXT", "server")
    choice = engine.choose()
    assert (choice.context, choice.source, choice.host) == ("server", "DOCKER_CONTEXT", "tcp://class.example:2375")
    assert "TCP without TLS" in choice.describe()


def test_docker_host_wins_over_every_context(docker_config, monkeypatch):
    use(docker_config, "colima")
    monkeypatch.setenv("DOCKER_CONTEXT", "server")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2399")
    choice = engine.choose()
    assert (choice.context, choice.host) == ("DOCKER_HOST", "tcp://127.0.0.1:2399")
    assert choice.describe().endswith("chosen by DOCKER_HOST")


def test_docker_host_with_tls_from_the_environment(docker_config, monkeypatch, tmp_path):
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("")
    monkeypatch.setenv("DOCKER_HOST", "tcp://class.example:2376")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    choice = engine.choose()
    assert choice.host == "tcp://class.example:2376" and choice.tls
    assert "TLS" in choice.describe() and "without" not in choice.describe()


def test_an_environment_passed_in_is_read_instead_of_the_process_one(docker_config):
    choice = engine.choose({"DOCKER_HOST": "ssh://me@class.example"})
    assert choice.scheme == "ssh" and "over ssh" in choice.describe()


@pytest.mark.parametrize("where", ["env", "config"])
def test_a_context_that_does_not_exist_is_one_clear_error(docker_config, monkeypatch, where):
    if where == "env":
        monkeypatch.setenv("DOCKER_CONTEXT", "nope")
    else:
        use(docker_config, "nope")
    with pytest.raises(LabEnvironmentError, match="context 'nope'.*does not exist") as info:
        engine.choose()
    assert info.value.exit_code == 3 and "docker context ls" in info.value.hint


def test_ssh_without_paramiko_says_which_extra_to_install(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_paramiko(name, *args, **kwargs):
        if name == "paramiko":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_paramiko)
    with pytest.raises(LabEnvironmentError, match="ssh, which needs paramiko") as info:
        engine._needs_paramiko(engine.EngineChoice("DOCKER_HOST", "DOCKER_HOST", "ssh://me@server"))
    assert "socketlab[ssh]" in info.value.hint


def test_an_ssh_host_that_refuses_is_one_line_exit_3(monkeypatch):
    # paramiko's refusals (a key not accepted, an unknown host key) are not OSErrors.
    AuthenticationException = type("AuthenticationException", (Exception,),
                                   {"__module__": "paramiko.ssh_exception"})

    def refuse(*args, **kwargs):
        raise AuthenticationException("Authentication failed.")

    monkeypatch.setenv("DOCKER_HOST", "ssh://me@class.example")
    monkeypatch.setattr(engine, "_connect", refuse)
    engine.chosen.cache_clear()
    engine.client.cache_clear()
    try:
        with pytest.raises(LabEnvironmentError, match="ssh://me@class.example over ssh: "
                                                      "AuthenticationException: Authentication failed") as info:
            engine.client()
        assert info.value.exit_code == 3 and "\n" not in str(info.value)
    finally:
        engine.chosen.cache_clear()
        engine.client.cache_clear()


def test_local_means_the_engine_host_is_this_machine():
    assert engine.is_local("laptop", here="laptop")
    assert not engine.is_local("docker-desktop", here="laptop")
    assert not engine.is_local("", here="")


def test_podman_and_rootless_engines_are_told_apart_by_what_they_say():
    docker_version = {"Components": [{"Name": "Engine", "Version": "26.1.5"}]}
    podman_version = {"Components": [{"Name": "Podman Engine", "Version": "4.3.1"}]}
    assert engine.kind_of(docker_version, {"SecurityOptions": ["name=seccomp,profile=builtin"]}) == \
        ("Docker Engine", False)
    assert engine.kind_of(podman_version, {"SecurityOptions": ["name=rootless"]}) == ("Podman", True)
    assert engine.kind_of({}, {}) == ("Docker Engine", False)


def test_doctor_tells_what_differs_on_podman_and_rootless():
    from lab.doctor import kind_check
    rootful = kind_check("Podman", False, "5.4.2")
    assert rootful.status == "info" and rootful.detail.startswith("Podman 5.4.2 (rootful)")
    assert "own API" in rootful.detail and "NET_ADMIN" in rootful.detail and "by id" in rootful.detail
    rootless = kind_check("Podman", True, "5.4.2")
    assert rootless.status == "warn" and "cannot load kernel modules" in rootless.detail
    assert "fallbacks" in rootless.detail and rootless.fix
    docker_rootless = kind_check("Docker Engine", True)
    assert "own API" not in docker_rootless.detail and "rootless" in docker_rootless.detail
