"""The events log from the outside: many processes writing at once (across a rotation), `rongqi
events` filters, times and formats as podman prints them, and a stream that follows new events
and ends cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rongqi.engine import events

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = dict(os.environ, PYTHONPATH=SRC, TZ="UTC")
ID1 = "8b3657b33729b1f2ccf4d732a751de43890642cf0cc5f8878507db188b7c0594"
ID2 = "232137880e5ef377000d6aeb043d4f5505be43e388ec0de1c42534deae741ab6"
IMG = "ce7f40393749d77bea96ca09328f2e3aff9e5855938c671c2b795e6c3e8578b1"


def rongqi(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "rongqi.cli.main", "--root", str(root), *args],
                       capture_output=True, text=True, env=ENV, timeout=60, stdin=subprocess.DEVNULL)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def write_log(root: Path, records: list[dict]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "events.log", "w") as f:
        for rec in records:
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")


# The lines podman 4.3.1 wrote to its events file for: image tag, run -d --label app=web probe1,
# run probe2 sh -c 'exit 3' (trimmed to these).
PODMAN_LOG = [
    {"ID": IMG, "Name": "localhost/bb:1", "Status": "tag", "Time": "2026-12-01T08:21:58.284030403Z",
     "Type": "image", "Attributes": None},
    {"ID": ID2, "Image": "localhost/bb:1", "Name": "probe1", "Status": "create",
     "Time": "2026-12-01T08:21:58.35775909Z", "Type": "container", "Attributes": {"app": "web"}},
    {"Name": "localhost/bb:1", "Status": "pull", "Time": "2026-12-01T08:21:58.32633845Z",
     "Type": "image", "Attributes": None},
    {"ID": ID2, "Image": "localhost/bb:1", "Name": "probe1", "Status": "start",
     "Time": "2026-12-01T08:21:58.456805349Z", "Type": "container", "Attributes": {"app": "web"}},
    {"ID": ID1, "Image": "localhost/bb:1", "Name": "probe2", "Status": "start",
     "Time": "2026-12-01T08:21:58.638898127Z", "Type": "container", "Attributes": {}},
    {"ContainerExitCode": 3, "ID": ID1, "Image": "localhost/bb:1", "Name": "probe2",
     "Status": "died", "Time": "2026-12-01T08:21:58.641735485Z", "Type": "container",
     "Attributes": {}},
    {"Name": "data", "Status": "create", "Time": "2026-12-01T08:22:00Z", "Type": "volume",
     "Attributes": None},
]


def test_a_podman_events_log_reads_back_as_podman_printed_it(tmp_path: Path) -> None:
    write_log(tmp_path, PODMAN_LOG)
    out = rongqi(tmp_path, "events", "--stream=false").stdout
    assert out.splitlines() == [
        f"2026-12-01 08:21:58.284030403 +0000 UTC image tag {IMG} localhost/bb:1",
        f"2026-12-01 08:21:58.35775909 +0000 UTC container create {ID2} (image=localhost/bb:1,"
        " name=probe1, app=web)",
        "2026-12-01 08:21:58.32633845 +0000 UTC image pull  localhost/bb:1",
        f"2026-12-01 08:21:58.456805349 +0000 UTC container start {ID2} (image=localhost/bb:1,"
        " name=probe1, app=web)",
        f"2026-12-01 08:21:58.638898127 +0000 UTC container start {ID1} (image=localhost/bb:1,"
        " name=probe2)",
        f"2026-12-01 08:21:58.641735485 +0000 UTC container died {ID1} (image=localhost/bb:1,"
        " name=probe2)",
        "2026-12-01 08:22:00 +0000 UTC volume create data",
    ]
    # --format json gives the log's own lines back, as podman's file backend does
    assert [json.loads(line) for line in rongqi(tmp_path, "events", "--stream=false",
                                                "--format", "json").stdout.splitlines()] \
        == PODMAN_LOG


@pytest.mark.parametrize(("filters", "names"), [
    (["event=start"], ["probe1", "probe2"]),
    (["event=start", "event=died"], ["probe1", "probe2", "probe2"]),  # one key: OR
    (["container=probe2", "event=start"], ["probe2"]),                 # two keys: AND
    (["container=8b3657b3"], ["probe2", "probe2"]),                     # an id prefix
    (["type=image"], ["localhost/bb:1", "localhost/bb:1"]),
    (["image=localhost/bb:1", "type=container"], ["probe1", "probe1", "probe2", "probe2"]),
    (["label=app=web"], ["probe1", "probe1"]),
    (["label=app"], ["probe1", "probe1"]),
    (["volume=da"], ["data"]),
    (["status=died"], ["probe2"]),
])
def test_filters_as_podman_combines_them(tmp_path: Path, filters: list[str],
                                         names: list[str]) -> None:
    write_log(tmp_path, PODMAN_LOG)
    args = [a for f in filters for a in ("--filter", f)]
    out = rongqi(tmp_path, "events", "--stream=false", "--format", "{{.Name}}", *args).stdout
    assert out.splitlines() == names


def test_since_until_and_formats(tmp_path: Path) -> None:
    write_log(tmp_path, PODMAN_LOG)

    def names(*args: str) -> list[str]:
        return rongqi(tmp_path, "events", "--stream=false", "--format", "{{.Status}}",
                      *args).stdout.split()
    assert names("--since", "2026-12-01T08:21:58.5Z") == ["start", "died", "create"]
    assert names("--until", "2026-12-01T08:21:58.4Z") == ["tag", "create", "pull"]
    assert names("--since", "1796113318.6", "--until", "1796113318.64") == ["start"]
    assert names("--since", "2026-12-01T09:21:59+01:00") == ["create"]
    assert names("--since", "2026-12-02") == []
    assert names("--since", "100000h") == [e["Status"] for e in PODMAN_LOG]
    out = rongqi(tmp_path, "events", "--stream=false", "--filter", "event=died", "--format",
                 "{{.Time}}|{{.Type}}|{{.ID}}|{{.ContainerExitCode}}|{{.Attributes}}|"
                 "{{.Time.Unix}}").stdout
    assert out == f"2026-12-01 08:21:58.641735485 +0000 UTC|container|{ID1}|3|map[]|1796113318\n"
    out = rongqi(tmp_path, "events", "--stream=false", "--filter", "event=died",
                 "--no-trunc=false").stdout
    assert f" container died {ID1[:12]} (image=" in out
    bad = rongqi(tmp_path, "events", "--stream=false", "--format", "{{.Nope}}", check=False)
    assert (bad.returncode, bad.stderr) == (125, (
        'Error: template: events:1:2: executing "events" at <.Nope>: can\'t evaluate field '
        "Nope in type *events.Event\n"))
    for args, message in ((["--filter", "bogus=1"], "Error: bogus is an invalid filter\n"),
                          (["--filter", "novalue"], "Error: novalue is an invalid filter\n"),
                          (["--since", "soon"],
                           'Error: unable to interpret time value "soon"\n')):
        r = rongqi(tmp_path, "events", "--stream=false", *args, check=False)
        assert (r.returncode, r.stdout, r.stderr) == (125, "", message)


WRITER = """
import sys
from rongqi.engine import events
events.ROTATE_BYTES = int(sys.argv[3])
for i in range(int(sys.argv[2])):
    events.emit(sys.argv[1], "container", "start", id=f"{sys.argv[4]}{i:06d}" + "0" * 52,
                name=f"w{sys.argv[4]}-{i}", image="busybox", attributes={"pad": "x" * 100})
"""


def test_concurrent_writers_never_interleave_and_a_follower_sees_every_event(
        tmp_path: Path) -> None:
    writers, each = 8, 200
    line_size = len(json.dumps(events.Event("container", "start", 0, id="0" * 64, name="w0-000",
                                            image="busybox", attributes={"pad": "x" * 100})
                               .to_json())) + 40
    total = writers * each * line_size
    rotate = total * 3 // 4  # exactly one rotation: everything stays in events.log{.1,}
    # --since: the follower replays from that time, then follows, however late it starts
    follower = subprocess.Popen(
        [sys.executable, "-m", "rongqi.cli.main", "--root", str(tmp_path), "events", "--since",
         f"{time.time() - 1:.3f}", "--format", "{{.Name}}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    reader = LineReader(follower)
    try:
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(each),
                                   str(rotate), str(w)], env=ENV) for w in range(writers)]
        assert [p.wait(timeout=120) for p in procs] == [0] * writers
        lines = []
        for name in ("events.log.1", "events.log"):
            lines += (tmp_path / name).read_bytes().split(b"\n")[:-1]
        assert (tmp_path / "events.log.1").exists()
        parsed = [json.loads(line) for line in lines]  # a torn line would not parse
        expected = {f"w{w}-{i}" for w in range(writers) for i in range(each)}
        assert sorted(p["Name"] for p in parsed) == sorted(expected)
        seen = reader.lines(len(expected), timeout=60)
    finally:
        follower.send_signal(signal.SIGTERM)
        out, err = reader.rest(follower)
    assert follower.returncode == 0, err
    assert sorted(seen + out.split()) == sorted(expected)  # each exactly once
    assert err == ""


class LineReader:
    """Lines from a running `rongqi events`, read from the pipe's fd itself: a buffered
    reader would hold lines that select() no longer reports (and that communicate() then
    never sees)."""

    def __init__(self, p: subprocess.Popen):
        assert p.stdout is not None
        self.fd = p.stdout.fileno()
        self.buf = b""

    def lines(self, count: int, timeout: float) -> list[str]:
        import select
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            while b"\n" in self.buf and len(out) < count:
                line, self.buf = self.buf.split(b"\n", 1)
                out.append(line.decode())
            if len(out) >= count:
                break
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                self.buf += chunk
        return out

    def rest(self, p: subprocess.Popen) -> tuple[str, str]:
        out, err = p.communicate(timeout=30)
        return (self.buf + out).decode(), err.decode()


def test_a_stream_shows_only_new_events_and_ends_on_sigint(tmp_path: Path) -> None:
    events.emit(str(tmp_path), "container", "create", id=ID1, name="before")
    p = subprocess.Popen([sys.executable, "-m", "rongqi.cli.main", "--root", str(tmp_path),
                          "events"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    reader = LineReader(p)
    try:
        # Until the stream has started, what is written is history it skips: write until
        # one line comes out (each line is flushed as it is printed).
        first: list[str] = []
        for i in range(100):
            events.emit(str(tmp_path), "container", "start", id=ID1, name=f"after{i}",
                        image="busybox")
            first = reader.lines(1, timeout=0.2)
            if first:
                break
    finally:
        p.send_signal(signal.SIGINT)
        out, err = reader.rest(p)
    assert p.returncode == 0 and err == ""
    assert first and f"container start {ID1} (image=busybox, name=after" in first[0]
    assert "before" not in first[0] + out


def test_a_stream_with_since_replays_then_follows_and_until_ends_it(tmp_path: Path) -> None:
    events.emit(str(tmp_path), "volume", "create", name="old")
    start = time.time()
    r = subprocess.run([sys.executable, "-m", "rongqi.cli.main", "--root", str(tmp_path),
                        "events", "--since", "1m", "--until", "2s", "--format", "{{.Name}}"],
                       capture_output=True, text=True, env=ENV, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "old\n"
    assert 1.5 < time.time() - start < 15  # podman 4: a duration for --until counts forward


def test_a_reader_without_the_log_and_a_root_that_cannot_take_events(tmp_path: Path) -> None:
    assert rongqi(tmp_path / "none", "events", "--stream=false").stdout == ""
    missing = tmp_path / "missing" / "root"
    assert events.emit(str(missing), "container", "start") is None  # dropped, no error


def test_the_suite_blocks_docker_hub_so_pull_busybox_asks_no_registry(tmp_path: Path) -> None:
    # tests/support/plugin.py: RONGQI_REGISTRIES blocks docker.io for every test.
    conf = os.environ["RONGQI_REGISTRIES"]
    r = rongqi(tmp_path, "pull", "busybox")
    assert f"(registry docker.io is blocked in {conf}); using the built-in busybox" in r.stdout


def test_image_commands_and_system_prune_report_events_as_podman(tmp_path: Path) -> None:
    # Docker Hub blocked (registries.json's `blocked`, containers-registries.conf's): the
    # pull falls back to the built-in busybox without a connection or a DNS query.
    conf = tmp_path / "registries.json"
    conf.write_text(json.dumps({"blocked": ["docker.io"]}))
    r = rongqi(tmp_path, "--registries-conf", str(conf), "pull", "busybox")
    assert f"registry docker.io is blocked in {conf}" in r.stdout
    rongqi(tmp_path, "tag", "busybox", "localhost/x:1")
    rongqi(tmp_path, "rmi", "localhost/x:1")
    image_id = rongqi(tmp_path, "image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    hexid = image_id.partition(":")[2]
    out = rongqi(tmp_path, "system", "prune", "-a", "-f").stdout
    assert out == f"Deleted Images\n{hexid}\nTotal reclaimed space: " + out.rsplit(": ", 1)[1]
    assert out.rsplit(": ", 1)[1].rstrip().endswith("B")
    lines = rongqi(tmp_path, "events", "--stream=false", "--format",
                   "{{.Status}} {{.ID}} {{.Name}}").stdout.splitlines()
    assert lines == ["pull  docker.io/library/busybox:latest",
                     f"tag {hexid} localhost/x:1",
                     f"untag {hexid} localhost/x:1",
                     f"untag {hexid} docker.io/library/busybox:latest",
                     f"remove {hexid} "]
    # without -f it asks, and a "no" removes nothing
    r = subprocess.run([sys.executable, "-m", "rongqi.cli.main", "--root", str(tmp_path),
                        "system", "prune", "--volumes"], input="n\n", capture_output=True,
                       text=True, env=ENV, timeout=60)
    assert r.returncode == 0
    assert r.stdout == ("WARNING! This command removes:\n"
                        "\t- all stopped containers\n"
                        "\t- all networks not used by at least one container\n"
                        "\t- all volumes not used by at least one container\n"
                        "\t- all dangling images\n"
                        "\t- all dangling build cache\n\n"
                        "Are you sure you want to continue? [y/N] ")
