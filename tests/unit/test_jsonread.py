"""One typed JSON reader, one wording: config.json, linux.resources and linux.seccomp word
the same mistake the same way, naming its JSON path (oci/jsonread.py)."""

from __future__ import annotations

import pytest

from rongqi.errors import SpecError
from rongqi.oci import jsonread
from rongqi.oci.resources import parse_resources
from rongqi.oci.seccomp_spec import parse_seccomp
from rongqi.oci.spec import parse, parse_process


def _error(fn, *args) -> str:
    with pytest.raises(SpecError) as info:
        fn(*args)
    return str(info.value)


def test_the_three_readers_word_a_wrong_kind_alike():
    assert _error(parse_process, {"args": "sh", "cwd": "/"}) == "process.args: must be an array, not a string"
    assert _error(parse_resources, {"devices": "rwm"}) == "linux.resources.devices: must be an array, not a string"
    assert _error(parse_seccomp, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": "x"}) == \
        "linux.seccomp.syscalls: must be an array, not a string"
    assert _error(parse, []) == "config: must be an object, not an array"


def test_the_three_readers_word_a_range_alike():
    assert _error(parse_process, {"args": ["sh"], "cwd": "/", "user": {"uid": -1, "gid": 0}}) == \
        "process.user.uid: -1 is out of range (0..4294967295)"
    assert _error(parse_resources, {"cpu": {"shares": 1}}).startswith("linux.resources.cpu.shares: 1 is out of range (")
    assert _error(parse_seccomp, {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}) == \
        "linux.seccomp.defaultErrnoRet: 70000 is out of range (0..65535)"


@pytest.mark.parametrize("value, want", [
    (None, "null"), (True, "a boolean"), (1, "a number"), (1.5, "a number"), ("x", "a string"),
    ([], "an array"), ({}, "an object"),
])
def test_kinds(value, want):
    assert jsonread.kind(value) == want


def test_integers():
    assert jsonread.integer(5.0, "n") == 5
    assert _error(jsonread.integer, 5.5, "n") == "n: must be an integer, not a number"
    assert _error(jsonread.integer, True, "n") == "n: must be an integer, not a boolean"
    assert _error(jsonread.integer, 3, "n", 4) == "n: 3 is out of range (at least 4)"
    assert _error(jsonread.integer, 9, "n", None, 8) == "n: 9 is out of range (at most 8)"
    assert _error(jsonread.integer, 9, "n", 0, 8, "a weight") == "n: 9 is out of range (a weight)"
