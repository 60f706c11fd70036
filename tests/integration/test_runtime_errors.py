"""Bad input to rongqi-oci: one clear line, a non-zero exit, and nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support.oci_cli import oci

pytestmark = pytest.mark.root


def assert_one_clear_line(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def edit_config(bundle: str, change) -> None:
    path = os.path.join(bundle, "config.json")
    cfg = json.load(open(path))
    change(cfg)
    json.dump(cfg, open(path, "w"))


def assert_nothing_left(root: str, cid: str) -> None:
    assert not os.path.exists(os.path.join(root, cid)), os.listdir(os.path.join(root, cid))


def test_missing_bundle(oci_binary, runtime_root, unique_id):
    r = oci(oci_binary, runtime_root, "create", "-b", "/nonexistent/bundle", unique_id)
    assert_one_clear_line(r, "/nonexistent/bundle", "--bundle")
    assert_nothing_left(runtime_root, unique_id)


def test_malformed_config_json(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["true"])
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write('{"ociVersion": "1.0.2", "process": {')
    r = oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id)
    assert_one_clear_line(r, "config.json", "malformed JSON")
    assert_nothing_left(runtime_root, unique_id)


@pytest.mark.parametrize("change, path", [
    (lambda c: c["process"].__setitem__("args", "sh"), "process.args: must be an array, not a string"),
    (lambda c: c["process"].__setitem__("args", []), "process.args"),
    (lambda c: c["process"]["user"].__setitem__("uid", "root"), "process.user.uid: must be an integer, not a string"),
    (lambda c: c["linux"]["namespaces"].append({"type": "netx"}), 'unknown namespace type \'netx\''),
    (lambda c: c["mounts"][1].__setitem__("options", "ro"), "mounts[1].options: must be an array, not a string"),
    (lambda c: c["process"]["rlimits"].__setitem__(0, {"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}),
     "process.rlimits[0].type: unknown rlimit"),
    (lambda c: c.pop("root"), "root: required"),
])
def test_wrongly_typed_config_names_the_json_path(oci_binary, runtime_root, bundle_factory, unique_id, change, path):
    bundle = bundle_factory(["true"])
    edit_config(bundle, change)
    r = oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id)
    assert_one_clear_line(r, path)
    assert_nothing_left(runtime_root, unique_id)


def test_id_already_in_use(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sleep", "30"])
    assert oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id).returncode == 0
    r = oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id)
    assert_one_clear_line(r, "already exists")
    # the first container is untouched
    assert os.path.exists(os.path.join(runtime_root, unique_id, "state.json"))
    assert oci(oci_binary, runtime_root, "delete", "--force", unique_id).returncode == 0


def test_pid_file_is_written(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    bundle = bundle_factory(["sleep", "30"])
    pid_file = tmp_path / "pid"
    assert oci(oci_binary, runtime_root, "create", "-b", bundle, "--pid-file", str(pid_file), unique_id).returncode == 0
    pid = int(pid_file.read_text())
    assert os.path.exists(f"/proc/{pid}")
    assert oci(oci_binary, runtime_root, "delete", "--force", unique_id).returncode == 0


def test_start_of_a_running_container(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sleep", "30"])
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id).returncode == 0
    r = oci(oci_binary, runtime_root, "start", unique_id)
    assert_one_clear_line(r, "cannot start an already running container")
    assert oci(oci_binary, runtime_root, "delete", "--force", unique_id).returncode == 0


def test_delete_of_a_running_container_without_force(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sleep", "30"])
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id).returncode == 0
    r = oci(oci_binary, runtime_root, "delete", unique_id)
    assert_one_clear_line(r, f"cannot delete container {unique_id} that is not stopped: running")
    assert oci(oci_binary, runtime_root, "delete", "--force", unique_id).returncode == 0


def test_program_not_found_fails_create(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["no-such-program"])
    r = oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id)
    assert_one_clear_line(r, "no-such-program", "executable file not found")
    assert_nothing_left(runtime_root, unique_id)


def test_rlimit_above_the_hard_limit_names_the_rlimit(oci_binary, runtime_root, bundle_factory, unique_id):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard nofile limit on this host")
    if "cap_sys_resource" in open("/proc/self/status").read().lower():
        pass
    bundle = bundle_factory(["true"], rlimits=[{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}])
    r = oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id)
    bounding = int(next(l for l in open("/proc/self/status") if l.startswith("CapBnd")).split()[1], 16)
    if bounding & (1 << 24):  # CAP_SYS_RESOURCE: the kernel lets root raise it
        assert r.returncode == 0
        oci(oci_binary, runtime_root, "delete", "--force", unique_id)
        return
    assert_one_clear_line(r, "RLIMIT_NOFILE", str(hard))
    assert_nothing_left(runtime_root, unique_id)


def test_unknown_command_and_flag(oci_binary, runtime_root):
    assert_one_clear_line(oci(oci_binary, runtime_root, "frobnicate"), "no such command")
    assert_one_clear_line(oci(oci_binary, runtime_root, "create", "--bogus", "x"), "flag provided but not defined: -bogus")


def test_unknown_container(oci_binary, runtime_root):
    for cmd in (["state", "nope"], ["start", "nope"], ["kill", "nope", "9"], ["delete", "nope"]):
        assert_one_clear_line(oci(oci_binary, runtime_root, *cmd), "container nope does not exist")


def test_version_prints_three_lines_like_runc(oci_binary):
    r = subprocess.run([oci_binary, "--version"], capture_output=True, text=True)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("rongqi-oci version ")
    assert lines[1].startswith("commit: ") and lines[2].startswith("spec: 1.")


def test_json_log_format_records_the_error(oci_binary, runtime_root, unique_id, tmp_path):
    log = tmp_path / "log.json"
    r = subprocess.run([oci_binary, "--root", runtime_root, "--log", str(log), "--log-format", "json",
                        "create", "-b", "/nonexistent", unique_id], capture_output=True, text=True)
    assert r.returncode != 0
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "/nonexistent" in entry["msg"] and entry["time"]


def test_spec_writes_a_config_that_runs(oci_binary, runtime_root, tmp_path, unique_id):
    from rongqi.image.busybox import make_rootfs

    bundle = tmp_path / "b"
    bundle.mkdir()
    make_rootfs(str(bundle / "rootfs"))
    assert subprocess.run([oci_binary, "spec", "-b", str(bundle)]).returncode == 0
    again = subprocess.run([oci_binary, "spec", "-b", str(bundle)], capture_output=True, text=True)
    assert_one_clear_line(again, "exists")
    cfg = json.load(open(bundle / "config.json"))
    assert cfg["process"]["terminal"] is True  # runc's template: `run` gives the shell a terminal
    cfg["process"]["terminal"] = False  # stdout through a pipe here
    cfg["process"]["args"] = ["sh", "-c", "echo spec-ok"]
    cfg["linux"]["cgroupsPath"] = f"/rongqi-test/{unique_id}"
    json.dump(cfg, open(bundle / "config.json", "w"))
    r = subprocess.run([oci_binary, "--root", runtime_root, "run", "-b", str(bundle), unique_id],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "spec-ok"


@pytest.mark.parametrize("change, words", [
    (lambda c: c["process"].__setitem__("apparmorProfile", "docker-default"), ["process.apparmorProfile", "AppArmor is not enabled"]),
    (lambda c: c["process"].__setitem__("selinuxLabel", "system_u:system_r:container_t:s0"), ["process.selinuxLabel", "SELinux is not enabled"]),
    (lambda c: c["linux"].__setitem__("intelRdt", {"closID": "x"}), ["linux.intelRdt", "no Intel RDT"]),
    (lambda c: c["linux"].__setitem__("personality", {"domain": "LINUX64"}), ["linux.personality.domain", "LINUX64"]),
    (lambda c: c["process"].__setitem__("scheduler", {"policy": "SCHED_FAST"}), ["process.scheduler.policy"]),
])
def test_what_the_host_cannot_enforce_is_refused(oci_binary, runtime_root, bundle_factory, unique_id, change, words):
    from rongqi.linux import lsm

    if "AppArmor" in words[-1] and lsm.apparmor_enabled() or "SELinux" in words[-1] and lsm.selinux_enabled():
        pytest.skip("this host has the LSM")
    if "Intel RDT" in words[-1] and os.path.exists("/sys/fs/resctrl/schemata"):
        pytest.skip("this host has resctrl")
    bundle = bundle_factory(["true"])
    edit_config(bundle, change)
    r = oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id)
    assert_one_clear_line(r, *words)
    assert_nothing_left(runtime_root, unique_id)


def test_personality_scheduler_and_io_priority_are_applied(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sh", "-c", "uname -m; cat /proc/self/stat | cut -d' ' -f19,41; ionice -p $$ 2>/dev/null || true"])

    def change(c):
        c["linux"]["personality"] = {"domain": "LINUX32"}
        c["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 5}
        c["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}

    edit_config(bundle, change)
    r = subprocess.run([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    if os.uname().machine == "x86_64":
        assert lines[0] == "i686"  # LINUX32 personality
    nice, policy = lines[1].split()
    assert (nice, policy) == ("5", "3")  # SCHED_BATCH = 3


def test_flags_rongqi_oci_cannot_honour_are_refused(oci_binary, runtime_root):
    assert_one_clear_line(oci(oci_binary, runtime_root, "--rootless", "maybe", "list"), "--rootless")
