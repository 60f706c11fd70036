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
