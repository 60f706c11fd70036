"""Exec instances live as long as their container's run, as dockerd keeps them: inspectable
after the exec ended while the container runs, in the container's ExecIDs; gone (404 `No
such exec instance`, ExecIDs null) once the run ended, whether the container was stopped or
its process ended by itself."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.root


def _exec_inspect(serve, exec_id: str):
    return serve.http.get(f"/v1.41/exec/{exec_id}/json")


def test_exec_records_last_as_long_as_the_containers_run(serve):
    api = serve.client().api
    cid = serve.docker("run", "-d", "--network", "none", "busybox", "sleep", "600").stdout.strip()
    e = api.exec_create(cid, ["sh", "-c", "exit 3"])["Id"]
    api.exec_start(e)
    doc = _exec_inspect(serve, e).json()
    assert (doc["Running"], doc["ExitCode"], doc["ContainerID"]) == (False, 3, cid)
    assert json.loads(serve.docker("inspect", cid).stdout)[0]["ExecIDs"] == [e]
    serve.docker("stop", "-t", "0", cid)
    r = _exec_inspect(serve, e)
    assert (r.status_code, r.json()["message"]) == (404, f"No such exec instance: {e}")
    assert json.loads(serve.docker("inspect", cid).stdout)[0]["ExecIDs"] is None
    serve.docker("start", cid)                       # a new run has none of the old ones
    assert _exec_inspect(serve, e).status_code == 404


def test_exec_records_go_when_the_container_ends_by_itself(serve):
    api = serve.client().api
    cid = serve.docker("run", "-d", "--network", "none", "busybox", "sh", "-c",
                       "while [ ! -e /stop ]; do sleep 0.1; done").stdout.strip()
    e = api.exec_create(cid, ["touch", "/stop"])["Id"]
    api.exec_start(e)
    assert api.wait(cid, timeout=30)["StatusCode"] == 0
    deadline = time.monotonic() + 10
    while _exec_inspect(serve, e).status_code != 404:
        assert time.monotonic() < deadline, "the exec outlived its container's run"
        time.sleep(0.1)
    assert json.loads(serve.docker("inspect", cid).stdout)[0]["ExecIDs"] is None
