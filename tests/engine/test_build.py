"""rongqi build with real Containerfiles, and the images it makes run: stages, layers with
whiteouts, owners and modes, USER/WORKDIR, ARG/ENV scoping, .dockerignore, the cache, a failing
RUN leaving nothing behind, heredocs, ADD of archives and URLs, RUN mounts, ONBUILD."""

from __future__ import annotations

import http.server
import io
import json
import os
import tarfile
import threading

import pytest

from rq import rq  # noqa: F401 - the fixture

pytestmark = pytest.mark.root


def _ctx(tmp_path, containerfile: str, files: dict[str, str] | None = None, name="ctx"):
    d = tmp_path / name
    d.mkdir()
    (d / "Containerfile").write_text(containerfile)
    for k, v in (files or {}).items():
        p = d / k
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(v)
    return d


def _build(rq, ctx, *flags, check=True):
    return rq("build", *flags, str(ctx), timeout=180, check=check)


def _config(rq, name):
    e = rq.engine()
    _, desc = e.store.resolve(name)
    return e.store.config(desc), e.store.manifest(desc)


def _layer_names(rq, manifest, i):
    e = rq.engine()
    with e.store.open_blob(manifest["layers"][i]["digest"]) as f:
        with tarfile.open(fileobj=f, mode="r|*") as tf:
            return [m.name for m in tf]


def test_multi_stage_copy_from_and_the_image_runs(rq, tmp_path):
    ctx = _ctx(tmp_path, """\
FROM busybox AS builder
RUN mkdir /out && echo built > /out/result && echo unused > /out/other
FROM busybox AS unused
RUN exit 3
FROM busybox
COPY --from=builder /out/result /app/result
CMD ["cat", "/app/result"]
""")
    r = _build(rq, ctx, "-t", "multi")
    assert "[1/3] STEP 1/2: FROM busybox AS builder" in r.stdout
    assert "exit 3" not in r.stdout          # a stage the target does not need is skipped
    assert "Successfully tagged localhost/multi:latest" in r.stdout
    image_id = r.stdout.strip().splitlines()[-1]
    assert len(image_id) == 64
    run = rq("run", "--rm", "multi", check=True)
    assert run.stdout == "built\n"
    cfg, manifest = _config(rq, "multi")
    assert cfg["config"]["Cmd"] == ["cat", "/app/result"]
    assert len(manifest["layers"]) == 2   # busybox's + the COPY
    assert _layer_names(rq, manifest, 1) == ["app", "app/result"]
    assert [h.get("empty_layer", False) for h in cfg["history"][-2:]] == [False, True]
    assert rq("run", "--rm", "multi", "ls", "/out").returncode != 0


def test_deletion_across_layers_is_a_whiteout(rq, tmp_path):
    ctx = _ctx(tmp_path, """\
FROM busybox
RUN mkdir -p /d/sub && echo 1 > /d/sub/f && echo 2 > /d/keep
RUN rm -r /d/sub && rm /bin/vi
""")
    _build(rq, ctx, "-t", "del")
    _, manifest = _config(rq, "del")
    names = _layer_names(rq, manifest, 2)
    assert "d/.wh.sub" in names and "bin/.wh.vi" in names
    out = rq("run", "--rm", "del", "sh", "-c", "ls /d; ls /bin/vi || echo gone", check=True)
    assert out.stdout == "keep\ngone\n"


def test_owners_modes_user_and_workdir(rq, tmp_path):
    ctx = _ctx(tmp_path, """\
FROM busybox
COPY plain.txt /plain
COPY --chown=1234:5678 --chmod=0751 tool /opt/tool
COPY dir /tree/
WORKDIR /srv
WORKDIR data
RUN pwd > /where && touch made-here
USER nobody
RUN id -un > /tmp/who
CMD ["sh", "-c", "id -un; pwd; cat /where /tmp/who; ls -ln /plain /opt/tool /tree/a/b"]
""", {"plain.txt": "p", "tool": "t", "dir/a/b": "b"})
    os.chmod(ctx / "plain.txt", 0o604)
    _build(rq, ctx, "-t", "perm")
    out = rq("run", "--rm", "perm", check=True).stdout.splitlines()
    assert out[:4] == ["nobody", "/srv/data", "/srv/data", "nobody"]
    tool, plain, b = out[4:7]   # (ls sorts its arguments)
    assert plain.startswith("-rw----r--") and " 0        0 " in plain
    assert tool.startswith("-rwxr-x--x") and " 1234     5678 " in tool
    assert b.startswith("-rw-r--r--")
    assert rq("run", "--rm", "perm", "ls", "/srv/data/made-here").returncode == 0
    cfg, _ = _config(rq, "perm")
    assert cfg["config"]["User"] == "nobody" and cfg["config"]["WorkingDir"] == "/srv/data"


def test_arg_and_env_scoping(rq, tmp_path):
    ctx = _ctx(tmp_path, """\
ARG BASE=busybox
ARG SHARED=meta
FROM $BASE AS one
ARG SHARED
ARG LOCAL=local-default
ENV FROM_ENV=env-$LOCAL
RUN echo "shared=$SHARED local=$LOCAL env=$FROM_ENV" > /one
FROM $BASE
COPY --from=one /one /one
RUN echo "local=${LOCAL:-unset} env=${FROM_ENV:-unset} shared=${SHARED:-unset}" > /two
ENV PATH_ADD=${LOCAL:-none}
CMD cat /one /two
""")
    r = _build(rq, ctx, "-t", "args", "--build-arg", "LOCAL=given", "--build-arg", "NOPE=x")
    assert "[Warning] one or more build-args [NOPE] were not consumed" in r.stdout
    out = rq("run", "--rm", "args", check=True).stdout
    assert out == "shared=meta local=given env=env-given\nlocal=unset env=unset shared=unset\n"
    cfg, _ = _config(rq, "args")
    env = cfg["config"]["Env"]
    assert "PATH_ADD=none" in env and not any(e.startswith("LOCAL=") for e in env)


def test_dockerignore(rq, tmp_path):
    ctx = _ctx(tmp_path, "FROM busybox\nCOPY . /ctx/\n",
               {"keep.txt": "k", "a.log": "l", "important.log": "i", "sub/deep/x.tmp": "t",
                "sub/y": "y", ".dockerignore": "*.log\n!important.log\n**/*.tmp\n"})
    _build(rq, ctx, "-t", "ign")
    out = rq("run", "--rm", "ign", "find", "/ctx", "-type", "f", check=True).stdout.split()
    assert sorted(out) == ["/ctx/.dockerignore", "/ctx/Containerfile", "/ctx/important.log",
                           "/ctx/keep.txt", "/ctx/sub/y"]


def test_cache_hit_then_miss_after_a_context_change(rq, tmp_path):
    ctx = _ctx(tmp_path, """\
FROM busybox
RUN echo first > /first
COPY data /data
RUN cat /data > /copy
""", {"data": "v1"})
    first = _build(rq, ctx, "-t", "c1")
    assert "Using cache" not in first.stdout
    second = _build(rq, ctx, "-t", "c1")
    assert second.stdout.count("--> Using cache") == 3
    # wholly from the cache: the same image, as buildah gives
    assert second.stdout.splitlines()[-1] == first.stdout.splitlines()[-1]
    (ctx / "data").write_text("v2")
    third = _build(rq, ctx, "-t", "c1")
    assert third.stdout.count("--> Using cache") == 1      # only the RUN before the COPY
    assert rq("run", "--rm", "c1", "cat", "/copy", check=True).stdout == "v2"
    fourth = _build(rq, ctx, "--no-cache", "-t", "c1")
    assert "Using cache" not in fourth.stdout


def _leftovers(rq):
    e = rq.engine()
    snaps = [s.id for s in e.storage.snapshots()]
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if rq.root in line]
    rt_root = e.runtime.root
    ctrs = [n for n in os.listdir(rt_root) if n.startswith("build-")] \
        if os.path.isdir(rt_root) else []
    return snaps, mounts, ctrs


def test_failing_run_reports_step_and_code_and_leaves_nothing(rq, tmp_path):
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo partial > /p\nRUN echo out; exit 7\n")
    rq("image", "inspect", "busybox", check=True)  # the built-in, made here: no pull
    before = rq("images", "-q").stdout
    r = _build(rq, ctx, "-t", "bad", check=False)
    assert r.returncode == 7
    assert r.stderr.strip().splitlines()[-1] == (
        'Error: building at STEP "RUN echo out; exit 7": while running runtime: exit status 7')
    assert "out\n" in r.stdout
    assert rq("images", "-q").stdout == before
    assert _leftovers(rq) == ([], [], [])


def test_heredocs(rq, tmp_path):
    ctx = _ctx(tmp_path, """\
FROM busybox
ARG NAME=world
RUN <<EOF
echo "hello $NAME" > /hello
echo second line >> /hello
EOF
RUN <<-'EOT' sh
	echo tabbed > /tabbed
	EOT
COPY <<EOF /etc/greeting
hi ${NAME}
EOF
COPY <<'EOF' /raw
keep ${NAME}
EOF
RUN <<EOF
#!/bin/sh -e
echo "from a script: $0" > /script
EOF
""")
    _build(rq, ctx, "-t", "here")
    out = rq("run", "--rm", "here", "cat", "/hello", "/tabbed", "/etc/greeting", "/raw",
             check=True).stdout
    assert out == "hello world\nsecond line\ntabbed\nhi world\nkeep ${NAME}\n"
    assert "from a script" in rq("run", "--rm", "here", "cat", "/script", check=True).stdout


def test_bad_input_is_one_line_with_file_and_line(rq, tmp_path):
    cases = {
        "FROM busybox\nFOO bar\n": "dockerfile parse error on line 2: unknown instruction: FOO",
        "FROM busybox\nRUN <<EOF\necho\n": "dockerfile parse error on line 2: unterminated heredoc",
        "FROM busybox\nCOPY ../x /x\n": "forbidden path outside the build context: ../x",
        "FROM busybox\nCOPY link /x\n": "link: a symlink that leads outside the build context",
        "FROM busybox\nCOPY missing /x\n": "file not found in build context",
    }
    for n, (text, msg) in enumerate(cases.items()):
        ctx = _ctx(tmp_path, text, name=f"c{n}")
        os.symlink("/etc/passwd", ctx / "link")
        r = _build(rq, ctx, check=False)
        assert r.returncode == 125, (text, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and msg in lines[0], lines
    ctx = _ctx(tmp_path, "FROM busybox AS a\nFROM a\n", name="tgt")
    r = _build(rq, ctx, "--target", "nope", check=False)
    assert r.returncode == 125 and 'target stage "nope" not found' in r.stderr
    assert _leftovers(rq) == ([], [], [])


def test_add_unpacks_a_local_tar_and_fetches_a_loopback_url(rq, tmp_path):
    ctx = _ctx(tmp_path, "FROM busybox\nADD files.tar.gz /unpacked/\nADD PLACEHOLDER /fetched/\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"in the tar\n"
        ti = tarfile.TarInfo("dir/inner.txt")
        ti.size, ti.uid, ti.mode = len(data), 42, 0o640
        tf.addfile(ti, io.BytesIO(data))
    (ctx / "files.tar.gz").write_bytes(buf.getvalue())

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):   # noqa: N802 - http.server's name
            body = b"served\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        text = (ctx / "Containerfile").read_text().replace(
            "PLACEHOLDER", f"http://127.0.0.1:{srv.server_port}/page.txt")
        (ctx / "Containerfile").write_text(text)
        _build(rq, ctx, "-t", "add")
        bad = _ctx(tmp_path, f"FROM busybox\nADD --checksum=sha256:{'0' * 64} "
                   f"http://127.0.0.1:{srv.server_port}/x /x\n", name="badsum")
        r = _build(rq, bad, check=False)
        assert r.returncode == 125 and "digest mismatch" in r.stderr, r.stderr
    finally:
        srv.shutdown()
        srv.server_close()
    out = rq("run", "--rm", "add", "sh", "-c",
             "cat /unpacked/dir/inner.txt /fetched/page.txt; stat -c '%u %a' "
             "/unpacked/dir/inner.txt /fetched/page.txt", check=True).stdout
    assert out == "in the tar\nserved\n42 640\n0 600\n"


def test_run_mounts_cache_and_bind(rq, tmp_path):
    ctx = _ctx(tmp_path, """\
FROM busybox
RUN --mount=type=cache,target=/cache echo x >> /cache/log && wc -l < /cache/log > /count
RUN --mount=type=bind,source=src,target=/src cat /src/f > /from-bind
""", {"src/f": "bound\n"})
    _build(rq, ctx, "-t", "m1")
    _build(rq, ctx, "-t", "m2", "--no-cache")
    assert rq("run", "--rm", "m2", "cat", "/count", "/from-bind", check=True).stdout == \
        "2\nbound\n"
    # the mount points themselves are not in the layers
    assert rq("run", "--rm", "m2", "sh", "-c", "ls -d /cache /src 2>&1 || true",
              check=True).stdout.count("No such file") == 2


def test_onbuild_triggers_run_in_the_child_build(rq, tmp_path):
    parent = _ctx(tmp_path, "FROM busybox\nONBUILD RUN echo triggered > /trig\n", name="p")
    _build(rq, parent, "-t", "parent")
    cfg, _ = _config(rq, "parent")
    assert cfg["config"]["OnBuild"] == ["RUN echo triggered > /trig"]
    child = _ctx(tmp_path, "FROM parent\nCMD cat /trig\n", name="c")
    _build(rq, child, "-t", "child")
    assert rq("run", "--rm", "child", check=True).stdout == "triggered\n"
    cfg, _ = _config(rq, "child")
    assert not cfg["config"].get("OnBuild")


def test_quiet_stdin_and_tar_contexts_and_metadata(rq, tmp_path):
    text = ("FROM busybox\nLABEL a=b\nEXPOSE 80 53/udp\nVOLUME /data\nSTOPSIGNAL SIGINT\n"
            "ENTRYPOINT [\"echo\"]\nHEALTHCHECK --interval=5s CMD true\nMAINTAINER me\n")
    r = rq("build", "-q", "-t", "meta", "-", input=text, timeout=120, check=True)
    assert len(r.stdout.strip()) == 64 and "\n" not in r.stdout.strip()
    cfg, _ = _config(rq, "meta")
    c = cfg["config"]
    assert c["Labels"] == {"a": "b"} and set(c["ExposedPorts"]) == {"80/tcp", "53/udp"}
    assert c["Volumes"] == {"/data": {}} and c["StopSignal"] == "SIGINT"
    assert c["Entrypoint"] == ["echo"] and "Cmd" not in c
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000}
    assert cfg["author"] == "me"
    ctx = _ctx(tmp_path, "FROM busybox\nCOPY f /f\nCMD [\"cat\", \"/f\"]\n", {"f": "tarred"})
    tar = tmp_path / "ctx.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(ctx, arcname=".")
    rq("build", "-t", "fromtar", str(tar), timeout=120, check=True)
    assert rq("run", "--rm", "fromtar", check=True).stdout == "tarred"


def test_built_image_is_saved_and_read_by_skopeo(rq, tmp_path):
    import shutil
    import subprocess
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo x > /x\nCMD [\"cat\", \"/x\"]\n")
    _build(rq, ctx, "-t", "saved")
    arch = tmp_path / "saved.tar"
    rq("save", "-o", str(arch), "saved", check=True)
    r = subprocess.run(["skopeo", "inspect", "--config", f"docker-archive:{arch}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["config"]["Cmd"] == ["cat", "/x"]




_SHORT: list[str] = []


@pytest.fixture
def short_dirs():
    import shutil
    yield
    while _SHORT:
        shutil.rmtree(_SHORT.pop(), ignore_errors=True)


def _peer(tool: str, base) -> tuple[list[str], dict[str, str]]:
    """buildah or podman with a private vfs storage under base (vfs: no mounts left over)."""
    import shutil
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    import tempfile

    from support.private_podman import private_podman
    run = tempfile.mkdtemp(prefix="rqb-", dir="/tmp")   # podman: a runroot under 50 chars
    _SHORT.append(run)
    return private_podman(base, tool=tool, runroot=run, network_dir=False)


def _sh(argv, env, **kw):
    import subprocess
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180, **kw)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def test_rongqi_image_runs_under_podman_and_buildah_image_runs_in_rongqi(rq, tmp_path,
                                                                         short_dirs):
    text = "FROM busybox\nRUN echo made-by-{} > /who && rm /bin/vi\nCMD [\"cat\", \"/who\"]\n"
    ctx = _ctx(tmp_path, text.format("rongqi"), name="r")
    _build(rq, ctx, "-t", "ours")
    arch = tmp_path / "ours.tar"
    rq("save", "-o", str(arch), "ours", check=True)
    pm, env = _peer("podman", tmp_path / "pm")
    _sh([*pm, "load", "-i", str(arch)], env)
    try:
        out = _sh([*pm, "run", "--rm", "--runtime", "/usr/sbin/runc", "--network", "none",
                   "localhost/ours", "sh", "-c", "cat /who; ls /bin/vi || echo no-vi"], env)
        assert out.stdout == "made-by-rongqi\nno-vi\n"
    finally:
        _sh([*pm, "system", "reset", "-f"], env)
    # the other way: buildah builds FROM rongqi's busybox (through rongqi's OCI layout)
    bh, env = _peer("buildah", tmp_path / "bh")
    e = rq.engine()
    _sh([*bh, "pull", "-q", f"oci:{e.root}:docker.io/library/busybox:latest"], env)
    iid = _sh([*bh, "images", "-q"], env).stdout.split()[0]
    _sh([*bh, "tag", iid, "docker.io/library/busybox:latest"], env)
    bctx = _ctx(tmp_path, text.format("buildah"), name="b")
    try:
        _sh([*bh, "bud", "--runtime", "/usr/sbin/runc", "-t", "theirs", str(bctx)], env)
        _sh([*bh, "push", "theirs", f"docker-archive:{tmp_path / 'theirs.tar'}"], env)
    finally:
        _sh([*bh, "rmi", "-a", "-f"], env)
    rq("load", "-i", str(tmp_path / "theirs.tar"), check=True)
    out = rq("run", "--rm", "localhost/theirs", "sh", "-c", "cat /who; ls /bin/vi || echo no-vi",
             check=True)
    assert out.stdout == "made-by-buildah\nno-vi\n"


def test_independent_stages_build_at_once_with_jobs(rq, tmp_path):
    # Each stage waits for the other's mark in a shared cache mount: only at once can both end.
    wait = ("RUN --mount=type=cache,id=sync,target=/sync touch /sync/{me} && i=0; "
            "until [ -e /sync/{other} ]; do i=$((i+1)); [ $i -lt 100 ] || exit 9; sleep 0.1; "
            "done; echo {me} > /{me}\n")
    ctx = _ctx(tmp_path, "FROM busybox AS a\n" + wait.format(me="a", other="b") +
               "FROM busybox AS b\n" + wait.format(me="b", other="a") +
               "FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCMD cat /a /b\n")
    _build(rq, ctx, "--jobs", "2", "-t", "par")
    assert rq("run", "--rm", "par", check=True).stdout == "a\nb\n"
    assert _leftovers(rq) == ([], [], [])


def test_a_build_killed_mid_run_is_swept_by_the_next(rq, tmp_path):
    import signal
    import subprocess
    import time
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo started; sleep 60\n")
    rq("image", "inspect", "busybox", check=True)  # the built-in, made here: no pull
    p = rq.popen("build", str(ctx), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = b""
        deadline = time.monotonic() + 60
        while line != b"started\n" and time.monotonic() < deadline:
            line = p.stdout.readline()
        assert line == b"started\n"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
    snaps, mounts, ctrs = _leftovers(rq)
    assert snaps and ctrs, (snaps, mounts, ctrs)   # what the killed build left ...
    ctx2 = _ctx(tmp_path, "FROM busybox\nCMD true\n", name="next")
    _build(rq, ctx2)
    assert _leftovers(rq) == ([], [], [])   # ... the next build removed
    assert not [n for n in os.listdir(os.path.join(rq.runroot, "build"))]


def test_the_same_containerfile_gives_what_buildah_gives(rq, tmp_path, short_dirs):
    """Config and files of one Containerfile built by rongqi and by buildah (loaded back into
    rongqi to be compared by the same commands)."""
    text = """\
ARG BASE=busybox
FROM $BASE
ARG WHO=nobody
ENV A=1 B="two words"
ENV C the rest
WORKDIR /srv/$A
COPY --chown=1234:5678 --chmod=0750 tool ./bin/
COPY tree/ /tree/
RUN mkdir -p /made && echo $WHO > /made/who && rm -r /tree/sub && rm /bin/vi
LABEL k=v "x y"=z
EXPOSE 80 53/udp
VOLUME /data
STOPSIGNAL SIGINT
USER $WHO
ENTRYPOINT ["sh", "-c"]
CMD ["cat /made/who"]
"""
    files = {"tool": "t\n", "tree/a": "a\n", "tree/sub/b": "b\n"}
    ours = _ctx(tmp_path, text, files, name="ours")
    theirs = _ctx(tmp_path, text, files, name="theirs")
    os.chmod(ours / "tree" / "a", 0o640)
    os.chmod(theirs / "tree" / "a", 0o640)
    _build(rq, ours, "-t", "ours", "--build-arg", "WHO=1000")
    bh, env = _peer("buildah", tmp_path / "bh")
    e = rq.engine()
    _sh([*bh, "pull", "-q", f"oci:{e.root}:docker.io/library/busybox:latest"], env)
    iid = _sh([*bh, "images", "-q"], env).stdout.split()[0]
    _sh([*bh, "tag", iid, "docker.io/library/busybox:latest"], env)
    try:
        _sh([*bh, "bud", "--runtime", "/usr/sbin/runc", "--build-arg", "WHO=1000",
             "-t", "theirs", str(theirs)], env)
        _sh([*bh, "push", "theirs", f"docker-archive:{tmp_path / 'theirs.tar'}"], env)
    finally:
        _sh([*bh, "rmi", "-a", "-f"], env)
    rq("load", "-i", str(tmp_path / "theirs.tar"), check=True)
    keys = ("Env", "WorkingDir", "User", "Entrypoint", "Cmd", "ExposedPorts", "Volumes",
            "StopSignal")
    cfg_ours, _ = _config(rq, "ours")
    cfg_theirs, _ = _config(rq, "localhost/theirs")
    for k in keys:
        assert cfg_ours["config"].get(k) == cfg_theirs["config"].get(k), k
    labels = dict(cfg_theirs["config"]["Labels"])
    labels.pop("io.buildah.version", None)
    assert cfg_ours["config"]["Labels"] == labels
    look = ("cat /made/who; ls -ln /srv/1/bin/tool /tree | sed 's/ [A-Z][a-z][a-z] .*:[0-9][0-9]/ T/'"
            "; ls /tree/sub /bin/vi 2>&1 | sed 's/.*: //'")
    a = rq("run", "--rm", "--entrypoint", "sh", "ours", "-c", look, check=True).stdout
    b = rq("run", "--rm", "--entrypoint", "sh", "localhost/theirs", "-c", look,
           check=True).stdout
    assert a == b
    assert a.startswith("1000\n") and "1234     5678" in a


def test_built_image_is_pushed_and_a_build_pulls_it_from_a_loopback_registry(rq, tmp_path):
    import shutil
    import socket
    import subprocess
    import time

    import httpx

    from rq import Rongqi
    exe = shutil.which("docker-registry")
    if exe is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "registry.yml"
    conf.write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "registry-data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "rongqi-test"}}))
    proc = subprocess.Popen([exe, "serve", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        name = f"127.0.0.1:{port}/built/app:1"
        ctx = _ctx(tmp_path, "FROM busybox\nRUN echo pushed > /p\nCMD [\"cat\", \"/p\"]\n")
        _build(rq, ctx, "-t", name)
        rq("push", name, check=True, timeout=120)
        other = Rongqi(tmp_path / "other")
        try:
            child = _ctx(tmp_path, f"FROM {name}\nRUN echo child >> /p\n", name="child")
            r = other("build", "-t", "child", str(child), timeout=180, check=True)
            assert r.stdout.startswith(f"STEP 1/2: FROM {name}\n")
            assert other("run", "--rm", "child", check=True).stdout == "pushed\nchild\n"
        finally:
            other.cleanup()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_run_output_reaches_an_output_without_a_file_descriptor(rq, tmp_path):
    # The Python API hands engine.build a BytesIO: RUN's output is relayed into it.
    from rongqi.engine import build
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo relayed-output\n")
    out = io.BytesIO()
    image_id = build.build(rq.engine(), build.BuildOptions(context=str(ctx)), out)
    assert b"\nrelayed-output\n" in out.getvalue()
    assert out.getvalue().endswith(b"--> " + image_id[:11].encode() + b"\n")
    assert _leftovers(rq) == ([], [], [])


def test_a_stage_index_past_the_last_is_a_parse_error_not_a_pull(rq, tmp_path):
    """COPY --from=N and RUN --mount from=N with N past the last stage name no image: one
    line with the file and line, nothing pulled (the name would go to a registry)."""
    rq("image", "inspect", "busybox", check=True)   # the built-in, made here: no pull
    ctx = _ctx(tmp_path, "FROM busybox AS a\nRUN echo a > /a\nFROM busybox\nCOPY --from=0 /a /a\n"
               "COPY --from=5 /a /b\n")
    r = _build(rq, ctx, "--network", "none", check=False)
    assert (r.returncode, r.stderr) == (125, f"Error: {ctx}/Containerfile: dockerfile parse "
                                        "error on line 5: invalid from flag value 5: the "
                                        "file has 2 stages\n")
    assert r.stdout == ""
    ctx2 = _ctx(tmp_path, "FROM busybox\nRUN --mount=type=bind,from=1,target=/m true\n",
                name="mount")
    r = _build(rq, ctx2, "--network", "none", check=False)
    assert r.returncode == 125 and r.stderr.endswith(
        "line 2: invalid from flag value 1: the file has 1 stage\n")


def test_run_mount_keys_and_values_are_checked(rq, tmp_path):
    """A misspelt --mount key, a bad sharing or boolean value, and a cache mount's from=
    (BuildKit seeds the cache from it; not done here) are one line each, not ignored; ro=false
    and rw=true are read as BuildKit reads them."""
    rq("image", "inspect", "busybox", check=True)   # the built-in, made here: no pull
    cases = {
        "type=cache,target=/c,sharng=locked": "unexpected key 'sharng' in 'sharng=locked'",
        "type=cache,target=/c,sharing=maybe": 'unsupported sharing value "maybe"',
        "type=bind,target=/c,ro=perhaps": "invalid value for ro: perhaps",
        "type=cache,target=/c,from=busybox": ("mount type=cache,target=/c,from=busybox: a "
                                              "cache mount's from= and source= are not "
                                              "supported"),
    }
    for i, (mount, why) in enumerate(cases.items()):
        ctx = _ctx(tmp_path, f"FROM busybox\nRUN --mount={mount} true\n", name=f"c{i}")
        r = _build(rq, ctx, "--network", "none", check=False)
        assert (r.returncode, r.stderr) == (
            125, f'Error: building at STEP "RUN --mount={mount} true": {why}\n'), mount
    ok = _ctx(tmp_path, "FROM busybox\n"
              "RUN --mount=type=bind,target=/ctx,rw=true touch /ctx/new\n"
              "RUN --mount=type=cache,target=/c,ro=false,sharing=locked echo x > /c/f\n",
              {"f": "x"}, name="ok")
    _build(rq, ok, "--network", "none")
    assert not (ok / "new").exists()   # rw writes go to a copy (docker's rule)
