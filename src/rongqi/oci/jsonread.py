"""Typed reading of a JSON document (config.json, exec's --process, update's --resources, the
seccomp block): one reader and one wording for every mistake, naming the value's JSON path.

    process.args: must be an array, not a string
    linux.resources.cpu.shares: 1 is out of range (2..262144)
    linux.seccomp.defaultAction: required

On the runtime's start path: standard library only, nothing imported.
"""

from __future__ import annotations

import builtins

from rongqi.errors import SpecError

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any, Literal, overload


def kind(v: object) -> str:
    """A JSON value's kind, with its article, as the errors say it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def wrong(path: str, want: str, v: object) -> SpecError:
    """The error for a value of the wrong kind: `path: must be WANT, not KIND`."""
    return SpecError(f"{path}: must be {want}, not {kind(v)}")


def obj(v: object, path: str) -> dict:
    if not isinstance(v, dict):
        raise wrong(path or "config", "an object", v)
    return v


def array(v: object, path: str) -> list:
    if not isinstance(v, list):
        raise wrong(path, "an array", v)
    return v


def string(v: object, path: str) -> str:
    if not isinstance(v, str):
        raise wrong(path, "a string", v)
    return v


def boolean(v: object, path: str) -> bool:
    if not isinstance(v, bool):
        raise wrong(path, "true or false", v)
    return v


def integer(v: object, path: str, lo: int | None = None, hi: int | None = None, what: str = "") -> int:
    """An integer (a JSON number without a fraction: 5 or 5.0) in [lo, hi]; what, if given,
    says the range in words instead of `lo..hi`."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise wrong(path, "an integer", v)
    n = int(v)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        if not what:
            what = f"{lo}..{hi}" if lo is not None and hi is not None else (
                f"at least {lo}" if lo is not None else f"at most {hi}")
        raise SpecError(f"{path}: {n} is out of range ({what})")
    return n


class Obj:
    """A JSON object being read, with its path; a member that is absent or null is unset."""

    __slots__ = ("d", "path")

    def __init__(self, d: object, path: str):
        self.d = obj(d, path)
        self.path = path

    def at(self, key: builtins.str) -> builtins.str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: builtins.str) -> Any:
        return self.d.get(key)

    # Obj's readers are named after the JSON kinds (str, bool, int, list): inside the class
    # those names are the methods, so the types are spelled builtins.X.
    if TYPE_CHECKING:
        @overload
        def str(self, key: builtins.str, default: builtins.str, required: builtins.bool = False) -> builtins.str: ...
        @overload
        def str(self, key: builtins.str, default: None = None, *, required: Literal[True]) -> builtins.str: ...
        @overload
        def str(self, key: builtins.str, default: None = None,
                required: builtins.bool = False) -> builtins.str | None: ...

    def str(self, key: builtins.str, default: builtins.str | None = None,
            required: builtins.bool = False) -> builtins.str | None:
        v = self.d.get(key)
        if v is None:
            if required:
                raise SpecError(f"{self.at(key)}: required")
            return default
        return string(v, self.at(key))

    def bool(self, key: builtins.str, default: builtins.bool = False) -> builtins.bool:
        v = self.d.get(key)
        return default if v is None else boolean(v, self.at(key))

    if TYPE_CHECKING:
        @overload
        def int(self, key: builtins.str, default: builtins.int, lo: builtins.int | None = None,
                hi: builtins.int | None = None, required: builtins.bool = False,
                what: builtins.str = "") -> builtins.int: ...
        @overload
        def int(self, key: builtins.str, default: None = None, lo: builtins.int | None = None,
                hi: builtins.int | None = None, *, required: Literal[True], what: builtins.str = "") -> builtins.int: ...
        @overload
        def int(self, key: builtins.str, default: None = None, lo: builtins.int | None = None,
                hi: builtins.int | None = None, required: builtins.bool = False,
                what: builtins.str = "") -> builtins.int | None: ...

    def int(self, key: builtins.str, default: builtins.int | None = None, lo: builtins.int | None = None,
            hi: builtins.int | None = None, required: builtins.bool = False,
            what: builtins.str = "") -> builtins.int | None:
        v = self.d.get(key)
        if v is None:
            if required:
                raise SpecError(f"{self.at(key)}: required")
            return default
        return integer(v, self.at(key), lo, hi, what)

    def member(self, key: builtins.str) -> Obj:
        """An object member known to be there (raw(key) is not None)."""
        return Obj(self.d.get(key), self.at(key))

    def obj(self, key: builtins.str) -> Obj | None:
        v = self.d.get(key)
        return None if v is None else Obj(v, self.at(key))

    def list(self, key: builtins.str) -> builtins.list[Any]:
        v = self.d.get(key)
        return [] if v is None else array(v, self.at(key))

    def strs(self, key: builtins.str) -> builtins.list[builtins.str]:
        out = self.list(key)
        for i, s in enumerate(out):
            string(s, f"{self.at(key)}[{i}]")
        return out

    def str_map(self, key: builtins.str) -> dict[builtins.str, builtins.str]:
        v = self.d.get(key)
        if v is None:
            return {}
        for k, s in obj(v, self.at(key)).items():
            string(s, f"{self.at(key)}.{k}")
        return v
