"""User-namespace id maps written for an unprivileged caller: newuidmap/newgidmap and /etc/subuid.

On the runtime path (rongqi-oci create/run as an ordinary user): standard library only, no subprocess.
"""

from __future__ import annotations

import os

from rongqi.errors import RongqiError

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
# Where Debian's uidmap package puts the helpers; PATH is searched first.
_FALLBACK_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin")


class IdRange:
    """One line of a uid_map/gid_map: container_id host_id size."""

    __slots__ = ("container_id", "host_id", "size")

    def __init__(self, container_id: int, host_id: int, size: int):
        self.container_id = container_id
        self.host_id = host_id
        self.size = size


def parse_map(text: str, what: str = "uid_map") -> list[IdRange]:
    """Parse "cid hid size" lines (the kernel's uid_map format) into ranges."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 3:
                raise ValueError
            cid, hid, size = (int(p) for p in parts)
            if cid < 0 or hid < 0 or size <= 0:
                raise ValueError
        except ValueError:
            raise RongqiError(f"{what} line {n}: want 'containerID hostID size', got {line.strip()!r}") from None
        out.append(IdRange(cid, hid, size))
    return out


def subordinate_ranges(path: str, user: str, uid: int) -> list[tuple[int, int]]:
    """(start, count) pairs that path (/etc/subuid or /etc/subgid) gives to user (by name or uid)."""
    keys = {user, str(uid)}
    out: list[tuple[int, int]] = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in keys:
            continue
        try:
            out.append((int(parts[1]), int(parts[2])))
        except ValueError:
            continue
    return out


def _covered(lo: int, size: int, ranges: list[tuple[int, int]]) -> bool:
    return any(start <= lo and lo + size <= start + count for start, count in ranges)


def find_helper(name: str) -> str | None:
    dirs = [d for d in os.environ.get("PATH", "").split(":") if d] + list(_FALLBACK_DIRS)
    for d in dirs:
        path = os.path.join(d, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_maps(kind: str, ranges: list[IdRange], own_id: int, user: str, path: str) -> None:
    """Raise a RongqiError naming the user and the file when a range is not theirs to map.

    As in shadow's newuidmap, the caller may always map its own id alone (size 1); every
    other host id must lie inside one of the caller's subordinate ranges.
    """
    subs = None
    for r in ranges:
        if r.size == 1 and r.host_id == own_id:
            continue
        if subs is None:
            subs = subordinate_ranges(path, user, own_id)
        if not subs:
            raise RongqiError(
                f"linux.{kind}Mappings: user {user} has no entry in {path} (add a line such as "
                f"'{user}:100000:65536'), so host {kind}s other than its own ({own_id}) cannot be mapped")
        if not _covered(r.host_id, r.size, subs):
            have = ", ".join(f"{s}-{s + c - 1}" for s, c in subs)
            raise RongqiError(
                f"linux.{kind}Mappings: host {kind}s {r.host_id}-{r.host_id + r.size - 1} are not "
                f"in user {user}'s ranges in {path} ({have})")


def _run_helper(argv: list[str]) -> tuple[int, str]:
    """Run argv with stderr captured; (exit status, stderr). No subprocess: runtime path."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, w, 2), (os.POSIX_SPAWN_DUP2, w, 1)])
    except OSError:
        os.close(r)
        os.close(w)
        raise
    os.close(w)
    chunks = []
    try:
        while True:
            b = os.read(r, 4096)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace").strip()


def _write_direct(pid: int, name: str, text: str) -> None:
    fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _write_one(pid: int, kind: str, text: str, own_id: int, user: str) -> None:
    helper_name, path, file = ("newuidmap", SUBUID, "uid_map") if kind == "uid" else ("newgidmap", SUBGID, "gid_map")
    ranges = parse_map(text, file)
    if not ranges:
        raise RongqiError(f"linux.{kind}Mappings: a user namespace needs at least one mapping")
    check_maps(kind, ranges, own_id, user, path)
    helper = find_helper(helper_name)
    if helper is None:
        if len(ranges) == 1 and ranges[0].size == 1 and ranges[0].host_id == own_id:
            # The kernel lets anyone map their own id alone; for gids only once setgroups is
            # denied (the init then skips setgroups), as runc does without the helpers.
            if kind == "gid":
                _write_direct(pid, "setgroups", "deny")
            _write_direct(pid, file, text)
            return
        raise RongqiError(
            f"{helper_name} not found: mapping more than your own {kind} as user {user} needs it "
            f"(apt-get install uidmap)")
    argv = [helper, str(pid)]
    for r in ranges:
        argv += [str(r.container_id), str(r.host_id), str(r.size)]
    try:
        code, err = _run_helper(argv)
    except OSError as e:
        raise RongqiError(f"cannot run {helper}: {e.strerror or e}") from None
    if code != 0:
        raise RongqiError(f"{helper_name} {pid} failed for user {user} (exit {code}): {err or 'no message'}; "
                          f"check {path}")


def write_maps_unprivileged(pid: int, uid_map: str, gid_map: str) -> None:
    """Write the uid and gid maps of pid's user namespace as an ordinary user.

    uid_map and gid_map are in the kernel's format ("containerID hostID size" lines). Every
    range other than the caller's own id must be in its /etc/subuid or /etc/subgid entries;
    newuidmap/newgidmap (setuid root, from the uidmap package) do the writing.
    """
    uid, gid = os.geteuid(), os.getegid()
    user = _user_name(uid)
    _write_one(pid, "uid", uid_map, uid, user)
    _write_one(pid, "gid", gid_map, gid, user)
