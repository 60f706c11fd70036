"""engine/logs.py without containers: the k8s-file and json-file records, rotation, the reader
(tail, since/until, follow to the writer's end and across rotation), time parsing; and the
attach protocol's frames and detach keys (engine/attach.py)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from rongqi.engine import attach, logs


def _write(path: Path, driver: str, chunks: list[tuple[int, bytes]], **kw) -> logs.LogWriter:
    w = logs.LogWriter(driver, str(path), **kw)
    for stream, data in chunks:
        w.write(stream, data)
    return w


def test_k8s_file_records_full_and_partial_lines_as_conmon(tmp_path):
    p = tmp_path / "ctr.log"
    _write(p, "k8s-file", [(1, b"one\ntwo"), (2, b"err\n"), (1, b" more\n")]).close()
    lines = p.read_text().splitlines()
    parsed = [line.split(" ", 3)[1:] for line in lines]
    assert parsed == [["stdout", "F", "one"], ["stdout", "P", "two"], ["stderr", "F", "err"],
                      ["stdout", "F", " more"]]
    ts = lines[0].split(" ")[0]
    assert len(ts.split(".")[1]) == 9 + 6 and ts[-6] in "+-"  # ns and a numeric offset


def test_json_file_records_are_dockers(tmp_path):
    p = tmp_path / "ctr.json.log"
    _write(p, "json-file", [(1, b'say "hi"\n'), (2, b"tab\there\n")]).close()
    docs = [json.loads(line) for line in p.read_text().splitlines()]
    assert [(d["stream"], d["log"]) for d in docs] == [("stdout", 'say "hi"\n'),
                                                       ("stderr", "tab\there\n")]
    assert docs[0]["time"].endswith("Z")


def test_none_driver_writes_nothing(tmp_path):
    p = tmp_path / "ctr.log"
    _write(p, "none", [(1, b"x\n")]).close()
    assert not p.exists()


def test_rotation_keeps_max_file_files_each_under_max_size(tmp_path):
    p = tmp_path / "ctr.log"
    _write(p, "k8s-file", [(1, b"%04d\n" % i) for i in range(300)], max_size=1000,
           max_file=3).close()
    files = logs.log_files(str(p))
    assert files == [str(p) + ".2", str(p) + ".1", str(p)]
    assert all(Path(f).stat().st_size <= 1000 for f in files)
    texts = [r.text for r in logs.read("k8s-file", str(p))]
    assert texts[-1] == b"0299"
    assert texts == [b"%04d" % i for i in range(300 - len(texts), 300)]  # oldest dropped only


def test_max_file_1_truncates(tmp_path):
    p = tmp_path / "ctr.log"
    _write(p, "k8s-file", [(1, b"x" * 50 + b"\n") for _ in range(40)], max_size=500).close()
    assert not Path(str(p) + ".1").exists() and p.stat().st_size <= 500


def test_tail_counts_lines_not_partial_records(tmp_path):
    p = tmp_path / "ctr.log"
    _write(p, "k8s-file", [(1, b"a\nb"), (1, b"c\nd\n")]).close()
    recs = list(logs.read("k8s-file", str(p), tail=2))
    assert [(r.text, r.partial) for r in recs] == [(b"b", True), (b"c", False), (b"d", False)]
    assert list(logs.read("k8s-file", str(p), tail=0)) == []


def test_since_and_until_bound_by_record_time(tmp_path):
    p = tmp_path / "ctr.log"
    w = _write(p, "k8s-file", [(1, b"old\n")])
    time.sleep(0.05)
    mid = time.time_ns()
    time.sleep(0.05)
    w.write(1, b"new\n")
    w.close()
    assert [r.text for r in logs.read("k8s-file", str(p), since=mid)] == [b"new"]
    assert [r.text for r in logs.read("k8s-file", str(p), until=mid)] == [b"old"]


def test_follow_ends_when_the_writer_is_gone_and_crosses_rotation(tmp_path):
    p = tmp_path / "ctr.log"
    w = logs.LogWriter("k8s-file", str(p), max_size=300, max_file=2)
    alive = threading.Event()
    alive.set()

    def produce() -> None:
        for i in range(60):
            w.write(1, b"line%02d\n" % i)
            time.sleep(0.005)
        w.close()
        alive.clear()

    t = threading.Thread(target=produce)
    t.start()
    got = [r.text for r in logs.read("k8s-file", str(p), follow=True, running=alive.is_set,
                                     poll=0.01)]
    t.join()
    assert got == [b"line%02d" % i for i in range(60)]


@pytest.mark.parametrize("text", ["2024-05-01T10:00:00.5Z", "2024-05-01T12:00:00.5+02:00"])
def test_rfc3339_times(text):
    assert logs.parse_time_ns(text) == 1714557600_500000000


def test_since_takes_durations_unix_times_and_dates():
    now = 2_000_000_000_000_000_000
    assert logs.parse_since("10m", now) == now - 600 * 10**9
    assert logs.parse_since("1h30m", now) == now - 5400 * 10**9
    assert logs.parse_since("1714557600") == 1714557600 * 10**9
    assert logs.parse_since("2024-05-01T10:00:00Z") == 1714557600 * 10**9
    with pytest.raises(ValueError):
        logs.parse_since("yesterday")


def test_frames_survive_any_chunking():
    blob = attach.frame(1, b"hello") + attach.frame(2, b"") + attach.frame(3, b"0")
    r = attach.FrameReader()
    out = []
    for i in range(len(blob)):
        out += r.feed(blob[i:i + 1])
    assert out == [(1, b"hello"), (2, b""), (3, b"0")]


def test_detach_keys():
    assert attach.parse_detach_keys(None) == b"\x10\x11"
    assert attach.parse_detach_keys("ctrl-a,x") == b"\x01x"
    assert attach.parse_detach_keys("") == b""
    with pytest.raises(ValueError):
        attach.parse_detach_keys("ctrl-ä")
    m = attach.DetachMatcher(b"\x10\x11")
    assert m.feed(b"ab\x10") == (b"ab", False)
    assert m.feed(b"c") == (b"\x10c", False)      # a broken sequence is passed on
    assert m.feed(b"x\x10\x11rest") == (b"x", True)
    assert attach.DetachMatcher(b"").feed(b"\x10\x11") == (b"\x10\x11", False)


# -- `rongqi logs` with real containers -----------------------------------------------------------

import subprocess  # noqa: E402

from rq import rq  # noqa: E402,F401 - the fixture


@pytest.mark.root
def test_logs_follow_ends_when_the_container_exits_and_crosses_rotation(rq):
    rq("run", "-d", "--name", "lf", "--log-opt", "max-size=1k", "--log-opt", "max-file=2",
       "busybox", "sh", "-c",
       "i=0; while [ $i -lt 120 ]; do echo line$i; i=$((i+1)); sleep 0.01; done", check=True)
    p = rq.popen("logs", "-f", "lf", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    lines = out.splitlines()
    assert lines[-1] == "line119"
    first = int(lines[0].removeprefix("line"))
    assert lines == [f"line{i}" for i in range(first, 120)]  # nothing lost or doubled


@pytest.mark.root
def test_logs_tail_timestamps_since_and_several_containers(rq):
    a = rq("run", "--name", "la", "busybox", "sh", "-c", "echo a1; echo a2; echo a3; echo e >&2")
    b = rq("run", "--name", "lb", "busybox", "echo", "b1")
    assert a.returncode == b.returncode == 0
    r = rq("logs", "la")
    assert (r.stdout, r.stderr) == ("a1\na2\na3\n", "e\n")  # each on its own stream
    r = rq("logs", "--tail", "1", "lb")
    assert rq("logs", "--tail", "2", "la").stdout in ("a3\n", "a2\na3\n")
    ts = rq("logs", "-t", "--tail", "1", "lb").stdout
    stamp, text = ts.rstrip("\n").split(" ", 1)
    assert text == "b1" and stamp[:2] == "20" and "T" in stamp
    assert rq("logs", "--since", "1h", "lb").stdout == "b1\n"
    assert rq("logs", "--until", "1h", "lb").stdout == ""
    both = rq("logs", "la", "lb").stdout.splitlines()
    ids = {c.name: c.id[:12] for c in rq.engine().list(all=True)}
    assert f"{ids['lb']} b1" in both and f"{ids['la']} a1" in both
    bad = rq("logs", "--since", "yesterday", "la")
    assert bad.returncode == 125 and bad.stderr.startswith("Error: ")


@pytest.mark.root
def test_json_file_and_none_drivers(rq):
    rq("run", "--name", "jf", "--log-driver", "json-file", "busybox", "echo", "json", check=True)
    assert rq("logs", "jf").stdout == "json\n"
    path = rq.engine().get("jf").log_path
    assert json.loads(Path(path).read_text().splitlines()[0])["log"] == "json\n"
    rq("run", "--name", "nl", "--log-driver", "none", "busybox", "echo", "x", check=True)
    r = rq("logs", "nl")
    assert r.returncode == 125 and "'none' log driver" in r.stderr


@pytest.mark.root
def test_passthrough_gives_the_container_the_clis_stdio(rq, tmp_path):
    out = tmp_path / "out"
    with open(out, "w") as f:
        r = subprocess.run(rq.argv("run", "--rm", "--log-driver", "passthrough", "busybox", "sh",
                                   "-c", "ls -l /proc/self/fd/1; echo direct"),
                           stdout=f, stderr=subprocess.PIPE, env=rq.env, timeout=60)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "direct" in text and str(out) not in text or "direct" in text
    d = rq("run", "-d", "--log-driver", "passthrough", "busybox", "true")
    assert d.returncode == 125 and "passthrough" in d.stderr
