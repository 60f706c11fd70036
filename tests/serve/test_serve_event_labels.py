"""/events through rongqi serve: a container's labels are in Actor.Attributes beside image and
name, as dockerd sends them, and `--filter label=` selects on them."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.root


def test_docker_events_show_and_filter_the_containers_labels(serve):
    t0 = time.time()
    serve.docker("run", "--name", "evl", "--network", "none", "--label", "app=web",
                 "busybox", "true")
    serve.docker("rm", "evl")
    t1 = time.time() + 1
    since, until = f"{t0 - 0.5:.3f}", f"{t1:.3f}"
    out = serve.docker("events", "--since", since, "--until", until, "--filter",
                       "label=app=web", "--format", "{{json .}}").stdout
    msgs = [json.loads(line) for line in out.splitlines()]
    assert [m["Action"] for m in msgs] == ["create", "start", "die", "destroy"]
    for m in msgs:
        attrs = m["Actor"]["Attributes"]
        assert attrs["app"] == "web" and attrs["name"] == "evl", m
        assert attrs["image"] == "docker.io/library/busybox:latest"
    assert msgs[2]["Actor"]["Attributes"]["exitCode"] == "0"
    none = serve.docker("events", "--since", since, "--until", until, "--filter",
                        "label=app=db").stdout
    assert none == ""
    line = serve.docker("events", "--since", since, "--until", until, "--filter",
                        "event=create").stdout
    assert "app=web" in line and "name=evl" in line    # the docker CLI prints the attributes
