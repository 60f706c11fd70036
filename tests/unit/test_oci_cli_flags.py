"""rongqi-oci's flag parser takes flags where runc's urfave/cli v1 does: before and after the
container id (it reorders them), except for exec and ps, which stop at the id."""

from __future__ import annotations

import pytest

from rongqi.errors import UsageError
from rongqi.oci.cli import COMMANDS, parse_flags


def table(command: str) -> tuple:
    return COMMANDS[command][1]


def test_flags_after_the_id_are_flags() -> None:
    opts, args = parse_flags(table("update"), ["ID", "--memory", "1G", "--pids-limit=5"], stop_at_first_arg=False)
    assert (opts["memory"], opts["pids-limit"], args) == ("1G", 5, ["ID"])
    opts, args = parse_flags(table("kill"), ["ID", "KILL", "-a"], stop_at_first_arg=False)
    assert (opts["all"], args) == (True, ["ID", "KILL"])


def test_after_the_id_an_unknown_dash_word_is_an_argument() -> None:
    # `kill ID -9`: urfave/cli reorders only the command's own flags; -9 stays the signal.
    assert parse_flags(table("kill"), ["ID", "-9"], stop_at_first_arg=False)[1] == ["ID", "-9"]
    with pytest.raises(UsageError, match="flag provided but not defined: -bogus"):
        parse_flags(table("kill"), ["--bogus", "ID"], stop_at_first_arg=False)


def test_a_double_dash_ends_the_flags() -> None:
    assert parse_flags(table("delete"), ["--", "ID", "--force"], stop_at_first_arg=False)[1] == ["ID", "--force"]


def test_exec_stops_at_the_id() -> None:
    opts, args = parse_flags(table("exec"), ["-t", "ID", "ls", "-d", "--tty"], stop_at_first_arg=True)
    assert (opts["tty"], opts["detach"], args) == (True, False, ["ID", "ls", "-d", "--tty"])
