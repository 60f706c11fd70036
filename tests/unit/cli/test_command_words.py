"""cli/main.py's COMMAND_WORDS (which module registers which top-level command, so that one
command imports one module) against what each module's register() really adds."""

from __future__ import annotations

import importlib

import pytest

from rongqi.cli import main as cli


def _registered() -> dict[str, list[str]]:
    p = cli._Parser(prog="rongqi")
    sub = p.add_subparsers(dest="command", parser_class=cli._Parser)
    words: dict[str, list[str]] = {}
    current = [""]

    def add(names: list[str], fn: object, help: str, parent: object = sub) -> object:
        sp = parent.add_parser(names[0], aliases=names[1:], help=help)  # type: ignore[attr-defined]
        if parent is sub:
            words.setdefault(current[0], []).extend(names)
        return sp

    groups = {g: add([g], None, g).add_subparsers(dest=f"{g}_command",  # type: ignore[attr-defined]
                                                  parser_class=cli._Parser)
              for g in ("image", "system", "container", "volume")}
    words.clear()
    for module in cli.COMMAND_MODULES:
        current[0] = module
        importlib.import_module(f"rongqi.cli.{module}").register(add, sub, groups)
    return words


def test_command_words_match_what_the_modules_register():
    registered = {m: sorted(w) for m, w in _registered().items()}
    declared = {m: sorted(w) for m, w in cli.COMMAND_WORDS.items() if w}
    assert registered == declared


@pytest.mark.parametrize("argv", [
    ["run", "--rm", "busybox", "true"], ["exec", "x", "true"], ["ps", "-a"], ["cp", "a", "b"],
    ["network", "ls"], ["--root", "/r", "logs", "x"], ["container", "ls"], ["pull", "x"],
])
def test_one_command_parses_as_with_the_whole_parser(argv):
    """The parser built for one command gives the same namespace as the whole one."""
    one = vars(cli.build_parser(argv).parse_args(argv))
    whole = vars(cli.build_parser().parse_args(argv))
    assert one == whole
