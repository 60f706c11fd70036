"""The Docker API's POST /build (a tar context in the body, the JSON stream of the build's
output) and POST /build/prune, over engine/build.py run by `rongqi build` in a child process.

Each build is a fresh `rongqi build` whose podman-style lines are turned into Docker's here: a
child process can be interrupted (SIGINT, its step undone as on ^C) when the client goes away,
which a thread cannot, and a build's RUN containers, forks and memory stay out of the service.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import posixpath
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from rongqi.engine.imageinfo import familiar
from rongqi.errors import RongqiError
from rongqi.serve.app import HTTPError, Request, Response, json_response, route

if TYPE_CHECKING:
    from rongqi.engine import Engine

_STEP = re.compile(r"^(\[\d+/\d+\] )?STEP (\d+)/(\d+): (.*)$")
_ID_LINE = re.compile(r"^[0-9a-f]{64}$")
_POLICIES = ("missing", "always", "never", "newer")


def _json_param(req: Request, name: str) -> dict[str, str]:
    """buildargs / labels: a JSON object of strings in the query (null values: no value)."""
    raw = req.arg(name) or ""
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise HTTPError(400, f"invalid {name} JSON: {e}") from None
    if not isinstance(doc, dict):
        raise HTTPError(400, f"invalid {name}: expected a JSON object")
    return {str(k): "" if v is None else str(v) for k, v in doc.items()}


def _dockerfile(req: Request) -> str | None:
    """The Dockerfile's path inside the context; one that leaves it is refused (the docker
    CLI sends a Dockerfile from elsewhere inside the tar, under a name of its own)."""
    name = req.arg("dockerfile") or ""
    if not name:
        return None
    norm = posixpath.normpath(name)
    if name.startswith("/") or norm == ".." or norm.startswith("../"):
        raise HTTPError(400, f"the Dockerfile ({name}) must be within the build context")
    return norm


def _pull_policy(value: str | None) -> str:
    """Docker's pull=1 (always) and podman's policy names; absent or false: missing."""
    if value is None or value.strip().lower() in ("", "0", "false", "no"):
        return "missing"
    v = value.strip().lower()
    if v in _POLICIES:
        return v
    return "always"


def _auth_file(header: str | None, workdir: str) -> str | None:
    """X-Registry-Config (base64 JSON {registry: AuthConfig}) as an auth.json for the FROM
    pulls of the child, in the build's private dir; None when no credentials came."""
    if not header:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, TypeError):
        return None
    if not isinstance(doc, dict):
        return None
    from rongqi.image.reference import registry_host
    auths = {}
    for server, cfg in doc.items():
        if not isinstance(cfg, dict):
            continue
        entry: dict[str, str] = {}
        if cfg.get("username"):
            pair = f"{cfg['username']}:{cfg.get('password') or ''}".encode()
            entry["auth"] = base64.b64encode(pair).decode()
        # a login's identity token (an OAuth2 refresh token) and a registry token, as the
        # credential files keep them (image/auth.py CredentialStore.tokens reads them)
        for key in ("identitytoken", "registrytoken"):
            if cfg.get(key):
                entry[key] = str(cfg[key])
        if entry:
            auths[registry_host(str(server))] = entry
    if not auths:
        return None
    path = os.path.join(workdir, "auth.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"auths": auths}, f)
    return path


def _argv(engine: Engine, req: Request, context: str, tags: list[str]) -> list[str]:
    """`rongqi build` with this service's engine settings and the request's options."""
    argv = [sys.executable, "-m", "rongqi.cli.main", "--root", engine.root,
            "--runroot", engine.runroot, "--storage-mode", engine.storage_mode]
    runtime = getattr(engine, "_runtime_arg", None)
    if isinstance(runtime, str) and runtime not in ("", "rongqi"):
        argv += ["--runtime", runtime]
    if engine.registries_conf:
        argv += ["--registries-conf", engine.registries_conf]
    argv += ["build", "--format", "docker", "--pull", _pull_policy(req.arg("pull"))]
    dockerfile = _dockerfile(req)
    if dockerfile:
        argv += ["-f", dockerfile]
    for t in tags:
        argv += ["-t", t]
    for k, v in _json_param(req, "buildargs").items():
        argv += ["--build-arg", f"{k}={v}"]
    for k, v in _json_param(req, "labels").items():
        argv += ["--label", f"{k}={v}"]
    if req.arg("target"):
        argv += ["--target", req.arg("target") or ""]
    if req.flag("nocache"):
        argv.append("--no-cache")
    if req.arg("platform"):
        argv += ["--platform", req.arg("platform") or ""]
    network = req.arg("networkmode") or ""
    # Docker's "default" (and no networkmode) is its bridge: `rongqi build`'s own default, a
    # network namespace of the step's own on the default network (buildah's "private").
    if network and network != "default":
        argv += ["--network", network]
    argv.append(context)
    return argv


class StepPlan:
    """The classic builder's numbering: one count over the whole Dockerfile (the ARGs
    before the first FROM, then each stage's FROM and instructions, up to the target), which
    `rongqi build`'s `[S/T] STEP I/N` lines are mapped onto. A stage the build skips (no
    stage needs it) leaves its numbers out; the classic builder would have built it."""

    def __init__(self, meta_args: list[str], stage_steps: list[int]):
        self.meta_args = meta_args
        self.offsets = []
        n = len(meta_args)
        for steps in stage_steps:
            self.offsets.append(n)
            n += steps
        self.total = n
        self.started = False

    def step(self, stage: int, index: int) -> int | None:
        """The global number of step `index` (1-based) of stage `stage` (1-based)."""
        if not 1 <= stage <= len(self.offsets):
            return None
        return self.offsets[stage - 1] + index

    def prologue(self) -> list[str]:
        """The meta ARG steps, shown before the first stage's (once)."""
        if self.started:
            return []
        self.started = True
        return [f"Step {i}/{self.total} : {text}\n" for i, text in enumerate(self.meta_args, 1)]


def dockerfile_text(context: str, dockerfile: str | None) -> tuple[str, str] | None:
    """The context's Dockerfile: (its name, its text); None when it cannot be read here."""
    import tarfile

    names = [dockerfile] if dockerfile else ["Dockerfile", "Containerfile", "dockerfile",
                                             "containerfile"]
    try:
        with tarfile.open(context) as tar:
            members = {posixpath.normpath(m.name.lstrip("/")): m for m in tar.getmembers()
                       if m.isfile()}
            name = next((n for n in names if n in members), None)
            if name is None or members[name].size > 1 << 20:
                return None
            f = tar.extractfile(members[name])
            return name, f.read().decode("utf-8", "replace") if f is not None else ""
    except (OSError, tarfile.TarError):
        return None


def _check_instructions(found: tuple[str, str] | None) -> None:
    """dockerd's 400s, before the stream starts, for a Dockerfile with nothing to build
    (clients raise them as errors; a build would only say so inside its stream)."""
    if found is None:
        return
    name, text = found
    if not text.strip():
        raise HTTPError(400, f"the Dockerfile ({name}) cannot be empty")
    if all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise HTTPError(400, f"failed to parse {name}: file with no instructions")


def step_plan(context: str, dockerfile: str | None, target: str,
              found: tuple[str, str] | None = None) -> StepPlan | None:
    """The StepPlan of the context's Dockerfile (None when it cannot be read here: the build
    then says why, and the lines keep the build's own per-stage numbers)."""
    from rongqi.engine import containerfile
    found = found or dockerfile_text(context, dockerfile)
    if found is None:
        return None
    try:
        cf = containerfile.parse(found[1])
    except (RongqiError, ValueError):
        return None
    stages = list(cf.stages)
    if target:
        chosen = cf.stage(target)
        if chosen is None:
            return None
        stages = stages[:chosen.index + 1]
    return StepPlan([m.original.strip() for m in cf.meta_args],
                    [1 + len(st.instructions) for st in stages])


def _docker_line(line: str, tags_seen: list[str], plan: StepPlan | None = None,
                 events: bool = False) -> str | None:
    """One line of `rongqi build` as the classic builder's (None: not shown). With `events`
    the build's `--> ID` lines are left out: its `image` events give the whole ids."""
    m = _STEP.match(line)
    if m:
        if plan is not None:
            stage = int(m.group(1)[1:].split("/")[0]) if m.group(1) else 1
            n = plan.step(stage, int(m.group(2)))
            if n is not None:
                return "".join(plan.prologue()) + f"Step {n}/{plan.total} : {m.group(4)}\n"
        return f"{m.group(1) or ''}Step {m.group(2)}/{m.group(3)} : {m.group(4)}\n"
    if line.startswith("--> Using cache "):
        return " ---> Using cache\n"   # the id follows on a line of its own
    if line.startswith("--> "):
        return None if events else f" ---> {line[4:].split(' ', 1)[0][:12]}\n"
    if line.startswith("COMMIT") or _ID_LINE.match(line):
        return None
    if line.startswith("Successfully tagged "):
        tags_seen.append(line[len("Successfully tagged "):])
        return None
    return line + "\n"


def plain_context(raw: str, dest: str) -> None:
    """The body (a tar, or one compressed with gzip, bzip2, xz or zstd, as dockerd takes it;
    or a bare Dockerfile) as a plain tar at `dest`, ended by the two zero blocks a tar ends
    with: the docker CLI's context with a Dockerfile from outside it (-f ../x) ends its
    last member unpadded, which dockerd's reader forgives and Python's tarfile does not."""
    import bz2
    import gzip
    import lzma
    with open(raw, "rb") as f:
        head = f.read(6)
        f.seek(0)
        reader: IO[bytes]
        if head[:2] == b"\x1f\x8b":
            reader = gzip.GzipFile(fileobj=f)   # type: ignore[assignment]
        elif head[:3] == b"BZh":
            reader = bz2.BZ2File(f)
        elif head[:6] == b"\xfd7zXZ\x00":
            reader = lzma.LZMAFile(f)
        elif head[:4] == b"\x28\xb5\x2f\xfd":
            from rongqi.image.layer import decompressed
            reader = decompressed(f)
        else:
            reader = f
        n = 0
        with open(dest, "wb") as out:
            try:
                while chunk := reader.read(1 << 20):
                    out.write(chunk)
                    n += len(chunk)
            except (OSError, EOFError, lzma.LZMAError, ValueError) as e:
                raise HTTPError(400, f"the build context does not decompress: {e}") from None
            out.flush()
            with open(dest, "rb") as check:
                check.seek(257)
                is_tar = check.read(5) == b"ustar"
            if is_tar:
                out.write(b"\0" * (-n % 512) + b"\0" * 1024)


@route("POST", "/build")
def build(req: Request) -> Response:
    if req.arg("remote"):
        raise HTTPError(400, "remote build contexts (a git or tarball URL) are not supported: "
                             "send the context as a tar in the request body")
    engine = req.engine
    tags = []
    for t in req.query.get("t", []):
        if not t:
            continue
        from rongqi.image import reference
        try:
            # Docker's names: "app:1" is docker.io/library/app:1 (podman's build would
            # make it localhost/app:1)
            tags.append(str(reference.parse(t)))
        except RongqiError as e:
            raise HTTPError(400, f"invalid tag {t!r}: {e}") from None
    quiet = req.flag("q")
    os.makedirs(engine.runroot, exist_ok=True)
    work = tempfile.mkdtemp(prefix="serve-build-", dir=engine.runroot)
    try:
        raw = os.path.join(work, "context.raw")
        size = 0
        with open(raw, "wb") as f:
            while chunk := req.stream.read(1 << 20):
                f.write(chunk)
                size += len(chunk)
        if not size:
            raise HTTPError(400, "the build context is empty: send it as a tar in the body")
        context = os.path.join(work, "context.tar")
        plain_context(raw, context)
        os.unlink(raw)
        found = dockerfile_text(context, _dockerfile(req))
        _check_instructions(found)
        argv = _argv(engine, req, context, tags)
        plan = step_plan(context, _dockerfile(req), req.arg("target") or "", found)
        env = dict(os.environ)
        import rongqi
        src = os.path.dirname(os.path.dirname(os.path.abspath(rongqi.__file__)))
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                   else "")
        runtime_root = getattr(engine, "_runtime_root", None)
        if runtime_root:
            env["RONGQI_RUNTIME_ROOT"] = runtime_root
        from rongqi.engine.build import EVENTS_ENV
        token = secrets.token_hex(16)
        env[EVENTS_ENV] = token
        auth = _auth_file(req.headers.get("x-registry-config"), work)
        if auth:
            env["REGISTRY_AUTH_FILE"] = auth
        errlog = open(os.path.join(work, "stderr"), "w+b")
        try:
            proc = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=errlog,
                                    start_new_session=True)
        except OSError as e:
            errlog.close()
            raise HTTPError(500, f"cannot start the build: {e}") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    removal = _removal(req)
    return Response(200, _stream(proc, errlog, work, quiet, req.disconnected, plan,
                                 _Events(token, *removal)),
                    content_type="application/json")


def _removal(req: Request) -> tuple[bool, bool]:
    """(rm, forcerm) as dockerd reads them: rm is true unless given false."""
    rm = req.arg("rm")
    return (rm is None or rm.strip().lower() not in ("0", "false", "no"), req.flag("forcerm"))


class _Events:
    """The build's event lines (engine/build.py Progress.event) as the classic builder's
    lines: ` ---> ID` after FROM and each step, ` ---> Running in ID` and `Removing
    intermediate container ID` around a RUN step's container, and the failed command."""

    def __init__(self, token: str, rm: bool = True, forcerm: bool = False):
        self.mark = f"\x1e{token} "
        self.rm = rm
        self.forcerm = forcerm
        self.running = ""
        self.failed: tuple[int, list[str]] | None = None

    def split(self, line: str) -> tuple[str, str | None]:
        """(output before the event, the event) of one line; (line, None) without one. A RUN
        step's output that does not end its line comes before the event on the same line."""
        before, sep, ev = line.partition(self.mark)
        return (before, ev) if sep else (line, None)

    def text(self, ev: str) -> str | None:
        kind, _, value = ev.partition(" ")
        if kind in ("from", "image"):
            return f" ---> {value[:12]}\n"
        if kind == "running":
            self.running = value
            return f" ---> Running in {value[:12]}\n"
        if kind == "removed":
            return f"Removing intermediate container {value[:12]}\n" if self.rm else None
        if kind == "failed":
            code, _, argv = value.partition(" ")
            with contextlib.suppress(ValueError):
                self.failed = (int(code), [str(x) for x in json.loads(argv)])
        return None

    def failure(self) -> tuple[str, str | None] | None:
        """dockerd's message for a RUN step that exited non-zero, and the removal line that
        forcerm shows for its container; None when no step failed so."""
        if self.failed is None:
            return None
        code, argv = self.failed
        gone = f"Removing intermediate container {self.running[:12]}\n" \
            if self.forcerm and self.running else None
        return f"The command '{' '.join(argv)}' returned a non-zero code: {code}", gone


def _lines(f: IO[bytes], gone: Callable[[], bool]) -> Iterator[str]:
    """The child's output lines as they come; between them (a long RUN step says nothing
    for minutes) whether the client is still there: if not, the lines end early."""
    fd = f.fileno()
    buf = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            if gone():
                return
            continue
        data = os.read(fd, 65536)
        if not data:
            break
        buf += data
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            yield raw.decode("utf-8", "replace")
    if buf:
        yield buf.decode("utf-8", "replace")


def _stream(proc: subprocess.Popen[bytes], errlog: IO[bytes], work: str, quiet: bool,
            gone: Callable[[], bool], plan: StepPlan | None = None,
            events: _Events | None = None) -> Iterator[bytes]:
    def out(obj: dict[str, Any]) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    tags: list[str] = []
    image_id = ""
    try:
        assert proc.stdout is not None
        for line in _lines(proc.stdout, gone):
            ev = None
            if events is not None:
                line, ev = events.split(line)
                if ev is not None:
                    text = events.text(ev)
                    if line and not quiet:
                        yield out({"stream": line})   # output without its newline yet
                    if text is not None and not quiet:
                        yield out({"stream": text})
                    continue
            if _ID_LINE.match(line):
                image_id = line
            text = _docker_line(line, tags, plan, events is not None)
            if text is not None and not quiet:
                yield out({"stream": text})
        if proc.poll() is None and gone():
            return   # the client left: finally interrupts the build
        code = proc.wait()
        if code != 0 or not image_id:
            errlog.seek(0)
            lines = [x for x in errlog.read().decode("utf-8", "replace").splitlines()
                     if x.strip()]
            msg = (lines[-1] if lines else f"the build exited {code}").removeprefix("Error: ")
            failed = events.failure() if events is not None else None
            if failed is not None:
                msg, gone_line = failed
                if gone_line and not quiet:
                    yield out({"stream": gone_line})
            yield out({"errorDetail": {"code": code or 1, "message": msg}, "error": msg})
            return
        yield out({"aux": {"ID": f"sha256:{image_id}"}})
        if quiet:
            yield out({"stream": f"sha256:{image_id}\n"})
            return
        yield out({"stream": f"Successfully built {image_id[:12]}\n"})
        for t in tags:
            yield out({"stream": f"Successfully tagged {familiar(t)}\n"})
    finally:
        if proc.poll() is None:
            # The client went away: SIGINT lets the build undo its step (snapshot, runtime
            # container) as on ^C; what a killed one leaves, the next build's sweep removes.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        errlog.close()
        shutil.rmtree(work, ignore_errors=True)


@route("POST", "/build/prune")
def prune(req: Request) -> Response:
    """The build cache (engine/build.py prune_cache: cached steps, cache mounts, and the blobs
    only they held); filters (until, ...) and keep-storage are accepted, the whole cache goes."""
    from rongqi.engine.build import prune_cache
    deleted, freed = prune_cache(req.engine)
    return json_response({"CachesDeleted": deleted or None, "SpaceReclaimed": freed})
