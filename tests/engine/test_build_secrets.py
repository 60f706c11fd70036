"""rongqi build's RUN --mount=type=secret and type=ssh: the step sees the secret or the agent,
the image and its layers never hold them, and they are not part of the cache key."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tarfile

import pytest

from rq import rq  # noqa: F401 - the fixture

pytestmark = pytest.mark.root

SECRET = "s3cr3t-value-5b1f"


def _ctx(tmp_path, containerfile: str):
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "Containerfile").write_text(containerfile)
    return d


def _with_env(rq, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(rq.argv(*args), capture_output=True, text=True, env=env, timeout=180)


def _blobs_hold(rq, name: str, needle: bytes) -> list[str]:
    """Which of the image's layers (member names) or its config contain needle."""
    e = rq.engine()
    _, desc = e.store.resolve(name)
    manifest = e.store.manifest(desc)
    found = []
    with e.store.open_blob(manifest["config"]["digest"]) as f:
        if needle in f.read():
            found.append("config")
    for layer in manifest["layers"]:
        with e.store.open_blob(layer["digest"]) as f, tarfile.open(fileobj=f, mode="r|*") as tf:
            for m in tf:
                data = tf.extractfile(m).read() if m.isfile() else b""
                if needle in data or needle.decode() in m.name:
                    found.append(m.name)
    return found


def test_a_secret_is_seen_by_the_step_and_never_stored(rq, tmp_path):
    src = tmp_path / "token"
    src.write_text(SECRET)
    ctx = _ctx(tmp_path, """\
FROM busybox
RUN --mount=type=secret,id=tok stat -c '%a %u' /run/secrets/tok > /mode && \\
    md5sum < /run/secrets/tok > /sum
RUN --mount=type=secret,id=tok,target=/etc/other,mode=0440,uid=7 stat -c '%a %u' /etc/other > /mode2
RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped > /absent
""")
    rq("build", "-t", "sec", "--secret", f"id=tok,src={src}", str(ctx), timeout=180, check=True)
    out = rq("run", "--rm", "sec", "cat", "/mode", "/sum", "/mode2", "/absent",
             check=True).stdout.split("\n")
    import hashlib
    assert out[0] == "400 0"
    assert out[1].split()[0] == hashlib.md5(SECRET.encode()).hexdigest()
    assert out[2] == "440 7" and out[3] == "skipped"
    assert _blobs_hold(rq, "sec", SECRET.encode()) == []
    assert rq("run", "--rm", "sec", "ls", "-A", "/run/secrets").stdout.strip() == ""
    # the secret's content is not in the cache key: another value reuses the steps
    src.write_text("another value")
    r = rq("build", "-t", "sec2", "--secret", f"id=tok,src={src}", str(ctx), timeout=180,
           check=True)
    assert r.stdout.count("Using cache") == 3, r.stdout


def test_secret_from_env_and_required_and_bad_flags(rq, tmp_path):
    ctx = _ctx(tmp_path, "FROM busybox\nRUN --mount=type=secret,id=e,required cat /run/secrets/e > /got\n")
    r = _with_env(rq, {**rq.env, "RQ_TEST_SECRET": "from-env"},
                  "build", "-t", "envsec", "--secret", "id=e,env=RQ_TEST_SECRET", str(ctx))
    assert r.returncode == 0, r.stderr
    assert rq("run", "--rm", "envsec", "cat", "/got", check=True).stdout == "from-env"
    r = rq("build", "--no-cache", "-t", "nosec", str(ctx), timeout=180)
    assert r.returncode == 125
    assert "secret 'e' is required but was not given" in r.stderr, r.stderr
    assert r.stderr.startswith("Error: ") and rq("images", "-q", "nosec").stdout == ""
    for bad in ("id=x", "src=/etc/hostname", "id=x,src=/nonexistent"):
        r = rq("build", "--secret", bad, str(ctx), timeout=60)
        assert r.returncode == 125 and r.stderr.startswith("Error: ") and \
            r.stderr.count("\n") == 1, (bad, r.stderr)


def test_ssh_mount_forwards_an_agent_socket(rq, tmp_path):
    sock_path = str(tmp_path / "agent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    try:
        ctx = _ctx(tmp_path, """\
FROM busybox
RUN --mount=type=ssh test -S "$SSH_AUTH_SOCK" && echo "$SSH_AUTH_SOCK" > /sock
RUN --mount=type=ssh,id=other,target=/agent test -S /agent && echo ok > /other
""")
        rq("build", "-t", "sshb", "--ssh", f"default={sock_path}", "--ssh",
           f"other={sock_path}", str(ctx), timeout=180, check=True)
        assert rq("run", "--rm", "sshb", "cat", "/sock", "/other", check=True).stdout == \
            "/run/buildkit/ssh_agent.0\nok\n"
        assert rq("run", "--rm", "sshb", "ls", "-A", "/run/buildkit").stdout.strip() == ""
        r = _with_env(rq, {k: v for k, v in rq.env.items() if k != "SSH_AUTH_SOCK"},
                      "build", "--no-cache", "-t", "nossh", str(ctx))
        # not required: the steps run without an agent, and fail on their own test
        assert r.returncode != 0 and "test -S" in r.stderr + r.stdout
    finally:
        srv.close()


@pytest.mark.skipif(shutil.which("ssh-keygen") is None or shutil.which("ssh-agent") is None,
                    reason="openssh-client (ssh-agent, ssh-keygen) is not installed")
def test_ssh_mount_serves_key_files_through_an_agent_of_the_builds_own(rq, tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                   timeout=30)
    ctx = _ctx(tmp_path, "FROM busybox\nRUN --mount=type=ssh,id=k test -S \"$SSH_AUTH_SOCK\" "
                         "&& echo agent > /agent\n")
    before = _agents()
    rq("build", "-t", "sshk", "--ssh", f"k={key}", str(ctx), timeout=180, check=True)
    assert rq("run", "--rm", "sshk", "cat", "/agent", check=True).stdout == "agent\n"
    assert _agents() == before    # the build's own agent stopped with it
    r = rq("build", "--ssh", f"k={tmp_path}/nokey", str(ctx), timeout=60)
    assert r.returncode == 125 and "neither an agent socket nor a key file" in r.stderr


def _agents() -> set[int]:
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and os.path.basename(argv[0]) == b"ssh-agent" and b"build-ssh-" in \
                    b" ".join(argv):
                out.add(int(pid))
    return out


def test_build_cache_prune_removes_cached_steps_and_cache_mounts(rq, tmp_path):
    ctx = _ctx(tmp_path, """\
FROM busybox
RUN --mount=type=cache,target=/cache echo kept > /cache/f && head -c 300000 /dev/urandom > /big
""")
    rq("build", "-t", "cached", str(ctx), timeout=180, check=True)
    rq("rmi", "cached", check=True)
    root = rq.engine().root
    assert os.listdir(os.path.join(root, "build", "cache"))
    assert os.listdir(os.path.join(root, "build", "mounts"))
    rq("image", "prune", "-f", "--build-cache", check=True)
    assert os.listdir(os.path.join(root, "build", "cache")) == []
    assert os.listdir(os.path.join(root, "build", "mounts")) == []
    # the step's layer went with the cache: the next build runs the step again
    out = rq("build", "-t", "cached", str(ctx), timeout=180, check=True).stdout
    assert "Using cache" not in out
    rq("system", "prune", "-f", "--build", check=True)
    assert os.listdir(os.path.join(root, "build", "cache")) == []
