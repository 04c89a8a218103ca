"""Ownership on shared engines: which labs this machine may judge stale and remove (pure)."""
from lab import labels
from lab.labels import Owner

HERE = Owner("laptop", "boot-1", 100, "500", "pid:[1]", "machine-a")
ALIVE = {100: "500"}


def start_of(pid):
    return ALIVE.get(pid)


def owner(**changes):
    fields = dict(host="laptop", boot="boot-1", pid=200, start="900", pidns="pid:[1]", machine="machine-a")
    fields.update(changes)
    return Owner(**fields)


def test_a_gone_process_of_this_machine_is_stale():
    assert labels.owner_gone(owner(), HERE, start_of)


def test_another_machines_lab_is_never_stale_here_even_with_the_same_host_name():
    assert not labels.owner_gone(owner(machine="machine-b"), HERE, start_of)
    assert not labels.owner_gone(owner(machine="machine-b", boot="boot-0"), HERE, start_of)


def test_a_living_owner_of_this_machine_is_not_stale():
    assert not labels.owner_gone(owner(pid=100, start="500"), HERE, start_of)


def test_an_older_lab_without_a_machine_falls_back_to_the_host_name():
    assert labels.owner_gone(owner(machine=""), HERE, start_of)
    assert not labels.owner_gone(owner(machine="", host="server"), HERE, start_of)


def test_the_machine_is_written_on_every_lab_class_labs_too():
    ephemeral = labels.lab_labels("l", "i1", owner())
    assert Owner.from_labels(ephemeral).machine == "machine-a"
    assert labels.machine_of(labels.lab_labels("l", "i1", None, machine="machine-c")) == "machine-c"


def test_down_all_removes_this_machines_labs_and_unlabelled_ones_only():
    assert labels.mine({labels.LABEL_MACHINE: "machine-a"}, "machine-a")
    assert labels.mine({}, "machine-a")       # made before machines were labelled
    assert not labels.mine({labels.LABEL_MACHINE: "machine-b"}, "machine-a")
    assert labels.mine({labels.LABEL_MACHINE: "machine-b"}, "machine-a", any_owner=True)


def test_the_machine_id_comes_from_the_env_then_etc_then_the_state_folder():
    assert labels.choose_machine_id("  ci-runner-2 ", "abc\n", "def") == "ci-runner-2"
    assert labels.choose_machine_id("", "abc\n", "def\n") == "abc"
    assert labels.choose_machine_id("", "", "def\n") == "def"
    assert labels.choose_machine_id("", " \n", "") == ""


def test_a_machine_without_an_id_makes_one_and_keeps_it(tmp_path, monkeypatch):
    monkeypatch.delenv(labels.MACHINE_ID_ENV, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr(labels, "_read", lambda path: path.read_text() if path.exists() and tmp_path in path.parents else "")
    first = labels.machine_id()
    assert len(first) == 32 and (tmp_path / "socketlab" / "machine-id").read_text().strip() == first
    assert labels.machine_id() == first


def test_the_env_override_names_a_second_machine(monkeypatch):
    monkeypatch.setenv(labels.MACHINE_ID_ENV, "second")
    assert labels.machine_id() == "second" and labels.current_owner().machine == "second"
