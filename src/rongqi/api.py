"""rongqi.Client: a docker-py-shaped client (containers, images, volumes) over the engine,
in this process, with no daemon: every call is a function of rongqi.engine.

Names, arguments and return shapes follow docker-py's DockerClient (docker.from_env()) so
code written for it runs here; errors are rongqi.errors' docker-py kinds (NotFound,
ImageNotFound, ContainerError, APIError). `attrs` are podman's inspect documents.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
import io
import os
import select
import shlex
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Union, cast

from rongqi.errors import APIError, ContainerError, ImageNotFound, NotFound, RongqiError

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.engine.options import ContainerOptions
    from rongqi.engine.records import Container as Record

__all__ = ["Client", "from_env", "Container", "Image", "Volume", "Network", "ExecResult",
           "ContainerCollection", "ImageCollection", "VolumeCollection", "NetworkCollection"]

Command = Union[str, Sequence[str], None]

# fork(2) from a threaded program: the monitor and an exec's parent are forks of this
# process. One fork at a time keeps each child's copy of the heap consistent with itself
# (no other thread of ours is half-way through making the fds the child would inherit).
_FORK_LOCK = threading.Lock()


@contextlib.contextmanager
def _translated(kind: str = "container", ref: str = "") -> Iterator[None]:
    """The engine's errors as docker-py's kinds (the message kept)."""
    from rongqi.engine.networks import NoSuchNetwork
    from rongqi.engine.volumes import NoSuchVolume
    from rongqi.errors import (ContainerStateImproper, InvalidArgument, NameInUse,
                               NoSuchContainer, UsageError)
    from rongqi.image.errors import ImageNotFound as StoreImageNotFound
    try:
        yield
    except (APIError, ContainerError, InvalidArgument):
        raise
    except (NoSuchContainer, NoSuchVolume, NoSuchNetwork) as err:
        raise NotFound(str(err)) from err
    except StoreImageNotFound as err:
        raise ImageNotFound(str(err)) from err
    except RongqiError as err:
        msg = str(err)
        if kind == "image" and ("not known" in msg or "manifest unknown" in msg
                                or "not found" in msg):
            raise ImageNotFound(msg) from err
        # dockerd's status for the same failure (docker-py's callers test status_code)
        status = (409 if isinstance(err, (ContainerStateImproper, NameInUse))
                  or "already in use" in msg or "in use by" in msg
                  else 400 if isinstance(err, UsageError) else 500)
        raise APIError(msg, status_code=status) from err


def _split(cmd: Command) -> list[str]:
    if cmd is None:
        return []
    if isinstance(cmd, str):
        return shlex.split(cmd)
    return [str(x) for x in cmd]


def _size(value: int | str | None) -> int | None:
    """docker-py's memory values: bytes as an int, or "512m", "1g", "100k" ..."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    from rongqi.cli.run_flags import parse_size
    return int(parse_size(str(value)))


def _pairs(value: Mapping[str, Any] | Sequence[str] | None) -> dict[str, str]:
    """environment= / labels= as docker-py takes them: a dict or ["K=V", ...]."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    out: dict[str, str] = {}
    for item in value:
        k, eq, v = str(item).partition("=")
        if not eq:
            v = os.environ.get(k, "")  # docker: a bare NAME takes the caller's value
        out[k] = v
    return out


def _binds(volumes: Mapping[str, Any] | Sequence[str] | None) -> tuple[list[str], list[str]]:
    """volumes= as docker-py: {"/host" or "name": {"bind": "/dst", "mode": "ro"}} or
    ["/host:/dst:ro", "name:/dst", "/anon"] -> (HostConfig.Binds, anonymous destinations for
    Config.Volumes). A relative host path is made absolute here, as the CLI does."""
    binds: list[str] = []
    anonymous: list[str] = []
    if not volumes:
        return binds, anonymous
    items: list[tuple[str, str, str]] = []
    if isinstance(volumes, Mapping):
        for src, spec in volumes.items():
            if isinstance(spec, str):
                items.append((src, spec, "rw"))
            else:
                items.append((src, spec["bind"], spec.get("mode", "rw")))
    else:
        for text in volumes:
            parts = text.split(":")
            if len(parts) == 1:
                anonymous.append(parts[0])
            else:
                items.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    for src, dst, mode in items:
        if src.startswith("."):
            src = os.path.abspath(src)
        binds.append(f"{src}:{dst}:{mode}" if mode else f"{src}:{dst}")
    return binds, anonymous


def _port_bindings(ports: Mapping[Any, Any] | None) -> dict[str, list[dict[str, str]]]:
    """ports= as docker-py: {"80/tcp": 8080 | ("127.0.0.1", 8080) | [8080, 8081] | None}
    -> HostConfig.PortBindings."""
    out: dict[str, list[dict[str, str]]] = {}
    for cport, host in (ports or {}).items():
        key = str(cport) if "/" in str(cport) else f"{cport}/tcp"
        hosts = host if isinstance(host, list) else [host]
        for h in hosts:
            if h is None:
                b = {"HostIp": "", "HostPort": ""}
            elif isinstance(h, tuple):
                b = {"HostIp": str(h[0]), "HostPort": str(h[1]) if len(h) > 1 and h[1] else ""}
            else:
                b = {"HostIp": "", "HostPort": str(h)}
            out.setdefault(key, []).append(b)
    return out


# docker-py's run/create keywords this client understands; anything else is the TypeError
# docker-py raises ("create() got an unexpected keyword argument").
_RUN_KEYS = frozenset("""auto_remove cap_add cap_drop command cpu_shares cpuset_cpus cpuset_mems
detach dns dns_opt dns_search entrypoint environment extra_hosts group_add healthcheck hostname
init labels log_config mem_limit mem_reservation memswap_limit name nano_cpus network
network_disabled network_mode oom_score_adj pids_limit ports privileged publish_all_ports
read_only remove restart_policy security_opt shm_size stdin_open stop_signal sysctls tmpfs
tty ulimits user userns_mode volumes working_dir devices mounts stop_timeout platform
stdout stderr stream""".split())


def create_body(image: str, command: Command = None, **kw: Any) -> dict[str, Any]:
    """docker-py's create/run keywords as the Engine API's create body (what docker-py's
    create_container_config and create_host_config send), so that one mapping
    (rongqi.serve.translate) turns both this client's and the HTTP service's requests into
    ContainerOptions."""
    bad = sorted(set(kw) - _RUN_KEYS)
    if bad:
        raise TypeError(f"create() got an unexpected keyword argument '{bad[0]}'")
    binds, anonymous = _binds(kw.get("volumes"))
    ports = _port_bindings(kw.get("ports"))
    hc: dict[str, Any] = {
        "Binds": binds, "PortBindings": ports,
        "PublishAllPorts": bool(kw.get("publish_all_ports")),
        "Mounts": [dict(m) for m in kw.get("mounts") or []],
        "ReadonlyRootfs": bool(kw.get("read_only")),
        "Memory": _size(kw.get("mem_limit")) or 0,
        "MemoryReservation": _size(kw.get("mem_reservation")) or 0,
        "MemorySwap": -1 if kw.get("memswap_limit") == -1 else _size(kw.get("memswap_limit")) or 0,
        "NanoCpus": int(kw.get("nano_cpus") or 0), "CpuShares": kw.get("cpu_shares") or 0,
        "CpusetCpus": kw.get("cpuset_cpus") or "", "CpusetMems": kw.get("cpuset_mems") or "",
        "PidsLimit": kw.get("pids_limit"),
        "CapAdd": list(kw.get("cap_add") or []), "CapDrop": list(kw.get("cap_drop") or []),
        "Privileged": bool(kw.get("privileged")),
        "SecurityOpt": [str(s) for s in kw.get("security_opt") or []],
        "GroupAdd": [str(g) for g in kw.get("group_add") or []], "Init": kw.get("init"),
        "RestartPolicy": dict(kw.get("restart_policy") or {}),
        "AutoRemove": bool(kw.get("auto_remove")),
        "Dns": list(kw.get("dns") or []), "DnsSearch": list(kw.get("dns_search") or []),
        "DnsOptions": list(kw.get("dns_opt") or []),
        "ShmSize": _size(kw.get("shm_size")) or 0,
        "Sysctls": {str(k): str(v) for k, v in (kw.get("sysctls") or {}).items()},
        "OomScoreAdj": kw.get("oom_score_adj"), "UsernsMode": kw.get("userns_mode") or "",
        "LogConfig": dict(kw.get("log_config") or {}),
    }
    hosts = kw.get("extra_hosts") or {}
    hc["ExtraHosts"] = ([f"{k}:{v}" for k, v in hosts.items()] if isinstance(hosts, Mapping)
                        else list(hosts))
    tmpfs = kw.get("tmpfs") or {}
    if not isinstance(tmpfs, Mapping):
        tmpfs = dict(str(t).partition(":")[::2] for t in tmpfs)
    hc["Tmpfs"] = {str(k): str(v) for k, v in tmpfs.items()}
    hc["Ulimits"] = []
    for u in kw.get("ulimits") or []:
        d = u if isinstance(u, Mapping) else vars(u)
        hc["Ulimits"].append({"Name": d.get("Name", d.get("name")),
                              "Soft": d.get("Soft", d.get("soft", 0)),
                              "Hard": d.get("Hard", d.get("hard", 0))})
    hc["Devices"] = []
    for dev in kw.get("devices") or []:
        parts = str(dev).split(":")
        hc["Devices"].append({"PathOnHost": parts[0],
                              "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
                              "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm"})
    net = kw.get("network") or kw.get("network_mode")
    hc["NetworkMode"] = str(net) if net else "default"
    body: dict[str, Any] = {
        "Image": image, "Cmd": _split(command) or None,
        "Entrypoint": None if kw.get("entrypoint") is None else _split(kw["entrypoint"]),
        "Env": [f"{k}={v}" for k, v in _pairs(kw.get("environment")).items()],
        "Labels": _pairs(kw.get("labels")), "WorkingDir": kw.get("working_dir") or "",
        "User": str(kw.get("user") or ""), "Hostname": kw.get("hostname") or "",
        "Tty": bool(kw.get("tty")), "OpenStdin": bool(kw.get("stdin_open")),
        "ExposedPorts": {k: {} for k in ports},
        "Volumes": {d: {} for d in anonymous},
        "StopSignal": str(kw.get("stop_signal") or ""), "StopTimeout": kw.get("stop_timeout"),
        "NetworkDisabled": bool(kw.get("network_disabled")), "HostConfig": hc,
    }
    hcheck = kw.get("healthcheck")
    if hcheck:
        def pick(key: str) -> Any:
            return hcheck.get(key[0].upper() + key[1:].replace("_p", "P")) or hcheck.get(key)
        body["Healthcheck"] = {"Test": pick("test"), "Interval": pick("interval"),
                               "Timeout": pick("timeout"), "Retries": pick("retries"),
                               "StartPeriod": pick("start_period")}
    return body


def options(image: str, command: Command = None, **kw: Any) -> ContainerOptions:
    """docker-py's create/run keywords as the engine's ContainerOptions (through Docker's
    create body: rongqi.serve.translate holds the one mapping)."""
    from rongqi.serve.translate import create_options
    body = create_body(image, command, **kw)
    with _translated():
        # The engine's own default log driver (k8s-file, podman's), as rongqi's CLI has it.
        opts, _warnings = create_options(body, str(kw.get("name") or ""),
                                         default_log_driver="k8s-file")
    opts.pull = "missing"  # docker-py pulls a missing image itself; here the engine does
    return opts


# -- containers ---------------------------------------------------------------------------------

class ExecResult(NamedTuple):
    """docker-py's exec_run result: exit_code (None while a stream runs) and output (bytes,
    a (stdout, stderr) pair with demux, or an iterator with stream)."""

    exit_code: int | None
    output: Any


class _Model(abc.ABC):
    """What docker-py's Model gives every object: equal (and hashed) by kind and id."""

    @property
    @abc.abstractmethod
    def id(self) -> str:
        """Each model names its id."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, self.__class__) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


class Container(_Model):
    """One container (docker.models.containers.Container)."""

    def __init__(self, client: Client, record: Record):
        self.client = client
        self._record = record
        self.attrs: dict[str, Any] = {}
        self.reload()

    def __repr__(self) -> str:
        return f"<Container: {self.short_id}>"

    @property
    def _engine(self) -> Engine:
        return self.client.engine

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return str(self.attrs.get("Name") or self._record.name).lstrip("/")

    @property
    def status(self) -> str:
        return str((self.attrs.get("State") or {}).get("Status", self._record.status))

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.attrs.get("Config") or {}).get("Labels") or {})

    @property
    def image(self) -> Image | None:
        ref = self._record.config.get("image_id") or ""
        try:
            return self.client.images.get(ref.partition(":")[2] or ref)
        except ImageNotFound:
            return None

    @property
    def ports(self) -> dict[str, Any]:
        return dict((self.attrs.get("NetworkSettings") or {}).get("Ports") or {})

    @property
    def health(self) -> str:
        h = (self.attrs.get("State") or {}).get("Health") or {}
        return str(h.get("Status") or "unknown")

    def reload(self) -> None:
        """Re-read the container's record (status, exit code, ...) from the engine."""
        with _translated():
            self.attrs = self._engine.inspect(self.id)
            self._record = self._engine.get(self.id)

    # lifecycle
    def start(self) -> None:
        with _translated(), _FORK_LOCK:
            self._engine.start(self.id)
        self.reload()

    def stop(self, timeout: float | None = None) -> None:
        with _translated():
            self._engine.stop(self.id, timeout)

    def restart(self, timeout: float | None = None) -> None:
        with _translated(), _FORK_LOCK:
            self._engine.restart(self.id, timeout)

    def kill(self, signal: str | int | None = None) -> None:
        with _translated():
            self._engine.kill(self.id, signal if signal is not None else "SIGKILL")

    def pause(self) -> None:
        with _translated():
            self._engine.pause(self.id)

    def unpause(self) -> None:
        with _translated():
            self._engine.unpause(self.id)

    def remove(self, v: bool = False, link: bool = False, force: bool = False) -> None:
        with _translated():
            # dockerd's forced remove kills at once (SIGKILL), never a stop with its timeout
            # (rongqi serve does the same: serve/containers.py)
            self._engine.remove(self.id, force=force, volumes=v, timeout=0 if force else None)

    def rename(self, name: str) -> None:
        with _translated():
            self._engine.rename(self.id, name)
        self.reload()

    def wait(self, timeout: float | None = None, condition: str = "not-running"
             ) -> dict[str, Any]:
        """Block until the container stops: {"StatusCode": code, "Error": None}."""
        conds = {"not-running": ["stopped"], "next-exit": ["stopped"],
                 "removed": ["stopped"]}.get(condition, [condition])
        with _translated():
            code = self._engine.wait(self.id, conds, timeout=timeout)
        return {"StatusCode": code, "Error": None}

    # output
    def logs(self, stdout: bool = True, stderr: bool = True, stream: bool = False,
             timestamps: bool = False, tail: str | int = "all", since: Any = None,
             follow: bool | None = None, until: Any = None) -> Any:
        """The container's log as bytes, or an iterator of chunks with stream (which follows
        unless follow=False, as docker-py)."""
        if follow is None:
            follow = stream
        gen = self._log_chunks(stdout, stderr, timestamps, tail, since, until, follow)
        if stream:
            return gen
        return b"".join(gen)

    def _log_chunks(self, stdout: bool, stderr: bool, timestamps: bool, tail: str | int,
                    since: Any, until: Any, follow: bool) -> Iterator[bytes]:
        from rongqi.engine import logs as logmod
        c = self._record
        driver = c.config.get("log_driver") or "k8s-file"
        if driver not in ("k8s-file", "json-file"):
            raise APIError(f"configured logging driver does not support reading: {driver}")

        def bound(v: Any) -> int:
            if v is None or v == 0:
                return 0
            if isinstance(v, (int, float)):
                return int(float(v) * 1e9)
            if hasattr(v, "timestamp"):
                return int(v.timestamp() * 1e9)
            return int(logmod.parse_since(str(v)))

        n = -1 if tail == "all" else int(tail)
        for _, ts, data in logmod.read_container(c, tail=n, since=bound(since),
                                                 until=bound(until), follow=follow,
                                                 stdout=stdout, stderr=stderr):
            yield (ts.encode() + b" " + data) if timestamps and ts else data

    def exec_run(self, cmd: Command, stdout: bool = True, stderr: bool = True,
                 stdin: bool = False, tty: bool = False, privileged: bool = False,
                 user: str = "", detach: bool = False, stream: bool = False,
                 socket: bool = False, environment: Mapping[str, Any] | Sequence[str] | None
                 = None, workdir: str | None = None, demux: bool = False) -> ExecResult:
        """Run cmd in the running container: ExecResult(exit_code, output)."""
        from rongqi.cli.run import ExecParent
        from rongqi.engine import exec as execmod
        from rongqi.engine.monitor import CommandError
        if socket or stdin or tty:
            raise APIError("exec_run: socket, stdin and tty need an attached terminal, which "
                           "this in-process client does not give; run without them")
        argv = _split(cmd)
        with _translated():
            c = execmod.running_container(self._engine, self.id)
            req = execmod.ExecRequest(command=argv, env=_pairs(environment), user=user or "",
                                      workdir=workdir or "", privileged=privileged)
            proc = execmod.build_process(c, req)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        fds: list[int] = []
        try:
            if detach:
                with _translated(), _FORK_LOCK:
                    ExecParent(self._engine, c, proc, stdio=(null, null, null)).r.close()
                return ExecResult(None, b"")
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            fds = [out_r, err_r]
            failed: CommandError | None = None
            try:
                with _translated(), _FORK_LOCK:
                    try:
                        ep = ExecParent(self._engine, c, proc, stdio=(
                            null, out_w if stdout else null, err_w if stderr else null))
                    except CommandError as err:
                        failed = err
            finally:
                os.close(out_w)
                os.close(err_w)
            if failed is not None:
                # As docker-py against dockerd: a command that cannot run is no exception
                # but its exit code (podman's 126/127, what `rongqi exec` exits with) and
                # the reason in the output, on stdout as dockerd writes it into the stream.
                for fd in fds:
                    os.close(fd)
                fds = []
                return _failed_exec(failed.exit_code, f"{failed}\r\n".encode(), stdout,
                                    stream, demux)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        finally:
            os.close(null)
        chunks = _read_pipes(out_r, err_r)
        if stream:
            def gen() -> Iterator[Any]:
                try:
                    for which, data in chunks:
                        yield (data, None) if demux and which == 1 else \
                            (None, data) if demux else data
                finally:
                    ep.wait()
            return ExecResult(None, gen())
        outs: dict[int, list[bytes]] = {1: [], 2: []}
        both: list[bytes] = []
        for which, data in chunks:
            outs[which].append(data)
            both.append(data)
        code = ep.wait()
        if demux:
            o, e = b"".join(outs[1]), b"".join(outs[2])
            return ExecResult(code, (o if stdout else None, e if stderr else None))
        return ExecResult(code, b"".join(both))

    # processes and files
    def top(self, ps_args: str | None = None) -> dict[str, Any]:
        """{"Titles": [...], "Processes": [[...], ...]} as docker-py."""
        from rongqi.engine import stats
        from rongqi.serve.translate import top_json
        with _translated():
            table = stats.top(self._engine, self.id, shlex.split(ps_args or ""))
        return top_json(table)

    def stats(self, decode: bool | None = None, stream: bool = True,
              one_shot: bool | None = None) -> Any:
        """Docker's stats documents, as docker-py gives them: with stream (the default) an
        iterator of one a second, each a JSON line (bytes) or, with decode, a dict; without,
        one dict, sampled twice a second apart as dockerd does (so precpu_stats is there to
        compute a CPU % against) unless one_shot."""
        from rongqi.errors import InvalidArgument
        if stream and one_shot:
            raise InvalidArgument("one_shot is only available in conjunction with stream=False")
        if not stream and decode:
            raise InvalidArgument("decode is only available in conjunction with stream=True")
        gen = self._stats()
        if not stream:
            first = next(gen)
            if one_shot or self._record.status not in ("running", "paused"):
                return first
            return next(gen)
        if decode:
            return gen
        import json
        return (json.dumps(doc).encode() + b"\n" for doc in gen)

    def _stats(self) -> Iterator[dict[str, Any]]:
        """Docker's stats documents (rongqi.serve.translate.stats_json), one a second, until
        the container is removed (as the Docker API's stream ends)."""
        from rongqi.engine import lifecycle
        from rongqi.errors import NoSuchContainer
        from rongqi.serve.translate import stats_json
        previous: dict[str, Any] | None = None
        while True:
            try:
                rec = lifecycle.synced(self._engine, self._engine.get(self.id))
            except NoSuchContainer:
                if previous is None:
                    raise NotFound(f'no container with name or ID "{self.id}" found: '
                                   "no such container") from None
                return
            self._record = rec
            doc = stats_json(rec, previous)
            yield doc
            previous = doc
            time.sleep(1)

    def _path_stat(self, path: str) -> dict[str, Any]:
        """Docker's stat of `path` in the container (the Docker API's own function, so both
        faces agree): NotFound, as dockerd's 404, when nothing is there."""
        from rongqi.serve.app import HTTPError
        from rongqi.serve.containers import _path_stat
        try:
            with _translated():
                return _path_stat(self._engine, self.id, path)
        except HTTPError as err:
            kind = NotFound if err.status == 404 else APIError
            raise kind(err.message, status_code=err.status) from None

    def put_archive(self, path: str, data: bytes | IO[bytes]) -> bool:
        """Extract a tar archive (bytes or a file) into the directory `path` of the container;
        dockerd's refusals: NotFound for a missing path, APIError for one that is not a
        directory (400) or a read-only root (403)."""
        from rongqi.engine import files
        from rongqi.serve.translate import MODE_DIR
        if not self._path_stat(path)["mode"] & MODE_DIR:
            raise APIError("extraction point is not a directory", status_code=400)
        if (self._record.config.get("options") or {}).get("read_only"):
            raise APIError("container rootfs is marked read-only", status_code=403)
        src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        with _translated():
            files.copy(self._engine, "-", f"{self.id}:{path}", stdin=src, archive=True)
        return True

    def get_archive(self, path: str, chunk_size: int | None = 2 * 1024 * 1024,
                    encode_stream: bool = False) -> tuple[Iterator[bytes], dict[str, Any]]:
        """(an iterator of tar chunks holding `path`, its stat as docker's X-Docker-Container-
        Path-Stat: name, size, mode, mtime, linkTarget); NotFound when there is nothing."""
        from rongqi.engine import files
        stat = self._path_stat(path)
        buf = io.BytesIO()
        with _translated():
            files.copy(self._engine, f"{self.id}:{path}", "-", stdout=buf, archive=True)
        data = buf.getvalue()
        size = chunk_size or len(data) or 1

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(data), size):
                yield data[i:i + size]
        return chunks(), stat

    def diff(self) -> list[dict[str, Any]]:
        from rongqi.engine import files
        from rongqi.serve.translate import changes_json
        with _translated():
            changes = files.diff(self._engine, self.id)
        return changes_json(changes)


def _failed_exec(code: int, message: bytes, stdout: bool, stream: bool, demux: bool
                 ) -> ExecResult:
    """exec_run's answer for a command that could not be started (docker-py's shapes)."""
    out = message if stdout else b""
    if stream:
        chunks: list[Any] = [(out, None) if demux else out] if out else []
        return ExecResult(None, iter(chunks))
    if demux:
        return ExecResult(code, (out or None, None))
    return ExecResult(code, out)


def _read_pipes(out_r: int, err_r: int) -> Iterator[tuple[int, bytes]]:
    """(1 or 2, data) chunks in the order they arrive, until both pipes reach EOF."""
    open_fds = {out_r: 1, err_r: 2}
    try:
        while open_fds:
            ready, _, _ = select.select(list(open_fds), [], [])
            for fd in ready:
                data = os.read(fd, 65536)
                if not data:
                    os.close(fd)
                    del open_fds[fd]
                    continue
                yield open_fds[fd], data
    finally:
        for fd in open_fds:
            os.close(fd)


class ContainerCollection:
    """client.containers."""

    def __init__(self, client: Client):
        self.client = client

    def create(self, image: str, command: Command = None, **kwargs: Any) -> Container:
        """A created container (not started), from docker-py's keywords."""
        opts = options(image, command, **kwargs)
        with _translated("image"):
            rec = self.client.engine.create(opts)
        return Container(self.client, rec)

    def run(self, image: str, command: Command = None, stdout: bool = True,
            stderr: bool = False, remove: bool = False, **kwargs: Any) -> Any:
        """docker-py's run: with detach a running Container; else wait for the command and
        return its output (bytes, or a log iterator with stream=True); a non-zero exit
        raises ContainerError with its stderr. remove=True removes it once it ended."""
        detach = bool(kwargs.pop("detach", False))
        stream = bool(kwargs.pop("stream", False))
        if detach and remove:
            kwargs["auto_remove"] = True  # the monitor removes it when it ends
        c = self.create(image, command, **kwargs)
        try:
            c.start()
        except BaseException:
            with contextlib.suppress(RongqiError):
                self.client.engine.remove(c.id, force=True, volumes=True)
            raise
        if detach:
            return c
        if stream:
            return c.logs(stdout=stdout, stderr=stderr, stream=True, follow=True)
        try:
            code = c.wait()["StatusCode"]
            out = c.logs(stdout=stdout, stderr=stderr)
            if code != 0:
                err = c.logs(stdout=False, stderr=True)
                raise ContainerError(c, code, command, image, err)
        finally:
            if remove:
                with contextlib.suppress(RongqiError):
                    self.client.engine.remove(c.id, force=True, volumes=True)
        return out

    def get(self, container_id: str) -> Container:
        with _translated():
            rec = self.client.engine.get(container_id)
        return Container(self.client, rec)

    def list(self, all: bool = False, before: str | None = None,
             filters: Mapping[str, Any] | None = None, limit: int = -1,
             since: str | None = None, sparse: bool = False,
             ignore_removed: bool = False) -> list[Container]:
        """Containers, newest first; filters as docker-py ({"status": "exited",
        "label": ["k=v"], "name": "x", "id": ..., "ancestor": ...})."""
        from rongqi.engine import lifecycle
        flt = _filter_strings(filters)
        if before:
            flt.append(f"before={before}")
        if since:
            flt.append(f"since={since}")
        with _translated():
            recs = self.client.engine.list(all=all or bool(flt))
            if flt:
                recs = lifecycle.filtered(self.client.engine, recs, flt)
        if limit is not None and limit >= 0:
            recs = recs[:limit]
        out = []
        for r in recs:
            try:
                out.append(Container(self.client, r))
            except NotFound:
                if not ignore_removed:
                    raise
        return out

    def prune(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        with _translated():
            gone = self.client.engine.prune(_filter_strings(filters))
        return {"ContainersDeleted": gone, "SpaceReclaimed": 0}


def _filter_strings(filters: Mapping[str, Any] | None) -> list[str]:
    out: list[str] = []
    for k, v in (filters or {}).items():
        for item in (v if isinstance(v, (list, tuple)) else [v]):
            out.append(f"{k}={item}")
    return out


# -- images -------------------------------------------------------------------------------------

class Image(_Model):
    """One image (docker.models.images.Image): id is the config digest ("sha256:...")."""

    def __init__(self, client: Client, ref: str):
        self.client = client
        self._ref = ref
        self.attrs: dict[str, Any] = {}
        self.reload()

    def __repr__(self) -> str:
        return f"<Image: '{', '.join(self.tags)}'>"

    @property
    def id(self) -> str:
        return str(self.attrs["Id"])

    @property
    def short_id(self) -> str:
        return self.id.partition(":")[2][:12]

    @property
    def tags(self) -> list[str]:
        return list(self.attrs.get("RepoTags") or [])

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.attrs.get("Config") or {}).get("Labels") or {})

    def reload(self) -> None:
        # Docker's inspect document (engine/imageinfo.py, which serve/ answers with too),
        # with the stored names (podman's "docker.io/library/busybox:latest").
        from rongqi.engine import imageinfo
        engine = self.client.engine
        with _translated("image"):
            self._facts = imageinfo.image(engine.store, self._ref)
        self.attrs = imageinfo.inspect(self._facts, familiar_names=False, engine=engine)
        self._ref = self._facts.id.partition(":")[2]

    def tag(self, repository: str, tag: str | None = None, **kwargs: Any) -> bool:
        from rongqi.image import reference
        name = f"{repository}:{tag}" if tag else repository
        store = self.client.engine.store
        with _translated("image"):
            _, desc = store.resolve(self.id.partition(":")[2])
            store.set_name(str(reference.parse(name)), desc)
        self.reload()
        return True

    def history(self) -> list[dict[str, Any]]:
        """docker-py's Image.history(): Docker's entries, newest first."""
        from rongqi.engine import imageinfo
        return imageinfo.history(self._facts)


class _ImageCtx:
    """What cli/main.py's image helpers (gc, prune) read from their context."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.store = engine.store
        self.storage = engine.storage


class ImageCollection:
    """client.images."""

    def __init__(self, client: Client):
        self.client = client

    def get(self, name: str) -> Image:
        return Image(self.client, name)

    def list(self, name: str | None = None, all: bool = False,
             filters: Mapping[str, Any] | None = None) -> list[Image]:
        seen: dict[str, Image] = {}
        for rec in self.client.engine.store.images():
            if name and not (rec.name == name or rec.name.startswith(name + ":")
                             or rec.name.rsplit("/", 1)[-1].split(":")[0] == name):
                continue
            cfg = getattr(rec, "config_digest", "") or ""
            if cfg in seen:
                continue
            with contextlib.suppress(ImageNotFound):
                img = Image(self.client, rec.name)
                if filters and "label" in filters:
                    want = filters["label"]
                    want = want if isinstance(want, list) else [want]
                    if not all_labels(img.labels, want):
                        continue
                seen[img.id] = img
        return list(seen.values())

    def pull(self, repository: str, tag: str | None = None, all_tags: bool = False,
             platform: str | None = None, **kwargs: Any) -> Image:
        from rongqi.engine import images
        name = f"{repository}:{tag}" if tag and "@" not in repository else repository
        with _translated("image"):
            ref, _ = images.pull(self.client.engine, name,
                                 images.PullOptions(platform=platform or ""))
        return Image(self.client, ref)

    def push(self, repository: str, tag: str | None = None, stream: bool = False,
             decode: bool = False, auth_config: Mapping[str, str] | None = None,
             tls_verify: bool = True, **kwargs: Any) -> str:
        from rongqi.image import reference
        store = self.client.engine.store
        name = f"{repository}:{tag}" if tag else repository
        with _translated("image"):
            _, desc = store.resolve(name)
            dest = reference.parse(name)
            reg = self.client.engine.registry()
            if not tls_verify:
                reg.config.insecure.add(dest.api_host)
            if auth_config:
                reg.explicit_creds[dest.api_host] = (auth_config.get("username", ""),
                                                     auth_config.get("password", ""))
            reg.push(store, desc, dest)
        return f'{{"status":"pushed","id":"{dest}","digest":"{desc.digest}"}}\n'

    def load(self, data: bytes | IO[bytes]) -> builtins.list[Image]:
        """Images from a `docker save` / OCI archive (bytes or a file)."""
        from rongqi.image.archive import load_archive
        store = self.client.engine.store
        fd, tmp = tempfile.mkstemp(dir=store.ingest_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                if isinstance(data, (bytes, bytearray)):
                    f.write(data)
                else:
                    while chunk := data.read(1 << 20):
                        f.write(chunk)
            with _translated("image"):
                loaded = load_archive(store, tmp)
        finally:
            os.unlink(tmp)
        return [Image(self.client, name or d.digest) for name, d in loaded]

    def remove(self, image: str, force: bool = False, noprune: bool = False) -> None:
        """Untag `image` (every name, given an id and force); the last name going, the image
        goes, refused while a container uses it unless force, which removes those."""
        from rongqi.cli.main import _gc
        engine = self.client.engine
        store = engine.store
        with _translated("image"):
            full, desc = store.resolve(image)
            same = [n for n, d in store.names() if d.digest == desc.digest]
            by_id = full != image and image.split(":")[0] not in full
            if by_id and len(same) > 1 and not force:
                raise APIError(f"image {image} is referenced by several names "
                               f"({', '.join(same)}): use force=True to remove them all",
                               status_code=409)
            going = same if by_id else [full]
            if not set(same) - set(going):
                image_id = store.manifest(desc)["config"]["digest"]
                users = [c for c in engine.records.all()
                         if c.config.get("image_id") == image_id]
                if users and not force:
                    raise APIError(f"image used by {users[0].id}: image is in use by a "
                                   "container", status_code=409)
                for c in users:
                    engine.remove(c.id, force=True)
            for n in going:
                store.remove_name(n)
            if not noprune:
                _gc(cast(Any, _ImageCtx(engine)))

    def prune(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Unused blobs and layers; with filters={"dangling": False} every image no container
        uses is untagged first (podman's prune -a)."""
        from rongqi.cli.main import prune_images
        every = str((filters or {}).get("dangling", True)).lower() in ("false", "0")
        with _translated("image"):
            untagged, _count, freed = prune_images(cast(Any, _ImageCtx(self.client.engine)), every)
        deleted: list[dict[str, str]] = [{"Untagged": n} for n, _ in untagged if n]
        for i in dict.fromkeys(i for _, i in untagged):
            deleted.append({"Deleted": i})
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": freed}

    def build(self, path: str | None = None, fileobj: IO[bytes] | None = None,
              tag: str | None = None, dockerfile: str | None = None,
              buildargs: Mapping[str, str] | None = None, nocache: bool = False,
              labels: Mapping[str, str] | None = None, target: str | None = None,
              pull: bool = False, network_mode: str | None = None,
              **kwargs: Any) -> tuple[Image, Iterator[dict[str, Any]]]:
        """Build from a context directory (path) or a Dockerfile (fileobj): (Image, log).
        network_mode is the RUN steps' network, as docker-py's: None or "default" the default
        network, "none", "host" or a network's name."""
        from rongqi.engine import build as b
        with contextlib.ExitStack() as stack:
            if path is None:
                if fileobj is None:
                    raise TypeError("Either path or fileobj needs to be provided.")
                path = stack.enter_context(tempfile.TemporaryDirectory())
                with open(os.path.join(path, "Dockerfile"), "wb") as f:
                    f.write(fileobj.read())
            opts = _build_options(b, path, tag, dockerfile, buildargs, nocache, labels,
                                  target, pull, network_mode)
            out = io.BytesIO()
            with _translated("image"):
                image_id = b.build(self.client.engine, opts, out)
        log = [{"stream": line + "\n"} for line in out.getvalue().decode(errors="replace")
               .splitlines()]
        return Image(self.client, image_id.removeprefix("sha256:")), iter(log)


def all_labels(have: Mapping[str, str], want: Sequence[str]) -> bool:
    for w in want:
        k, eq, v = w.partition("=")
        if k not in have or (eq and have[k] != v):
            return False
    return True


def _build_options(b: Any, path: str, tag: str | None, dockerfile: str | None,
                   buildargs: Mapping[str, str] | None, nocache: bool,
                   labels: Mapping[str, str] | None, target: str | None, pull: bool,
                   network_mode: str | None = None) -> Any:
    """engine.build.BuildOptions from docker-py's build keywords (only the fields it has)."""
    import dataclasses
    names = {f.name for f in dataclasses.fields(b.BuildOptions)}
    want: dict[str, Any] = {"context": path, "tags": [tag] if tag else [],
                            "containerfiles": [dockerfile] if dockerfile else [],
                            "build_args": dict(buildargs or {}), "no_cache": nocache,
                            "labels": dict(labels or {}), "target": target or "",
                            "pull": "always" if pull else "missing", "quiet": False,
                            "network": "" if network_mode in (None, "", "default")
                            else network_mode}
    return b.BuildOptions(**{k: v for k, v in want.items() if k in names})


# -- volumes ------------------------------------------------------------------------------------

class Volume:
    """One named volume (docker.models.volumes.Volume)."""

    def __init__(self, client: Client, name: str):
        self.client = client
        self._name = name
        self.attrs: dict[str, Any] = {}
        self.reload()

    def __repr__(self) -> str:
        return f"<Volume: {self.name}>"

    @property
    def id(self) -> str:
        return self._name

    @property
    def name(self) -> str:
        return self._name

    def reload(self) -> None:
        with _translated("volume"):
            self.attrs = dict(self.client.engine.volumes.get(self._name).inspect())

    def remove(self, force: bool = False) -> None:
        with _translated("volume"):
            self.client.engine.volumes.remove(self._name, force=force,
                                              engine=self.client.engine)


class VolumeCollection:
    """client.volumes."""

    def __init__(self, client: Client):
        self.client = client

    def create(self, name: str | None = None, driver: str | None = None,
               driver_opts: Mapping[str, str] | None = None,
               labels: Mapping[str, str] | None = None) -> Volume:
        with _translated("volume"):
            vol = self.client.engine.volumes.create(name or "", driver or "local",
                                                    dict(labels or {}), dict(driver_opts or {}))
        return Volume(self.client, vol.name)

    def get(self, volume_id: str) -> Volume:
        return Volume(self.client, volume_id)

    def list(self, filters: Mapping[str, Any] | None = None) -> list[Volume]:
        from rongqi.engine.volumes import matches
        flt = {k: [str(x) for x in (v if isinstance(v, list) else [v])]
               for k, v in (filters or {}).items()}
        with _translated("volume"):
            vols = self.client.engine.volumes.list()
            return [Volume(self.client, v.name) for v in vols if not flt or matches(v, flt)]

    def prune(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        flt = {k: [str(x) for x in (v if isinstance(v, list) else [v])]
               for k, v in (filters or {}).items()}
        with _translated("volume"):
            gone = self.client.engine.volumes.prune(self.client.engine, flt or None)
        return {"VolumesDeleted": gone, "SpaceReclaimed": 0}


# -- networks -----------------------------------------------------------------------------------

class Network:
    """One network (docker.models.networks.Network); attrs are podman's network document."""

    def __init__(self, client: Client, ref: str):
        self.client = client
        self._ref = ref
        self.attrs: dict[str, Any] = {}
        self.reload()

    def __repr__(self) -> str:
        return f"<Network: {self.short_id}>"

    @property
    def id(self) -> str:
        return str(self.attrs.get("id", ""))

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return str(self.attrs.get("name", ""))

    @property
    def containers(self) -> builtins.list[Container]:
        from rongqi.engine.networks import containers_on
        return [self.client.containers.get(cid)
                for cid in containers_on(self.client.engine, self.name)]

    def reload(self) -> None:
        from rongqi.engine.networks import NetworkStore
        with _translated("network"):
            # podman's document: less what only rongqi serve reads (docker_options)
            self.attrs = {k: v for k, v in NetworkStore(self.client.engine.root)
                          .get(self._ref).items() if k != "docker_options"}
        self._ref = self.name

    def connect(self, container: Container | str, aliases: Sequence[str] | None = None,
                ipv4_address: str | None = None, **kwargs: Any) -> None:
        from rongqi.engine import networks
        ref = container.id if isinstance(container, Container) else container
        with _translated("network"):
            networks.connect(self.client.engine, ref, self.name, aliases=list(aliases or []),
                             ip=ipv4_address or "")

    def disconnect(self, container: Container | str, force: bool = False) -> None:
        from rongqi.engine import networks
        ref = container.id if isinstance(container, Container) else container
        with _translated("network"):
            networks.disconnect(self.client.engine, ref, self.name, force=force)

    def remove(self) -> None:
        from rongqi.engine.networks import NetworkStore
        with _translated("network"):
            NetworkStore(self.client.engine.root).remove(self.name, self.client.engine)


class NetworkCollection:
    """client.networks (bridge networks of engine/networks.py, podman's default `podman`)."""

    def __init__(self, client: Client):
        self.client = client

    def create(self, name: str, driver: str | None = None,
               options: Mapping[str, str] | None = None, ipam: Mapping[str, Any] | None = None,
               check_duplicate: bool | None = None, internal: bool = False,
               labels: Mapping[str, str] | None = None, enable_ipv6: bool = False,
               **kwargs: Any) -> Network:
        """ipam as docker-py's IPAMConfig dict: {"Config": [{"Subnet": ..., "Gateway": ...,
        "IPRange": ...}]}; options by Docker's names (engine.networks.create_docker_style,
        which rongqi serve's POST /networks/create uses too)."""
        from rongqi.engine.networks import NetworkStore, create_docker_style
        with _translated("network"):
            net, _ = create_docker_style(
                NetworkStore(self.client.engine.root), name, driver=driver, options=options,
                ipam=ipam, internal=internal, labels=labels, enable_ipv6=enable_ipv6)
        return Network(self.client, str(net["name"]))

    def get(self, network_id: str, **kwargs: Any) -> Network:
        return Network(self.client, network_id)

    def list(self, names: Sequence[str] | None = None, ids: Sequence[str] | None = None,
             filters: Mapping[str, Any] | None = None, **kwargs: Any) -> builtins.list[Network]:
        from rongqi.engine.networks import NetworkStore, compile_filters, networks_in_use
        match = compile_filters(_filter_strings(filters),
                                used=lambda: networks_in_use(self.client.engine))
        out = []
        with _translated("network"):
            for net in NetworkStore(self.client.engine.root).list():
                if names and net["name"] not in names:
                    continue
                if ids and not any(net["id"].startswith(i) for i in ids):
                    continue
                if match(net):
                    out.append(Network(self.client, str(net["name"])))
        return out

    def prune(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        from rongqi.engine.networks import NetworkStore
        with _translated("network"):
            gone = NetworkStore(self.client.engine.root).prune(self.client.engine,
                                                               _filter_strings(filters))
        return {"NetworksDeleted": gone}


# -- the client ---------------------------------------------------------------------------------

class Client:
    """docker.DockerClient's shape over the in-process engine.

    root/runroot/runtime are the engine's --root, --runroot and --runtime (None: the
    defaults, or RONGQI_ROOT / RONGQI_RUNROOT from the environment)."""

    def __init__(self, root: str | None = None, runroot: str | None = None,
                 runtime: str | None = None, *, engine: Engine | None = None):
        if engine is None:
            from rongqi.engine import Engine as _Engine
            with _translated():
                engine = _Engine(root, runroot, runtime)
        self.engine: Engine = engine
        self.containers = ContainerCollection(self)
        self.images = ImageCollection(self)
        self.volumes = VolumeCollection(self)
        self.networks = NetworkCollection(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to close (no connection); kept for docker-py's shape."""

    def ping(self) -> bool:
        return True

    def version(self) -> dict[str, Any]:
        import platform

        import rongqi
        return {"Version": rongqi.__version__, "ApiVersion": "1.41", "Os": "linux",
                "Arch": platform.machine(), "KernelVersion": platform.release(),
                "Components": [{"Name": "rongqi", "Version": rongqi.__version__}]}

    def info(self) -> dict[str, Any]:
        e = self.engine
        cs = e.list(all=True)
        return {"Containers": len(cs),
                "ContainersRunning": sum(1 for c in cs if c.status == "running"),
                "ContainersPaused": sum(1 for c in cs if c.status == "paused"),
                "ContainersStopped": sum(1 for c in cs if c.status in ("exited", "created")),
                "Images": len(e.store.names()), "DockerRootDir": e.root,
                "Driver": "overlay", "OperatingSystem": "linux"}


def from_env(**kwargs: Any) -> Client:
    """docker.from_env(): a Client configured from the environment (RONGQI_ROOT,
    RONGQI_RUNROOT, RONGQI_RUNTIME); keywords override."""
    env = os.environ
    return Client(kwargs.pop("root", None) or env.get("RONGQI_ROOT"),
                  kwargs.pop("runroot", None) or env.get("RONGQI_RUNROOT"),
                  kwargs.pop("runtime", None) or env.get("RONGQI_RUNTIME"))

