"""stats (live figures from the container's cgroup: memory of a container that allocates, CPU
of a busy one, a table updated in place), top (the container's processes, psgo descriptors,
ps(1) run in the container for its own options) and port."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import time

import pytest

from rq import rq  # noqa: F401 - the fixture

pytestmark = pytest.mark.root

_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


def _bytes(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)([kMGT]?B)", text.strip())
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def _sample(rq, ref: str) -> dict:
    r = rq("stats", "--no-stream", "--format", "json", ref, check=True)
    (row,) = json.loads(r.stdout)
    return row


def test_stats_shows_the_memory_a_container_allocates(rq):
    rq("run", "-d", "--name", "mem", "--network", "none", "busybox", "sh", "-c",
       "while [ ! -e /go ]; do sleep 0.1; done; "
       "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null; sleep 600", check=True)
    before = _bytes(_sample(rq, "mem")["mem_usage"].split(" / ")[0])
    rq("exec", "mem", "touch", "/go", check=True)      # now it allocates
    # The 40 MB written to /dev/shm (tmpfs pages, charged to the container) show up as growth;
    # the baseline itself varies with what the kernel charged for making the container.
    row = rq.wait_for(lambda: (s := _sample(rq, "mem")) and
                      _bytes(s["mem_usage"].split(" / ")[0]) > before + 38e6 and s, timeout=30,
                      what="the container's memory use to grow by 40MB")
    used, limit = (_bytes(x) for x in row["mem_usage"].split(" / "))
    assert limit >= used and float(row["mem_percent"].rstrip("%")) > 0
    assert row["name"] == "mem" and int(row["pids"]) >= 1
    assert row["net_io"] == "0B / 0B"     # network none: nothing but lo


def test_stats_with_a_memory_limit_shows_it(rq):
    rq("run", "-d", "--name", "lim", "--memory", "64m", "busybox", "sleep", "600", check=True)
    row = _sample(rq, "lim")
    assert row["mem_usage"].endswith(" / 67.11MB")


def test_stats_cpu_of_a_busy_container(rq):
    rq("run", "-d", "--name", "busy", "busybox", "sh", "-c", "while :; do :; done", check=True)
    time.sleep(1.5)
    r = rq("stats", "--no-stream", "--format", "{{.CPUPerc}} {{.AVGCPU}} {{.UpTime}}", "busy",
           check=True)
    cpu, avg, used = r.stdout.split()
    # a busy loop: well above an idle container's ~0% even on a loaded, shared host
    assert float(cpu.rstrip("%")) > 5 and float(avg.rstrip("%")) > 5
    assert used.endswith("s")


def test_stats_streams_a_table_per_interval(rq):
    rq("run", "-d", "--name", "s1", "busybox", "sleep", "600", check=True)
    p = rq.popen("stats", "--interval", "1", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = b""
        deadline = time.monotonic() + 20
        while out.count(b"NAME") < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([p.stdout], [], [], 1)
            if ready:
                out += os.read(p.stdout.fileno(), 65536)
    finally:
        p.kill()
        p.wait()
    text = out.decode()
    assert text.count("CPU %") >= 2 and text.count(" s1 ") >= 2
    assert "\033[2J" not in text   # not a terminal: tables follow each other


def test_stats_table_all_and_errors(rq):
    rq("run", "-d", "--name", "up", "busybox", "sleep", "600", check=True)
    rq.engine().create(__import__("rongqi.engine.options", fromlist=["x"]).ContainerOptions(
        image="busybox", name="down", command=["true"]))
    r = rq("stats", "--no-stream", check=True)
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM",
                              "%", "NET", "IO", "BLOCK", "IO", "PIDS", "CPU", "TIME", "AVG",
                              "CPU", "%"]
    assert [row.split()[1] for row in rows] == ["up"]
    r = rq("stats", "-a", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDS}}",
           check=True)
    assert "down 0B / 0B 0" in r.stdout.splitlines()
    r = rq("stats", "--no-stream", "nosuch")
    assert r.returncode == 125 and 'no container with name or ID "nosuch"' in r.stderr
    assert rq("container", "stats", "--no-stream", "up", check=True).stdout.count("up") == 1


def test_top_lists_the_containers_processes(rq):
    rq("run", "-d", "--name", "t", "busybox", "sh", "-c", "sleep 500 & sleep 600; true",
       check=True)
    rq.wait_for(lambda: "sleep 500" in rq("top", "t").stdout, what="both processes")
    lines = rq("top", "t", check=True).stdout.splitlines()
    assert lines[0].split() == ["USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME",
                                "COMMAND"]
    rows = [line.split() for line in lines[1:]]
    cmds = {" ".join(r[7:]): r for r in rows}
    assert set(cmds) == {"sh -c sleep 500 & sleep 600; true", "sleep 500", "sleep 600"}
    assert cmds["sh -c sleep 500 & sleep 600; true"][1:3] == ["1", "0"]
    assert cmds["sleep 500"][2] == "1" and cmds["sleep 500"][0] == "root"
    r = rq("top", "t", "pid", "comm", "hpid", "%U", check=True)
    header, *rows = [line.split() for line in r.stdout.splitlines()]
    assert header == ["PID", "COMMAND", "HPID", "USER"]
    hpids = {int(row[2]) for row in rows}
    assert all(os.path.exists(f"/proc/{p}") for p in hpids)
    # ps(1) options: ps runs in the container (busybox's here)
    r = rq("top", "t", "-o", "pid,comm", check=True)
    assert r.stdout.split()[:2] == ["PID", "COMMAND"] and "sleep" in r.stdout
    assert rq("container", "top", "t", "pid", check=True).stdout.split()[0] == "PID"


def test_top_of_a_stopped_container_is_an_error(rq):
    rq("run", "--name", "gone", "busybox", "true", check=True)
    r = rq("top", "gone")
    assert (r.returncode, r.stderr) == (125, "Error: top can only be used on running "
                                             "containers\n")


def test_port_shows_recorded_mappings(rq):
    rq("run", "-d", "--name", "web", "-p", "8080:80", "-p", "127.0.0.1:5353:53/udp", "busybox",
       "sleep", "600", check=True)
    assert rq("port", "web", check=True).stdout == ("80/tcp -> 0.0.0.0:8080\n"
                                                  "53/udp -> 127.0.0.1:5353\n")
    assert rq("port", "web", "80", check=True).stdout == "0.0.0.0:8080\n"
    assert rq("port", "web", "53/udp", check=True).stdout == "127.0.0.1:5353\n"
    r = rq("port", "web", "81")
    assert (r.returncode, r.stderr) == (125, 'Error: failed to find published port "81/tcp"\n')
    cid = rq.engine().get("web").id
    assert rq("port", "--all", check=True).stdout.startswith(f"{cid[:12]}\t80/tcp -> ")
    assert rq("container", "port", "web", "80", check=True).stdout == "0.0.0.0:8080\n"


def test_stats_on_a_terminal_redraws_the_table_in_place(rq):
    import pty
    rq("run", "-d", "--name", "tt", "busybox", "sleep", "600", check=True)
    master, slave = pty.openpty()
    p = rq.popen("stats", "--interval", "1", stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 20
        while out.count(b" tt ") < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
    finally:
        p.kill()
        p.wait()
        os.close(master)
    # each sample: cursor home and clear, then the whole table again
    assert out.count(b"\x1b[H\x1b[2J") >= 2 and out.count(b" tt ") >= 2
