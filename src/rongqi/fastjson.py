"""JSON without the json package: the runtime's start path cannot afford it.

``import json`` pulls in ``re`` (and through it enum, functools...), about 8 ms
on a 2-core machine; the C scanner and string encoder in ``_json`` are all the
runtime needs. Output matches ``json.dumps(obj, separators=(",", ":"))``.
"""

from __future__ import annotations

import _json

_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Context:
    # The attributes _json.make_scanner reads from its context object.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict = {}


_scan = _json.make_scanner(_Context())
_WS = " \t\n\r"


class JSONError(ValueError):
    def __init__(self, msg: str, pos: int):
        super().__init__(f"{msg} at character {pos}")
        self.pos = pos


def loads(text: str | bytes):
    if isinstance(text, (bytes, bytearray)):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise JSONError("not UTF-8", err.start) from None
    end = len(text)
    i = 0
    while i < end and text[i] in _WS:
        i += 1
    try:
        obj, i = _scan(text, i)
    except StopIteration as err:
        raise JSONError("expecting a JSON value", err.value) from None
    except ValueError as err:  # _json raises JSONDecodeError (a ValueError) with .pos
        raise JSONError(getattr(err, "msg", str(err)), getattr(err, "pos", i)) from None
    except SystemError:
        # The C scanner reports some errors through json.decoder, which is not
        # imported here; let the json package (only now, on the error path) say what is wrong.
        import json

        try:
            json.loads(text)
        except json.JSONDecodeError as err:
            raise JSONError(err.msg, err.pos) from None
        raise
    while i < end and text[i] in _WS:
        i += 1
    if i != end:
        raise JSONError("extra data after the JSON value", i)
    return obj


_encode_str = _json.encode_basestring


def _encode(obj, out: list, indent: str | None, level: int) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(_encode_str(obj))
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        out.append(float.__repr__(obj))
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        if indent is None:
            out.append("{")
            first = True
            for k, v in obj.items():
                if not first:
                    out.append(",")
                first = False
                out.append(_encode_str(str(k)))
                out.append(":")
                _encode(v, out, None, 0)
            out.append("}")
        else:
            pad = "\n" + indent * (level + 1)
            out.append("{")
            first = True
            for k, v in obj.items():
                out.append(pad if first else "," + pad)
                first = False
                out.append(_encode_str(str(k)))
                out.append(": ")
                _encode(v, out, indent, level + 1)
            out.append("\n" + indent * level + "}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        if indent is None:
            out.append("[")
            for n, v in enumerate(obj):
                if n:
                    out.append(",")
                _encode(v, out, None, 0)
            out.append("]")
        else:
            pad = "\n" + indent * (level + 1)
            out.append("[")
            for n, v in enumerate(obj):
                out.append(pad if n == 0 else "," + pad)
                _encode(v, out, indent, level + 1)
            out.append("\n" + indent * level + "]")
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def dumps(obj, indent: int | None = None) -> str:
    out: list[str] = []
    _encode(obj, out, None if indent is None else " " * indent, 0)
    return "".join(out)
