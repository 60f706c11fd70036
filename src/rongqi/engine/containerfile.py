"""The Dockerfile language (docker's reference, buildkit's parser): lines, continuations,
comments, parser directives, heredocs, instructions and their flags, and variable expansion.

Pure: text in, a Containerfile (stages of Instructions) out; build.py gives it meaning.
Errors are docker's words with the file and line ("dockerfile parse error on line 3: ...").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from rongqi.errors import EngineError

INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
                "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL",
                "USER", "VOLUME", "WORKDIR")
# Instructions whose arguments docker expands ($VAR) before use (RUN/CMD/ENTRYPOINT: the shell).
EXPANDS = frozenset({"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER",
                     "VOLUME", "WORKDIR", "ARG"})
HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})
FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "RUN": frozenset({"mount", "network", "security"}),
    "COPY": frozenset({"from", "chown", "chmod", "link"}),
    "ADD": frozenset({"chown", "chmod", "link", "checksum"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval",
                              "retries"}),
}
# Build args every build knows without an ARG line; kept out of the image's history.
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
              "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
_HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


class ContainerfileError(EngineError):
    """A Containerfile that cannot be parsed; the message names the file and the line."""


@dataclass
class Heredoc:
    name: str            # the delimiter word
    content: str         # the body (with its final newline)
    expand: bool = True  # an unquoted delimiter: variables expand (COPY)
    chomp: bool = False  # <<-: leading tabs removed


@dataclass
class Instruction:
    cmd: str                                         # upper case: RUN, COPY, ...
    line: int                                        # first line of it in the file
    original: str                                    # the text as written (continuations joined)
    rest: str                                        # after the instruction and its flags
    flags: list[tuple[str, str | None]] = field(default_factory=list)
    json_form: list[str] | None = None               # exec form (a JSON array), else None
    heredocs: list[Heredoc] = field(default_factory=list)

    def flag(self, name: str) -> str | None:
        """The last --name value ("" for a bare --name), None when absent."""
        found = None
        for k, v in self.flags:
            if k == name:
                found = "" if v is None else v
        return found

    def flag_all(self, name: str) -> list[str]:
        return ["" if v is None else v for k, v in self.flags if k == name]


@dataclass
class Stage:
    index: int
    base: str                 # the FROM image as written (expanded later with meta args)
    name: str = ""            # AS name, lower-cased as docker keeps it
    platform: str = ""
    line: int = 0
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Containerfile:
    path: str
    stages: list[Stage]
    meta_args: list[Instruction]                     # ARGs before the first FROM
    escape: str = "\\"
    syntax: str = ""                                 # "# syntax=" noted, not acted on
    warnings: list[str] = field(default_factory=list)

    def stage(self, ref: str) -> Stage | None:
        """A stage by AS name (case-insensitive) or index."""
        low = ref.lower()
        for s in self.stages:
            if s.name and s.name == low:
                return s
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


# -- lines -----------------------------------------------------------------------------------------
def _error(path: str, line: int, msg: str) -> ContainerfileError:
    where = f"{path}: " if path else ""
    return ContainerfileError(f"{where}dockerfile parse error on line {line}: {msg}")


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    """Parser directives at the very top (until any other line); returns them and the count
    of lines they took."""
    found: dict[str, str] = {}
    n = 0
    for raw in lines:
        m = _DIRECTIVE.match(raw.strip()) if raw.strip().startswith("#") else None
        if not m:
            break
        key = m.group(1).lower()
        if key in found:
            break   # a repeated directive is a comment (docker), and ends the directives
        found[key] = m.group(2)
        n += 1
    return found, n


def parse(text: str, path: str = "Containerfile") -> Containerfile:
    """A Containerfile's stages; ContainerfileError (exit 125) with the line on bad input."""
    lines = text.split("\n")
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    directives, skip = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise _error(path, 1, f"invalid escape token '{escape}' does not match ` or \\")
    cf = Containerfile(path, [], [], escape=escape, syntax=directives.get("syntax", ""))
    i = skip
    while i < len(lines):
        raw = lines[i]
        start = i + 1
        stripped = raw.strip()
        i += 1
        if not stripped or stripped.startswith("#"):
            continue
        # Join continuation lines: comments and empty lines inside are dropped (docker warns
        # about the empty ones).
        parts = []
        cur = raw.rstrip()
        while cur.endswith(escape):
            parts.append(cur[:-1])
            cur = ""
            while i < len(lines):
                nxt = lines[i]
                i += 1
                s = nxt.strip()
                if s.startswith("#"):
                    continue
                if not s:
                    cf.warnings.append(f"{path}:{i}: empty continuation line")
                    continue
                cur = nxt.rstrip()
                break
            else:
                break
        parts.append(cur)
        logical = "".join(parts).strip()
        if not logical:
            continue
        ins, i = _instruction(path, start, logical, lines, i, escape)
        _place(cf, ins, path)
    if not cf.stages:
        raise _error(path, len(lines), "no build stage in current context") \
            if cf.meta_args else \
            ContainerfileError(f"{path}: the Containerfile (Dockerfile) cannot be empty")
    return cf


def _instruction(path: str, line: int, logical: str, lines: list[str], i: int,
                 escape: str) -> tuple[Instruction, int]:
    word, _, rest = logical.partition(" ") if " " in logical else (logical, "", "")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = more + " " + rest
    cmd = word.upper()
    rest = rest.strip()
    if cmd not in INSTRUCTIONS:
        raise _error(path, line, f"unknown instruction: {word}")
    ins = Instruction(cmd, line, logical, rest)
    if cmd == "ONBUILD":
        inner = rest.split(None, 1)
        if not inner:
            raise _error(path, line, "ONBUILD requires at least one argument")
        trig = inner[0].upper()
        if trig in ("ONBUILD", "FROM", "MAINTAINER"):
            raise _error(path, line, f"{trig} isn't allowed as an ONBUILD trigger")
        if trig not in INSTRUCTIONS:
            raise _error(path, line, f"unknown instruction: {inner[0]}")
        return ins, i
    # --flags
    allowed = FLAGS.get(cmd, frozenset())
    while rest.startswith("--"):
        tok, _, after = rest.partition(" ")
        name, eq, value = tok[2:].partition("=")
        if name not in allowed:
            raise _error(path, line, f"unknown flag: {name}")
        ins.flags.append((name, _unquote(value) if eq else None))
        rest = after.strip()
    ins.rest = rest
    if cmd in HEREDOC_INSTRUCTIONS:
        i = _heredocs(path, ins, lines, i)
    if cmd in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME", "HEALTHCHECK") \
            and rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            ins.json_form = value
    if cmd == "SHELL" and ins.json_form is None:
        raise _error(path, line, "SHELL requires the arguments to be in JSON form")
    if not rest and not ins.heredocs and cmd not in ("CMD", "ENTRYPOINT", "RUN"):
        raise _error(path, line, f"{cmd} requires at least one argument")
    if cmd == "RUN" and not rest and not ins.heredocs:
        raise _error(path, line, "RUN requires at least one argument")
    return ins, i


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _heredocs(path: str, ins: Instruction, lines: list[str], i: int) -> int:
    """Read the bodies of <<WORD (and <<-WORD, <<"WORD") markers in RUN/COPY/ADD: each body runs
    from the next line to a line that is exactly WORD (after tabs, with <<-)."""
    for m in _HEREDOC.finditer(ins.rest):
        chomp, quote, word = m.group(1) == "-", m.group(2), m.group(3)
        body: list[str] = []
        while True:
            if i >= len(lines):
                raise _error(path, ins.line, f"unterminated heredoc {word}: no line "
                             f"\"{word}\" ends it")
            text = lines[i]
            i += 1
            check = text.lstrip("\t") if chomp else text
            if check.rstrip("\r") == word:
                break
            body.append(text.lstrip("\t") if chomp else text)
        content = "\n".join(body) + ("\n" if body else "")
        ins.heredocs.append(Heredoc(word, content, expand=not quote, chomp=chomp))
    return i


def _place(cf: Containerfile, ins: Instruction, path: str) -> None:
    if ins.cmd == "FROM":
        words = ins.rest.split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise _error(path, ins.line, "FROM requires either one or three arguments")
        name = words[2].lower() if len(words) == 3 else ""
        if name and not re.fullmatch(r"[a-z][a-z0-9\-_.]*", name):
            raise _error(path, ins.line, f"invalid name for build stage: \"{words[2]}\", "
                         "name can't start with a number or contain symbols")
        if name and any(s.name == name for s in cf.stages):
            raise _error(path, ins.line, f"duplicate stage name \"{name}\"")
        cf.stages.append(Stage(len(cf.stages), words[0], name, ins.flag("platform") or "",
                               ins.line))
        return
    if not cf.stages:
        if ins.cmd != "ARG":
            raise _error(path, ins.line, "no build stage in current context")
        cf.meta_args.append(ins)
        return
    cf.stages[-1].instructions.append(ins)


def parse_instruction(text: str, path: str = "ONBUILD", line: int = 0) -> Instruction:
    """One instruction (an ONBUILD trigger, a commit -c change)."""
    lines = text.split("\n")
    ins, _ = _instruction(path, line, lines[0].strip(), lines, 1, "\\")
    return ins


# -- words and variables ---------------------------------------------------------------------
class Lexer:
    """docker's shell lexer for instruction arguments: quotes, the escape character, and
    $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:+alt}, ${VAR+alt}, ${VAR:?err}."""

    def __init__(self, escape: str = "\\"):
        self.escape = escape

    def expand(self, word: str, env: dict[str, str], *, strip_quotes: bool = True) -> str:
        return "".join(self._process(word, env, strip_quotes))

    def _process(self, s: str, env: dict[str, str], strip: bool) -> list[str]:
        out: list[str] = []
        i, n, esc = 0, len(s), self.escape
        while i < n:
            c = s[i]
            if c == esc and i + 1 < n:
                out.append(s[i + 1] if strip else s[i:i + 2])
                i += 2
            elif c == "'":
                end = s.find("'", i + 1)
                if end < 0:
                    raise ContainerfileError(f"unexpected end of statement while looking for "
                                             f"matching single-quote in: {s}")
                out.append(s[i + 1:end] if strip else s[i:end + 1])
                i = end + 1
            elif c == '"':
                i += 1
                if not strip:
                    out.append('"')
                while i < n and s[i] != '"':
                    if s[i] == esc and i + 1 < n and s[i + 1] in ('"', "$", esc):
                        out.append(s[i + 1] if strip else s[i:i + 2])
                        i += 2
                    elif s[i] == "$":
                        text, i = self._var(s, i, env)
                        out.append(text)
                    else:
                        out.append(s[i])
                        i += 1
                if i >= n:
                    raise ContainerfileError(f"unexpected end of statement while looking for "
                                             f"matching double-quote in: {s}")
                if not strip:
                    out.append('"')
                i += 1
            elif c == "$":
                text, i = self._var(s, i, env)
                out.append(text)
            else:
                out.append(c)
                i += 1
        return out

    def _var(self, s: str, i: int, env: dict[str, str]) -> tuple[str, int]:
        n = len(s)
        if i + 1 >= n:
            return "$", i + 1
        if s[i + 1] == "{":
            end = _matching_brace(s, i + 1)
            if end < 0:
                raise ContainerfileError(f"missing '}}' in: {s}")
            body = s[i + 2:end]
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", body)
            if not m:
                raise ContainerfileError(f"bad substitution in: {s}")
            name, tail = m.group(0), body[m.end():]
            value = env.get(name)
            if not tail:
                return value or "", end + 1
            for op in (":-", ":+", ":?", "-", "+", "?"):
                if tail.startswith(op):
                    word = self.expand(tail[len(op):], env)
                    empty_counts = op.startswith(":")
                    unset = value is None or (empty_counts and value == "")
                    if op.endswith("-"):
                        return (word if unset else value or ""), end + 1
                    if op.endswith("+"):
                        return ("" if unset else word), end + 1
                    if unset:
                        raise ContainerfileError(f"{name}: {word or 'is not allowed to be unset'}")
                    return value or "", end + 1
            raise ContainerfileError(f"unsupported modifier ({tail[:1]}) in substitution: {s}")
        m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", s[i + 1:])
        if not m:
            return "$", i + 1
        return env.get(m.group(0), ""), i + 1 + m.end()

    def words(self, text: str) -> list[str]:
        """Split on unquoted, unescaped whitespace, keeping quotes (for key=value lists)."""
        out: list[str] = []
        cur: list[str] = []
        quote = ""
        i, n = 0, len(text)
        in_word = False
        while i < n:
            c = text[i]
            if quote:
                cur.append(c)
                if c == self.escape and quote == '"' and i + 1 < n:
                    cur.append(text[i + 1])
                    i += 1
                elif c == quote:
                    quote = ""
            elif c == self.escape and i + 1 < n:
                cur.append(c + text[i + 1])
                in_word = True
                i += 1
            elif c in "\"'":
                quote = c
                cur.append(c)
                in_word = True
            elif c.isspace():
                if in_word:
                    out.append("".join(cur))
                    cur, in_word = [], False
            else:
                cur.append(c)
                in_word = True
            i += 1
        if in_word:
            out.append("".join(cur))
        return out


def _matching_brace(s: str, i: int) -> int:
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1


def key_values(ins: Instruction, env: dict[str, str], lexer: Lexer,
               path: str = "") -> list[tuple[str, str]]:
    """ENV / LABEL / ARG pairs: `K=V K2="v 2"`, or the old `ENV K the value` form."""
    words = lexer.words(ins.rest)
    if not words:
        raise _error(path, ins.line, f"{ins.cmd} requires at least one argument")
    if ins.cmd in ("ENV", "LABEL") and "=" not in words[0]:
        # the legacy form: one key, the rest of the line is the value
        if len(words) < 2:
            raise _error(path, ins.line, f"{ins.cmd} must have two arguments")
        key = words[0]
        value = ins.rest[len(key):].strip()
        return [(key, lexer.expand(value, env))]
    out = []
    for w in words:
        if "=" not in w:
            if ins.cmd == "ARG":
                out.append((lexer.expand(w, env), None))   # type: ignore[arg-type]
                continue
            raise _error(path, ins.line, f"{ins.cmd} names can not be blank" if w.startswith("=")
                         else f"Syntax error - can't find = in \"{w}\". Must be of the form: "
                         "name=value")
        k, _, v = w.partition("=")
        if not k:
            raise _error(path, ins.line, f"{ins.cmd} names can not be blank")
        out.append((lexer.expand(k, env), lexer.expand(v, env)))
    return out


def plain_words(ins: Instruction, env: dict[str, str] | None, lexer: Lexer) -> list[str]:
    """COPY/ADD/VOLUME/EXPOSE/... arguments: the JSON array, or whitespace-split words, each
    expanded (env None: not expanded)."""
    words = ins.json_form if ins.json_form is not None else lexer.words(ins.rest)
    if env is None:
        return list(words)
    if ins.json_form is not None:
        return [lexer.expand(w, env, strip_quotes=False) for w in words]
    return [lexer.expand(w, env) for w in words]


def shell_or_exec(ins: Instruction, shell: list[str]) -> tuple[list[str], bool]:
    """RUN/CMD/ENTRYPOINT's argv: the exec form as given, or the shell form under SHELL."""
    if ins.json_form is not None:
        return list(ins.json_form), False
    return [*shell, ins.rest], True


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def duration_ns(text: str, what: str) -> int:
    """Go's time.ParseDuration for HEALTHCHECK's flags ("30s", "1m30s", "500ms")."""
    if text in ("0", ""):
        return 0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ContainerfileError(f"Error parsing {what}: time: invalid duration \"{text}\"")
    return int(total)
