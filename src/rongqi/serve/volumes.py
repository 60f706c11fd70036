"""Docker's /volumes endpoints (list, create, inspect, remove, prune): Docker's volume JSON
over engine/volumes.py's VolumeStore, with Docker's words and status codes.

Docker's rules where they differ from podman's: creating an existing volume answers the
existing one; `force` on remove only forgives a volume that is not there (it never removes
containers, as podman's does); names have at least two characters.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from rongqi.engine.volumes import NoSuchVolume, Volume, VolumeError, VolumeExists, matches
from rongqi.serve.app import HTTPError, Request, Response, json_response, route

LIST_FILTERS = ("name", "label", "dangling", "driver")
# "all" is 1.42's (prune only anonymous volumes unless all=true); a 1.41 prune removes every
# unused volume, which is what it does here whatever "all" says.
PRUNE_FILTERS = ("label", "label!", "all")
_DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def created_at(text: str) -> str:
    """Docker's CreatedAt: RFC 3339 to the second (the record keeps nanoseconds)."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    return m.group(1) + m.group(2) if m else text


def docker_volume(vol: Volume, usage: dict[str, int] | None = None) -> dict[str, Any]:
    """Docker's Volume object for a record; UsageData only when asked (system df)."""
    out: dict[str, Any] = {
        "CreatedAt": created_at(vol.created), "Driver": vol.driver or "local",
        "Labels": dict(vol.labels), "Mountpoint": vol.mountpoint, "Name": vol.name,
        "Options": dict(vol.options), "Scope": "local",
    }
    if usage is not None:
        out["UsageData"] = usage
    return out


def used_volumes(engine: Any) -> dict[str, list[str]]:
    """Volume name -> ids of the containers (any status) whose config names it: one pass
    over the records (engine/volumes.in_use asks per volume)."""
    out: dict[str, list[str]] = {}
    for c in engine.records.all():
        for name in c.config.get("volumes") or []:
            out.setdefault(name, []).append(c.id)
    return out


def disk_usage(path: str) -> int:
    """Bytes of the regular files under path (hard links once), as Docker's directory.Size;
    symlinks never followed."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for top, dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(top, f))
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def _check_filters(flt: dict[str, list[str]], allowed: tuple[str, ...]) -> None:
    for k in flt:
        if k not in allowed:
            raise HTTPError(400, f"invalid filter '{k}'")


def _bool_filter(key: str, values: list[str]) -> bool:
    for v in values:
        if v.lower() not in ("true", "1", "false", "0"):
            raise HTTPError(400, f"invalid filter '{key}={v}'")
    return values[-1].lower() in ("true", "1")


@route("GET", "/volumes")
def list_volumes(req: Request) -> Response:
    flt = req.filters()
    _check_filters(flt, LIST_FILTERS)
    dangling = flt.pop("dangling", None)
    want_dangling = _bool_filter("dangling", dangling) if dangling else None
    for v in flt.get("name", []):
        try:
            re.compile(v)
        except re.error as e:
            raise HTTPError(400, f"invalid filter 'name={v}': {e}") from None
    engine = req.engine
    used = used_volumes(engine) if want_dangling is not None else {}
    out = []
    for vol in engine.volumes.list():
        if flt and not matches(vol, flt):
            continue
        if want_dangling is not None and (vol.name not in used) != want_dangling:
            continue
        out.append(docker_volume(vol))
    return json_response({"Volumes": out, "Warnings": []})


def _str_map(body: dict[str, Any], key: str) -> dict[str, str]:
    v = body.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise HTTPError(400, f"{key}: expected a JSON object")
    return {str(k): str(x) for k, x in v.items()}


@route("POST", "/volumes/create")
def create_volume(req: Request) -> Response:
    body = req.json() or {}
    if not isinstance(body, dict):
        raise HTTPError(400, "the body must be a JSON object (VolumeCreateBody)")
    name = body.get("Name") or ""
    if not isinstance(name, str):
        raise HTTPError(400, "Name: expected a string")
    driver = body.get("Driver") or "local"
    if driver != "local":
        raise HTTPError(404, f'error looking up volume plugin {driver}: plugin "{driver}" '
                             "not found")
    if name and len(name) < 2:
        raise HTTPError(400, f"create {name}: volume name is too short, names should be at "
                             "least two alphanumeric characters")
    if name and not _DOCKER_NAME.match(name):
        raise HTTPError(400, f'create {name}: "{name}" includes invalid characters for a local '
                             'volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you '
                             "intended to pass a host directory, use absolute path")
    try:
        # Docker answers an existing volume of that name (of its driver) as if just made.
        vol = req.engine.volumes.create(name, "local", _str_map(body, "Labels"),
                                        _str_map(body, "DriverOpts"), anonymous=not name,
                                        ignore_existing=True)
    except VolumeExists:
        vol = req.engine.volumes.get(name)
    except VolumeError as e:
        raise HTTPError(400, f"create {name}: {e}") from None
    return json_response(docker_volume(vol), 201)


@route("GET", "/volumes/{name}")
def inspect_volume(req: Request) -> Response:
    name = req.params["name"]
    try:
        vol = req.engine.volumes.get(name)
    except NoSuchVolume:
        raise HTTPError(404, f"get {name}: no such volume") from None
    return json_response(docker_volume(vol))


@route("DELETE", "/volumes/{name}")
def remove_volume(req: Request) -> Response:
    name = req.params["name"]
    force = req.flag("force")
    engine = req.engine
    try:
        engine.volumes.get(name)
    except NoSuchVolume:
        if force:
            return Response(204)
        raise HTTPError(404, f"get {name}: no such volume") from None
    users = used_volumes(engine).get(name)
    if users:
        raise HTTPError(409, f"remove {name}: volume is in use - [{' '.join(users)}]")
    try:
        # engine= so that a container made since the check above still counts.
        engine.volumes.remove(name, engine=engine)
    except NoSuchVolume:
        if not force:
            raise HTTPError(404, f"get {name}: no such volume") from None
    except VolumeError as e:
        users = getattr(e, "users", None)
        if users:
            raise HTTPError(409, f"remove {name}: volume is in use - "
                                 f"[{' '.join(users)}]") from None
        raise HTTPError(500, f"remove {name}: {e}") from None
    return Response(204)


@route("POST", "/volumes/prune")
def prune_volumes(req: Request) -> Response:
    flt = req.filters()
    _check_filters(flt, PRUNE_FILTERS)
    flt.pop("all", None)
    engine = req.engine
    used = used_volumes(engine)
    gone: list[str] = []
    reclaimed = 0
    for vol in engine.volumes.list():
        if vol.name in used or (flt and not matches(vol, flt)):
            continue
        size = disk_usage(vol.mountpoint)
        try:
            engine.volumes.remove(vol.name, engine=engine)
        except VolumeError:
            continue  # taken by a container since, or removed by someone else
        gone.append(vol.name)
        reclaimed += size
    return json_response({"VolumesDeleted": gone, "SpaceReclaimed": reclaimed})
