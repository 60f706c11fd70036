"""rongqi build: a Containerfile (engine/containerfile.py) to an OCI image in the store, one
layer per step that changes files, with a cache of steps keyed by what they depend on.

RUN steps run in a container of their own over an overlay snapshot of the step before (the
bundle code of `run`, the in-process runtime, no monitor: the build is the container's
parent); the snapshot's upper dir becomes the layer (engine/changes.py, as commit does).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import posixpath
import re
import secrets
import shutil
import stat
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, cast

from rongqi.engine import containerfile as cfmod
from rongqi.engine.containerfile import ContainerfileError, Instruction, Lexer, Stage
from rongqi.errors import EngineError, RongqiError

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.engine.records import Container

DEFAULT_SHELL = ["/bin/sh", "-c"]
IGNORE_FILES = (".containerignore", ".dockerignore")
DEFAULT_FILES = ("Containerfile", "Dockerfile")
CACHE_VERSION = "1"
_GLOB = re.compile(r"[*?\[]")


class BuildError(EngineError):
    """A step that failed; the message is podman's `building at STEP "...": why`."""


@dataclass
class BuildOptions:
    context: str                                   # a directory, a tar archive, or "-"
    containerfiles: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: str = "missing"                          # missing | always | never | newer
    # The RUN steps' network: "" is buildah's default ("private": a netns of the step's own
    # on the default network as root, slirp4netns for an ordinary user); none, host, names.
    network: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    platform: str = ""
    tls_verify: bool = True
    quiet: bool = False
    layers: bool = True                            # False: no cache reads or writes
    fmt: str = "oci"
    jobs: int = 1                                  # stages built at once (buildah's --jobs)
    stdin: IO[bytes] | None = None                 # the Containerfile for context "-"
    # RUN --mount=type=secret: id -> the file it is read from (--secret id=ID,src=FILE|env=VAR)
    secrets: dict[str, str] = field(default_factory=dict)
    # RUN --mount=type=ssh: id -> agent sockets or private keys (--ssh default | ID=PATH[,PATH])
    ssh: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class BuildStep:
    """A RUN step's container as the network code sees one (engine/networks.py: setup,
    teardown, process_started read an id, a name, a userdata dir and a config). It has no
    container record: its networks.json carries an `owner`, the lock its build holds for its
    whole life, which is how the network sweep tells a live step from a dead build's."""

    id: str
    name: str
    userdata: str
    bundle: str = ""                     # its config.json (the rootless holder reads it)
    run_dir: str = ""                    # RUN/ID: the rootless namespaces' links
    config: dict[str, Any] = field(default_factory=dict)


# -- the image being built --------------------------------------------------------------------
@dataclass
class ImageState:
    """A stage's image after some steps: the whole OCI config and the layers' descriptors."""

    config: dict[str, Any]
    layers: list[dict[str, Any]]
    key: str                                       # the cache key of the steps so far
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False                          # a CMD of this stage (ENTRYPOINT keeps it)

    @property
    def cfg(self) -> dict[str, Any]:
        return self.config.setdefault("config", {})

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def chain_ids(self) -> list[str]:
        from rongqi.storage.overlay import chain_ids
        return chain_ids(self.diff_ids)

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in self.cfg.get("Env") or []:
            k, _, v = e.partition("=")
            out[k] = v
        return out

    def set_env(self, key: str, value: str) -> None:
        env = [e for e in self.cfg.get("Env") or [] if e.partition("=")[0] != key]
        self.cfg["Env"] = env + [f"{key}={value}"]

    def final_config(self, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """The config as an image of its own: --label's labels added, "created" the last
        step's time (so a build wholly from the cache gives the same image id)."""
        cfg = json.loads(json.dumps(self.config))
        if labels:
            cfg.setdefault("config", {})["Labels"] = {
                **(cfg["config"].get("Labels") or {}), **labels}
        history = cfg.get("history") or []
        cfg["created"] = (history[-1].get("created") if history else "") or \
            cfg.get("created") or _now()
        cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        inner = cfg.setdefault("config", {})
        for k in [k for k, v in inner.items() if v is None]:
            del inner[k]
        return cfg

    def image_id(self) -> str:
        from rongqi.image.store import canonical_json
        return hashlib.sha256(canonical_json(self.final_config())).hexdigest()

    def copy(self) -> ImageState:
        return ImageState(json.loads(json.dumps(self.config)), [dict(x) for x in self.layers],
                          self.key, list(self.shell), self.cmd_set)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + \
        f".{time.time_ns() % 1_000_000_000:09d}Z"


def _host_platform() -> tuple[str, str]:
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)
    return "linux", arch


def _scratch(platform: str) -> dict[str, Any]:
    os_, arch = _host_platform()
    if platform:
        os_, _, rest = platform.partition("/")
        arch = rest.partition("/")[0] or arch
    return {"architecture": arch, "os": os_, "config": {},
            "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


# -- the build context ----------------------------------------------------------------------------
class Ignore:
    """.dockerignore / .containerignore: docker's patterns (filepath.Match with `**`), the
    last matching pattern wins, `!` re-includes; a directory excluded excludes its contents."""

    def __init__(self, lines: list[str]):
        self.rules: list[tuple[re.Pattern[str], bool, str]] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:].strip()
            pat = posixpath.normpath(line).lstrip("/")
            if pat in ("", "."):
                continue
            self.rules.append((re.compile(_pattern_regex(pat)), negate, pat))

    def excluded(self, rel: str) -> bool:
        """rel: a path relative to the context ("a/b")."""
        if not self.rules:
            return False
        parents = []
        p = rel
        while True:
            parents.append(p)
            if "/" not in p:
                break
            p = p.rsplit("/", 1)[0]
        out = False
        for rx, negate, _ in self.rules:
            # A pattern matching the path or one of its parents (moby's MatchesOrParentMatches).
            if any(rx.fullmatch(x) for x in parents):
                out = not negate
        return out

    def may_include_below(self, rel: str) -> bool:
        """Whether an excluded directory may still have re-included entries below it: a `!`
        pattern that names something under it, or whose wildcards start above its depth
        (moby walks such a directory instead of leaving it out whole)."""
        below = rel.strip("/") + "/"
        for _, negate, pat in self.rules:
            if not negate:
                continue
            head = re.split(r"[*?\[\\]", pat, maxsplit=1)[0]
            if pat.startswith(below) or (head != pat and below.startswith(head)):
                return True
        return False


def _pattern_regex(pat: str) -> str:
    out = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if c == "*":
            if i + 1 < n and pat[i + 1] == "*":
                i += 2
                if i < n and pat[i] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pat.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pat[i + 1:end]
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pat[i + 1]))
            i += 1
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@dataclass
class Context:
    root: str                         # the context directory (a temp dir for a tar or "-")
    containerfile: str                # its text
    path: str                         # as named in errors
    ignore: Ignore
    cleanup: list[str] = field(default_factory=list)

    def close(self) -> None:
        for d in self.cleanup:
            shutil.rmtree(d, ignore_errors=True)


def open_context(opts: BuildOptions, tmp_base: str, prefix: str = "context-") -> Context:
    cleanup: list[str] = []
    src = opts.context
    if src == "-":
        data = (opts.stdin or sys.stdin.buffer).read()
        root = tempfile.mkdtemp(prefix=prefix, dir=tmp_base)
        cleanup.append(root)
        if _looks_like_tar(data):
            _extract_tar_bytes(data, root)
            text, path = _find_file(root, opts.containerfiles, root)
        else:
            text, path = data.decode("utf-8", "replace"), "-"
    else:
        if not os.path.exists(src):
            raise EngineError(f"stat {src}: no such file or directory")
        if os.path.isfile(src):
            root = tempfile.mkdtemp(prefix=prefix, dir=tmp_base)
            cleanup.append(root)
            with open(src, "rb") as f:
                data = f.read()
            if not _looks_like_tar(data):
                # podman: a file as the context is the Containerfile itself
                shutil.rmtree(root)
                cleanup.clear()
                root = os.path.dirname(os.path.abspath(src))
                text, path = data.decode("utf-8", "replace"), src
            else:
                _extract_tar_bytes(data, root)
                text, path = _find_file(root, opts.containerfiles, os.path.abspath(src))
        else:
            root = os.path.abspath(src)
            text, path = _find_file(root, opts.containerfiles, root)
    ignore_lines: list[str] = []
    for name in IGNORE_FILES:
        patterns, _ = _read_in_context(root, name)   # a link out of the context is none
        if patterns is not None:
            ignore_lines = patterns.splitlines()
            break
    return Context(root, text, path, Ignore(ignore_lines), cleanup)


def _looks_like_tar(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b" or data[:4] == b"\x28\xb5\x2f\xfd" or data[:3] == b"BZh" \
            or data[:6] == b"\xfd7zXZ\x00":
        return True
    return len(data) >= 262 and data[257:262] == b"ustar"


def _extract_tar_bytes(data: bytes, dest: str) -> None:
    import io

    from rongqi.engine.treecopy import RootDir, TreeWriter, tar_entries
    with RootDir.open(dest, "the build context") as root:
        w = TreeWriter(root, "/", owner=(os.geteuid(), os.getegid()), overwrite=True)
        try:
            for ti, opener in tar_entries(io.BytesIO(data)):
                if ti.ischr() or ti.isblk():
                    continue
                w.add(ti, opener)
        finally:
            w.close()


def _read_in_context(root: str, rel: str) -> tuple[str | None, bool]:
    """(the text, whether the name is in the context at all) of a file of the context, every
    path component resolved inside it: a Containerfile that is a symlink to /etc/shadow is
    the context's /etc/shadow (none), never the host's, whose lines a parse error would echo."""
    from rongqi.engine.treecopy import RootDir
    with RootDir.open(root, "the build context") as rd:
        there = rd.lstat(rel) is not None
        try:
            fd = rd.openat(rel, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None, there
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None, there
        return f.read(), there


def _find_file(root: str, names: list[str], shown: str) -> tuple[str, str]:
    if names:
        name = names[0]
        if name == "-":
            return sys.stdin.read(), "-"
        missing = EngineError(f"the specified Containerfile or Dockerfile does not exist, "
                              f"{name}: no such file or directory")
        if not os.path.isabs(name):
            text, there = _read_in_context(root, name)
            if text is not None:
                return text, os.path.join(root, name)
            if there:
                raise missing   # a link that leads out of the context, or not a file
        p = name
        try:
            # an absolute -f, or podman's -f relative to the working directory
            with open(p, encoding="utf-8", errors="replace") as f:
                return f.read(), p
        except (FileNotFoundError, IsADirectoryError):
            raise missing from None
    for name in DEFAULT_FILES:
        text, _ = _read_in_context(root, name)
        if text is not None:
            return text, os.path.join(root, name)
    raise EngineError(f"no Containerfile or Dockerfile specified or found in context "
                      f"directory, {shown}: no such file or directory")


# -- progress ------------------------------------------------------------------------------------
# Set by `rongqi serve` for the build it runs: a token that marks event lines in the output.
EVENTS_ENV = "RONGQI_BUILD_EVENTS"


class Progress:
    """podman's build lines on `out` (nothing with -q; RUN output then goes to stderr).

    Run by `rongqi serve` (EVENTS_ENV set), it also writes event lines for the classic
    builder's stream: `\x1eTOKEN KIND VALUE...`, in order with the lines and the RUN
    output. Only the service knows the token, so a RUN step's output cannot forge one; the
    variable is dropped at once so no process started from here inherits it."""

    def __init__(self, out: IO[bytes], quiet: bool):
        self.out = out
        self.quiet = quiet
        self.token = os.environ.pop(EVENTS_ENV, "")

    def event(self, kind: str, *values: str) -> None:
        """`from IMAGE_ID`, `running CONTAINER_ID`, `removed CONTAINER_ID`, `image IMAGE_ID`,
        `failed CODE JSON_ARGV` (nothing unless the service asked)."""
        if self.token:
            self.out.write(f"\x1e{self.token} {kind} {' '.join(values)}\n".encode())
            self.out.flush()

    def line(self, text: str) -> None:
        if not self.quiet:
            self.out.write(text.encode() + b"\n")
            self.out.flush()

    def run_output(self) -> int:
        """The fd a RUN container writes to."""
        stream = sys.stderr if self.quiet else self.out
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.flush()
            return stream.fileno()
        return -1 if not self.quiet else 2   # -1: no fd (a BytesIO): relayed through a pipe


# -- the builder ----------------------------------------------------------------------------------
class Builder:
    def __init__(self, engine: Engine, opts: BuildOptions, out: IO[bytes]):
        self.engine = engine
        self.opts = opts
        self.progress = Progress(out, opts.quiet)
        self.cache_dir = os.path.join(engine.root, "build", "cache")
        self.mounts_dir = os.path.join(engine.root, "build", "mounts")
        self.work_dir = os.path.join(engine.runroot, "build")
        for d in (self.cache_dir, self.mounts_dir, self.work_dir):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self.states: dict[int, ImageState] = {}
        self.used_args: set[str] = set()
        self.lexer = Lexer()
        self.cf: cfmod.Containerfile | None = None
        self.ctx: Context | None = None
        self._local = threading.local()   # per stage thread: the step and its prefix
        self._create_lock = threading.Lock()
        self.deps: dict[int, set[int]] = {}
        self.final_prefix = ""
        self.build_id = ""
        self.lock_path = ""
        self._warned: set[str] = set()
        self.network = ""   # the RUN steps' default network, checked (build_network)

    # -- the whole build --------------------------------------------------------------------
    def run(self) -> str:
        import fcntl
        sweep(self.engine)
        # Held for the build's life: a build killed mid-step leaves its snapshots, runtime
        # containers and dirs named build-<id>-..., which the next build's sweep removes.
        # The lock file appears already locked (made under another name, then renamed), so
        # a sweep never sees a live build's file unlocked.
        self.build_id = secrets.token_hex(8)
        path = os.path.join(self.work_dir, f"build-{self.build_id}.lock")
        self.network = build_network(self.engine, self.opts.network)
        fd = os.open(path + ".new", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(path + ".new", path)
        self.lock_path = path
        try:
            self.ctx = open_context(self.opts, self.work_dir, f"build-{self.build_id}-ctx-")
            # Layer blobs are referenced by no image until the end: no gc meanwhile.
            try:
                with self.engine.store.gc_lock(shared=True), contextlib.ExitStack() as agents:
                    self.ssh_sockets = {k: ssh_socket(v, self.work_dir, agents)
                                        for k, v in self.opts.ssh.items()}
                    return self._run()
            finally:
                self.ctx.close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.close(fd)

    def _name(self) -> str:
        """A snapshot's or a RUN container's name: this build's prefix, for the sweep."""
        return f"build-{self.build_id}-{secrets.token_hex(8)}"

    def _run(self) -> str:
        assert self.ctx is not None
        cf = cfmod.parse(self.ctx.containerfile, self.ctx.path)
        self.cf = cf
        self.lexer = Lexer(cf.escape)
        if cf.syntax:
            self.progress.line(f"NOTE: the syntax directive ({cf.syntax}) is noted; rongqi "
                               "builds with its own parser")
        self.meta = self._meta_args(cf)
        if self.opts.target:
            target = cf.stage(self.opts.target)
            if target is None:
                raise EngineError(f'building: target stage "{self.opts.target}" not found')
        else:
            target = cf.stages[-1]
        order = self._needed(cf, target)
        self._build_stages(order, target, len(cf.stages) > 1)
        unused = sorted(k for k in self.opts.build_args
                        if k not in self.used_args and k not in cfmod.PROXY_ARGS)
        if unused:
            self.progress.line(f"[Warning] one or more build-args [{' '.join(unused)}] were "
                               "not consumed")
        return self._commit(self.states[target.index])

    def _meta_args(self, cf: cfmod.Containerfile) -> dict[str, str | None]:
        os_, arch = _host_platform()
        plat = self.opts.platform or f"{os_}/{arch}"
        meta: dict[str, str | None] = {}
        auto = {"TARGETPLATFORM": plat, "TARGETOS": plat.split("/")[0],
                "TARGETARCH": (plat.split("/") + [arch])[1],
                "TARGETVARIANT": (plat.split("/") + ["", ""])[2],
                "BUILDPLATFORM": f"{os_}/{arch}", "BUILDOS": os_, "BUILDARCH": arch,
                "BUILDVARIANT": ""}
        self.auto_args = auto
        env = {k: v for k, v in auto.items()}
        for ins in cf.meta_args:
            for k, v in cfmod.key_values(ins, {k: v for k, v in env.items() if v is not None},
                                         self.lexer, cf.path):
                if k in self.opts.build_args:
                    v = self.opts.build_args[k]
                    self.used_args.add(k)
                meta[k] = v
                if v is not None:
                    env[k] = v
        return meta

    def _needed(self, cf: cfmod.Containerfile, target: Stage) -> list[Stage]:
        """The target and the stages it needs (FROM stage, COPY --from, RUN --mount from=),
        in file order; the others are skipped, as buildkit does."""
        need: set[int] = set()
        names = {s.name: s for s in cf.stages if s.name}

        def deps(s: Stage) -> list[Stage]:
            out = []
            base = self._expand_meta(s.base)
            if base.lower() in names and names[base.lower()].index < s.index:
                out.append(names[base.lower()])
            for ins in s.instructions:
                refs = []
                if ins.cmd == "COPY" and ins.flag("from"):
                    refs.append(ins.flag("from") or "")
                if ins.cmd == "RUN":
                    for m in ins.flag_all("mount"):
                        f = _mount_fields(m)
                        if f.get("from"):
                            refs.append(f["from"])
                for r in refs:
                    r = self._expand_meta(r)
                    st = cf.stage(r)
                    if st is None and r.isdigit():
                        # a stage index past the last stage: never an image to pull
                        raise ContainerfileError(
                            f"{cf.path}: dockerfile parse error on line {ins.line}: "
                            f"invalid from flag value {r}: the file has "
                            f"{len(cf.stages)} stage{'s' if len(cf.stages) != 1 else ''}")
                    if st is not None and st.index < s.index:
                        out.append(st)
                    elif st is not None and st.index >= s.index:
                        raise ContainerfileError(
                            f"{cf.path}: dockerfile parse error on line {ins.line}: "
                            f"circular dependency detected on stage: {r}")
            return out

        todo = [target]
        while todo:
            s = todo.pop()
            if s.index in need:
                continue
            need.add(s.index)
            found = deps(s)
            self.deps[s.index] = {d.index for d in found}
            todo.extend(found)
        return [s for s in cf.stages if s.index in need]

    def _build_stages(self, order: list[Stage], target: Stage, multi: bool) -> None:
        """In file order; with jobs > 1, a stage starts as soon as the stages it needs are
        built (independent stages at once, as buildah's --jobs)."""
        jobs = max(1, self.opts.jobs)
        if jobs == 1 or len(order) == 1:
            for stage in order:
                self.states[stage.index] = self._stage(stage, multi, stage is target)
            return
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
        pending = list(order)
        running: dict[Any, Stage] = {}
        error: BaseException | None = None
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            while (pending and error is None) or running:
                if error is None:
                    for s in [s for s in pending if self.deps.get(s.index, set()) <= set(
                            self.states)]:
                        pending.remove(s)
                        running[pool.submit(self._stage, s, multi, s is target)] = s
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for f in finished:
                    s = running.pop(f)
                    try:
                        self.states[s.index] = f.result()
                    except BaseException as e:  # noqa: BLE001 - the first is raised below
                        error = error or e
        if error is not None:
            raise error

    @property
    def step_text(self) -> str:
        return getattr(self._local, "step", "")

    @step_text.setter
    def step_text(self, value: str) -> None:
        self._local.step = value

    @property
    def prefix(self) -> str:
        return getattr(self._local, "prefix", "")

    @prefix.setter
    def prefix(self, value: str) -> None:
        self._local.prefix = value

    def _expand_meta(self, text: str) -> str:
        env = {**{k: v for k, v in self.auto_args.items()},
               **{k: v for k, v in self.meta.items() if v is not None}}
        return self.lexer.expand(text, env)

    # -- a stage ------------------------------------------------------------------------------
    def _stage(self, stage: Stage, multi: bool, final: bool) -> ImageState:
        steps = [None, *stage.instructions]
        total = len(steps)
        prefix = f"[{stage.index + 1}/{len(self.cf.stages)}] " if multi else ""  # type: ignore[union-attr]
        self.prefix = prefix
        if final:
            self.final_prefix = prefix
        base = self._expand_meta(stage.base)
        from_text = f"FROM {base}" + (f" AS {stage.name}" if stage.name else "")
        self.progress.line(f"{prefix}STEP 1/{total}: {from_text}")
        state = self._from(stage, base)
        if base.lower() != "scratch":
            self.progress.event("from", self._from_id or state.image_id())
        args: dict[str, str | None] = {}
        triggers = list(state.cfg.get("OnBuild") or [])
        if triggers:
            state.cfg.pop("OnBuild", None)
            for t in triggers:
                ins = cfmod.parse_instruction(t, f"{base} ONBUILD", stage.line)
                self.progress.line(f"{prefix}ONBUILD {t}")
                state = self._step(stage, state, ins, args, t, False)
        for n, ins in enumerate(stage.instructions, start=2):
            self.progress.line(f"{prefix}STEP {n}/{total}: {ins.original}")
            state = self._step(stage, state, ins, args, ins.original,
                               final and n == total)
        return state

    def _from(self, stage: Stage, base: str) -> ImageState:
        cf = self.cf
        assert cf is not None
        self._from_id = ""   # the base image's id, when it is a stored image
        platform = self._expand_meta(stage.platform) if stage.platform else self.opts.platform
        if base.lower() == "scratch":
            return ImageState(_scratch(platform), [], _hash("scratch", platform))
        earlier = cf.stage(base) if not base.isdigit() else None
        if earlier is not None and earlier.index < stage.index and earlier.index in self.states:
            st = self.states[earlier.index].copy()
            st.cmd_set = False
            return st
        from rongqi.engine import images
        try:
            img = images.resolve(self.engine, base, self.opts.pull,
                                 images.PullOptions(platform=platform,
                                                    tls_verify=self.opts.tls_verify))
        except RongqiError as e:
            raise BuildError(f'building at STEP "FROM {base}": {e}') from None
        self._from_id = img.id
        manifest = self.engine.store.manifest(img.manifest_digest)
        config = json.loads(json.dumps(img.config))
        config.pop("created", None)
        st = ImageState(config, [dict(x) for x in manifest.get("layers") or []],
                        _hash("from", img.manifest_digest, platform))
        st.config["created"] = img.config.get("created", "")
        return st

    # -- one step -------------------------------------------------------------------------------
    def _step(self, stage: Stage, state: ImageState, ins: Instruction,
              args: dict[str, str | None], text: str, last: bool) -> ImageState:
        """One instruction; its result's id is shown unless it is the image's last step,
        which COMMIT shows (as buildah)."""
        self.step_text = text
        start = time.monotonic()
        try:
            new = self._apply(stage, state, ins, args)
        except BuildError:
            raise
        except ContainerfileError as e:
            raise BuildError(f'building at STEP "{text}": {e}') from None
        except RongqiError as e:
            raise BuildError(f'building at STEP "{text}": {e}') from None
        except OSError as e:
            where = f": {e.filename}" if e.filename else ""
            raise BuildError(f'building at STEP "{text}": {e.strerror or e}{where}') from None
        took = time.monotonic() - start
        if not last:
            self.progress.line(f"--> {new.image_id()[:11]}" +
                               (f" ({took:.1f}s)" if took >= 1.0 else ""))
            self.progress.event("image", new.image_id())
        return new

    def _scope_env(self, state: ImageState, args: dict[str, str | None]) -> dict[str, str]:
        """What $VAR means in an instruction: the stage's ARGs, then ENV over them."""
        env = {k: v for k, v in args.items() if v is not None}
        env.update(state.env())
        return env

    def _history(self, state: ImageState, created_by: str, empty: bool) -> None:
        entry: dict[str, Any] = {"created": _now(), "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        state.config.setdefault("history", []).append(entry)

    def _meta_step(self, state: ImageState, ins: Instruction, text: str,
                   change: Callable[[ImageState], None]) -> ImageState:
        key = _hash(state.key, "meta", text)
        hit = self._cached(key)
        if hit is not None:
            return self._hit(hit)
        new = state.copy()
        new.key = key
        change(new)
        self._history(new, f"/bin/sh -c #(nop) {text}", True)
        self._save_cache(new)
        return new

    def _apply(self, stage: Stage, state: ImageState, ins: Instruction,
               args: dict[str, str | None]) -> ImageState:
        cmd = ins.cmd
        env = self._scope_env(state, args)
        lx = self.lexer
        path = self.cf.path if self.cf else ""
        if cmd == "ARG":
            pairs = cfmod.key_values(ins, env, lx, path)
            shown = []
            for k, v in pairs:
                if k in self.opts.build_args:
                    v = self.opts.build_args[k]
                    self.used_args.add(k)
                elif v is None and k in self.meta:
                    v = self.meta[k]
                elif v is None and k in self.auto_args:
                    v = self.auto_args[k]
                args[k] = v
                shown.append(f"{k}={v}" if v is not None else k)
            return self._meta_step(state, ins, "ARG " + " ".join(shown), lambda s: None)
        if cmd == "ENV":
            pairs = cfmod.key_values(ins, env, lx, path)

            def set_env(s: ImageState) -> None:
                for k, v in pairs:
                    s.set_env(k, v)
            return self._meta_step(state, ins, "ENV " + " ".join(f"{k}={v}" for k, v in pairs),
                                   set_env)
        if cmd == "LABEL":
            pairs = cfmod.key_values(ins, env, lx, path)

            def set_labels(s: ImageState) -> None:
                s.cfg["Labels"] = {**(s.cfg.get("Labels") or {}), **dict(pairs)}
            return self._meta_step(state, ins, "LABEL " + " ".join(
                f'{k}="{v}"' for k, v in pairs), set_labels)
        if cmd == "MAINTAINER":
            who = ins.rest

            def set_author(s: ImageState) -> None:
                s.config["author"] = who
            return self._meta_step(state, ins, f"MAINTAINER {who}", set_author)
        if cmd == "WORKDIR":
            wd = lx.expand(ins.rest, env)
            cur = state.cfg.get("WorkingDir") or "/"
            full = posixpath.normpath(posixpath.join(cur, wd))

            def set_wd(s: ImageState) -> None:
                s.cfg["WorkingDir"] = full
            return self._meta_step(state, ins, f"WORKDIR {full}", set_wd)
        if cmd == "USER":
            user = lx.expand(ins.rest, env)

            def set_user(s: ImageState) -> None:
                s.cfg["User"] = user
            return self._meta_step(state, ins, f"USER {user}", set_user)
        if cmd in ("CMD", "ENTRYPOINT"):
            argv, _ = cfmod.shell_or_exec(ins, state.shell)
            if ins.json_form is None and not ins.rest:
                argv = []

            def set_cmd(s: ImageState) -> None:
                if cmd == "ENTRYPOINT":
                    s.cfg["Entrypoint"] = argv or None
                    if not s.cmd_set:
                        s.cfg.pop("Cmd", None)   # a base image's CMD goes with a new ENTRYPOINT
                else:
                    s.cfg["Cmd"] = argv
                    s.cmd_set = True
            return self._meta_step(state, ins, f"{cmd} {json.dumps(argv)}", set_cmd)
        if cmd == "SHELL":
            shell = list(ins.json_form or [])

            def set_shell(s: ImageState) -> None:
                s.shell = shell
                s.cfg["Shell"] = shell
            return self._meta_step(state, ins, f"SHELL {json.dumps(shell)}", set_shell)
        if cmd == "EXPOSE":
            ports = []
            for w in cfmod.plain_words(ins, env, lx):
                p, _, proto = w.partition("/")
                proto = (proto or "tcp").lower()
                if proto not in ("tcp", "udp", "sctp"):
                    raise ContainerfileError(f"invalid proto: {proto}")
                lo, _, hi = p.partition("-")
                if not lo.isdigit() or (hi and not hi.isdigit()):
                    raise ContainerfileError(f"invalid containerPort: {p}")
                for n in range(int(lo), int(hi or lo) + 1):
                    ports.append(f"{n}/{proto}")

            def set_ports(s: ImageState) -> None:
                s.cfg["ExposedPorts"] = {**(s.cfg.get("ExposedPorts") or {}),
                                         **{p: {} for p in ports}}
            return self._meta_step(state, ins, "EXPOSE " + " ".join(ports), set_ports)
        if cmd == "VOLUME":
            vols = [v for v in cfmod.plain_words(ins, env, lx) if v]
            if not vols:
                raise ContainerfileError("VOLUME specified can not be an empty string")

            def set_vols(s: ImageState) -> None:
                s.cfg["Volumes"] = {**(s.cfg.get("Volumes") or {}), **{v: {} for v in vols}}
            return self._meta_step(state, ins, "VOLUME " + json.dumps(vols), set_vols)
        if cmd == "STOPSIGNAL":
            sig = lx.expand(ins.rest, env)
            from rongqi.engine.bundle import signal_number
            try:
                signal_number(sig)
            except RongqiError:
                raise ContainerfileError(f"invalid signal: {sig}") from None

            def set_sig(s: ImageState) -> None:
                s.cfg["StopSignal"] = sig
            return self._meta_step(state, ins, f"STOPSIGNAL {sig}", set_sig)
        if cmd == "HEALTHCHECK":
            hc = _healthcheck(ins, state.shell)

            def set_hc(s: ImageState) -> None:
                s.cfg["Healthcheck"] = hc
            return self._meta_step(state, ins, f"HEALTHCHECK {ins.rest}", set_hc)
        if cmd == "ONBUILD":
            trigger = ins.rest

            def add_trigger(s: ImageState) -> None:
                s.cfg["OnBuild"] = list(s.cfg.get("OnBuild") or []) + [trigger]
            return self._meta_step(state, ins, f"ONBUILD {trigger}", add_trigger)
        if cmd == "RUN":
            return self._run_step(state, ins, args)
        if cmd in ("COPY", "ADD"):
            return self._copy_step(stage, state, ins, args)
        raise ContainerfileError(f"unknown instruction: {cmd}")

    # -- the cache ------------------------------------------------------------------------------
    def _cached(self, key: str) -> ImageState | None:
        if self.opts.no_cache or not self.opts.layers:
            return None
        p = os.path.join(self.cache_dir, key + ".json")
        try:
            with open(p) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            return None
        store = self.engine.store
        if not all(store.has_blob(x["digest"]) for x in doc.get("layers") or []):
            return None
        st = ImageState(doc["config"], doc["layers"], key, doc.get("shell") or DEFAULT_SHELL,
                        bool(doc.get("cmd_set")))
        try:
            self._unpack(st)
        except RongqiError:
            return None
        return st

    def _save_cache(self, st: ImageState) -> None:
        if not self.opts.layers:
            return
        from rongqi.engine.records import write_json_atomic
        write_json_atomic(os.path.join(self.cache_dir, st.key + ".json"),
                          {"config": st.config, "layers": st.layers, "shell": st.shell,
                           "cmd_set": st.cmd_set})

    def _unpack(self, st: ImageState) -> None:
        self.engine.storage.unpack_layers(self.engine.store, {"layers": st.layers}, st.config)

    def _hit(self, st: ImageState) -> ImageState:
        self.progress.line(f"--> Using cache {st.image_id()}")
        return st

    # -- RUN --------------------------------------------------------------------------------------
    def _run_step(self, state: ImageState, ins: Instruction,
                  args: dict[str, str | None]) -> ImageState:
        env = state.env()
        # Build args are the command's environment (ENV wins), not the image's.
        run_env = {k: v for k, v in args.items() if v is not None}
        for k in cfmod.PROXY_ARGS:
            if k in self.opts.build_args:
                run_env[k] = self.opts.build_args[k]
        run_env.update(env)
        argv, shell_form = cfmod.shell_or_exec(ins, state.shell)
        script_file = ""
        if ins.heredocs and shell_form:
            first = ins.rest.split(None, 1)[0] if ins.rest else ""
            if re.fullmatch(r"<<-?['\"]?\w+['\"]?", first) and len(ins.heredocs) == 1 \
                    and ins.rest.strip() == first:
                body = ins.heredocs[0].content
                if body.startswith("#!"):
                    script_file = body   # run as a file, its own interpreter
                    argv = ["/dev/.rongqi-build-script"]
                else:
                    argv = [*state.shell, body]
            else:
                text = ins.rest + "\n" + "".join(
                    h.content + h.name + "\n" for h in ins.heredocs)
                argv = [*state.shell, text]
        # RUN --security (BuildKit's): sandbox is what every step gets; insecure (a
        # privileged step) needs an entitlement rongqi build does not grant, so it is refused
        # rather than run unprivileged as if it had been granted.
        sec = ins.flag("security")
        if sec not in (None, "sandbox"):
            if sec == "insecure":
                raise ContainerfileError("RUN --security=insecure is not allowed: rongqi build "
                                         "grants no entitlement security.insecure (the step "
                                         "would run privileged)")
            raise ContainerfileError(f'unsupported value "{sec}" for "RUN --security", must be '
                                     'either "sandbox" or "insecure"')
        # RUN --network as buildah takes it: default (the build's --network), none, host.
        # The cache key has the instruction's own flag (buildah's key is the instruction's
        # text), not the build's --network: a step made with one is reused with another.
        run_net = ins.flag("network")
        if run_net in (None, "", "default"):
            network = self.network
        elif run_net in ("none", "host"):
            network = run_net
        else:
            raise ContainerfileError(f'unsupported value "{run_net}" for "RUN --network", '
                                     'must be either "host" or "none"')
        mounts_raw = ins.flag_all("mount")
        arg_text = " ".join(f"{k}={v}" for k, v in sorted(args.items()) if v is not None)
        created_by = (f"|{len([v for v in args.values() if v is not None])} {arg_text} "
                      if arg_text else "") + " ".join(argv)
        key = _hash(state.key, "RUN", json.dumps(argv), arg_text,
                    "network=" + (run_net or ""), json.dumps(mounts_raw),
                    self._mount_keys(mounts_raw))
        hit = self._cached(key)
        if hit is not None:
            return self._hit(hit)
        new = state.copy()
        new.key = key
        layer = self._in_container(state, lambda snap, stack: self._exec(
            state, snap, stack, argv, run_env, network, mounts_raw, script_file))
        self._add_layer(new, layer, created_by)
        self._save_cache(new)
        return new

    def _mount_keys(self, raws: list[str]) -> str:
        """For RUN --mount=type=bind,from=STAGE: that stage's key joins the step's."""
        out = []
        for raw in raws:
            f = _mount_fields(raw)
            src = f.get("from")
            if src and self.cf is not None:
                st = self.cf.stage(self._expand_meta(src))
                if st is not None and st.index in self.states:
                    out.append(self.states[st.index].key)
                else:
                    out.append(src)
            elif f.get("type", "bind") == "bind":
                out.append(self._context_digest([f.get("source") or f.get("src") or "."]))
        return ",".join(out)

    def _in_container(self, state: ImageState,
                      act: Callable[[Any, contextlib.ExitStack], None]) -> dict[str, Any] | None:
        """A snapshot over the state's layers, `act(snapshot)` changing it, and the change as
        a layer (None: nothing changed); the snapshot is gone afterwards, whatever happens."""
        storage = self.engine.storage
        self._unpack(state)
        snap_id = self._name()
        with contextlib.ExitStack() as stack:
            snap = storage.create_snapshot(snap_id, state.chain_ids)
            stack.callback(storage.remove_snapshot, snap_id)
            skip_dests: list[str] = []
            stack.skip_dests = skip_dests   # type: ignore[attr-defined]
            act(snap, stack)
            return self._layer_of(snap, skip_dests)

    def _exec(self, state: ImageState, snap: Any, stack: contextlib.ExitStack,
              argv: list[str], env: dict[str, str], network: str, mounts_raw: list[str],
              script: str) -> None:
        from rongqi.engine import bundle
        from rongqi.engine.options import ContainerOptions, MountSpec
        from rongqi.engine.records import write_json_atomic
        cid = self._name()
        # The step's container as Docker names one (64 hex; the runtime's name keeps the
        # build's prefix for the sweep): its short form is the hostname, as in dockerd's and
        # buildah's RUN, and the service's ` ---> Running in ID`.
        docker_id = secrets.token_hex(32)
        base = tempfile.mkdtemp(prefix=cid + "-", dir=self.work_dir)
        stack.callback(shutil.rmtree, base, True)
        userdata = os.path.join(base, "userdata")
        bdir = os.path.join(base, "bundle")
        os.mkdir(userdata, 0o700)
        os.mkdir(bdir, 0o700)
        mounts = []
        for m in mounts_raw:
            spec = self._mount_spec(m, stack, base)
            if spec is None:      # a secret or ssh mount that is not required and not given
                continue
            if _mount_fields(m).get("type") == "ssh":
                env = {**env, "SSH_AUTH_SOCK": spec.destination}
            mounts.append(spec)
        if script:
            sp = os.path.join(base, "script")
            with open(sp, "w") as f:
                f.write(script)
            os.chmod(sp, 0o755)
            mounts.append(MountSpec(kind="bind", source=sp,
                                    destination="/dev/.rongqi-build-script", readonly=True))
        cfg = {k: v for k, v in state.cfg.items() if k not in ("Volumes", "Healthcheck",
                                                                  "Entrypoint", "Cmd")}
        opts = ContainerOptions(image="", command=list(argv), entrypoint=[], env=dict(env),
                                network=network, mounts=mounts, log_driver="none",
                                hostname="" if network == "host" else docker_id[:12],
                                user=state.cfg.get("User") or "",
                                workdir=state.cfg.get("WorkingDir") or "")
        out = bundle.build(bundle.BundleInput(
            container_id=cid, name=cid, opts=opts, image_config={**state.config, "config": cfg},
            rootfs=snap.rootfs, userdata=userdata, volumes=self.engine.volumes,
            rootless=self.engine.rootless, engine=self.engine))
        for w in out.warnings:   # e.g. no slirp4netns for this user: once per build
            if w not in self._warned:
                self._warned.add(w)
                print(f"WARN[0000] {w}", file=sys.stderr)
        spec = out.spec
        spec["process"]["env"] = [e for e in spec["process"]["env"]
                                  if not e.startswith("container=")] + ["container=rongqi"]
        write_json_atomic(os.path.join(bdir, "config.json"), spec)
        stack.skip_dests.extend(m["destination"] for m in spec.get("mounts") or [])  # type: ignore[attr-defined]
        step = self._network_up(cid, base, bdir, stack)
        rt = self.engine.runtime
        from rongqi.engine.runtime import InProcessRuntime
        if not isinstance(rt, InProcessRuntime):
            from rongqi.engine.runtime import for_path
            rt = for_path("rongqi", self.engine._runtime_root)  # noqa: SLF001
        outfd = self.progress.run_output()
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        stack.callback(os.close, null)
        relay: threading.Thread | None = None
        if outfd < 0:
            r, outfd = os.pipe2(os.O_CLOEXEC)
            out = self.progress.out

            def copy() -> None:
                with os.fdopen(r, "rb", buffering=0) as f:
                    while chunk := f.read(65536):
                        out.write(chunk)
            relay = threading.Thread(target=copy, daemon=True)
            relay.start()
        from rongqi.engine import networks
        pid_file = os.path.join(base, "pid")
        created = False
        code: int | None = None
        try:
            with self._create_lock:   # create swaps this process's fds 0-2 for the while
                # slirp4netns/pasta: the namespaces the runtime joins, held through create
                held = networks.before_create(self.engine, step) if step is not None else None
                try:
                    pid = rt.create(cid, bdir, pid_file=pid_file, stdio=(null, outfd, outfd))
                finally:
                    if held is not None:
                        held.release()
                    if relay is not None:
                        os.close(outfd)   # the container has its own copy
            created = True
            self.progress.event("running", docker_id)
            if step is not None:
                # a bridge in the step's user namespace: plugged in now
                networks.process_started(self.engine, step, pid)
            rt.start(cid)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except RongqiError as e:
            raise BuildError(f'building at STEP "{self.step_text}": while running runtime: '
                             f"{e}") from None
        finally:
            if created:
                with contextlib.suppress(RongqiError, OSError):
                    rt.delete(cid, force=True)
            if relay is not None:
                relay.join(timeout=10)
            # At once, not when the layer is written: the addresses and the netns go back now.
            down_err = self._network_down(step) if step is not None else None
        if down_err is not None and not code:
            raise BuildError(f'building at STEP "{self.step_text}": tearing down the network: '
                             f"{down_err}")
        if code:
            status = code if code > 0 else 128 - code
            self.progress.event("failed", str(status), json.dumps(argv))
            err = BuildError(f'building at STEP "{self.step_text}": while running runtime: '
                             f"exit status {status}")
            err.exit_code = status
            raise err
        self.progress.event("removed", docker_id)

    def _network_up(self, cid: str, base: str, bdir: str,
                    stack: contextlib.ExitStack) -> Container | None:
        """The step's network, when it has one of its own (bundle.build wrote its plan):
        the plan gets the build's lock as its owner, then a bridge is set up now (slirp4netns
        and a bridge inside a user namespace after the runtime's create). None: no network
        of its own (none, host). Torn down by _network_down, or by the stack if the step
        fails before its container runs."""
        from rongqi.engine import networks
        # Duck-typed: the network code reads only id, name, userdata and config.
        run_dir = os.path.join(self.engine.runroot, cid)   # where bundle.build points
        step = cast("Container", BuildStep(cid, cid, os.path.join(base, "userdata"), bdir,
                                           run_dir))
        att = networks.load(step)
        if att is None:
            return None
        stack.callback(shutil.rmtree, run_dir, True)
        # The network code's liveness test for a record-less step: this lock, held by the
        # build for its whole life (the pid is for people reading the records). The records'
        # root is the step's dir, with a containers/ID in it while the step runs: what an
        # older rongqi's sweep (no owners) takes for a live container's record.
        os.makedirs(os.path.join(base, "containers", cid), 0o700)
        att["owner"] = {"kind": "build", "pid": os.getpid(), "lock": self.lock_path,
                        "root": base}
        networks.save(step, att)
        stack.callback(self._network_down, step)
        if att.get("mode") == "bridge" and not att.get("late"):
            networks.setup(self.engine, step)
        return step

    def _network_down(self, step: Container) -> Exception | None:
        """Undo _network_up (idempotent: the stack's callback runs it again); the error, if
        netavark's teardown failed, for the caller to report."""
        from rongqi.engine import networks
        helper = networks.helper_pid(step)   # slirp4netns or pasta: our child, reaped here
        networks.process_ended(step, self.engine)
        if helper:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(helper, 0)
        try:
            networks.teardown(self.engine, step)
        except (RongqiError, OSError) as e:
            return e
        return None

    def _mount_spec(self, raw: str, stack: contextlib.ExitStack, base: str) -> Any:
        from rongqi.engine.options import MountSpec
        f = _mount_fields(raw)
        kind = f.get("type", "bind")
        if kind not in ("bind", "cache", "tmpfs", "secret", "ssh"):
            raise ContainerfileError(f"mount type {kind} is not supported here (bind, cache, "
                                     "tmpfs, secret, ssh)")
        # BuildKit's keys per type: a misspelt one is an error, not silently dropped.
        for part in raw.split(","):
            key = part.partition("=")[0].strip().lower()
            if key not in _MOUNT_KEYS["all"] | _MOUNT_KEYS[kind]:
                raise ContainerfileError(f"unexpected key '{key}' in '{part.strip()}'")
        if kind == "cache" and f.get("sharing", "shared") not in ("shared", "private", "locked"):
            raise ContainerfileError(f"unsupported sharing value \"{f['sharing']}\"")
        if kind in ("secret", "ssh"):
            return self._private_mount(kind, f, raw, base)
        target = f.get("target") or f.get("dst") or f.get("destination") or ""
        if not target:
            raise ContainerfileError(f"mount {raw}: a target is required")
        if not target.startswith("/"):
            raise ContainerfileError(f"mount {raw}: the target must be absolute")
        # ro/readonly/rw/readwrite: bare or true, false as BuildKit reads them
        asked_ro = _mount_bool(f, "ro", "readonly")
        ro = bool(asked_ro) or (kind == "bind" and not _mount_bool(f, "rw", "readwrite"))
        if kind == "cache":
            if f.get("from") or f.get("source"):
                # BuildKit seeds a new cache from there; not done here, so not accepted.
                raise ContainerfileError(f"mount {raw}: a cache mount's from= and source= "
                                         "are not supported")
            ident = f.get("id") or target
            d = os.path.join(self.mounts_dir, hashlib.sha256(ident.encode()).hexdigest()[:32])
            try:
                mode, uid, gid = (int(f.get("mode", "755"), 8), int(f.get("uid", "0")),
                                  int(f.get("gid", "0")))
            except ValueError:
                raise ContainerfileError(f"mount {raw}: uid, gid and mode must be numbers") \
                    from None
            if not os.path.isdir(d):
                os.makedirs(d, mode=mode, exist_ok=True)
                os.chown(d, uid, gid)
            return MountSpec(kind="bind", source=d, destination=target, readonly=bool(asked_ro))
        if kind == "tmpfs":
            opts = [f"size={f['size']}"] if f.get("size") else []
            return MountSpec(kind="tmpfs", destination=target, options=opts)
        if kind == "bind":
            src = f.get("source") or f.get("src") or "/"
            if f.get("from"):
                root = self._stage_root(f["from"], stack)
                host = _inside(root, src)
            else:
                assert self.ctx is not None
                host = _inside(self.ctx.root, src)
            if not os.path.exists(host):
                raise ContainerfileError(f"mount {raw}: {src}: no such file or directory")
            if not ro:
                # rw: writes go to a copy and are thrown away (docker's rule)
                cp = os.path.join(base, "rw-" + secrets.token_hex(4))
                if os.path.isdir(host):
                    shutil.copytree(host, cp, symlinks=True)
                else:
                    shutil.copy2(host, cp)
                host = cp
            return MountSpec(kind="bind", source=host, destination=target, readonly=ro)
        raise ContainerfileError(f"mount type {kind} is not supported here (bind, cache, tmpfs)")

    def _private_mount(self, kind: str, f: dict[str, str], raw: str, base: str) -> Any:
        """RUN --mount=type=secret (a file of --secret, read-only, 0400 by default, at
        /run/secrets/ID) or type=ssh (an agent socket of --ssh, SSH_AUTH_SOCK pointing at it).
        Neither is part of the step's cache key or its layer (the mount's target is skipped
        like every mount's), as BuildKit does; None: not given and not required."""
        from rongqi.engine.options import MountSpec
        required = f.get("required", "false" if "required" not in f else "true").lower() \
            in ("", "true", "1")
        target = f.get("target") or ""
        if kind == "secret":
            ident = f.get("id") or (posixpath.basename(target) if target else "")
            if not ident:
                raise ContainerfileError(f"mount {raw}: a secret needs an id")
            src = self.opts.secrets.get(ident)
        else:
            ident = f.get("id") or "default"
            src = getattr(self, "ssh_sockets", {}).get(ident)
        if src is None:
            if required:
                flag = "--secret id=ID,src=FILE" if kind == "secret" else "--ssh ID[=PATH]"
                raise ContainerfileError(f"mount {raw}: {kind} {ident!r} is required but was "
                                         f"not given (rongqi build {flag})")
            return None
        if kind == "ssh":
            # BuildKit's default targets: ssh_agent.0, .1, ... in the step's order
            counts: dict[str, int] = self.__dict__.setdefault("_ssh_mounts", {})
            n = counts.get(base, 0)
            counts[base] = n + 1
            return MountSpec(kind="bind", source=src,
                             destination=target or f"/run/buildkit/ssh_agent.{n}",
                             readonly=False)
        target = target or f"/run/secrets/{ident}"
        if not target.startswith("/"):
            raise ContainerfileError(f"mount {raw}: the target must be absolute")
        try:
            mode = int(f.get("mode", "0400"), 8)
            uid, gid = int(f.get("uid", "0")), int(f.get("gid", "0"))
        except ValueError:
            raise ContainerfileError(f"mount {raw}: uid, gid and mode must be numbers") from None
        # A private copy: the step sees the secret with the mode and owner asked for, and the
        # user's file is never bound (so never writable) into the container.
        copy = os.path.join(base, "secret-" + secrets.token_hex(4))
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
        os.chown(copy, uid, gid)
        os.chmod(copy, mode)
        return MountSpec(kind="bind", source=copy, destination=target, readonly=True)

    def _stage_root(self, ref: str, stack: contextlib.ExitStack) -> str:
        """The root of a stage built earlier, or of an image, mounted for the step."""
        st = self._source_state(ref)
        self._unpack(st)
        storage = self.engine.storage
        snap_id = self._name()
        snap = storage.create_snapshot(snap_id, st.chain_ids)
        stack.callback(storage.remove_snapshot, snap_id)
        return snap.rootfs

    def _source_state(self, ref: str) -> ImageState:
        assert self.cf is not None
        ref = self._expand_meta(ref)
        st = self.cf.stage(ref)
        if st is not None:
            if st.index not in self.states:
                raise ContainerfileError(f"stage {ref} is not built yet (it comes later)")
            return self.states[st.index]
        from rongqi.engine import images
        img = images.resolve(self.engine, ref, self.opts.pull,
                             images.PullOptions(tls_verify=self.opts.tls_verify))
        manifest = self.engine.store.manifest(img.manifest_digest)
        return ImageState(img.config, list(manifest.get("layers") or []),
                          _hash("from", img.manifest_digest))

    # -- layers -----------------------------------------------------------------------------------
    def _layer_of(self, snap: Any, mount_dests: list[str]) -> dict[str, Any] | None:
        from rongqi.engine.changes import mount_stub_rule, tree_changes, upper_changes, \
            write_layer
        from rongqi.engine.treecopy import RootDir
        from rongqi.image import media
        storage = self.engine.storage
        lowers = [storage.layer_path(c) for c in reversed(snap.chain_ids)]
        skip = mount_stub_rule(mount_dests) if mount_dests else None
        if snap.mode == "copy":
            changes = tree_changes(snap.rootfs, lowers, skip=skip)
            tree_path = snap.rootfs
        else:
            changes = upper_changes(snap.upper, lowers, skip=skip,
                                    wh_files=snap.mode == "fuse-overlayfs")
            tree_path = snap.upper
        if not changes:
            return None
        store = self.engine.store
        fd, tmp = tempfile.mkstemp(prefix="build-layer-", dir=store.ingest_dir)
        try:
            with os.fdopen(fd, "wb") as f, RootDir.open(tree_path, "the step's changes") as tree:
                write_layer(changes, tree, f)
            with open(tmp, "rb") as f:
                blob = store.ingest_file(f)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        # Uncompressed: the blob's digest is its diff_id (podman's storage keeps layers so too).
        return {"mediaType": media.OCI_LAYER, "digest": blob.digest, "size": blob.size}

    def _add_layer(self, st: ImageState, layer: dict[str, Any] | None, created_by: str) -> None:
        if layer is None:
            self._history(st, created_by, True)
            return
        st.layers.append(layer)
        st.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        st.config["rootfs"].setdefault("diff_ids", []).append(layer["digest"])
        self._history(st, created_by, False)
        self._unpack(st)

    # -- COPY / ADD -------------------------------------------------------------------------------
    def _copy_step(self, stage: Stage, state: ImageState, ins: Instruction,
                   args: dict[str, str | None]) -> ImageState:
        env = self._scope_env(state, args)
        words = cfmod.plain_words(ins, env, self.lexer)
        if len(words) < 2:
            raise ContainerfileError(f"{ins.cmd} requires at least two arguments, but only "
                                     f"{len(words)} provided")
        *sources, dest = words
        src_from = ins.flag("from")
        if ins.cmd == "ADD" and src_from is not None:
            raise ContainerfileError("ADD does not support the --from flag")
        chown = ins.flag("chown")
        chown = self.lexer.expand(chown, env) if chown else ""
        chmod = ins.flag("chmod")
        mode = None
        if chmod:
            if not re.fullmatch(r"[0-7]{1,4}", chmod):
                raise ContainerfileError(f"invalid chmod parameter {chmod}: expected an "
                                         "octal mode")
            mode = int(chmod, 8)
        heredocs = {h.name: h for h in ins.heredocs}
        workdir = state.cfg.get("WorkingDir") or "/"
        dest_is_dir = dest.endswith("/") or len(sources) > 1 or dest in (".", "./")
        dest_abs = posixpath.normpath(posixpath.join(workdir, dest))
        # What the step depends on: the sources' content and metadata.
        parts = [json.dumps(sources), dest_abs, chown, chmod or "", str(dest_is_dir)]
        src_state: ImageState | None = None
        if src_from is not None:
            src_state = self._source_state(src_from)
            parts.append(src_state.key)
        urls = [s for s in sources if re.match(r"^https?://", s)] if ins.cmd == "ADD" else []
        checksum = ins.flag("checksum")
        if checksum is not None:
            if not urls or len(sources) != 1:
                raise ContainerfileError("checksum can't be specified for non-HTTP(S) sources")
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", checksum):
                raise ContainerfileError(f"invalid checksum digest format {checksum!r}")
            self._local.checksum = checksum
        else:
            self._local.checksum = ""
        if urls:
            parts.append(self._url_digests(urls))
        if src_from is None:
            plain = [s for s in sources if s not in urls and _heredoc_word(s) not in heredocs]
            parts.append(self._context_digest(plain))
        for h in ins.heredocs:
            parts.append(f"{h.name}:{h.expand}:{h.content}")
        parts.append(json.dumps(sorted(env.items())))
        key = _hash(state.key, ins.cmd, *parts)
        hit = self._cached(key)
        if hit is not None:
            return self._hit(hit)
        new = state.copy()
        new.key = key

        def act(snap: Any, stack: contextlib.ExitStack) -> None:
            self._copy_into(snap.rootfs, ins, sources, dest_abs, dest_is_dir, chown, mode,
                            heredocs, env, src_state, stack, urls)
        layer = self._in_container(state, act)
        created_by = f"/bin/sh -c #(nop) {ins.cmd} " + \
            (f"--from={src_from} " if src_from else "") + \
            f"{'multi:' if len(sources) > 1 else 'file:'}{key[:16]} in {dest_abs} "
        self._add_layer(new, layer, created_by)
        self._save_cache(new)
        return new

    def _context_digest(self, sources: list[str]) -> str:
        """A digest of the named context paths: names, types, modes, owners, link targets,
        file contents (not times: docker's cache ignores mtimes too)."""
        assert self.ctx is not None
        h = hashlib.sha256()
        for src in sources:
            h.update(b"\0src:" + src.encode())
            for rel, full, st in self._context_matches(src):
                for sub, st2 in _walk_tree(full, rel, st, self.ctx.ignore):
                    h.update(f"\0{sub}\0{stat.S_IFMT(st2.st_mode)}\0{stat.S_IMODE(st2.st_mode)}"
                             f"\0{st2.st_uid}:{st2.st_gid}".encode())
                    fp = os.path.join(self.ctx.root, sub)
                    if stat.S_ISLNK(st2.st_mode):
                        h.update(os.readlink(fp).encode())
                    elif stat.S_ISREG(st2.st_mode):
                        with open(fp, "rb") as f:
                            while chunk := f.read(1 << 20):
                                h.update(chunk)
        return h.hexdigest()

    def _context_matches(self, src: str) -> list[tuple[str, str, os.stat_result]]:
        """Context entries a COPY source names: (path relative to the context, host path,
        stat following a top-level symlink inside the context)."""
        assert self.ctx is not None
        root = self.ctx.root
        norm = posixpath.normpath("/" + src).lstrip("/") if not src.startswith("/") \
            else posixpath.normpath(src).lstrip("/")
        raw = posixpath.normpath(src)
        if raw == ".." or raw.startswith("../"):
            raise BuildError(f'building at STEP "{self.step_text}": forbidden path outside the '
                             f"build context: {src}")
        if _GLOB.search(norm):
            out = []
            for rel in _glob(root, norm):
                if self.ctx.ignore.excluded(rel):
                    continue
                out.append((rel, *self._resolve_in_context(rel, src)))
            if not out:
                raise BuildError(f'building at STEP "{self.step_text}": no source files were '
                                 f"specified (no match for {src} in the build context)")
            return out
        rel = norm or "."
        if rel != "." and self.ctx.ignore.excluded(rel):
            raise BuildError(f'building at STEP "{self.step_text}": file not found in build '
                             f"context or excluded by .dockerignore: {src}")
        return [(rel, *self._resolve_in_context(rel, src))]

    def _resolve_in_context(self, rel: str, shown: str) -> tuple[str, os.stat_result]:
        assert self.ctx is not None
        root = os.path.realpath(self.ctx.root)
        path = os.path.join(root, rel) if rel != "." else root
        real = os.path.realpath(path)
        if real != root and not real.startswith(root + os.sep):
            raise BuildError(f'building at STEP "{self.step_text}": {shown}: a symlink that '
                             "leads outside the build context")
        try:
            return real, os.stat(real)
        except FileNotFoundError:
            raise BuildError(f'building at STEP "{self.step_text}": file not found in build '
                             f"context or excluded by .dockerignore: {shown}") from None

    def _url_digests(self, urls: list[str]) -> str:
        h = hashlib.sha256()
        for u in urls:
            data, _ = _fetch(u)
            h.update(u.encode() + b"\0" + hashlib.sha256(data).digest())
        return h.hexdigest()

    def _copy_into(self, rootfs: str, ins: Instruction, sources: list[str], dest: str,
                   dest_is_dir: bool, chown: str, mode: int | None,
                   heredocs: dict[str, Any], env: dict[str, str],
                   src_state: ImageState | None, stack: contextlib.ExitStack,
                   urls: list[str]) -> None:
        from rongqi.engine.bundle import resolve_user
        from rongqi.engine.treecopy import RootDir, TreeReader, TreeWriter
        owner: tuple[int, int] | None = (0, 0)
        if chown:
            u = resolve_user(rootfs, chown, [])
            owner = (u.uid, u.gid)
        elif src_state is not None:
            owner = None     # --from keeps the owners it finds
        root = stack.enter_context(RootDir.open(rootfs, "the image"))
        existing = root.lstat(root.resolve(dest))
        into_dir = dest_is_dir or (existing is not None and stat.S_ISDIR(existing.st_mode))
        if dest_is_dir and existing is not None and not stat.S_ISDIR(existing.st_mode):
            raise ContainerfileError(f"destination {dest} is not a directory")

        def writer(base: str) -> Any:
            return TreeWriter(root, base, owner=owner, overwrite=True, xattrs=True)

        def put(entries: Iterator[tuple[tarfile.TarInfo, Any]], base: str) -> None:
            w = writer(base)
            try:
                for ti, opener in entries:
                    if mode is not None and not ti.issym():
                        ti.mode = mode
                    w.add(ti, opener)
            finally:
                w.close()

        if into_dir:
            writer(dest)._mkdirs(dest)   # the destination directory itself, made like docker
        for src in sources:
            hd = heredocs.get(_heredoc_word(src))
            if hd is not None:
                content = self.lexer.expand(hd.content, env, strip_quotes=False) \
                    if hd.expand and ins.cmd in ("COPY", "ADD") else hd.content
                data = content.encode()
                ti = tarfile.TarInfo(hd.name if into_dir else posixpath.basename(dest))
                ti.size, ti.mode, ti.mtime = len(data), 0o644, int(time.time())
                import io
                put(iter([(ti, lambda d=data: io.BytesIO(d))]),
                    dest if into_dir else posixpath.dirname(dest))
                continue
            if src in urls:
                data, mtime = _fetch(src)
                if self._local.checksum and "sha256:" + hashlib.sha256(data).hexdigest() != \
                        self._local.checksum:
                    raise ContainerfileError(
                        f"digest mismatch {self._local.checksum}: "
                        f"sha256:{hashlib.sha256(data).hexdigest()}")
                name = posixpath.basename(src.split("?", 1)[0].rstrip("/")) or "index.html"
                ti = tarfile.TarInfo(name if into_dir else posixpath.basename(dest))
                ti.size, ti.mode, ti.mtime = len(data), 0o600, mtime
                import io
                put(iter([(ti, lambda d=data: io.BytesIO(d))]),
                    dest if into_dir else posixpath.dirname(dest))
                continue
            if src_state is not None:
                sroot = self._stage_root(src_from_text(ins), stack)
                matches = _glob(sroot, posixpath.normpath("/" + src).lstrip("/")) \
                    if _GLOB.search(src) else [posixpath.normpath("/" + src).lstrip("/") or "."]
                if not matches:
                    raise BuildError(f'building at STEP "{self.step_text}": no match for {src}')
                sdir = stack.enter_context(RootDir.open(sroot, "the source stage"))
                for rel in matches:
                    inner = sdir.resolve("/" + rel)
                    st = sdir.lstat(inner)
                    if st is None:
                        raise BuildError(f'building at STEP "{self.step_text}": checking on '
                                         f"sources: {src}: no such file or directory")
                    reader = TreeReader(sdir, xattrs=True)
                    self._put_one(reader, inner, st, dest, into_dir, put)
                continue
            assert self.ctx is not None
            croot = stack.enter_context(RootDir.open(self.ctx.root, "the build context"))
            ignore = self.ctx.ignore
            real_root = os.path.realpath(self.ctx.root)
            for rel, real, st in self._context_matches(src):
                inner = "/" + os.path.relpath(real, real_root) if real != real_root else "/"

                def skip(path: str, est: os.stat_result) -> bool:
                    rel = path.lstrip("/")
                    # An excluded directory with `!` exceptions below is walked (docker's
                    # `ignored` + `!ignored/sub/file` keeps that file and its parents).
                    return ignore.excluded(rel) and not (
                        stat.S_ISDIR(est.st_mode) and ignore.may_include_below(rel))
                reader = TreeReader(croot, xattrs=False, skip=skip)
                if ins.cmd == "ADD" and stat.S_ISREG(st.st_mode) and _is_archive(real):
                    from rongqi.engine.treecopy import tar_entries
                    with open(real, "rb") as f:
                        # a local archive is unpacked into the destination directory
                        w = TreeWriter(root, dest, owner=None, overwrite=True, xattrs=True)
                        try:
                            for ti, opener in tar_entries(f):
                                w.add(ti, opener)
                        finally:
                            w.close()
                    continue
                self._put_one(reader, inner, st, dest, into_dir, put)

    def _put_one(self, reader: Any, inner: str, st: os.stat_result, dest: str, into_dir: bool,
                 put: Callable[..., None]) -> None:
        if stat.S_ISDIR(st.st_mode):
            # A directory's contents, not the directory itself (docker's rule).
            put(reader.entries(inner, ""), dest)
            return
        name = posixpath.basename(inner)
        if into_dir:
            put(reader.entry(inner, name), dest)
        else:
            put(reader.entry(inner, posixpath.basename(dest)), posixpath.dirname(dest))

    # -- the result -------------------------------------------------------------------------------
    def _commit(self, state: ImageState) -> str:
        from rongqi.engine.files import commit_name
        from rongqi.image import media
        store = self.engine.store
        cfg = state.final_config(self.opts.labels)
        docker = self.opts.fmt == "docker"
        layers = [{**x, "mediaType": _layer_type(x.get("mediaType", ""), docker)}
                  for x in state.layers]
        cdesc = store.put_json(cfg, media.DOCKER_CONFIG if docker else media.OCI_CONFIG)
        manifest = {"schemaVersion": 2,
                    "mediaType": media.DOCKER_MANIFEST if docker else media.OCI_MANIFEST,
                    "config": {"mediaType": cdesc.media_type, "digest": cdesc.digest,
                               "size": cdesc.size},
                    "layers": layers}
        mdesc = store.put_json(manifest, manifest["mediaType"])
        self.engine.storage.unpack_image(store, mdesc.digest)
        image_id = cdesc.digest.partition(":")[2]
        names = [commit_name(t) for t in self.opts.tags]
        self.progress.line(f"{self.final_prefix}COMMIT "
                           f"{self.opts.tags[0] if self.opts.tags else ''}".rstrip())
        self.progress.line(f"--> {image_id[:11]}")
        self.progress.event("image", image_id)
        if names:
            for n in names:
                store.set_name(n, mdesc)
                self.progress.line(f"Successfully tagged {n}")
        else:
            store.keep(mdesc)
        with contextlib.suppress(Exception):
            from rongqi.engine import events
            for n in names or [""]:
                events.emit(self.engine.root, "image", "build", id=image_id, name=n)
        return image_id


# -- helpers ------------------------------------------------------------------------------------
def _hash(*parts: str) -> str:
    h = hashlib.sha256(CACHE_VERSION.encode())
    for p in parts:
        h.update(b"\0" + (p or "").encode())
    return h.hexdigest()


def _layer_type(media_type: str, docker: bool) -> str:
    from rongqi.image import media
    if not docker:
        return media_type or media.OCI_LAYER
    kind = media.compression_of(media_type)
    return {"": "application/vnd.docker.image.rootfs.diff.tar",
            "gzip": media.DOCKER_LAYER_GZIP}.get(kind, media_type)


def _heredoc_word(src: str) -> str:
    m = re.fullmatch(r"<<-?['\"]?(\w+)['\"]?", src)
    return m.group(1) if m else "\0"


def src_from_text(ins: Instruction) -> str:
    return ins.flag("from") or ""


def ssh_socket(paths: list[str], work_dir: str, stack: contextlib.ExitStack) -> str:
    """The agent socket for one --ssh id: the socket given, or an ssh-agent of the build's own
    (stopped with it) holding the private keys given, as buildah serves keys."""
    import subprocess
    if len(paths) == 1 and stat.S_ISSOCK(_mode(paths[0])):
        return paths[0]
    for p in paths:
        if not os.path.isfile(p):
            raise BuildError(f"--ssh: {p}: neither an agent socket nor a key file")
    agent = shutil.which("ssh-agent")
    add = shutil.which("ssh-add")
    if agent is None or add is None:
        raise BuildError("--ssh with key files needs ssh-agent and ssh-add (Debian's "
                         "openssh-client); or give an agent's socket (--ssh default uses "
                         "$SSH_AUTH_SOCK)")
    d = tempfile.mkdtemp(prefix="build-ssh-", dir=work_dir)
    stack.callback(shutil.rmtree, d, True)
    sock = os.path.join(d, "agent.sock")
    proc = subprocess.Popen([agent, "-D", "-a", sock], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    stack.callback(stop)
    deadline = time.monotonic() + 5
    while not os.path.exists(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BuildError("--ssh: ssh-agent did not start: "
                             + (proc.stderr.read().decode(errors="replace").strip()
                                if proc.poll() is not None and proc.stderr else "no socket"))
        time.sleep(0.01)
    r = subprocess.run([add, *paths], env={**os.environ, "SSH_AUTH_SOCK": sock},
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise BuildError(f"--ssh: ssh-add {' '.join(paths)}: "
                         f"{(r.stderr or r.stdout).strip().splitlines()[-1:] or ['failed']}")
    return sock


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


# RUN --mount's keys (BuildKit's); `sharing` is accepted: steps of one build run one at a time
# per stage, and shared is what every cache mount here is.
_MOUNT_KEYS: dict[str, frozenset[str]] = {
    "all": frozenset({"type", "target", "dst", "destination", "ro", "readonly"}),
    "bind": frozenset({"source", "src", "from", "rw", "readwrite"}),
    "cache": frozenset({"id", "sharing", "from", "source", "src", "mode", "uid", "gid"}),
    "tmpfs": frozenset({"size"}),
    "secret": frozenset({"id", "required", "mode", "uid", "gid", "env"}),
    "ssh": frozenset({"id", "required", "mode", "uid", "gid"}),
}


def _mount_bool(f: dict[str, str], *keys: str) -> bool | None:
    """A boolean mount option (bare `ro`, `ro=true`, `ro=false`); None when absent."""
    for k in keys:
        if k in f:
            v = f[k].lower()
            if v not in ("", "true", "1", "false", "0"):
                raise ContainerfileError(f"invalid value for {k}: {f[k]}")
            return v in ("", "true", "1")
    return None


def _mount_fields(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in raw.split(","):
        k, eq, v = part.partition("=")
        out[k.strip().lower()] = v.strip() if eq else ""
    if "src" in out and "source" not in out:
        out["source"] = out["src"]
    if "dst" in out and "target" not in out:
        out["target"] = out["dst"]
    if "destination" in out and "target" not in out:
        out["target"] = out["destination"]
    return out


def _inside(root: str, path: str) -> str:
    """path (as the Containerfile names it) inside root, never above it."""
    rel = posixpath.normpath("/" + path).lstrip("/")
    full = os.path.join(root, rel)
    real = os.path.realpath(full)
    rroot = os.path.realpath(root)
    if real != rroot and not real.startswith(rroot + os.sep):
        raise ContainerfileError(f"{path}: leads outside its root")
    return real


def _glob(root: str, pattern: str) -> list[str]:
    """filepath.Match per path component (`*` never crosses a `/`), relative paths sorted."""
    parts = pattern.split("/")
    found = [""]
    real_root = os.path.realpath(root)
    for part in parts:
        nxt = []
        for base in found:
            d = os.path.join(root, base) if base else root
            real = os.path.realpath(d)
            if real != real_root and not real.startswith(real_root + os.sep):
                continue   # a symlink out of the tree: its names are not the tree's
            if not _GLOB.search(part):
                cand = posixpath.join(base, part) if base else part
                if os.path.lexists(os.path.join(root, cand)):
                    nxt.append(cand)
                continue
            try:
                names = sorted(os.listdir(d))
            except (NotADirectoryError, FileNotFoundError):
                continue
            for n in names:
                if fnmatch.fnmatchcase(n, part):
                    nxt.append(posixpath.join(base, n) if base else n)
        found = nxt
    return found


def _walk_tree(full: str, rel: str, st: os.stat_result,
               ignore: Ignore) -> Iterator[tuple[str, os.stat_result]]:
    yield rel, st
    if not stat.S_ISDIR(st.st_mode):
        return
    for dirpath, dirs, files in os.walk(full):
        dirs.sort()
        sub_rel = os.path.relpath(dirpath, full)
        for name in sorted(dirs + files):
            r = posixpath.normpath(posixpath.join(rel, sub_rel, name))
            if ignore.excluded(r):
                continue
            yield r, os.lstat(os.path.join(dirpath, name))


def _is_archive(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    return _looks_like_tar(head) or (len(head) >= 262 and head[257:262] == b"ustar")


def _fetch(url: str) -> tuple[bytes, int]:
    """ADD URL: the body and its Last-Modified time (now when absent)."""
    import email.utils

    import httpx
    try:
        r = httpx.get(url, follow_redirects=True, timeout=60)
    except httpx.HTTPError as e:
        raise EngineError(f"reading {url}: {e}") from None
    if r.status_code >= 400:
        raise EngineError(f"reading {url}: invalid response status {r.status_code}")
    mtime = int(time.time())
    lm = r.headers.get("last-modified")
    if lm:
        with contextlib.suppress(TypeError, ValueError):
            mtime = int(email.utils.parsedate_to_datetime(lm).timestamp())
    return r.content, mtime


def _healthcheck(ins: Instruction, shell: list[str]) -> dict[str, Any]:
    rest = ins.rest
    word, _, tail = rest.partition(" ")
    if word.upper() == "NONE":
        if tail.strip() or ins.flags:
            raise ContainerfileError("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if word.upper() != "CMD":
        raise ContainerfileError(f"Unknown type \"{word.upper()}\" in HEALTHCHECK (try CMD)")
    tail = tail.strip()
    if not tail:
        raise ContainerfileError("Missing command after HEALTHCHECK CMD")
    test: list[str]
    try:
        value = json.loads(tail) if tail.startswith("[") else None
    except ValueError:
        value = None
    if isinstance(value, list):
        test = ["CMD", *value]
    else:
        test = ["CMD-SHELL", tail]
    hc: dict[str, Any] = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        v = ins.flag(flag)
        if v:
            hc[key] = cfmod.duration_ns(v, flag)
    r = ins.flag("retries")
    if r:
        if not r.isdigit():
            raise ContainerfileError(f"invalid retries: {r}")
        hc["Retries"] = int(r)
    return hc


def sweep(engine: Engine) -> None:
    """Remove what builds killed mid-step left (their lock is no longer held): runtime
    containers, snapshots and work dirs named build-<id>-..."""
    from rongqi.locking import Lock
    work = os.path.join(engine.runroot, "build")
    try:
        names = os.listdir(work)
    except FileNotFoundError:
        return
    dead = []
    for n in names:
        if not (n.startswith("build-") and n.endswith(".lock")):
            continue
        lock = Lock(os.path.join(work, n), blocking=False)
        if lock.acquire():
            try:
                dead.append(n[:-len(".lock")])
            finally:
                lock.release()
    if not dead:
        return
    from rongqi.engine.runtime import for_path
    rt = for_path("rongqi", engine._runtime_root)  # noqa: SLF001 - the build's own runtime
    with contextlib.suppress(OSError):
        for cid in os.listdir(rt.root):
            if any(cid.startswith(d + "-") for d in dead):
                with contextlib.suppress(RongqiError, OSError):
                    rt.delete(cid, force=True)
    # Their RUN steps' networks (netns, veths, firewall rules, leases): recorded host-wide
    # with this build's lock as the owner, which is free now; undone after the containers
    # above are gone. Any network setup's sweep would find them too.
    from rongqi.engine import networks
    if not engine.rootless and os.path.isdir(os.path.join(networks.rundir(), "active")):
        with networks.host_lock():
            networks.sweep_orphans()
    for snap in engine.storage.snapshots():
        if any(snap.id.startswith(d + "-") for d in dead):
            with contextlib.suppress(RongqiError, OSError):
                engine.storage.remove_snapshot(snap.id)
    for n in names:
        if any(n.startswith(d) for d in dead):
            p = os.path.join(work, n)
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            elif n.endswith(".lock"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
    # A rootless step's namespace links (RUN/STEP-ID, where bundle.build points them).
    with contextlib.suppress(OSError):
        for n in os.listdir(engine.runroot):
            if n.startswith("build-") and any(n.startswith(d + "-") for d in dead):
                shutil.rmtree(os.path.join(engine.runroot, n), ignore_errors=True)


def build_network(engine: Engine, value: str) -> str:
    """`rongqi build --network` as podman's (buildah's) build takes it -> the RUN steps'
    `--network` for bundle.build: "" (also private, default, bridge) the default network
    as root, slirp4netns for an ordinary user (buildah's default); none; host;
    slirp4netns[:OPTS]; pasta[:OPTS]; NAME[,NAME] (checked now, before any step runs)."""
    v = (value or "").strip()
    if v in ("", "private", "default", "bridge"):
        return ""
    if v in ("none", "host"):
        return v
    if v.split(":", 1)[0] in ("slirp4netns", "pasta"):
        return v   # with its options, checked by bundle.build as for run
    if v.startswith(("container:", "ns:")):
        raise EngineError(f'invalid value for --network: "{v}": a build\'s RUN steps take '
                          "none, host, private (the default), bridge, slirp4netns, pasta or "
                          "network names")
    from rongqi.engine import networks
    names = [n for n in (v[7:] if v.startswith("bridge:") else v).split(",") if n]
    if not names:
        raise EngineError(f'invalid value for --network: "{v}"')
    if engine.rootless:
        raise networks.NetworkError("bridge networks need root (netavark sets them up on "
                                    "the host); an ordinary user's build uses slirp4netns")
    store = networks.NetworkStore(engine.root)
    return ",".join(store.get(n)["name"] for n in names)


def build(engine: Engine, opts: BuildOptions, out: IO[bytes]) -> str:
    """Build and store the image; returns its id (the config digest's hex)."""
    if opts.pull not in ("missing", "always", "never", "newer"):
        raise EngineError(f'invalid pull policy "{opts.pull}"')
    return Builder(engine, opts, out).run()


def prune_cache(engine: Engine) -> tuple[list[str], int]:
    """Remove the build cache: every step's cached result (ROOT/build/cache) and the
    persistent RUN --mount=type=cache directories (ROOT/build/mounts), then the blobs and
    unpacked layers only the cache held. It waits for running builds (they hold the store's
    GC lock shared for their whole life). Returns the cache keys removed and the bytes freed."""
    from rongqi.engine.usage import collect_garbage
    from rongqi.storage.overlay import du
    root = os.path.join(engine.root, "build")
    cache, mounts = os.path.join(root, "cache"), os.path.join(root, "mounts")
    before = engine.store.disk_usage() + (du(mounts) if os.path.isdir(mounts) else 0)
    removed: list[str] = []
    with engine.store.gc_lock(shared=False):
        with contextlib.suppress(FileNotFoundError):
            for name in sorted(os.listdir(cache)):
                if name.endswith(".json"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(cache, name))
                        removed.append(name[:-len(".json")])
        with contextlib.suppress(FileNotFoundError):
            for name in sorted(os.listdir(mounts)):
                shutil.rmtree(os.path.join(mounts, name), ignore_errors=True)
                removed.append("mount:" + name)
    collect_garbage(engine)
    after = engine.store.disk_usage() + (du(mounts) if os.path.isdir(mounts) else 0)
    return removed, max(0, before - after)
