"""POST /containers/{id}/update driven by Debian's docker CLI and docker-py's container.update:
the running container's cgroup changes, inspect shows the new values and a restart keeps
them; a restart policy set on a running container takes effect; dockerd's checks (400),
conflicts (409, `Cannot update container ID: ...`) and unknown containers (404)."""

from __future__ import annotations

import json
import os
import time

import docker.errors
import pytest

pytestmark = pytest.mark.root


def _cgroup_file(serve, ref: str, controller: str, name: str) -> str:
    path = serve.rongqi.inspect(ref)["State"]["CgroupPath"]
    with open(f"/sys/fs/cgroup/{controller}{path}/{name}") as f:
        return f.read().strip()


def _host(serve, ref: str) -> dict:
    return json.loads(serve.docker("inspect", ref).stdout)[0]["HostConfig"]


def test_docker_update_changes_the_live_cgroup_and_inspect_and_survives_restart(serve):
    serve.docker("run", "-d", "--name", "u", "--network", "none", "-m", "64m", "busybox",
                 "sleep", "600")
    r = serve.docker("update", "--cpus", "0.5", "--memory", "32m", "--memory-swap", "96m",
                     "--pids-limit", "50", "--cpu-shares", "256", "--blkio-weight", "200",
                     "--memory-reservation", "16m", "--restart", "on-failure:3", "u")
    assert r.stdout.strip() == "u" and r.stderr == ""
    want = {("memory", "memory.limit_in_bytes"): str(32 << 20),
            ("memory", "memory.soft_limit_in_bytes"): str(16 << 20),
            ("cpu", "cpu.cfs_quota_us"): "50000", ("cpu", "cpu.shares"): "256",
            ("pids", "pids.max"): "50"}
    if os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
        want[("memory", "memory.memsw.limit_in_bytes")] = str(96 << 20)
    for (ctrl, name), value in want.items():
        assert _cgroup_file(serve, "u", ctrl, name) == value, name
    hc = _host(serve, "u")
    assert (hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"], hc["NanoCpus"],
            hc["CpuShares"], hc["PidsLimit"], hc["BlkioWeight"]) == (
        32 << 20, 96 << 20, 16 << 20, 500_000_000, 256, 50, 200)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    serve.docker("restart", "-t", "0", "u")
    for (ctrl, name), value in want.items():
        assert _cgroup_file(serve, "u", ctrl, name) == value, name


def test_docker_update_errors_are_dockerds(serve):
    serve.docker("run", "-d", "--name", "v", "--network", "none", "busybox", "sleep", "600")
    cid = serve.docker("inspect", "-f", "{{.Id}}", "v").stdout.strip()
    cases = [
        (["--memory", "4m"], "Minimum memory limit allowed is 6MB"),
        # no memory limit yet, so no memoryswap one: dockerd's famous conflict
        (["--memory", "32m"], f"Cannot update container {cid}: Memory limit should be "
                              "smaller than already set memoryswap limit, update the "
                              "memoryswap at the same time"),
        (["--blkio-weight", "5"], "Range of blkio weight is from 10 to 1000"),
        (["--cpuset-cpus", "64"], "Requested CPUs are not available - requested 64, "
                                  "available: "),
        (["--restart", "sometimes"], "invalid restart policy 'sometimes'"),
    ]
    for args, words in cases:
        p = serve.docker("update", *args, "v", check=False)
        assert p.returncode == 1, args
        assert f"Error response from daemon: {words}" in p.stderr, (args, p.stderr)
    serve.docker("update", "--cpus", "1", "v")
    p = serve.docker("update", "--cpu-quota", "50000", "v", check=False)
    assert p.returncode == 1 and (
        f"Cannot update container {cid}: Conflicting options: CPU Quota cannot be updated as "
        "NanoCPUs has already been set") in p.stderr
    p = serve.docker("update", "--cpus", "1", "nosuch", check=False)
    assert p.returncode == 1 and "No such container: nosuch" in p.stderr
    # raw: the status codes
    assert serve.http.post("/v1.41/containers/v/update", json={"Memory": 1}).status_code == 400
    r = serve.http.post("/v1.41/containers/v/update", json={"Memory": 32 << 20})
    assert r.status_code == 409 and r.json()["message"].startswith("Cannot update container")
    r = serve.http.post("/v1.41/containers/v/update", json={"Memory": "lots"})
    assert r.status_code == 400 and "cannot unmarshal string" in r.json()["message"]
    assert serve.http.post("/v1.41/containers/nosuch/update", json={}).status_code == 404
    assert _host(serve, "v")["Memory"] == 0                 # none of them changed anything


def test_docker_py_update_of_created_and_running_containers(serve):
    client = serve.client()
    c = client.containers.create("busybox", "sleep 600", name="py", network_mode="none",
                                 mem_limit="64m")
    out = c.update(mem_limit="48m", cpu_shares=300, restart_policy={"Name": "always"})
    assert out == {"Warnings": []}
    c.reload()
    hc = c.attrs["HostConfig"]
    assert (hc["Memory"], hc["CpuShares"], hc["RestartPolicy"]["Name"]) == (48 << 20, 300,
                                                                           "always")
    c.start()
    assert _cgroup_file(serve, "py", "memory", "memory.limit_in_bytes") == str(48 << 20)
    assert _cgroup_file(serve, "py", "cpu", "cpu.shares") == "300"
    c.update(cpu_quota=40000, cpu_period=80000, memswap_limit="200m", mem_limit="100m")
    assert _cgroup_file(serve, "py", "cpu", "cpu.cfs_quota_us") == "40000"
    assert _cgroup_file(serve, "py", "cpu", "cpu.cfs_period_us") == "80000"
    assert _cgroup_file(serve, "py", "memory", "memory.limit_in_bytes") == str(100 << 20)
    c.reload()
    hc = c.attrs["HostConfig"]
    assert (hc["CpuQuota"], hc["CpuPeriod"], hc["NanoCpus"]) == (40000, 80000, 0)
    # the policy set before the start restarts the running container when it dies
    pid = c.attrs["State"]["Pid"]
    assert pid > 1
    os.kill(pid, 9)
    deadline = time.monotonic() + 30
    while True:
        c.reload()
        if c.attrs["RestartCount"] >= 1 and c.attrs["State"]["Running"]:
            break
        assert time.monotonic() < deadline, c.attrs["State"]
        time.sleep(0.2)
    with pytest.raises(docker.errors.APIError) as err:
        c.update(cpu_shares=-1)
    assert err.value.response.status_code == 400
    auto = client.containers.create("busybox", "true", network_mode="none", auto_remove=True)
    with pytest.raises(docker.errors.APIError) as err:
        auto.update(restart_policy={"Name": "always"})
    assert err.value.response.status_code == 409
    assert "Restart policy cannot be updated because AutoRemove is enabled" in str(err.value)
