"""linux.seccomp of config.json: checked once and turned into a SeccompProfile.

On the runtime's start path; every error is a SpecError that names the JSON path.
"""

from __future__ import annotations

from rongqi.errors import SpecError
from rongqi.oci import jsonread
from rongqi.linux.seccomp import (ACTIONS, ARCHITECTURES, FLAGS, OPERATORS, SeccompArg,
                                  SeccompProfile, SeccompRule)

_MAX_ARGS = 6  # a system call has at most six arguments


def _uint(obj: dict, key: str, where: str, limit: int, required: bool = False) -> int | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise SpecError(f"{where}.{key}: required")
        return None
    return jsonread.integer(v, f"{where}.{key}", 0, limit)


def _str(obj: dict, key: str, where: str) -> str:
    v = obj.get(key)
    return "" if v is None else jsonread.string(v, f"{where}.{key}")


def _list(obj: dict, key: str, where: str) -> list:
    v = obj.get(key)
    return [] if v is None else jsonread.array(v, f"{where}.{key}")


def _need_uint(obj: dict, key: str, where: str, limit: int) -> int:
    v = obj.get(key)
    if v is None:
        raise SpecError(f"{where}.{key}: required")
    return jsonread.integer(v, f"{where}.{key}", 0, limit)


def _choice(value: object, allowed, path: str, what: str) -> str:
    s = jsonread.string(value, path)
    if s not in allowed:
        raise SpecError(f'{path}: unknown {what} "{s}"')
    return s


def parse_seccomp(raw: object, where: str = "linux.seccomp") -> SeccompProfile:
    obj = jsonread.obj(raw, where)
    if "defaultAction" not in obj:
        raise SpecError(f"{where}.defaultAction: required")
    default = _choice(obj["defaultAction"], ACTIONS, f"{where}.defaultAction", "action")
    if default == "SCMP_ACT_NOTIFY":
        # As runc: every syscall of the runtime's own remaining setup would wait on the listener.
        raise SpecError(f"{where}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action")
    default_errno = _uint(obj, "defaultErrnoRet", where, 0xFFFF)

    arches = []
    for i, a in enumerate(_list(obj, "architectures", where)):
        arches.append(_choice(a, ARCHITECTURES, f"{where}.architectures[{i}]", "architecture"))
    flags = []
    for i, f in enumerate(_list(obj, "flags", where)):
        flags.append(_choice(f, FLAGS, f"{where}.flags[{i}]", "flag"))

    rules = []
    for i, r in enumerate(_list(obj, "syscalls", where)):
        rp = f"{where}.syscalls[{i}]"
        jsonread.obj(r, rp)
        names = r.get("names")
        if not isinstance(names, list) or not names:
            raise SpecError(f"{rp}.names: must be a non-empty array of syscall names")
        for j, n in enumerate(names):
            if not isinstance(n, str) or not n:
                raise SpecError(f"{rp}.names[{j}]: must be a non-empty string")
        if "action" not in r:
            raise SpecError(f"{rp}.action: required")
        action = _choice(r["action"], ACTIONS, f"{rp}.action", "action")
        if action == "SCMP_ACT_NOTIFY" and "write" in names:
            # As runc: the init writes to its parent after the filter is loaded.
            raise SpecError(f"{rp}.names: SCMP_ACT_NOTIFY cannot be used for the write syscall")
        errno_ret = _uint(r, "errnoRet", rp, 0xFFFF)
        args = []
        for k, a in enumerate(_list(r, "args", rp)):
            ap = f"{rp}.args[{k}]"
            jsonread.obj(a, ap)
            index = _need_uint(a, "index", ap, _MAX_ARGS - 1)
            value = _need_uint(a, "value", ap, 2**64 - 1)
            value_two = _uint(a, "valueTwo", ap, 2**64 - 1) or 0
            if "op" not in a:
                raise SpecError(f"{ap}.op: required")
            op = _choice(a["op"], OPERATORS, f"{ap}.op", "operator")
            args.append(SeccompArg(index, value, op, value_two))
        rules.append(SeccompRule(list(names), action, errno_ret, args))

    profile = SeccompProfile(default, default_errno, arches, flags, rules,
                             _str(obj, "listenerPath", where), _str(obj, "listenerMetadata", where))
    if profile.uses_notify() and not profile.listenerPath:
        raise SpecError(f"{where}.listenerPath: required when a rule uses SCMP_ACT_NOTIFY")
    return profile
