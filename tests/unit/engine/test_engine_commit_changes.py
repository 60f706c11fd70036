"""commit -c/--change: Dockerfile instructions applied to an image config, podman's set."""

from __future__ import annotations

import pytest

from rongqi.engine.changes import Change
from rongqi.engine.files import apply_changes, changes_json, commit_name, parse_location
from rongqi.errors import UsageError


def test_each_instruction():
    cfg = {"Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv"}
    apply_changes(cfg, [
        'CMD ["cat", "/x"]', "ENTRYPOINT /bin/sh -c", "ENV A=2 B=3", "ENV LEGACY value here",
        "EXPOSE 80 53/udp", "LABEL a=b c=\"d e\"", "USER nobody", 'VOLUME ["/v1", "/v2"]',
        "VOLUME /v3", "WORKDIR sub", "STOPSIGNAL SIGINT", "ONBUILD RUN true",
    ])
    assert cfg["Cmd"] == ["cat", "/x"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/bin/sh -c"]
    assert cfg["Env"] == ["PATH=/bin", "A=2", "B=3", "LEGACY=value here"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Labels"] == {"a": "b", "c": "d e"}
    assert cfg["User"] == "nobody" and cfg["WorkingDir"] == "/srv/sub"
    assert set(cfg["Volumes"]) == {"/v1", "/v2", "/v3"}
    assert cfg["StopSignal"] == "SIGINT" and cfg["OnBuild"] == ["RUN true"]


def test_bad_changes_are_one_clear_error():
    for bad, word in (("FROM x", "invalid instruction FROM"), ("CMD", "missing value"),
                      ("EXPOSE abc", "invalid port"), ("LABEL justakey", "key=value")):
        with pytest.raises(UsageError, match=word):
            apply_changes({}, [bad])


def test_names_locations_and_json():
    assert commit_name("mine") == "localhost/mine:latest"
    assert commit_name("mine:v2") == "localhost/mine:v2"
    assert commit_name("quay.io/a/b") == "quay.io/a/b:latest"
    assert parse_location("box:/etc") == ("box", "/etc")
    assert parse_location("./a:b") == (None, "./a:b")
    assert parse_location("/abs:x") == (None, "/abs:x")
    assert parse_location("plain") == (None, "plain")
    assert parse_location("-") == (None, "-")
    assert changes_json([Change("A", "/n"), Change("D", "/d"), Change("C", "/c")]) == {
        "changed": ["/c"], "added": ["/n"], "deleted": ["/d"]}
