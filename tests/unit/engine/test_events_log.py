"""engine/events.py without processes: podman's time and duration syntax, filters, the JSON shape
round trip, rotation keeping one older file, and a reader that skips torn lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rongqi.engine import events
from rongqi.errors import UsageError

S = 1_000_000_000
NOW = 1796113318 * S  # 2026-12-01T08:21:58Z


@pytest.mark.parametrize(("text", "ns"), [
    ("10m", 600 * S), ("1h30m", 5400 * S), ("1.5s", S * 3 // 2), ("-5m", -300 * S),
    ("0", 0), ("300ms", 300_000_000), ("2h45m30.5s", 9930 * S + S // 2), ("1us", 1000),
    ("1µs", 1000), ("7ns", 7),
])
def test_go_durations(text: str, ns: int) -> None:
    assert events.parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["", "10", "5x", "m", "1h 30m", "1.2.3s"])
def test_not_go_durations(text: str) -> None:
    assert events.parse_go_duration(text) is None


@pytest.mark.parametrize(("text", "since", "ns"), [
    ("2026-12-01T08:21:58.35775909Z", True, NOW + 357_759_090),
    ("2026-12-01T08:21:58Z", True, NOW),
    ("2026-12-01T09:21:58+01:00", True, NOW),
    ("2026-12-01T08:21:58", True, NOW),                  # no zone: UTC
    ("2026-12-01T08:21:58.5", True, NOW + S // 2),
    ("2026-12-01", True, NOW - (8 * 3600 + 21 * 60 + 58) * S),
    ("2026-12-01+01:00", True, NOW - (9 * 3600 + 21 * 60 + 58) * S),
    ("1796113318", True, NOW),
    ("1796113318.25", True, NOW + S // 4),
    ("10m", True, NOW - 600 * S),                        # since: back from now
    ("10m", False, NOW + 600 * S),                       # until: forward (podman 4)
])
def test_podmans_input_times(text: str, since: bool, ns: int) -> None:
    assert events.parse_input_time(text, since=since, now_ns=NOW) == ns


def test_a_time_that_is_none_of_those_is_one_clear_error() -> None:
    with pytest.raises(UsageError, match='^unable to interpret time value "yesterday"$'):
        events.parse_input_time("yesterday", since=True)


def test_filters_parse_as_podman_and_reject_unknown_keys() -> None:
    assert events.parse_filters(["event=start", "Event=die", "status=stop", "label=a=b"]) == \
        {"event": ["start", "die", "stop"], "label": ["a=b"]}
    for bad, message in (("nokey", "nokey is an invalid filter"),
                         ("bogus=1", "bogus is an invalid filter")):
        with pytest.raises(UsageError, match=f"^{message}$"):
            events.parse_filters([bad])


def test_the_json_shape_is_podmans_and_reads_back() -> None:
    e = events.Event("container", "died", NOW + 641_735_485, id="ab" * 32, name="web",
                     image="busybox", attributes={}, exit_code=3)
    assert json.dumps(e.to_json(), separators=(",", ":")) == (
        '{"ContainerExitCode":3,"ID":"' + "ab" * 32 + '","Image":"busybox","Name":"web",'
        '"Status":"died","Time":"2026-12-01T08:21:58.641735485Z","Type":"container",'
        '"Attributes":{}}')
    assert events.Event.from_json(e.to_json()) == e
    pull = events.Event("image", "pull", NOW, name="busybox")
    assert pull.to_json() == {"Name": "busybox", "Status": "pull",
                              "Time": "2026-12-01T08:21:58Z", "Type": "image",
                              "Attributes": None}


def test_rotation_keeps_one_older_file_and_reading_spans_both(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setattr(events, "ROTATE_BYTES", 2000)
    for i in range(30):
        assert events.emit(str(tmp_path), "volume", "create", name=f"v{i:02d}") is not None
    assert (tmp_path / "events.log.1").exists()
    names = [e.name for e in events.read(str(tmp_path), events.ReadOptions(stream=False))]
    # what is left is the newest, in order, with nothing missing in between
    assert names == [f"v{i:02d}" for i in range(30 - len(names), 30)]
    assert len(names) >= 2000 // 120


def test_a_torn_or_foreign_line_is_skipped(tmp_path: Path) -> None:
    events.emit(str(tmp_path), "volume", "create", name="a")
    with open(tmp_path / "events.log", "ab") as f:
        f.write(b'{"Name":"half\n[1,2]\nnot json\n')
    events.emit(str(tmp_path), "volume", "create", name="b")
    with open(tmp_path / "events.log", "ab") as f:
        f.write(b'{"Name":"being written')  # no newline yet: not an event
    got = [e.name for e in events.read(str(tmp_path), events.ReadOptions(stream=False))]
    assert got == ["a", "b"]
