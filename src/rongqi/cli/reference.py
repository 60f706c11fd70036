"""The command line described from its own parser: docs/reference.md (every command, alias,
argument and option; a test fails when the page drifts) and `rongqi completion bash|zsh`.

Nothing here is written by hand per command: both walk cli/main.py's build_parser().
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

HEADER = """\
# `rongqi` command reference

Generated from the parser (`python3 -m rongqi.cli.reference > docs/reference.md`);
`tests/api/test_reference.py` fails when this page and the command line differ. Each command
is podman 4's; see docs/engine.md for what the engine does underneath. The examples (those of
each command's `--help`, from cli/examples.py) use placeholder names such as `web` and `IMAGE`;
a test parses every one of them with the command line, so none names a flag that is not there.
"""

# Defaults that depend on who runs the generator (root or a user) or the environment.
_ENV_DEFAULTS = {"root": "/var/lib/rongqi (root)", "runroot": "/run/rongqi/engine (root)",
                 "runtime": "rongqi's own, in-process"}


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    sp = add(["completion"], cmd_completion, "print a shell completion script (bash or zsh)")
    sp.add_argument("shell", choices=("bash", "zsh"))


def cmd_completion(ctx: Any, a: argparse.Namespace) -> int:
    sys.stdout.write(completion(a.shell))
    return 0


def _parser() -> argparse.ArgumentParser:
    saved = {k: os.environ.pop(k) for k in ("RONGQI_ROOT", "RONGQI_RUNROOT", "RONGQI_RUNTIME")
             if k in os.environ}
    try:
        from rongqi.cli.main import build_parser
        return build_parser()
    finally:
        os.environ.update(saved)


def _subcommands(p: argparse.ArgumentParser) -> list[tuple[str, list[str], str,
                                                           argparse.ArgumentParser]]:
    """(name, aliases, help, parser) of p's subcommands, in the order they were added."""
    out = []
    for act in p._actions:
        if not isinstance(act, argparse._SubParsersAction):
            continue
        helps = {ca.dest: ca.help or "" for ca in act._choices_actions}
        seen: dict[int, tuple[str, list[str], str, argparse.ArgumentParser]] = {}
        for name, sp in act.choices.items():
            if id(sp) in seen:
                seen[id(sp)][1].append(name)
            else:
                seen[id(sp)] = (name, [], helps.get(name, ""), sp)
        out.extend(seen.values())
    return out


def walk(p: argparse.ArgumentParser, path: tuple[str, ...] = ("rongqi",)
         ) -> list[tuple[tuple[str, ...], list[str], str, argparse.ArgumentParser]]:
    """Every command, depth first: (path words, aliases, help, parser)."""
    found = [(path, [], p.description or "", p)]
    for name, aliases, help_, sp in _subcommands(p):
        sub = walk(sp, (*path, name))
        found.append((sub[0][0], aliases, help_, sp))
        found.extend(sub[1:])
    return found


def _help(act: argparse.Action) -> str:
    text = act.help or ""
    if "%(" in text:
        default = _ENV_DEFAULTS.get(act.dest, act.default)
        try:
            text = text % {**vars(act), "default": default, "prog": "rongqi"}
        except (KeyError, TypeError, ValueError):
            pass
    return " ".join(text.split())


def _flags(act: argparse.Action) -> str:
    flags = ", ".join(f"`{s}`" for s in act.option_strings)
    if act.nargs != 0:
        mv = act.metavar or (act.dest.upper() if not act.choices else
                             "{" + ",".join(map(str, act.choices)) + "}")
        flags += f" {mv}"
    return flags


def markdown() -> str:
    from rongqi.cli.examples import examples

    out = [HEADER]
    for path, aliases, help_, sp in walk(_parser()):
        name = " ".join(path)
        out.append(f"\n## {name}\n")
        if help_:
            out.append(f"\n{help_}\n")
        lines = examples(path[1:])
        if lines:
            out.append("\nExamples:\n\n" + "".join(f"    {line}\n" for line in lines))
        if aliases:
            out.append("\nAliases: " + ", ".join(f"`{' '.join(path[:-1])} {a}`"
                                                 for a in aliases) + "\n")
        pos = [a for a in sp._actions if not a.option_strings
               and not isinstance(a, argparse._SubParsersAction)]
        opts = [a for a in sp._actions if a.option_strings and a.help != argparse.SUPPRESS
                and "-h" not in a.option_strings]
        subs = _subcommands(sp)
        if subs:
            out.append("\nCommands: " + ", ".join(f"`{s[0]}`" for s in subs) + "\n")
        if pos:
            out.append("\n| argument | |\n| --- | --- |\n")
            for a in pos:
                mv = a.metavar or a.dest
                out.append(f"| `{mv}`{' ...' if a.nargs in ('*', '+', '...') else ''} | "
                           f"{_help(a).replace('|', '/')} |\n")
        if opts:
            out.append("\n| option | |\n| --- | --- |\n")
            for a in opts:
                out.append(f"| {_flags(a).replace('|', '/')} | "
                           f"{_help(a).replace('|', '/')} |\n")
    return "".join(out)


def _tree() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    cmds: dict[str, list[str]] = {}
    opts: dict[str, list[str]] = {}
    for path, _aliases, _help_, sp in walk(_parser()):
        key = " ".join(path)
        words = []
        for name, aliases, _h, _p in _subcommands(sp):
            words += [name, *aliases]
        cmds[key] = words
        opts[key] = sorted({s for a in sp._actions for s in a.option_strings})
    return cmds, opts


def completion(shell: str) -> str:
    """A completion script for bash (`complete -F`) or zsh (a native `#compdef` function,
    for $fpath or `source`): commands by position, options by command, files after."""
    cmds, opts = _tree()
    head = "# rongqi completion (generated from the parser: rongqi completion %s)\n" % shell
    if shell == "zsh":
        return "#compdef rongqi\n" + head + _zsh(cmds, opts)
    return head + _bash(cmds, opts)


def _bash(cmds: dict[str, list[str]], opts: dict[str, list[str]]) -> str:
    def arr(name: str, table: dict[str, list[str]]) -> str:
        rows = "".join(f'  ["{k}"]="{" ".join(v)}"\n' for k, v in table.items())
        return f"declare -gA {name}=(\n{rows})\n"

    return (arr("_rongqi_cmds", cmds) + arr("_rongqi_opts", opts) + """\
_rongqi() {
  local cur="${COMP_WORDS[COMP_CWORD]}" path="rongqi" i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    [[ $w == -* ]] && continue
    if [[ " ${_rongqi_cmds[$path]} " == *" $w "* ]]; then path="$path $w"; fi
  done
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "${_rongqi_opts[$path]}" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "${_rongqi_cmds[$path]}" -- "$cur"))
    [[ ${#COMPREPLY[@]} -eq 0 ]] && COMPREPLY=($(compgen -f -- "$cur"))
  fi
  return 0
}
complete -F _rongqi rongqi
""")


def _zsh(cmds: dict[str, list[str]], opts: dict[str, list[str]]) -> str:
    # zsh's own completion system (compadd, _files), not bash's through bashcompinit: the
    # same tables, read with zsh's 1-based $words and $CURRENT. ("path" is zsh's $PATH
    # array, hence cmdpath.)
    def arr(name: str, table: dict[str, list[str]]) -> str:
        rows = "".join(f"  '{k}' '{' '.join(v)}'\n" for k, v in table.items())
        return f"typeset -gA {name}\n{name}=(\n{rows})\n"

    return (arr("_rongqi_cmds", cmds) + arr("_rongqi_opts", opts) + """\
_rongqi() {
  local cmdpath=rongqi w i
  local -a cands
  for ((i = 2; i < CURRENT; i++)); do
    w=${words[i]}
    [[ $w == -* ]] && continue
    [[ " ${_rongqi_cmds[$cmdpath]} " == *" $w "* ]] && cmdpath="$cmdpath $w"
  done
  if [[ ${words[CURRENT]} == -* ]]; then
    cands=(${=_rongqi_opts[$cmdpath]})
    compadd -a cands
    return
  fi
  cands=(${=_rongqi_cmds[$cmdpath]})
  compadd -a cands || _files
}

if [[ ${funcstack[1]} == _rongqi ]]; then
  _rongqi "$@"               # autoloaded from $fpath (compinit): complete now
else
  compdef _rongqi rongqi     # sourced: register with compinit
fi
""")


if __name__ == "__main__":
    sys.stdout.write(markdown())
