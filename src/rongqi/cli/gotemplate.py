"""Go's text/template, as podman's and docker's users write `--format` strings, over Python values.

Owns the lexer, parser and evaluator, Go's printing of values (fmt's %v and printf), the
built-in and podman's template functions, and podman's normalisation of CLI format strings.

Python values stand for Go values: dict is a map (printed `map[a:b]`, keys sorted), list and
tuple a slice (`[a b]`), None nil, str/int/float/bool themselves. A dataclass, or a `Struct`,
is a struct: printed `{v1 v2}`, and a field it lacks is an error, as in Go. A missing map key
gives Go's "no value" (printed `<no value>`). Errors are one line in Go's wording
(`template: NAME:LINE:COL: executing "NAME" at <.X>: ...`) raised as TemplateError.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from rongqi.errors import TemplateError

__all__ = ["Template", "TemplateError", "Struct", "parse", "execute", "normalize", "is_json",
           "enforce_range", "compile_format", "go_sprint", "go_sprintf", "go_json", "FUNCS"]


def _is_dataclass(v: Any) -> bool:
    """A dataclass instance (a Go struct here), without importing dataclasses (~20 ms)."""
    return hasattr(type(v), "__dataclass_fields__") and not isinstance(v, type)


class _Missing:
    """Go's invalid reflect.Value: what a missing map key or a field of "no value" gives."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


class Struct(dict):  # type: ignore[type-arg]
    """A dict that behaves as a Go struct: printed `{v1 v2}` in insertion order, and a field
    it lacks is an error ("can't evaluate field X in type T") rather than "no value"."""

    def __init__(self, type_name: str, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.type_name = type_name
        # Fields of embedded structs: reachable by name, not printed (Go's promotion).
        self.promoted: dict[str, Any] = {}


# -- lexer ---------------------------------------------------------------------------------------
# Item kinds, as Go's text/template/parse/lex.go names them.
(T_ERROR, T_EOF, T_TEXT, T_LEFT, T_RIGHT, T_SPACE, T_FIELD, T_VAR, T_IDENT, T_STRING, T_RAW,
 T_CHAR, T_NUMBER, T_BOOL, T_NIL, T_DOT, T_PIPE, T_LPAREN, T_RPAREN, T_DECLARE, T_ASSIGN,
 T_COMMA, T_KEYWORD) = range(23)

_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break",
             "continue"}
_SPACE = " \t\r\n"


def _scan_number(text: str, p: int) -> tuple[int, bool]:
    """Go's lexer.scanNumber: how far a number runs, and whether what follows may follow one
    (a letter or digit right after it makes it "bad number syntax")."""
    n = len(text)

    def accept(q: int, chars: str) -> int:
        return q + 1 if q < n and text[q] in chars else q

    def accept_run(q: int, chars: str) -> int:
        while q < n and text[q] in chars:
            q += 1
        return q
    q = accept(p, "+-")
    digits = "0123456789_"
    if q < n and text[q] == "0":
        q += 1
        if q < n and text[q] in "xX":
            q, digits = q + 1, "0123456789abcdefABCDEF_"
        elif q < n and text[q] in "oO":
            q, digits = q + 1, "01234567_"
        elif q < n and text[q] in "bB":
            q, digits = q + 1, "01_"
    q = accept_run(q, digits)
    if q < n and text[q] == ".":
        q = accept_run(q + 1, digits)
    if len(digits) == 11 and q < n and text[q] in "eE":
        q = accept_run(accept(q + 1, "+-"), "0123456789_")
    if len(digits) == 23 and q < n and text[q] in "pP":
        q = accept_run(accept(q + 1, "+-"), "0123456789_")
    q = accept(q, "i")
    if q < n and (text[q].isalnum() or text[q] == "_"):
        return q + 1, False
    return q, True


class _Item:
    __slots__ = ("kind", "pos", "val", "line")

    def __init__(self, kind: int, pos: int, val: str, line: int):
        self.kind, self.pos, self.val, self.line = kind, pos, val, line

    def __repr__(self) -> str:
        return f"<{self.kind} {self.val!r}>"


def _describe(it: _Item) -> str:
    """How Go's parser names an item in "unexpected ..." errors."""
    if it.kind == T_EOF:
        return "EOF"
    if it.kind == T_ERROR:
        return it.val
    if it.kind in (T_KEYWORD, T_DOT, T_NIL):  # Go's keyword items (. and nil among them)
        return f"<{it.val}>"
    if len(it.val) > 10:
        return _go_quote(it.val[:10]) + "..."
    return _go_quote(it.val)


class _Lexer:
    """A port of Go's lexer: text and actions, trim markers, comments, nested parens."""

    def __init__(self, text: str):
        self.text = text
        self.items: list[_Item] = []
        self.pos = 0
        self.line = 1
        self.paren = 0

    def run(self) -> list[_Item]:
        text = self.text
        while True:
            i = text.find("{{", self.pos)
            if i < 0:
                if self.pos < len(text):
                    self._emit(T_TEXT, self.pos, text[self.pos:])
                self._emit(T_EOF, len(text), "")
                return self.items
            end_text = i
            trim_left = text.startswith("{{-", i) and i + 3 < len(text) and text[i + 3] in _SPACE
            if trim_left:
                end_text = len(text[self.pos:i].rstrip(_SPACE)) + self.pos
            if end_text > self.pos:
                self._emit(T_TEXT, self.pos, text[self.pos:end_text])
            self.line += text.count("\n", self.pos, i)
            self.pos = i + (4 if trim_left else 2)
            # A comment: {{/* ... */}}, trimmed or not, alone in its action.
            after = self.pos
            while trim_left and after < len(text) and text[after] in _SPACE:
                after += 1
            if text.startswith("/*", after if trim_left else self.pos):
                start = after if trim_left else self.pos
                close = text.find("*/", start + 2)
                if close < 0:
                    self._fail(start, "unclosed comment")
                self.line += text.count("\n", start, close)
                p = close + 2
                trim_right = False
                if text.startswith(" -}}", p) or (p < len(text) and text[p] in _SPACE
                                                  and text.startswith("-}}", p + 1)):
                    trim_right, p = True, p + 4
                elif text.startswith("}}", p):
                    p += 2
                else:
                    self._fail(p, "comment ends before closing delimiter")
                self.pos = p
                if trim_right:
                    self._skip_space_after()
                continue
            self._emit(T_LEFT, i, "{{")
            self._action()

    def _skip_space_after(self) -> None:
        p = self.pos
        while p < len(self.text) and self.text[p] in _SPACE:
            p += 1
        self.line += self.text.count("\n", self.pos, p)
        self.pos = p

    def _emit(self, kind: int, pos: int, val: str) -> None:
        self.items.append(_Item(kind, pos, val, self.line))

    def _fail(self, pos: int, msg: str) -> None:
        self.items.append(_Item(T_ERROR, pos, msg, self.line))
        raise _LexStop

    def _action(self) -> None:
        text = self.text
        n = len(text)
        while True:
            p = self.pos
            # The right delimiter, with or without its trim marker.
            if text.startswith("}}", p):
                if self.paren:
                    self._fail(p, "unclosed left paren")
                self._emit(T_RIGHT, p, "}}")
                self.pos = p + 2
                return
            if p >= n:
                self._fail(p, "unclosed action")
            c = text[p]
            if c in _SPACE:
                q = p
                while q < n and text[q] in _SPACE:
                    q += 1
                # " -}}" is a trim marker, not a space and a minus.
                if text.startswith("-}}", q):
                    if self.paren:
                        self._fail(q, "unclosed left paren")
                    self.line += text.count("\n", p, q)
                    self._emit(T_RIGHT, q, "}}")
                    self.pos = q + 3
                    self._skip_space_after()
                    return
                self.line += text.count("\n", p, q)
                self._emit(T_SPACE, p, text[p:q])
                self.pos = q
            elif c == "=":
                self._emit(T_ASSIGN, p, "=")
                self.pos = p + 1
            elif c == ":":
                if not text.startswith(":=", p):
                    self._fail(p, "expected :=")
                self._emit(T_DECLARE, p, ":=")
                self.pos = p + 2
            elif c == "|":
                self._emit(T_PIPE, p, "|")
                self.pos = p + 1
            elif c == '"':
                q = p + 1
                while True:
                    if q >= n or text[q] == "\n":
                        self._fail(p, "unterminated quoted string")
                    if text[q] == "\\":
                        q += 2
                        continue
                    if text[q] == '"':
                        break
                    q += 1
                self._emit(T_STRING, p, text[p:q + 1])
                self.pos = q + 1
            elif c == "`":
                q = text.find("`", p + 1)
                if q < 0:
                    self._fail(p, "unterminated raw quoted string")
                self.line += text.count("\n", p, q)
                self._emit(T_RAW, p, text[p:q + 1])
                self.pos = q + 1
            elif c == "'":
                q = p + 1
                while True:
                    if q >= n or text[q] == "\n":
                        self._fail(p, "unterminated character constant")
                    if text[q] == "\\":
                        q += 2
                        continue
                    if text[q] == "'":
                        break
                    q += 1
                self._emit(T_CHAR, p, text[p:q + 1])
                self.pos = q + 1
            elif c == "$":
                q = p + 1
                while q < n and (text[q].isalnum() or text[q] == "_"):
                    q += 1
                self._emit(T_VAR, p, text[p:q])
                self.pos = q
            elif c == "." and not (p + 1 < n and text[p + 1].isdigit()):
                q = p + 1
                while q < n and (text[q].isalnum() or text[q] == "_"):
                    q += 1
                if q == p + 1:
                    self._emit(T_DOT, p, ".")
                else:
                    self._emit(T_FIELD, p, text[p:q])
                self.pos = q
            elif c.isdigit() or c in "+-" or c == ".":
                q, ok = _scan_number(text, p)
                if not ok:
                    self._fail(p, f"bad number syntax: {_go_quote(text[p:q])}")
                self._emit(T_NUMBER, p, text[p:q])
                self.pos = q
            elif c.isalpha() or c == "_":
                q = p
                while q < n and (text[q].isalnum() or text[q] == "_"):
                    q += 1
                word = text[p:q]
                if word in _KEYWORDS:
                    self._emit(T_KEYWORD, p, word)
                elif word in ("true", "false"):
                    self._emit(T_BOOL, p, word)
                elif word == "nil":
                    self._emit(T_NIL, p, word)
                else:
                    self._emit(T_IDENT, p, word)
                self.pos = q
            elif c == "(":
                self.paren += 1
                self._emit(T_LPAREN, p, "(")
                self.pos = p + 1
            elif c == ")":
                self.paren -= 1
                if self.paren < 0:
                    self._fail(p, "unexpected right paren")
                self._emit(T_RPAREN, p, ")")
                self.pos = p + 1
            elif c == ",":
                self._emit(T_COMMA, p, ",")
                self.pos = p + 1
            else:
                self._fail(p, f"bad character {_go_rune(c)}")


class _LexStop(Exception):
    pass


def _go_rune(c: str) -> str:
    """Go's %#U: U+0023 '#'."""
    return f"U+{ord(c):04X} '{c}'" if c.isprintable() else f"U+{ord(c):04X}"


# -- nodes ---------------------------------------------------------------------------------------
class _Node:
    __slots__ = ("pos",)
    pos: int

    def text(self) -> str:  # Go's Node.String(): the node as the template would write it
        raise NotImplementedError


class _Text(_Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: str):
        self.pos, self.value = pos, value

    def text(self) -> str:
        return self.value


class _Field(_Node):
    __slots__ = ("names",)

    def __init__(self, pos: int, names: list[str]):
        self.pos, self.names = pos, names

    def text(self) -> str:
        return "".join("." + n for n in self.names)


class _Variable(_Node):
    __slots__ = ("name", "names")

    def __init__(self, pos: int, name: str, names: list[str]):
        self.pos, self.name, self.names = pos, name, names

    def text(self) -> str:
        return self.name + "".join("." + n for n in self.names)


class _Chain(_Node):
    __slots__ = ("node", "names")

    def __init__(self, pos: int, node: _Node, names: list[str]):
        self.pos, self.node, self.names = pos, node, names

    def text(self) -> str:
        inner = self.node.text()
        if isinstance(self.node, _Pipe):
            inner = f"({inner})"
        return inner + "".join("." + n for n in self.names)


class _Ident(_Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str):
        self.pos, self.name = pos, name

    def text(self) -> str:
        return self.name


class _Dot(_Node):
    __slots__ = ()

    def __init__(self, pos: int):
        self.pos = pos

    def text(self) -> str:
        return "."


class _Nil(_Node):
    __slots__ = ()

    def __init__(self, pos: int):
        self.pos = pos

    def text(self) -> str:
        return "nil"


class _Literal(_Node):
    """A bool, string, char or number constant: its value and how it was written."""

    __slots__ = ("value", "source", "kind")

    def __init__(self, pos: int, value: Any, source: str, kind: str):
        self.pos, self.value, self.source, self.kind = pos, value, source, kind

    def text(self) -> str:
        return self.source


class _Command(_Node):
    __slots__ = ("args",)

    def __init__(self, pos: int, args: list[_Node]):
        self.pos, self.args = pos, args

    def text(self) -> str:
        return " ".join(f"({a.text()})" if isinstance(a, _Pipe) else a.text() for a in self.args)


class _Pipe(_Node):
    __slots__ = ("decl", "is_assign", "cmds")

    def __init__(self, pos: int, decl: list[_Variable], is_assign: bool, cmds: list[_Command]):
        self.pos, self.decl, self.is_assign, self.cmds = pos, decl, is_assign, cmds

    def text(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(v.text() for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(c.text() for c in self.cmds)


class _Action(_Node):
    __slots__ = ("line", "pipe")

    def __init__(self, pos: int, line: int, pipe: _Pipe):
        self.pos, self.line, self.pipe = pos, line, pipe


class _Branch(_Node):
    """if, range and with: a pipeline, a list and an optional else list."""

    __slots__ = ("kind", "line", "pipe", "body", "orelse")

    def __init__(self, kind: str, pos: int, line: int, pipe: _Pipe, body: list[_Node],
                 orelse: list[_Node] | None):
        self.pos, self.kind, self.line, self.pipe = pos, kind, line, pipe
        self.body, self.orelse = body, orelse


class _Control(_Node):
    """break or continue inside a range."""

    __slots__ = ("kind",)

    def __init__(self, pos: int, kind: str):
        self.pos, self.kind = pos, kind


class _TemplateCall(_Node):
    __slots__ = ("name", "pipe", "line")

    def __init__(self, pos: int, line: int, name: str, pipe: _Pipe | None):
        self.pos, self.line, self.name, self.pipe = pos, line, name, pipe

    def text(self) -> str:
        pipe = f" {self.pipe.text()}" if self.pipe else ""
        return f'{{{{template "{self.name}"{pipe}}}}}'


# -- parser --------------------------------------------------------------------------------------
class _ParseError(Exception):
    def __init__(self, line: int, msg: str):
        super().__init__(msg)
        self.line, self.msg = line, msg


class _Parser:
    """Go's parse.Tree: a list of nodes per template name ({{define}} adds more)."""

    def __init__(self, text: str, funcs: dict[str, Any]):
        self.funcs = funcs
        lexer = _Lexer(text)
        try:
            lexer.run()
        except _LexStop:
            pass  # the error item ends the list; the parser reports it where it stands
        self.items = lexer.items
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.defined: dict[str, list[_Node]] = {}

    # item cursor
    def next(self) -> _Item:
        it = self.items[self.i]
        if it.kind == T_ERROR:
            raise _ParseError(it.line, it.val)
        self.i += 1
        return it

    def peek(self) -> _Item:
        it = self.items[self.i]
        if it.kind == T_ERROR:
            raise _ParseError(it.line, it.val)
        return it

    def next_non_space(self) -> _Item:
        it = self.next()
        while it.kind == T_SPACE:
            it = self.next()
        return it

    def peek_non_space(self) -> _Item:
        j = self.i
        while self.items[j].kind == T_SPACE:
            j += 1
        self.i = j
        return self.peek()

    def fail(self, it: _Item, msg: str) -> None:
        raise _ParseError(it.line, msg)

    def unexpected(self, it: _Item, context: str) -> None:
        if it.kind == T_ERROR:
            self.fail(it, it.val)
        self.fail(it, f"unexpected {_describe(it)} in {context}")

    # grammar
    def parse(self) -> list[_Node]:
        nodes: list[_Node] = []
        while self.peek().kind != T_EOF:
            if self.peek().kind == T_LEFT:
                j = self.i + 1
                while self.items[j].kind == T_SPACE:
                    j += 1
                if self.items[j].kind == T_KEYWORD and self.items[j].val == "define":
                    self.i = j + 1
                    self._define()
                    continue
            node, end = self.text_or_action()
            if end is not None:
                self.fail(end, f"unexpected {{{{{end.val}}}}}")
            if node is not None:
                nodes.append(node)
        return nodes

    def _define(self) -> None:
        name_item = self.next_non_space()
        if name_item.kind not in (T_STRING, T_RAW):
            self.unexpected(name_item, "define clause")
        name = _unquote(name_item)
        close = self.next_non_space()
        if close.kind != T_RIGHT:
            self.unexpected(close, "define clause")
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved
        if end.val != "end":
            self.fail(end, f"unexpected {{{{{end.val}}}}} in define clause")
        self.defined[name] = body

    def item_list(self) -> tuple[list[_Node], _Item]:
        """Nodes up to {{end}} or {{else}}: returns them and the keyword item that ended them."""
        nodes: list[_Node] = []
        while True:
            it = self.peek()
            if it.kind == T_EOF:
                self.fail(it, "unexpected EOF")
            node, end = self.text_or_action()
            if end is not None:
                return nodes, end
            if node is not None:
                nodes.append(node)

    def text_or_action(self) -> tuple[_Node | None, _Item | None]:
        it = self.next()
        if it.kind == T_TEXT:
            return _Text(it.pos, it.val), None
        if it.kind == T_LEFT:
            return self.action(it)
        self.unexpected(it, "input")
        raise AssertionError

    def action(self, left: _Item) -> tuple[_Node | None, _Item | None]:
        it = self.peek_non_space()
        if it.kind == T_KEYWORD:
            self.next()
            kw = it.val
            if kw in ("if", "range", "with"):
                return self.branch(kw, it), None
            if kw == "end":
                self._close(it, "end")
                return None, it
            if kw == "else":
                return None, it  # the caller reads the rest of the else clause
            if kw in ("break", "continue"):
                if self.range_depth == 0:
                    self.fail(it, f"{{{{{kw}}}}} outside {{{{range}}}}")
                self._close(it, f"{{{{{kw}}}}}")
                return _Control(it.pos, kw), None
            if kw in ("template", "block"):
                return self.template_call(it, kw), None
            self.unexpected(it, "command")  # {{define}} is only allowed at the top level
        pipe = self.pipeline("command", T_RIGHT)
        return _Action(left.pos, left.line, pipe), None

    def _close(self, it: _Item, what: str) -> None:
        close = self.next_non_space()
        if close.kind != T_RIGHT:
            self.unexpected(close, what)

    def template_call(self, tok: _Item, kw: str) -> _Node:
        name_item = self.next_non_space()
        if name_item.kind not in (T_STRING, T_RAW):
            self.unexpected(name_item, f"{kw} clause")
        name = _unquote(name_item)
        pipe = None
        if self.peek_non_space().kind != T_RIGHT:
            pipe = self.pipeline(f"{kw} clause", T_RIGHT)
        else:
            self.next()
        if kw == "block":
            saved = self.vars
            self.vars = ["$"]
            body, end = self.item_list()
            self.vars = saved
            if end.val != "end":
                self.fail(end, "unexpected {{else}} in block clause")
            self.defined.setdefault(name, body)
        return _TemplateCall(tok.pos, tok.line, name, pipe)

    def branch(self, kind: str, tok: _Item) -> _Node:
        mark = len(self.vars)
        pipe = self.pipeline(kind, T_RIGHT)
        if kind == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        orelse = None
        if end.val == "else":
            nxt = self.peek_non_space()
            if kind == "if" and nxt.kind == T_KEYWORD and nxt.val == "if":
                # {{else if ...}}: an if nested in the else list, ended by the same {{end}}.
                self.next()
                orelse = [self.branch("if", nxt)]
            else:
                close = self.next_non_space()
                if close.kind != T_RIGHT:
                    # Go parses what follows as the else list's first item
                    self.unexpected(close, "input")
                orelse, end2 = self.item_list()
                if end2.val != "end":
                    self.fail(end2, "expected end; found {{else}}")
        self.vars = self.vars[:mark]
        return _Branch(kind, tok.pos, tok.line, pipe, body, orelse)

    def pipeline(self, context: str, end: int) -> _Pipe:
        tok = self.peek_non_space()
        decl: list[_Variable] = []
        is_assign = False
        # Declarations: $x := / $x = / $i, $e :=
        if tok.kind == T_VAR:
            save = self.i
            v = self.next()
            nxt = self.peek_non_space()
            if nxt.kind in (T_DECLARE, T_ASSIGN) or (nxt.kind == T_COMMA and context == "range"):
                self.next()
                is_assign = nxt.kind == T_ASSIGN
                if nxt.kind == T_DECLARE:
                    self.vars.append(v.val)
                elif nxt.kind == T_ASSIGN:
                    self._check_var(v)
                decl.append(_Variable(v.pos, v.val, []))
                if nxt.kind == T_COMMA:
                    v2 = self.next_non_space()
                    if v2.kind != T_VAR:
                        self.fail(v2, "range can only initialize variables")
                    op = self.next_non_space()
                    if op.kind == T_COMMA:
                        self.fail(op, "too many declarations in range")
                    if op.kind not in (T_DECLARE, T_ASSIGN):
                        self.fail(op, "range can only initialize variables")
                    is_assign = op.kind == T_ASSIGN
                    if op.kind == T_DECLARE:
                        self.vars.append(v.val)
                        self.vars.append(v2.val)
                    decl.append(_Variable(v2.pos, v2.val, []))
            else:
                self.i = save
        cmds: list[_Command] = []
        while True:
            it = self.peek_non_space()
            if it.kind == end:
                self.next()
                if not cmds:
                    self.fail(it, f"missing value for {context}")
                # Only the first command may start with a constant (A|B|C: stage 2 is B).
                for stage, c in enumerate(cmds[1:], 2):
                    if isinstance(c.args[0], (_Literal, _Nil, _Dot)):
                        self.fail(it, f"non executable command in pipeline stage {stage}")
                return _Pipe(tok.pos, decl, is_assign, cmds)
            if it.kind in (T_BOOL, T_CHAR, T_DOT, T_FIELD, T_IDENT, T_NUMBER, T_NIL, T_RAW,
                           T_STRING, T_VAR, T_LPAREN):
                cmds.append(self.command())
            else:
                self.unexpected(it, context)

    def _check_var(self, it: _Item) -> None:
        if it.val not in self.vars:
            self.fail(it, f"undefined variable \"{it.val}\"")

    def command(self) -> _Command:
        start = self.peek_non_space()
        args: list[_Node] = []
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            it = self.next()
            if it.kind == T_SPACE:
                continue
            if it.kind in (T_RIGHT, T_RPAREN):
                self.i -= 1
            elif it.kind == T_PIPE:
                pass
            else:
                self.unexpected(it, "operand")
            break
        if not args:
            self.fail(start, "empty command")
        return _Command(start.pos, args)

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == T_FIELD:
            # Go places the merged node at its first chained field: `.A.B` is "at" `.B`.
            chain_pos = self.peek().pos
            names = []
            while self.peek().kind == T_FIELD:
                names.append(self.next().val[1:])
            if isinstance(node, _Field):
                node = _Field(chain_pos, node.names + names)
            elif isinstance(node, _Variable):
                node = _Variable(chain_pos, node.name, node.names + names)
            elif isinstance(node, (_Literal, _Nil, _Dot)):
                self.fail(self.items[self.i - 1], f"unexpected . after term {node.text()!r}"
                          .replace("'", '"'))
            else:
                node = _Chain(chain_pos, node, names)
        return node

    def term(self) -> _Node | None:
        it = self.next_non_space()
        k = it.kind
        if k == T_IDENT:
            if it.val not in self.funcs:
                self.fail(it, f"function \"{it.val}\" not defined")
            return _Ident(it.pos, it.val)
        if k == T_DOT:
            return _Dot(it.pos)
        if k == T_NIL:
            return _Nil(it.pos)
        if k == T_VAR:
            self._check_var(it)
            return _Variable(it.pos, it.val, [])
        if k == T_FIELD:
            return _Field(it.pos, [it.val[1:]])
        if k == T_BOOL:
            return _Literal(it.pos, it.val == "true", it.val, "bool")
        if k == T_CHAR:
            s = _unquote(it)
            return _Literal(it.pos, ord(s), it.val, "char")
        if k == T_NUMBER:
            return _number(it)
        if k == T_LPAREN:
            pipe = self.pipeline("parenthesized pipeline", T_RPAREN)
            return pipe
        if k in (T_STRING, T_RAW):
            return _Literal(it.pos, _unquote(it), it.val, "string")
        self.i -= 1
        return None


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"'}


def _unquote(it: _Item) -> str:
    """Go's strconv.Unquote for "...", `...` and '.'."""
    s = it.val
    if s[0] == "`":
        return s[1:-1].replace("\r", "")
    body, out, i = s[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1] if i + 1 < len(body) else ""
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 2:i + 2 + n]
            if len(digits) != n or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise _ParseError(it.line, "invalid syntax")
            out.append(chr(int(digits, 16)))
            i += 2 + n
        elif e in "01234567":
            digits = body[i + 1:i + 4]
            if len(digits) != 3 or not all(d in "01234567" for d in digits):
                raise _ParseError(it.line, "invalid syntax")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise _ParseError(it.line, "invalid syntax")
    result = "".join(out)
    if s[0] == "'" and len(result) != 1:
        raise _ParseError(it.line, f"malformed character constant: {s}")
    return result


def _number(it: _Item) -> _Literal:
    s = it.val.replace("_", "")
    try:
        if s.endswith("i"):
            raise ValueError
        body = s.lstrip("+-")
        neg = s.startswith("-")
        low = body.lower()
        if low.startswith("0x") and not any(c in low for c in ".p"):
            v: Any = int(body, 16)
        elif low.startswith("0b"):
            v = int(body, 2)
        elif low.startswith("0o"):
            v = int(body, 8)
        elif low.startswith("0x"):
            v = float.fromhex(body)
        elif any(c in low for c in ".e"):
            v = float(body)
        elif len(body) > 1 and body.startswith("0"):
            v = int(body, 8)  # Go reads a leading 0 as octal
        else:
            v = int(body)
        if neg:
            v = -v
    except ValueError:
        raise _ParseError(it.line, f"illegal number syntax: {_go_quote(it.val)}") from None
    kind = "float" if isinstance(v, float) else "int"
    # An integral float written without a fraction mark is still usable as an int argument.
    return _Literal(it.pos, v, it.val, kind)


# -- Go's fmt ------------------------------------------------------------------------------------
def go_type(v: Any) -> str:
    """The Go type name a Python value stands for (as errors and %T print it)."""
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Struct):
        return v.type_name
    if isinstance(v, dict):
        vals = list(v.values())
        if vals and all(isinstance(x, str) for x in vals):
            return "map[string]string"
        return "map[string]interface {}"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, str) for x in v):
            return "[]string"
        return "[]interface {}"
    if isinstance(v, (bytes, bytearray)):
        return "[]uint8"
    if _is_dataclass(v):
        return type(v).__name__
    if callable(v):
        return "func"
    return type(v).__name__


def _float_digits(f: float) -> tuple[str, int]:
    """The shortest digits that read back as f (as Go's and Python's repr choose them), and
    the decimal point's position: 1234.5 -> ("12345", 4)."""
    r = repr(abs(f))
    mant, _, exp = r.partition("e")
    e = int(exp) if exp else 0
    ip, _, fp = mant.partition(".")
    digits = (ip + fp).lstrip("0")
    lead = len(ip + fp) - len((ip + fp).lstrip("0"))
    dp = len(ip) + e - lead
    digits = digits.rstrip("0") or "0"
    if digits == "0":
        dp = 1
    return digits, dp


def _go_float(f: float, verb: str = "g", prec: int = -1, sharp: bool = False) -> str:
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if verb in "gG" and prec < 0:
        digits, dp = _float_digits(f)
        sign = "-" if f < 0 or (f == 0 and math.copysign(1, f) < 0) else ""
        exp = dp - 1
        # strconv's 'g' with the shortest digits: %e form when exp < -4 || exp >= 6.
        eprec = 6
        if exp < -4 or exp >= eprec:
            m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
            e = "e" if verb != "G" else "E"
            return f"{sign}{m}{e}{'-' if exp < 0 else '+'}{abs(exp):02d}"
        if dp <= 0:
            return f"{sign}0.{'0' * -dp}{digits}"
        if dp >= len(digits):
            return f"{sign}{digits}{'0' * (dp - len(digits))}"
        return f"{sign}{digits[:dp]}.{digits[dp:]}"
    if prec < 0:
        prec = 6
    s = f"{f:.{prec}{verb}}"
    if verb in "gG" and sharp and "." not in s:
        s += "."
    return s


def _json_float(f: float) -> str:
    """encoding/json's float64: 'f' form unless the exponent is below -6 or at least 21."""
    if math.isnan(f) or math.isinf(f):
        raise TemplateError(f"json: unsupported value: {_go_float(f)}")
    if f == int(f) and abs(f) < 1e21:
        return str(int(f))
    digits, dp = _float_digits(f)
    exp = dp - 1
    sign = "-" if f < 0 else ""
    if exp < -6 or exp >= 21:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if exp < 0 else '+'}{abs(exp)}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return f"{sign}{digits}{'0' * (dp - len(digits))}"
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def _struct_fields(v: Any) -> list[tuple[str, Any]] | None:
    if isinstance(v, Struct):
        return list(v.items())
    if _is_dataclass(v):
        return [(name, getattr(v, name)) for name in type(v).__dataclass_fields__]
    return None


def _map_items(d: dict[Any, Any]) -> list[tuple[Any, Any]]:
    """fmt and text/template visit map keys sorted (numbers by value, strings by bytes)."""
    try:
        return sorted(d.items(), key=lambda kv: (not isinstance(kv[0], (int, float)), kv[0]))
    except TypeError:
        return sorted(d.items(), key=lambda kv: str(kv[0]))


def go_sprint(v: Any, plus: bool = False, top: bool = True) -> str:
    """fmt's %v (and %+v with plus): how Go prints a value."""
    if v is MISSING:
        return "<no value>" if top else "<nil>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, str):
        return v
    fields = _struct_fields(v)
    if fields is not None:
        if plus:
            return "{" + " ".join(f"{k}:{go_sprint(x, plus, False)}" for k, x in fields) + "}"
        return "{" + " ".join(go_sprint(x, plus, False) for _, x in fields) + "}"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{go_sprint(k, plus, False)}:{go_sprint(x, plus, False)}"
                                 for k, x in _map_items(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_sprint(x, plus, False) for x in v) + "]"
    if isinstance(v, (bytes, bytearray)):
        return "[" + " ".join(str(b) for b in v) + "]"
    return str(v)


def _go_syntax(v: Any) -> str:
    """fmt's %#v, for the kinds Python values stand for."""
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return go_sprint(v)
    if isinstance(v, str):
        return _go_quote(v)
    fields = _struct_fields(v)
    if fields is not None:
        return go_type(v) + "{" + ", ".join(f"{k}:{_go_syntax(x)}" for k, x in fields) + "}"
    if isinstance(v, dict):
        return go_type(v) + "{" + ", ".join(f"{_go_syntax(k)}:{_go_syntax(x)}"
                                            for k, x in _map_items(v)) + "}"
    if isinstance(v, (list, tuple)):
        return go_type(v) + "{" + ", ".join(_go_syntax(x) for x in v) + "}"
    return str(v)


def _go_quote(s: str, ascii_only: bool = False) -> str:
    """strconv.Quote: Go's escapes, printable runes kept."""
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif c in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[c])
        elif o < 0x20 or o == 0x7f:
            out.append(f"\\x{o:02x}")
        elif (ascii_only and o > 0x7e) or not c.isprintable():
            out.append(f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


_VERB_RE = re.compile(r"%([-+# 0]*)(?:\[(\d+)\])?(\*|\d+)?(?:\.(?:\[(\d+)\])?(\*|\d*))?"
                      r"(?:\[(\d+)\])?([a-zA-Z%])?")


def go_sprintf(fmt: str, args: list[Any]) -> str:
    """fmt.Sprintf for the verbs templates use; bad verbs and missing or extra arguments are
    marked in the output as Go marks them (%!d(string=x), %!s(MISSING), %!(EXTRA ...)), and
    explicit argument indexes (%[2]s) work."""
    out: list[str] = []
    i = 0
    argi = 0
    reordered = False
    n = len(fmt)

    def index(text: str | None) -> bool:
        """Apply an explicit [n]: False when it names no argument."""
        nonlocal argi, reordered
        if text is None:
            return True
        reordered = True
        k = int(text)
        if not 1 <= k <= len(args):
            return False
        argi = k - 1
        return True

    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        m = _VERB_RE.match(fmt, j)
        assert m is not None
        flags, width_idx, width_s, prec_idx, prec_s, verb_idx, verb = m.groups()
        i = m.end()
        if verb is None:
            out.append("%!(NOVERB)")
            break
        if verb == "%":
            out.append("%")
            continue
        good = index(width_idx)
        width = None
        prec = None
        if width_s == "*":
            if argi < len(args) and isinstance(args[argi], int) and \
                    not isinstance(args[argi], bool):
                width = args[argi]
                argi += 1
                if width < 0:
                    flags += "-"
                    width = -width
            else:
                out.append("%!(BADWIDTH)")
                argi += 1
        elif width_s:
            width = int(width_s)
        good = index(prec_idx) and good
        if prec_s == "*":
            if argi < len(args) and isinstance(args[argi], int) and \
                    not isinstance(args[argi], bool):
                prec = args[argi]
                argi += 1
            else:
                out.append("%!(BADPREC)")
                argi += 1
        elif prec_s is not None:
            prec = int(prec_s) if prec_s else 0
        good = index(verb_idx) and good
        if not good:
            out.append(f"%!{verb}(BADINDEX)")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        out.append(_pad_width(_format_one(verb, flags, prec, arg), width, flags, verb, arg))
    if not reordered and argi < len(args):
        extra = ", ".join(f"{go_type(a)}={go_sprint(a, top=False)}" if a is not None
                          else "<nil>" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _pad_width(s: str, width: int | None, flags: str, verb: str, arg: Any) -> str:
    if width is None or len(s) >= width:
        return s
    if "-" in flags:
        return s + " " * (width - len(s))
    numeric = isinstance(arg, (int, float)) and not isinstance(arg, bool) and verb not in "sqvT"
    if "0" in flags and (numeric or verb in "sv" and isinstance(arg, (int, float))):
        sign = s[0] if s[:1] in "+-" else ""
        return sign + "0" * (width - len(s)) + s[len(sign):]
    return " " * (width - len(s)) + s


def _format_one(verb: str, flags: str, prec: int | None, arg: Any) -> str:
    plus, sharp, space = "+" in flags, "#" in flags, " " in flags
    if arg is MISSING:
        arg = None
    if verb == "T":
        return go_type(arg)
    if verb == "v":
        if sharp:
            return _go_syntax(arg)
        if isinstance(arg, float):
            return _go_float(arg, "g", prec if prec is not None else -1)
        s = go_sprint(arg, plus=plus, top=False)
        if plus and isinstance(arg, (int, float)) and not isinstance(arg, bool) and arg >= 0:
            s = "+" + s
        return s
    if arg is None:
        return f"%!{verb}(<nil>)"
    if isinstance(arg, bool):
        if verb == "t":
            return "true" if arg else "false"
        return f"%!{verb}(bool={go_sprint(arg)})"
    if isinstance(arg, int):
        if verb in "dboOxXcqU":
            return _format_int(verb, arg, plus, sharp, space, prec)
        if verb in "eEfFgG":
            return f"%!{verb}(int={arg})"
        return f"%!{verb}(int={arg})"
    if isinstance(arg, float):
        if verb in "eEfFgG":
            s = _go_float(arg, verb if verb != "F" else "f", -1 if prec is None else prec,
                          sharp)
            if plus and arg >= 0:
                s = "+" + s
            elif space and arg >= 0:
                s = " " + s
            return s
        return f"%!{verb}(float64={_go_float(arg)})"
    if isinstance(arg, str):
        if verb == "s":
            return arg if prec is None else arg[:prec]
        if verb == "q":
            s = arg if prec is None else arg[:prec]
            if sharp and "`" not in s and s.isprintable():
                return f"`{s}`"
            return _go_quote(s, ascii_only=plus)
        if verb in "xX":
            s = arg.encode() if prec is None else arg[:prec].encode()
            h = s.hex() if verb == "x" else s.hex().upper()
            if space:
                h = " ".join(h[k:k + 2] for k in range(0, len(h), 2))
            return h
        return f"%!{verb}(string={arg})"
    if isinstance(arg, (list, tuple)):
        if verb in "sqdxXvbo":
            return "[" + " ".join(_format_one(verb, flags, prec, x) for x in arg) + "]"
        return f"%!{verb}({go_type(arg)}={go_sprint(arg, top=False)})"
    if isinstance(arg, dict) and _struct_fields(arg) is None:
        if verb in "sqdxX":
            return "map[" + " ".join(f"{_format_one(verb, flags, prec, k)}:"
                                     f"{_format_one(verb, flags, prec, x)}"
                                     for k, x in _map_items(arg)) + "]"
    if verb == "s":
        return go_sprint(arg, plus=plus, top=False)
    return f"%!{verb}({go_type(arg)}={go_sprint(arg, top=False)})"


def _format_int(verb: str, v: int, plus: bool, sharp: bool, space: bool,
                prec: int | None) -> str:
    if verb == "c":
        return chr(v) if 0 <= v <= 0x10FFFF else "\ufffd"
    if verb == "q":
        c = chr(v) if 0 <= v <= 0x10FFFF else "\ufffd"
        return "'" + _go_quote(c)[1:-1].replace("\\\"", '"').replace("'", "\\'") + "'"
    if verb == "U":
        s = f"U+{v:04X}"
        return s + (f" '{chr(v)}'" if sharp else "")
    base = {"d": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}[verb]
    digits = {10: "d", 2: "b", 8: "o", 16: "x"}[base]
    body = format(abs(v), digits)
    if verb == "X":
        body = body.upper()
    if prec is not None:
        body = body.rjust(prec, "0") if not (prec == 0 and v == 0) else ""
    prefix = ""
    if verb == "O":
        prefix = "0o"
    elif sharp:
        prefix = {"b": "0b", "o": "0", "x": "0x", "X": "0X"}.get(verb, "")
        if verb == "o" and body.startswith("0"):
            prefix = ""
    sign = "-" if v < 0 else "+" if plus else " " if space else ""
    return sign + prefix + body


def go_json(v: Any) -> str:
    """The template function `json`: encoding/json, compact, without HTML escaping."""
    return _json_encode(v)


def _json_encode(v: Any) -> str:
    if v is None or v is MISSING:
        return "null"
    if hasattr(v, "go_json"):
        return str(v.go_json())  # a value with its own encoding (a time, as RFC 3339)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\u2028", "\\u2028") \
            .replace("\u2029", "\\u2029")
    fields = _struct_fields(v)
    if fields is not None:
        return "{" + ",".join(f"{json.dumps(k)}:{_json_encode(x)}" for k, x in fields) + "}"
    if isinstance(v, dict):
        # Producers build dicts in the order their Go counterparts declare struct fields;
        # keep it (a real map's keys were sorted by whoever made it, if it matters).
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{_json_encode(x)}"
                              for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_json_encode(x) for x in v) + "]"
    if isinstance(v, (bytes, bytearray)):
        import base64
        return json.dumps(base64.b64encode(bytes(v)).decode())
    return json.dumps(str(v))


# -- functions -----------------------------------------------------------------------------------
class _FuncError(Exception):
    """A function's own error: reported as `error calling NAME: MSG`."""


class Func:
    """A template function with Go's signature: parameter types ("string", "int", "[]string",
    "any"), whether the last one repeats, and the Python callable."""

    __slots__ = ("fn", "params", "variadic", "raw")

    def __init__(self, fn: Callable[..., Any], params: tuple[str, ...], variadic: bool = False,
                 raw: bool = False):
        self.fn, self.params, self.variadic, self.raw = fn, params, variadic, raw


def _truth(v: Any) -> bool:
    if v is None or v is MISSING:
        return False
    if isinstance(v, Struct):
        return True  # a struct is never empty
    if isinstance(v, (bool, int, float, str, list, tuple, dict, bytes)):
        return bool(v)
    return True


def _and(*args: Any) -> Any:
    for a in args:
        if not _truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if _truth(a):
            return a
    return args[-1]


def _basic_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if v is None or v is MISSING:
        return "nil"
    return "other"


def _eq(a: Any, *rest: Any) -> bool:
    if not rest:
        raise _FuncError("missing argument for comparison")
    ka = _basic_kind(a)
    if ka == "other":
        raise _FuncError(f"non-comparable type {go_sprint(a, top=False)}: {go_type(a)}")
    for b in rest:
        kb = _basic_kind(b)
        if kb == "other":
            raise _FuncError(f"non-comparable type {go_sprint(b, top=False)}: {go_type(b)}")
        if ka == "nil" or kb == "nil":
            if ka == kb:
                return True
            raise _FuncError("incompatible types for comparison")
        if ka != kb:
            raise _FuncError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka in ("bool", "nil", "other") or kb in ("bool", "nil", "other"):
        raise _FuncError("invalid type for comparison")
    if ka != kb:
        raise _FuncError("incompatible types for comparison")
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    return _lt(a, b) or _eq(a, b)


def _gt(a: Any, b: Any) -> bool:
    return not _le(a, b)


def _ge(a: Any, b: Any) -> bool:
    return not _lt(a, b)


def _len(v: Any) -> int:
    if isinstance(v, (str, bytes)):
        return len(v.encode() if isinstance(v, str) else v)
    if isinstance(v, (list, tuple, dict)):
        return len(v)
    if v is None:
        return 0  # a JSON null stands for a nil map or slice, whose len Go gives as 0
    raise _FuncError(f"len of type {go_type(v)}")


def _zero_of_map(d: dict[Any, Any]) -> Any:
    """A missing key's zero value: "" for a map of strings (Labels, Annotations), else nil."""
    return "" if all(isinstance(x, str) for x in d.values()) else None


def _index(item: Any, *keys: Any) -> Any:
    v = item
    if v is None or v is MISSING:
        raise _FuncError("index of untyped nil")
    for k in keys:
        if isinstance(v, dict):
            if k is MISSING or k is None:
                raise _FuncError("value is nil; should be of type string")
            key_type = type(next(iter(v))) if v else str
            if not isinstance(k, key_type):
                raise _FuncError(f"value has type {go_type(k)}; should be "
                                 f"{go_type(next(iter(v))) if v else 'string'}")
            v = v[k] if k in v else _zero_of_map(v)
        elif isinstance(v, (list, tuple, str, bytes)):
            if isinstance(k, bool) or not isinstance(k, int):
                raise _FuncError(f"cannot index slice/array with type {go_type(k)}")
            if not 0 <= k < len(v):
                raise _FuncError(f"index out of range: {k}")
            v = v[k] if not isinstance(v, str) else v.encode()[k]
        elif v is None:
            raise _FuncError("index of nil pointer")
        else:
            raise _FuncError(f"can't index item of type {go_type(v)}")
    return v


def _slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, (str, list, tuple)):
        raise _FuncError(f"can't slice item of type {go_type(item)}")
    if len(idx) > 3 or (len(idx) == 3 and isinstance(item, str)):
        raise _FuncError(f"too many slice indexes: {len(idx)}")
    n = len(item)
    bounds = []
    for k in idx:
        if isinstance(k, bool) or not isinstance(k, int):
            raise _FuncError(f"cannot index slice/array with type {go_type(k)}")
        if not 0 <= k <= n:
            raise _FuncError(f"index out of range: {k}")
        bounds.append(k)
    lo = bounds[0] if bounds else 0
    hi = bounds[1] if len(bounds) > 1 else n
    if lo > hi:
        raise _FuncError(f"invalid slice index: {lo} > {hi}")
    return item[lo:hi]


def _sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_sprint(a, top=False))
    return "".join(out)


def _sprintln(*args: Any) -> str:
    return " ".join(go_sprint(a, top=False) for a in args) + "\n"


def _printf(fmt: str, *args: Any) -> str:
    return go_sprintf(fmt, list(args))


def _html(*args: Any) -> str:
    s = _eval_args_string(args)
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&#34;").replace("\0", "\ufffd"))


def _js(*args: Any) -> str:
    s = _eval_args_string(args)
    out = []
    for c in s:
        if c in "\\'\"":
            out.append("\\" + c)
        elif c in "<>&=":
            out.append(f"\\u{ord(c):04X}")
        elif ord(c) < 0x20 or not c.isprintable():
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus
    return quote_plus(_eval_args_string(args), safe="-_.~")


def _eval_args_string(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _sprint(*args)


def _call(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise _FuncError(f"non-function of type {go_type(fn)}")
    return fn(*args)


def _title(s: str) -> str:
    """strings.Title: the first letter of each word upper-cased."""
    out, prev = [], " "
    for c in s:
        sep = not (prev.isalnum() or prev == "_") if prev.isascii() else prev.isspace()
        out.append(c.upper() if sep else c)
        prev = c
    return "".join(out)


def _pad(s: str, prefix: int, suffix: int) -> str:
    if prefix < 0 or suffix < 0:
        raise _FuncError("strings: negative Repeat count")
    return " " * prefix + s + " " * suffix


def _truncate(s: str, length: int) -> str:
    b = s.encode()
    if len(b) < length:
        return s
    if length < 0:
        raise _FuncError(f"runtime error: slice bounds out of range [:{length}]")
    return b[:length].decode(errors="replace")


def _split(s: str, sep: str) -> list[str]:
    if sep == "":
        return list(s)
    return s.split(sep)


def _join(items: list[str], sep: str) -> str:
    return sep.join(items)


FUNCS: dict[str, Func] = {
    # text/template's built-ins
    "and": Func(_and, ("any",), variadic=True),
    "or": Func(_or, ("any",), variadic=True),
    "not": Func(lambda v: not _truth(v), ("any",)),
    "len": Func(_len, ("any",)),
    "index": Func(_index, ("any", "any"), variadic=True),
    "slice": Func(_slice, ("any", "any"), variadic=True),
    "print": Func(_sprint, ("any",), variadic=True),
    "printf": Func(_printf, ("string", "any"), variadic=True),
    "println": Func(_sprintln, ("any",), variadic=True),
    "eq": Func(_eq, ("any", "any"), variadic=True),
    "ne": Func(_ne, ("any", "any")),
    "lt": Func(_lt, ("any", "any")),
    "le": Func(_le, ("any", "any")),
    "gt": Func(_gt, ("any", "any")),
    "ge": Func(_ge, ("any", "any")),
    "html": Func(_html, ("any",), variadic=True),
    "js": Func(_js, ("any",), variadic=True),
    "urlquery": Func(_urlquery, ("any",), variadic=True),
    "call": Func(_call, ("any", "any"), variadic=True),
    # podman's (containers/common pkg/report DefaultFuncs)
    "join": Func(_join, ("[]string", "string")),
    "json": Func(go_json, ("any",)),
    "lower": Func(str.lower, ("string",)),
    "pad": Func(_pad, ("string", "int", "int")),
    "split": Func(_split, ("string", "string")),
    "title": Func(_title, ("string",)),
    "truncate": Func(_truncate, ("string", "int")),
    "upper": Func(str.upper, ("string",)),
}
# Go's eq/ne/... take at least 1 (eq) or exactly 2 arguments; and/or/index at least 1.
_MIN_ARGS = {"and": 1, "or": 1, "index": 1, "slice": 1, "eq": 1, "call": 1, "printf": 1,
             "print": 0, "println": 0, "html": 0, "js": 0, "urlquery": 0}


# -- evaluation ----------------------------------------------------------------------------------
class _ExecError(Exception):
    def __init__(self, node: _Node | None, msg: str):
        super().__init__(msg)
        self.node, self.msg = node, msg


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_MAX_DEPTH = 100_000  # Go's maxExecDepth; template recursion through {{template}} stops here


class Template:
    """A parsed template: execute(data) gives the text; errors are TemplateError."""

    def __init__(self, text: str, name: str = "template", funcs: dict[str, Func] | None = None):
        self.name = name
        self.source = text
        self.funcs = dict(FUNCS)
        if funcs:
            self.funcs.update(funcs)
        parser = _Parser(text, self.funcs)
        try:
            self.nodes = parser.parse()
        except _ParseError as e:
            raise TemplateError(f"template: {name}:{e.line}: {e.msg}") from None
        except RecursionError:
            # parentheses or blocks nested thousands deep: Go stops at a depth too
            line = parser.items[min(parser.i, len(parser.items) - 1)].line
            raise TemplateError(f"template: {name}:{line}: max expression depth exceeded") \
                from None
        self.defined = parser.defined
        self.defined.setdefault(name, self.nodes)

    def execute(self, data: Any) -> str:
        out: list[str] = []
        state = _State(self, out, data)
        try:
            state.walk_list(data, self.nodes)
        except _ExecError as e:
            # One line, whatever value the message quotes (Go would print its newlines)
            raise TemplateError(self._exec_message(e).replace("\n", "\\n")) from None
        except RecursionError:
            raise TemplateError(f"template: {self.name}: exceeded maximum template depth "
                                f"({_MAX_DEPTH})") from None
        return "".join(out)

    def _exec_message(self, e: _ExecError) -> str:
        if e.node is None:
            return f"template: {self.name}: {e.msg}"
        pos = e.node.pos
        before = self.source[:pos]
        line = before.count("\n") + 1
        nl = before.rfind("\n")
        col = pos if nl < 0 else pos - nl - 1
        ctx = e.node.text() if not isinstance(e.node, (_Action, _Branch)) else ""
        return (f"template: {self.name}:{line}:{col}: executing \"{self.name}\" at <{ctx}>: "
                f"{e.msg}")


class _State:
    __slots__ = ("tmpl", "out", "vars", "depth")

    def __init__(self, tmpl: Template, out: list[str], data: Any):
        self.tmpl = tmpl
        self.out = out
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.depth = 0

    # variables
    def push(self, name: str, value: Any) -> None:
        self.vars.append((name, value))

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise _ExecError(None, f"undefined variable: {name}")

    def var(self, node: _Variable) -> Any:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == node.name:
                return self.vars[i][1]
        raise _ExecError(node, f"undefined variable: {node.name}")

    # walking
    def walk_list(self, dot: Any, nodes: list[_Node]) -> None:
        for n in nodes:
            self.walk(dot, n)

    def walk(self, dot: Any, node: _Node) -> None:
        if isinstance(node, _Text):
            self.out.append(node.value)
        elif isinstance(node, _Action):
            v = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.out.append(self.printable(node.pipe, v))
        elif isinstance(node, _Branch):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                mark = len(self.vars)
                v = self.eval_pipeline(dot, node.pipe)
                if _truth(v):
                    self.walk_list(v if node.kind == "with" else dot, node.body)
                elif node.orelse is not None:
                    self.walk_list(dot, node.orelse)
                del self.vars[mark:]
        elif isinstance(node, _Control):
            raise _Break if node.kind == "break" else _Continue
        elif isinstance(node, _TemplateCall):
            body = self.tmpl.defined.get(node.name)
            if body is None:
                raise _ExecError(node, f"template \"{node.name}\" not defined")
            new_dot = self.eval_pipeline(dot, node.pipe) if node.pipe else None
            self.depth += 1
            if self.depth >= _MAX_DEPTH:
                raise _ExecError(node, f"exceeded maximum template depth ({_MAX_DEPTH})")
            saved = self.vars
            self.vars = [("$", new_dot)]
            try:
                self.walk_list(new_dot, body)
            finally:
                self.vars = saved
                self.depth -= 1

    def walk_range(self, dot: Any, node: _Branch) -> None:
        mark = len(self.vars)
        v = self.eval_pipeline(dot, node.pipe)
        items: Iterator[tuple[Any, Any]]
        if v is None or v is MISSING:
            items = iter(())
        elif isinstance(v, dict):
            items = iter(_map_items(v))
        elif isinstance(v, (list, tuple)):
            items = iter(enumerate(v))
        elif isinstance(v, (bytes, bytearray)):
            items = iter(enumerate(v))
        else:
            raise _ExecError(node.pipe, f"range can't iterate over {go_sprint(v)}")
        # The pipeline pushed its declared variables; each element sets them in place.
        decl = node.pipe.decl
        top = len(self.vars)
        ran = False
        for key, elem in items:
            ran = True
            if node.pipe.is_assign:
                if len(decl) == 2:
                    self.set_var(decl[0].name, key)
                    self.set_var(decl[1].name, elem)
                elif decl:
                    self.set_var(decl[0].name, elem)
            elif len(decl) == 2:
                self.vars[top - 2] = (decl[0].name, key)
                self.vars[top - 1] = (decl[1].name, elem)
            elif decl:
                self.vars[top - 1] = (decl[0].name, elem)
            try:
                self.walk_list(elem, node.body)
            except _Break:
                del self.vars[top:]
                break
            except _Continue:
                pass
            del self.vars[top:]
        if not ran and node.orelse is not None:
            self.walk_list(dot, node.orelse)
        del self.vars[mark:]

    def printable(self, node: _Node, v: Any) -> str:
        if v is MISSING or v is None:
            return "<no value>"
        if callable(v) and not isinstance(v, type) and not _is_dataclass(v):
            raise _ExecError(node, f"can't print {node.text()} of type func")
        return go_sprint(v)

    # pipelines
    def eval_pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        value: Any = MISSING
        final_given = False
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value if final_given else _NO_FINAL)
            final_given = True
        if pipe.decl:
            for var in pipe.decl:
                if pipe.is_assign:
                    self.set_var(var.name, value)
                else:
                    self.push(var.name, value)
        return value

    def eval_command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _Field):
            return self.eval_field_chain(dot, dot, first, first.names, cmd.args, final)
        if isinstance(first, _Chain):
            base = self.eval_arg(dot, first.node)
            return self.eval_field_chain(dot, base, first, first.names, cmd.args, final)
        if isinstance(first, _Ident):
            return self.eval_function(dot, first, cmd, final)
        if isinstance(first, _Pipe):
            self.not_a_function(cmd, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, _Variable):
            value = self.var(first)
            if first.names:
                return self.eval_field_chain(dot, value, first, first.names, cmd.args, final)
            self.not_a_function(cmd, final)
            return value
        self.not_a_function(cmd, final)
        if isinstance(first, _Literal):
            return first.value
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _Nil):
            raise _ExecError(first, "nil is not a command")
        raise _ExecError(first, f"can't evaluate command {first.text()!r}")

    def not_a_function(self, cmd: _Command, final: Any) -> None:
        if len(cmd.args) > 1 or final is not _NO_FINAL:
            raise _ExecError(cmd.args[0], f"can't give argument to non-function "
                                          f"{cmd.args[0].text()}")

    def eval_field_chain(self, dot: Any, receiver: Any, node: _Node, names: list[str],
                         args: list[_Node], final: Any) -> Any:
        for name in names[:-1]:
            receiver = self.eval_field(dot, name, node, [], _NO_FINAL, receiver)
        return self.eval_field(dot, names[-1], node, args, final, receiver)

    def eval_field(self, dot: Any, name: str, node: _Node, args: list[_Node], final: Any,
                   receiver: Any) -> Any:
        has_args = len(args) > 1 or final is not _NO_FINAL
        if receiver is MISSING:
            return MISSING
        if receiver is None:
            raise _ExecError(node, f"nil pointer evaluating interface {{}}.{name}")
        # a row type's methods (podman's psReporter.Label "key"): a dict row whose class lists
        # them in template_methods, reached below as any object's method
        method = (isinstance(receiver, dict) and name not in receiver
                  and name in getattr(type(receiver), "template_methods", ()))
        if isinstance(receiver, Struct) and not method:
            if name not in receiver and name in receiver.promoted:
                return receiver.promoted[name]
            if name not in receiver:
                raise _ExecError(node, f"can't evaluate field {name} in type "
                                       f"{receiver.type_name}")
            if has_args:
                raise _ExecError(node, f"{name} has arguments but cannot be invoked as "
                                       f"function")
            return receiver[name]
        if isinstance(receiver, dict) and not method:
            if has_args:
                raise _ExecError(node, f"{name} is not a method but has arguments")
            return receiver.get(name, MISSING)
        if not name.startswith("_") and not isinstance(receiver, (str, int, float, bool, list,
                                                                  tuple, bytes)):
            try:
                attr = getattr(receiver, name)
            except AttributeError:
                attr = MISSING
            if attr is not MISSING:
                if callable(attr) and not _is_dataclass(attr):
                    # A method is called (with the command's arguments, as Go calls methods)
                    # only when its class lists it in template_methods: a user's format must
                    # never reach a method that changes something (a record's save, say).
                    if name not in getattr(type(receiver), "template_methods", ()):
                        raise _ExecError(node, f"can't evaluate field {name} in type "
                                               f"{go_type(receiver)}")
                    argv = [self.eval_arg(dot, a) for a in args[1:]]
                    if final is not _NO_FINAL:
                        argv.append(final)
                    try:
                        return attr(*argv)
                    except TemplateError:
                        raise
                    except Exception as e:  # noqa: BLE001 - a method's error, reported as Go does
                        raise _ExecError(node, f"error calling {name}: {e}") from None
                if has_args:
                    raise _ExecError(node, f"{name} has arguments but cannot be invoked as "
                                           f"function")
                return attr
        raise _ExecError(node, f"can't evaluate field {name} in type {go_type(receiver)}")

    def eval_function(self, dot: Any, ident: _Ident, cmd: _Command, final: Any) -> Any:
        fn = self.tmpl.funcs[ident.name]
        name = ident.name
        arg_nodes = cmd.args[1:]
        nargs = len(arg_nodes) + (0 if final is _NO_FINAL else 1)
        fixed = len(fn.params) - (1 if fn.variadic else 0)
        if fn.variadic:
            want_min = _MIN_ARGS.get(name, fixed)
            if nargs < want_min:
                raise _ExecError(ident, f"wrong number of args for {name}: want at least "
                                        f"{want_min} got {nargs}")
        elif nargs != len(fn.params):
            raise _ExecError(ident, f"wrong number of args for {name}: want "
                                    f"{len(fn.params)} got {nargs}")
        # and/or stop at the first argument that decides (Go 1.18).
        if name in ("and", "or"):
            v: Any = final
            for a in arg_nodes:
                v = self.eval_arg(dot, a)
                if _truth(v) == (name == "or"):
                    return v
            return final if final is not _NO_FINAL else v
        argv = []
        for i, a in enumerate(arg_nodes):
            ptype = fn.params[min(i, len(fn.params) - 1)]
            argv.append(self.typed_arg(dot, a, ptype))
        if final is not _NO_FINAL:
            ptype = fn.params[min(len(argv), len(fn.params) - 1)]
            argv.append(self.validate(ident, final, ptype))
        try:
            return fn.fn(*argv)
        except _FuncError as e:
            raise _ExecError(cmd, f"error calling {name}: {e}") from None
        except TemplateError:
            raise
        except Exception as e:  # noqa: BLE001 - a function panicked: Go reports it likewise
            raise _ExecError(cmd, f"error calling {name}: {e}") from None

    def typed_arg(self, dot: Any, node: _Node, ptype: str) -> Any:
        if isinstance(node, _Literal):
            if ptype == "string" and node.kind != "string":
                raise _ExecError(node, f"expected string; found {node.source}")
            if ptype == "int":
                # Go's number node is also an int when a float constant is integral (2.0).
                if node.kind == "float" and float(node.value).is_integer():
                    return int(node.value)
                if node.kind not in ("int", "char"):
                    raise _ExecError(node, f"expected integer; found {node.source}")
            if ptype == "[]string":
                raise _ExecError(node, f"can't handle {node.source} for arg of type []string")
            return node.value
        if isinstance(node, _Nil):
            if ptype in ("string", "int"):
                raise _ExecError(node, f"cannot assign nil to {ptype}")
            return None
        return self.validate(node, self.eval_arg(dot, node), ptype)

    def validate(self, node: _Node, v: Any, ptype: str) -> Any:
        if ptype == "any":
            return None if v is MISSING else v
        if v is MISSING:
            raise _ExecError(node, f"invalid value; expected {ptype}")
        ok = ((ptype == "string" and isinstance(v, str)) or
              (ptype == "int" and isinstance(v, int) and not isinstance(v, bool)) or
              (ptype == "[]string" and isinstance(v, (list, tuple)) and
               all(isinstance(x, str) for x in v)))
        if not ok:
            got = "interface {}" if v is None else go_type(v)
            raise _ExecError(node, f"wrong type for value; expected {ptype}; got {got}")
        return v

    def eval_arg(self, dot: Any, node: _Node) -> Any:
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Nil):
            return None
        if isinstance(node, _Field):
            return self.eval_field_chain(dot, dot, node, node.names, [node], _NO_FINAL)
        if isinstance(node, _Variable):
            v = self.var(node)
            if node.names:
                return self.eval_field_chain(dot, v, node, node.names, [node], _NO_FINAL)
            return v
        if isinstance(node, _Pipe):
            return self.eval_pipeline(dot, node)
        if isinstance(node, _Chain):
            base = self.eval_arg(dot, node.node)
            return self.eval_field_chain(dot, base, node, node.names, [node], _NO_FINAL)
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Ident):
            return self.eval_function(dot, node, _Command(node.pos, [node]), _NO_FINAL)
        raise _ExecError(node, f"can't handle {node.text()}")


_NO_FINAL: Any = object()  # no value piped in (distinct from a piped "no value")


# -- podman's handling of CLI format strings -----------------------------------------------------
def normalize(fmt: str) -> tuple[str, bool]:
    """podman's NormalizeFormat: `\\t` and `\\n` typed on the command line become a tab and a
    newline; a leading "table " is dropped (and its spaces become column breaks); a final
    newline is added. Returns the text and whether it was a table."""
    if fmt.startswith("table "):
        text = fmt[len("table "):].replace("\\t", "\t").replace("\\n", "\n").replace(" ", "\t")
        table = True
    else:
        text = fmt.replace("\\t", "\t").replace("\\n", "\n")
        table = False
    if not text.endswith("\n"):
        text += "\n"
    return text, table


_RANGE_RE = re.compile(r"(?s){{\s*range\s*\.\s*}}.*{{\s*end\s*-?\s*}}")
_JSON_RE = re.compile(r"^\s*(json|{{\s*json *\.?\s*}})\s*$")


def enforce_range(text: str) -> str:
    """podman's EnforceRange: a template over a list runs once per element unless it ranges
    over the list itself."""
    if _RANGE_RE.search(text):
        return text
    return "{{range .}}" + text + "{{end -}}"


def is_json(fmt: str) -> bool:
    """podman's IsJSON: `json`, `{{json}}`, `{{json .}}` ask for the command's JSON output."""
    return bool(_JSON_RE.match(fmt))


def compile_format(fmt: str, name: str, wrap: Callable[[str, bool], str]) -> tuple[Template, bool]:
    """A CLI format string as podman compiles it: normalized (escapes, "table", final
    newline), then wrap(text, is_table) (a range, say). When that does not parse, podman
    runs the format as typed (an escape inside a quoted string, `{{"a\\nb"}}`, is then
    Go's own), and a format that fails both ways is reported as typed: so an unclosed
    {{if}} is "template: ps:1: unexpected EOF", on the user's line 1."""
    text, table = normalize(fmt)
    try:
        return parse(wrap(text, table), name), table
    except TemplateError:
        raw = fmt[len("table "):] if table else fmt
        if raw == text:
            raise
        return parse(wrap(raw, table), name), table


_cache: dict[tuple[str, str], Template] = {}


def parse(text: str, name: str = "template", funcs: dict[str, Func] | None = None) -> Template:
    if funcs:
        return Template(text, name, funcs)
    key = (text, name)
    t = _cache.get(key)
    if t is None:
        if len(_cache) >= 256:
            _cache.clear()  # a long-lived caller (the API service) with many formats
        t = _cache[key] = Template(text, name)
    return t


def execute(text: str, data: Any, name: str = "template") -> str:
    return parse(text, name).execute(data)
