"""A container's labels are in its events' Attributes, as podman's and docker's events carry
them: every container event the CLI and the monitor write (create, start, died, update,
remove...), shown by `rongqi events` (`(image=..., name=..., LABEL=VALUE)`, `--format json`)
and matched by `--filter label=`; a container without labels has `{}`, as podman writes."""

from __future__ import annotations

import json

import pytest

from rq import rq  # noqa: F401 - the fixture

pytestmark = pytest.mark.root


def _events(rq, *args: str) -> list[dict]:
    out = rq("events", "--stream=false", "--format", "json", *args, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_container_events_carry_the_containers_labels(rq):
    rq("run", "--name", "lab", "--network", "none", "--label", "app=web", "--label",
       "tier=1", "busybox", "true", check=True)
    rq("update", "--cpu-shares", "512", "lab", check=True)
    rq("rm", "lab", check=True)
    rq("run", "--rm", "--name", "plain", "--network", "none", "busybox", "true", check=True)
    evs = _events(rq, "--filter", "container=lab")
    statuses = [e["Status"] for e in evs]
    assert statuses[:2] == ["create", "start"] and "died" in statuses
    assert "update" in statuses and statuses[-1] == "remove"
    for e in evs:
        assert e["Attributes"] == {"app": "web", "tier": "1"}, e
    assert [e["Name"] for e in _events(rq, "--filter", "label=app=web")] == \
        ["lab"] * len(evs)
    assert _events(rq, "--filter", "label=app=db") == []
    plain = _events(rq, "--filter", "container=plain")
    assert plain and all(e["Attributes"] == {} for e in plain)
    human = rq("events", "--stream=false", "--filter", "container=lab", "--filter",
               "event=create", check=True).stdout
    assert human.strip().endswith("(image=docker.io/library/busybox:latest, name=lab, app=web, "
                                  "tier=1)")
