"""Every command's --help ends with examples (podman's man pages have them), and every example
is a command line that rongqi's own parser accepts (so none can name a flag that is gone)."""

from __future__ import annotations

import shlex

import pytest

from rongqi.cli import examples, reference
from rongqi.cli import main as cli
from rongqi.errors import RongqiError

PARSER = reference._parser()
examples.attach(PARSER)
PARSERS = {path[1:]: sp for path, _aliases, _help, sp in reference.walk(PARSER)}
COMMANDS = list(PARSERS)


def test_there_are_commands():
    assert len(COMMANDS) > 90 and ("run",) in COMMANDS and ("network", "connect") in COMMANDS


def test_help_shows_examples(capsys):
    """What `--help` prints (the parser built for one command, as main builds it)."""
    with pytest.raises(SystemExit) as out:
        cli.main(["volume", "create", "--help"])
    assert out.value.code == 0
    text = capsys.readouterr().out
    assert text.endswith("Examples:\n" + "".join(f"  {line}\n" for line in
                                                  examples.EXAMPLES["volume create"]))


def test_every_command_shows_examples():
    missing = []
    for words, sp in PARSERS.items():
        text = sp.format_help()
        shown = text.split("\nExamples:\n", 1)[1].splitlines() if "\nExamples:\n" in text else []
        if not any(line.strip().startswith("rongqi ") for line in shown):
            missing.append(" ".join(("rongqi", *words)))
    assert missing == [], f"--help without examples: {missing}"


def _rongqi_argv(line: str) -> list[str]:
    """The rongqi command in an example line (pipes, redirections and comments left out)."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = "#"
    words = list(lex)
    start = words.index("rongqi")
    argv = []
    for w in words[start + 1:]:
        if w in ("|", "||", "&&", ";", ">", ">>", "<", ")", "&"):
            break
        argv.append(w)
    return argv


def test_every_example_parses():
    """Each example's rongqi command line, parsed as main parses it (its own parser)."""
    wrong = []
    lines = sorted({line for w in COMMANDS for line in examples.examples(w)})
    assert len(lines) > 200
    for line in lines:
        argv = _rongqi_argv(line)
        if argv[-1:] == ["--help"]:
            continue
        try:
            args = cli.build_parser(argv).parse_args(argv)
        except RongqiError as e:
            wrong.append(f"{line!r}: {e}")
            continue
        if getattr(args, "fn", None) is None:
            wrong.append(f"{line!r} names no command")
    assert wrong == []
