"""Docker's reference rules, checked against the normalizations docker itself prints."""

from __future__ import annotations

import pytest

from rongqi.image.errors import InvalidReference
from rongqi.image.reference import parse

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
    ("user/app", "docker.io/user/app:latest"),
    ("quay.io/user/app:v1", "quay.io/user/app:v1"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t"),
    ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
    ("[::1]:5000/app", "[::1]:5000/app:latest"),
    (f"busybox@{D}", f"docker.io/library/busybox@{D}"),
    (f"busybox:1.36@{D}", f"docker.io/library/busybox:1.36@{D}"),
    ("a-b_c__d/f.g", "docker.io/a-b_c__d/f.g:latest"),
])
def test_reference_normalizes_like_docker(text, expected):
    assert str(parse(text)) == expected


def test_first_component_is_a_registry_only_if_it_looks_like_a_host():
    assert parse("foo/bar").domain == "docker.io"
    assert parse("foo.com/bar").domain == "foo.com"
    assert parse("foo:1/bar").domain == "foo:1"
    assert parse("Foo/bar").domain == "Foo"  # uppercase first part is a hostname


def test_docker_io_talks_to_registry_1_and_others_to_themselves():
    assert parse("busybox").api_host == "registry-1.docker.io"
    assert parse("127.0.0.1:5000/x").api_host == "127.0.0.1:5000"


def test_familiar_name_drops_the_defaults():
    assert parse("docker.io/library/busybox").familiar() == "busybox:latest"
    assert parse("docker.io/user/app:1").familiar() == "user/app:1"
    assert parse("quay.io/x/y").familiar() == "quay.io/x/y:latest"


def test_digest_only_reference_has_no_tag_and_asks_for_the_digest():
    r = parse(f"busybox@{D}")
    assert r.tag is None and r.object == D


@pytest.mark.parametrize("text", [
    "", "BusyBox", "busybox:", "busybox:-x", ":tag", "a//b", "busybox@sha256:abc",
    "a" * 64, "busybox:" + "t" * 129, "-a/b", "host:port/app", "a/b/", "x" * 256,
])
def test_invalid_references_are_rejected_with_a_reason(text):
    with pytest.raises(InvalidReference, match="invalid reference format"):
        parse(text)
