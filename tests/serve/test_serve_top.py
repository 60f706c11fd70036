"""GET /containers/{id}/top as dockerd answers it: the host's ps(1) over the container's
pids (ps_args passed through, default -ef), so a container without ps works; only the
container's processes are listed; dockerd's errors for a stopped container and a `k=PID`
format it refuses."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.root


def test_docker_top_runs_the_hosts_ps_over_a_container_without_ps(serve):
    serve.docker("run", "-d", "--name", "nops", "--network", "none", "busybox", "sh", "-c",
                 "rm /bin/ps; sleep 600 & sleep 700")
    assert serve.docker("exec", "nops", "ps", check=False).returncode != 0  # no ps inside
    out = serve.docker("top", "nops").stdout.splitlines()
    assert out[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    cmds = [line.split(None, 7)[-1] for line in out[1:]]
    assert sorted(cmds) == ["sleep 600", "sleep 700"], out    # sh exec'd the last one
    pid = serve.rongqi.inspect("nops")["State"]["Pid"]
    assert str(pid) in [line.split()[1] for line in out[1:]]     # host pids, as dockerd
    doc = serve.http.get("/v1.41/containers/nops/top", params={"ps_args": "-o pid,args"}).json()
    assert doc["Titles"] == ["PID", "COMMAND"]
    assert sorted(p[1] for p in doc["Processes"]) == sorted(cmds)
    client = serve.client()
    top = client.containers.get("nops").top(ps_args="aux")
    assert top["Titles"][:2] == ["USER", "PID"] and len(top["Processes"]) == 2


def test_top_errors_are_dockerds(serve):
    serve.docker("create", "--name", "idle", "--network", "none", "busybox", "sleep", "600")
    cid = json.loads(serve.docker("inspect", "idle").stdout)[0]["Id"]
    r = serve.http.get("/v1.41/containers/idle/top")
    assert (r.status_code, r.json()["message"]) == (409, f"Container {cid} is not running")
    serve.docker("start", "idle")
    r = serve.http.get("/v1.41/containers/idle/top", params={"ps_args": "-o user=PID"})
    assert r.status_code == 400 and r.json()["message"] == 'specifying "user=PID" is not allowed'
    r = serve.http.get("/v1.41/containers/idle/top", params={"ps_args": "--no-such-option"})
    assert r.status_code == 500 and r.json()["message"].startswith("ps: ")
    assert serve.http.get("/v1.41/containers/nosuch/top").status_code == 404
