"""The suite's pytest plugin: leak checks around every test, root skips, runtime fixtures.

tests/conftest.py star-imports it; a throw-away test dir can do the same (the leak checker's
own tests do), so the fixtures are defined once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.leaks import LeakChecker, become_subreaper

# A tag unique to this pytest session: it goes into container ids and cgroup paths so that
# the leak checker can tell this session's resources from those of another developer's run.
# Its shape, p<pid>x<hex>, lets another session's checker recognise it (see LeakChecker).
SESSION_TAG = f"p{os.getpid()}x{secrets.token_hex(2)}"
_ids = itertools.count(1)

IS_ROOT = os.geteuid() == 0
REPO = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "root: needs root and real kernel features")
    config.addinivalue_line("markers", "clients: drives a real peer (containerd, registry, skopeo)")
    config.addinivalue_line("markers", "no_leak_check: the test manages leaks itself")
    if not config.pluginmanager.has_plugin("rongqi-fixture-events"):
        config.pluginmanager.register(_FixtureEvents(), "rongqi-fixture-events")
    # No test asks Docker Hub (nor its DNS name: this host's network is loopback alone):
    # every rongqi the suite runs, in-process or not, reads a registries.json that blocks
    # docker.io unless the test names its own, so `pull busybox` makes the built-in image.
    if "RONGQI_REGISTRIES" not in os.environ:
        global _REGISTRIES_DIR
        _REGISTRIES_DIR = tempfile.mkdtemp(prefix="rongqi-test-registries-")
        conf = Path(_REGISTRIES_DIR) / "registries.json"
        conf.write_text('{"blocked": ["docker.io"]}\n')
        os.environ["RONGQI_REGISTRIES"] = str(conf)


_REGISTRIES_DIR = ""


def pytest_unconfigure(config: pytest.Config) -> None:
    if _REGISTRIES_DIR:
        shutil.rmtree(_REGISTRIES_DIR, ignore_errors=True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") and not IS_ROOT:
        pytest.skip("needs root (run the suite as root: sudo ./scripts/test.sh)")


# -- leak checking ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def leak_checker(tmp_path_factory: pytest.TempPathFactory) -> LeakChecker:
    become_subreaper()
    return LeakChecker(str(tmp_path_factory.getbasetemp()), SESSION_TAG)


def _judge(checker: LeakChecker, before: Any, what: str) -> bool:
    """Fail `what` for what it leaked; True when the host is as compare's snapshot saw it
    (nothing was cleaned up), so that snapshot can be the next test's `before`."""
    ours, ambiguous = checker.compare(before)
    problems = ours.lines()
    failed = checker.cleanup(ours)
    exact = not ours
    # A process this session started is always its descendant (the session is a subreaper),
    # so a "rongqi" process outside its tree is someone else's: a shell command, another
    # session. It is worth a warning when it outlives a short wait, never a failure or a kill.
    strays = checker.still_running(ambiguous.procs) if ambiguous.procs else []
    ambiguous.procs = []
    notes = [str(p) for p in strays]
    if ambiguous:
        if not checker.other_sessions():
            problems += ambiguous.lines()
            failed += checker.cleanup(ambiguous, kill_processes=False)
            exact = False
        else:
            notes += ambiguous.lines()
    if notes:
        warnings.warn(
            f"{what}: new rongqi resources not attributable to this test session "
            "(another session or a shell made them?): " + "; ".join(notes),
            stacklevel=1,
        )
    if problems:
        msg = f"{what} leaked:\n  " + "\n  ".join(problems)
        if failed:
            msg += "\ncleanup failed for:\n  " + "\n  ".join(failed)
        pytest.fail(msg, pytrace=False)
    return exact


# Fixture set-ups and finalizations other than _leak_check's own, counted (the hooks below):
# the snapshot a test's check ends with is the next test's `before` only while this count has
# not moved since, i.e. no fixture of any scope made or removed anything in between (a module
# fixture starting a daemon, one set up ahead of _leak_check). It saves a snapshot a test.
_FIXTURE_EVENTS = [0]
_REUSABLE: list[Any] = [None, -1]   # (snapshot, _FIXTURE_EVENTS when it was taken)


class _FixtureEvents:
    """Registered as a plugin of its own (pytest_configure): a conftest's hooks would only
    hear the fixtures of nodes under its directory, not the session-scoped ones (whose node
    is the session, at the rootdir), e.g. containerd's and dockerd's daemons."""

    @staticmethod
    def pytest_fixture_setup(fixturedef: Any, request: Any) -> None:
        if fixturedef.argname != "_leak_check":
            _FIXTURE_EVENTS[0] += 1

    @staticmethod
    def pytest_fixture_post_finalizer(fixturedef: Any, request: Any) -> None:
        if fixturedef.argname != "_leak_check":
            _FIXTURE_EVENTS[0] += 1


# What dead earlier sessions left, found at this session's start: the first test fails with it.
_STALE: list[str] = []


def _dead_sessions_check(checker: LeakChecker) -> str:
    """Find and remove what test sessions that are gone left (support/leaks.py says how each
    is proven theirs); a message for the first test, or ""."""
    from support.leaks import dead_sessions_leftovers, remove_stale
    try:
        from rongqi.engine.networks import host_lock
    except ImportError:
        host_lock = contextlib.nullcontext  # type: ignore[assignment]
    try:
        with host_lock():  # no setup of a live session runs while we look and undo
            stale = dead_sessions_leftovers(checker.tmp_parent)
            if not stale:
                return ""
            conf = os.path.join(checker.basetemp, "stale-netavark")
            failed = remove_stale(stale, checker, conf)
    except OSError as err:  # no /run/rongqi to lock (not root): nothing of ours to find
        return "" if not IS_ROOT else f"checking for dead sessions' leftovers failed: {err}"
    msg = ("resources left by earlier test sessions that are no longer running (killed, or "
           "their teardown failed) were found at this session's start and removed:\n  "
           + "\n  ".join(stale.lines()))
    if stale.why:
        msg += "\nfrom: " + "; ".join(stale.why[:10])
    if failed:
        msg += ("\ncould not remove (do it by hand: ip netns delete, umount -l, "
                "iptables -D/-X, rmdir the cgroup):\n  " + "\n  ".join(failed))
    return msg + "\n(this test did not run: the rest of the session starts clean)"


@pytest.fixture(scope="session", autouse=True)
def _session_leak_check(leak_checker: LeakChecker) -> Iterator[None]:
    """Catches what module- and session-scoped fixtures leave behind; first, what dead
    sessions left (reported as the first test's failure)."""
    msg = _dead_sessions_check(leak_checker)
    if msg:
        _STALE.append(msg)
    from support.leaks import HostBaseline
    baseline = HostBaseline() if IS_ROOT else None
    before = leak_checker.snapshot()
    yield
    try:
        _judge(leak_checker, before, "the test session")
    finally:
        if not leak_checker.other_sessions():
            leak_checker.remove_shared_parents()
            # netavark's base chains and the exe guard's binds, made once by this session
            failed = baseline.restore() if baseline is not None else []
            if failed:
                warnings.warn("could not remove host-wide state this session made: "
                              + "; ".join(failed), stacklevel=1)


@pytest.fixture(autouse=True)
def _leak_check(request: pytest.FixtureRequest, leak_checker: LeakChecker) -> Iterator[None]:
    # Autouse and function-scoped: set up before, torn down after, the test's own fixtures,
    # so runtime_root's force-delete has run when this compares.
    if _STALE:
        pytest.fail(_STALE.pop(), pytrace=False)
    if request.node.get_closest_marker("no_leak_check"):
        _REUSABLE[:] = [None, -1]
        yield
        return
    snap, at = _REUSABLE
    _REUSABLE[:] = [None, -1]
    before = snap if snap is not None and at == _FIXTURE_EVENTS[0] else leak_checker.snapshot()
    yield
    if _judge(leak_checker, before, request.node.nodeid):
        _REUSABLE[:] = [leak_checker.last_after, _FIXTURE_EVENTS[0]]


# -- runtime fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def oci_binary() -> str:
    """Path of the rongqi-oci under test: $RONGQI_OCI, else the checkout's bin/rongqi-oci."""
    path = os.environ.get("RONGQI_OCI") or str(REPO / "bin" / "rongqi-oci")
    if not os.access(path, os.X_OK):
        pytest.fail(f"rongqi-oci not executable at {path} (set RONGQI_OCI)", pytrace=False)
    return path


def new_id(prefix: str = "rongqi") -> str:
    """A container id unique on this machine and traceable to this session."""
    return f"{prefix}-{SESSION_TAG}-{next(_ids)}"


@pytest.fixture
def unique_id() -> str:
    return new_id()


def force_delete_all(binary: str, root: str) -> list[str]:
    """Force-delete every container whose state lives under root; return runtime errors."""
    errors = []
    try:
        ids = sorted(os.listdir(root))
    except FileNotFoundError:
        return errors
    for cid in ids:
        if not os.path.isdir(os.path.join(root, cid)):
            continue
        r = subprocess.run(
            [binary, "--root", root, "delete", "--force", cid],
            capture_output=True, text=True, timeout=60,
        )
        if r.returncode != 0 and os.path.isdir(os.path.join(root, cid)):
            errors.append(f"{cid}: {r.stderr.strip() or r.stdout.strip()}")
    return errors


@pytest.fixture
def runtime_root(tmp_path: Path, oci_binary: str) -> Iterator[str]:
    """A fresh `--root` dir; every container left in it is force-deleted at teardown."""
    root = tmp_path / "runtime-root"
    root.mkdir()
    yield str(root)
    errors = force_delete_all(oci_binary, str(root))
    if errors:
        # The leak check that follows reports what was really left (processes, mounts).
        warnings.warn("rongqi-oci delete --force failed: " + "; ".join(errors), stacklevel=1)


BundleFactory = Callable[..., str]


@pytest.fixture
def bundle_factory(tmp_path: Path) -> BundleFactory:
    """make_bundle into tmp: factory(args, **make_spec options) -> bundle dir.

    The cgroupsPath defaults to /rongqi-test/<session tag>-<n>, so leaks are attributable.
    """
    from rongqi.image.busybox import make_bundle

    counter = itertools.count(1)

    def factory(args: list[str], **opts: Any) -> str:
        n = next(counter)
        opts.setdefault("cgroups_path", f"/rongqi-test/{SESSION_TAG}-{next(_ids)}")
        return make_bundle(str(tmp_path / f"bundle{n}"), args, **opts)

    return factory


__all__ = [
    "pytest_configure",
    "pytest_unconfigure",
    "pytest_runtest_setup",
    "leak_checker",
    "_session_leak_check",
    "_leak_check",
    "oci_binary",
    "unique_id",
    "runtime_root",
    "bundle_factory",
]
