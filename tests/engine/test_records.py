"""engine.records and engine.status: names reserved atomically, lookups by id/name/prefix,
sync folding the monitor's exit record or its death, and the transition table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from rongqi.engine import records as rec
from rongqi.engine import status as st
from rongqi.errors import ContainerStateImproper, EngineError, NameInUse, NoSuchContainer


@pytest.fixture
def records(tmp_path):
    return rec.Records(str(tmp_path / "root"), str(tmp_path / "run"))


def _make(records: rec.Records, name: str, status: str = st.CREATED) -> rec.Container:
    cid = rec.new_id()
    os.makedirs(os.path.join(records.containers_dir, cid))
    records.reserve_name(name, cid)
    c = rec.Container(records, cid, {"id": cid, "name": name, "created": rec.now()})
    c.state["status"] = status
    c.save_state()
    c.save_config()
    return c


def _claim(args: tuple[str, str, str]) -> bool:
    root, run, cid = args
    try:
        rec.Records(root, run).reserve_name("web", cid)
        return True
    except NameInUse:
        return False


def test_one_name_raced_by_twenty_processes_goes_to_exactly_one(tmp_path):
    root, run = str(tmp_path / "root"), str(tmp_path / "run")
    rec.Records(root, run)
    ids = [rec.new_id() for _ in range(20)]
    with ProcessPoolExecutor(8) as pool:
        won = list(pool.map(_claim, [(root, run, i) for i in ids]))
    assert won.count(True) == 1
    winner = ids[won.index(True)]
    assert rec.Records(root, run).name_owner("web") == winner
    assert sorted(os.listdir(os.path.join(root, "names"))) == ["web"]  # no temp files left


def test_name_in_use_names_the_owner_in_podmans_words(records):
    c = _make(records, "web")
    with pytest.raises(NameInUse) as info:
        records.reserve_name("web", rec.new_id())
    assert str(info.value) == (f'the container name "web" is already in use by {c.id}. You have '
                               "to remove that container to be able to reuse that name: that "
                               "name is already in use")


def test_a_name_is_released_only_by_its_owner(records):
    c = _make(records, "web")
    records.release_name("web", rec.new_id())
    assert records.name_owner("web") == c.id
    records.release_name("web", c.id)
    assert records.name_owner("web") == ""


@pytest.mark.parametrize("bad", ["", "-web", "a/b", "..", "we b", "ü"])
def test_bad_names_are_refused(records, bad):
    with pytest.raises(EngineError, match="names must match"):
        records.reserve_name(bad, rec.new_id())


def test_default_names_are_adjective_underscore_surname(records):
    name = records.unique_name(rec.new_id())
    adjective, _, surname = name.partition("_")
    assert adjective in rec._ADJECTIVES and surname in rec._SURNAMES


def test_lookup_by_id_name_and_unique_prefix(records):
    a = _make(records, "a")
    b = _make(records, "b")
    assert records.get(a.id).id == a.id
    assert records.get("b").id == b.id
    assert records.get(a.id[:12]).id == a.id
    with pytest.raises(NoSuchContainer, match='no container with name or ID "zz" found: no such '
                                              "container"):
        records.get("zz")


def test_an_ambiguous_prefix_is_an_error_not_a_guess(records):
    a = _make(records, "x")  # names that are no hex prefix, so only ids can match
    while True:
        b = _make(records, f"y{os.urandom(2).hex()}")
        if b.id[0] == a.id[0]:
            break
    with pytest.raises(EngineError, match="more than one result"):
        records.get(a.id[0])


def test_sync_folds_in_the_monitors_exit_record(records):
    c = _make(records, "web", st.RUNNING)
    c.state["pid"] = 4242
    c.save_state()
    os.makedirs(c.run_dir)
    with open(c.exit_path, "w") as f:
        json.dump({"pid": 4242, "exit_code": 3, "finished_at": "2026-01-01T00:00:00.000000000Z",
                   "oom_killed": True}, f)
    assert c.sync()
    assert (c.status, c.state["exit_code"], c.state["oom_killed"]) == (st.EXITED, 3, True)


def test_an_exit_record_of_an_earlier_run_is_ignored(records, tmp_path):
    c = _make(records, "web", st.RUNNING)
    c.state["pid"] = 4243
    c.save_state()
    os.makedirs(c.run_dir)
    with open(c.exit_path, "w") as f:
        json.dump({"pid": 1111, "exit_code": 3}, f)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl,os,sys,time;fd=os.open(sys.argv[1],os.O_RDWR|"
                               "os.O_CREAT);fcntl.flock(fd,fcntl.LOCK_EX);print(1,flush=True);"
                               "time.sleep(60)", c.monitor_lock_path], stdout=subprocess.PIPE)
    try:
        holder.stdout.readline()
        assert not c.sync() and c.status == st.RUNNING
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_monitor_without_an_exit_record_means_exited_with_a_reason(records):
    c = _make(records, "web", st.RUNNING)
    os.makedirs(c.run_dir)
    assert c.sync()
    assert (c.status, c.state["reason"], c.state["cleaned"]) == (st.EXITED, "monitor died", False)


def test_a_missing_run_dir_means_the_host_rebooted(records):
    c = _make(records, "web", st.RUNNING)
    assert c.sync()
    assert (c.status, c.state["reason"]) == (st.EXITED, "host rebooted")


def test_every_transition_goes_to_a_known_status():
    assert set(st.TRANSITIONS) == set(st.ALL)
    for targets in st.TRANSITIONS.values():
        assert targets <= set(st.ALL)
    assert not st.can(st.REMOVING, st.RUNNING)
    with pytest.raises(ContainerStateImproper, match="container state improper"):
        st.check(st.REMOVING, st.RUNNING, "nope")
