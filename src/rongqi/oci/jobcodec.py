"""The helper's job across a re-exec: plain values, objects with __slots__ and bound methods,
to bytes and back with marshal (built in), not pickle.

Used only when the runtime re-execs its helper through a protected interpreter (see
spawn.spawn_in_cgroup): importing _pickle costs ~5 ms there (collections, functools), a
fifth of the whole fallback. Shared and cyclic objects keep their identity. A value this
codec does not know goes through _pickle instead, so nothing is ever lost.
"""

from __future__ import annotations

import marshal
import sys

_PLAIN = (type(None), bool, int, float, str, bytes)
_MARSHAL, _PICKLE = b"M", b"P"


class _Encoder:
    __slots__ = ("memo",)

    def __init__(self):
        self.memo: dict[int, int] = {}

    def enc(self, x):
        t = type(x)
        if t in _PLAIN:
            return x
        if t is list:
            return ("L", [self.enc(v) for v in x])
        if t is tuple:
            return ("T", tuple(self.enc(v) for v in x))
        if t is dict:
            return ("D", [(self.enc(k), self.enc(v)) for k, v in x.items()])
        if t is set or t is frozenset:
            return ("S" if t is set else "F", [self.enc(v) for v in x])
        if t is _MethodType:
            return ("M", self.enc(x.__self__), x.__func__.__name__)
        if t is _FunctionType or t is type:
            _check_global(x)
            return ("G", x.__module__, x.__qualname__)
        if t.__module__ == "builtins" or t.__qualname__ != t.__name__:
            raise TypeError(f"jobcodec: cannot carry a {t.__qualname__}")
        key = id(x)
        if key in self.memo:
            return ("R", self.memo[key])
        idx = self.memo[key] = len(self.memo)
        return ("O", idx, t.__module__, t.__qualname__, [(n, self.enc(v)) for n, v in _attributes(x)])


def _check_global(x) -> None:
    mod = sys.modules.get(x.__module__)
    if mod is None or getattr(mod, x.__qualname__, None) is not x:
        raise TypeError(f"jobcodec: {x!r} is not a module-level name")


def _attributes(x):
    seen = set()
    for klass in type(x).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if name in seen or name in ("__dict__", "__weakref__"):
                continue
            seen.add(name)
            try:
                yield name, getattr(x, name)
            except AttributeError:
                pass  # a slot never set
    d = getattr(x, "__dict__", None)
    if d:
        yield from d.items()


def _method_type():
    class _C:
        def m(self):
            pass

    return type(_C().m), type(_method_type)


_MethodType, _FunctionType = _method_type()


def _decode(x, memo: dict):
    if type(x) is not tuple:
        return x
    tag = x[0]
    if tag == "L":
        return [_decode(v, memo) for v in x[1]]
    if tag == "T":
        return tuple(_decode(v, memo) for v in x[1])
    if tag == "D":
        return {_decode(k, memo): _decode(v, memo) for k, v in x[1]}
    if tag == "S":
        return {_decode(v, memo) for v in x[1]}
    if tag == "F":
        return frozenset(_decode(v, memo) for v in x[1])
    if tag == "M":
        return getattr(_decode(x[1], memo), x[2])
    if tag == "G":
        return getattr(_module(x[1]), x[2])
    if tag == "R":
        return memo[x[1]]
    if tag == "O":
        _, idx, module, qualname, attrs = x
        obj = object.__new__(getattr(_module(module), qualname))
        memo[idx] = obj
        for name, value in attrs:
            object.__setattr__(obj, name, _decode(value, memo))
        return obj
    raise ValueError(f"jobcodec: unknown tag {tag!r}")


def _module(name: str):
    mod = sys.modules.get(name)
    if mod is None:
        __import__(name)
        mod = sys.modules[name]
    return mod


def dumps(value) -> bytes:
    try:
        return _MARSHAL + marshal.dumps(_Encoder().enc(value))
    except (TypeError, ValueError):
        import _pickle

        return _PICKLE + _pickle.dumps(value, 4)


def loads(data: bytes):
    if data[:1] == _MARSHAL:
        return _decode(marshal.loads(data[1:]), {})
    import _pickle

    return _pickle.loads(data[1:])
