"""rongqi.locking: shared and exclusive flock, non-blocking, timeouts, clear open errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rongqi.locking import Lock, LockBusy, LockError, is_held


def test_exclusive_lock_excludes_a_second_open_in_the_same_process(tmp_path):
    path = str(tmp_path / "l")
    with Lock(path):
        assert not Lock(path, blocking=False).acquire()
        assert not Lock(path, shared=True, blocking=False).acquire()
    other = Lock(path, blocking=False)
    assert other.acquire()
    other.release()


def test_shared_locks_coexist_and_keep_out_an_exclusive_one(tmp_path):
    path = str(tmp_path / "l")
    with Lock(path, shared=True), Lock(path, shared=True):
        with pytest.raises(LockBusy):
            with Lock(path, blocking=False):
                pass


def test_timeout_gives_lockbusy_after_about_the_timeout(tmp_path):
    path = str(tmp_path / "l")
    with Lock(path):
        t = time.monotonic()
        with pytest.raises(LockBusy, match="timed out after 0.2s"):
            Lock(path, timeout=0.2).acquire()
        assert 0.19 <= time.monotonic() - t < 1.0


def test_timeout_succeeds_once_the_holder_lets_go(tmp_path):
    path = str(tmp_path / "l")
    child = subprocess.Popen([sys.executable, "-c",
                              "import fcntl,os,sys,time;fd=os.open(sys.argv[1],os.O_RDWR);"
                              "fcntl.flock(fd,fcntl.LOCK_EX);print('x',flush=True);time.sleep(0.3)",
                              path], stdout=subprocess.PIPE)
    open(path, "w").close()
    try:
        child.stdout.readline()
        lock = Lock(path, timeout=5)
        assert lock.acquire()
        lock.release()
    finally:
        child.wait()


def test_a_missing_directory_is_one_clear_error(tmp_path):
    with pytest.raises(LockError, match=r"cannot open lock file .*/nope/l: No such file"):
        Lock(str(tmp_path / "nope" / "l")).acquire()


def test_a_directory_lock_is_never_created(tmp_path):
    with pytest.raises(LockError) as info:
        Lock(str(tmp_path / "d"), directory=True).acquire()
    assert isinstance(info.value.oserror, FileNotFoundError)
    assert not os.path.exists(tmp_path / "d")
    os.mkdir(tmp_path / "d")
    with Lock(str(tmp_path / "d"), directory=True) as lock:
        assert lock.held


def test_create_false_never_makes_the_file(tmp_path):
    with pytest.raises(LockError) as info:
        Lock(str(tmp_path / "gone"), create=False).acquire()
    assert isinstance(info.value.oserror, FileNotFoundError)
    assert not os.path.exists(tmp_path / "gone")


def test_is_held_sees_another_process_holding_the_lock_and_its_death(tmp_path):
    path = str(tmp_path / "monitor.lock")
    assert not is_held(path)
    child = subprocess.Popen([sys.executable, "-c",
                              "import fcntl,os,sys,time;fd=os.open(sys.argv[1],os.O_RDWR|os.O_CREAT);"
                              "fcntl.flock(fd,fcntl.LOCK_EX);print('x',flush=True);time.sleep(60)",
                              path], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()
        assert is_held(path)
    finally:
        child.kill()
        child.wait()
    assert not is_held(path)


def test_the_runtime_state_lock_names_a_missing_container(tmp_path):
    from rongqi.errors import ContainerNotFound
    from rongqi.oci.statedir import Lock as StateLock

    with pytest.raises(ContainerNotFound, match="container abc does not exist"):
        StateLock(str(tmp_path / "abc"))
