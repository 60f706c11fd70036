"""POST /build's stream in the classic builder's shape around RUN steps, line for line as
dockerd 20.10 prints it (compared with a dockerd of our own on this host): ` ---> ID` after
FROM, ` ---> Running in ID` before a RUN step's output and `Removing intermediate container
ID` after it, then ` ---> IMAGE`; dockerd's words for a failed RUN (`--force-rm` shows the
removal); and the RUN container's hostname is that id's short form (dockerd, buildah)."""

from __future__ import annotations

import json
import re
from typing import Any

HEX12 = re.compile(r"^[0-9a-f]{12}$")


def _after(lines: list[str], prefix: str) -> str:
    """What follows `prefix` on the one line that starts with it."""
    [hit] = [x for x in lines if x.startswith(prefix)]
    return hit[len(prefix):]


def test_run_steps_show_their_containers_as_the_classic_builder(serve: Any, tmp_path: Any) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f").write_text("x\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nENV A=1\nRUN hostname\nCOPY f /f\n"
        # output that does not end its line; and a forged event (its token is not the build's)
        "RUN printf '\\036feedface running %064d\\n' 7; printf 'no newline'\n"
        "CMD [\"sh\"]\n")
    p = serve.docker("build", "--network", "none", "-t", "lines:1", str(ctx))
    out = p.stdout.split("\n")   # not splitlines: \x1e ends a line there
    [base] = json.loads(serve.docker("image", "inspect", "busybox").stdout)
    i = out.index("Step 1/6 : FROM busybox")
    assert out[i + 1] == f" ---> {base['Id'][7:19]}"
    assert out[i + 2] == "Step 2/6 : ENV A=1" and HEX12.match(out[i + 3][6:])
    # RUN: Running in ID, its output (the hostname: that id), Removing ..., the step's image
    i = out.index("Step 3/6 : RUN hostname")
    cid = out[i + 1].removeprefix(" ---> Running in ")
    assert HEX12.match(cid), out[i + 1]
    assert out[i + 2] == cid
    assert out[i + 3] == f"Removing intermediate container {cid}"
    assert HEX12.match(out[i + 4].removeprefix(" ---> "))
    i = out.index("Step 4/6 : COPY f /f")
    assert HEX12.match(out[i + 1].removeprefix(" ---> ")) and out[i + 2].startswith("Step 5/6")
    cid2 = out[i + 3].removeprefix(" ---> Running in ")
    assert HEX12.match(cid2) and cid2 != cid
    assert out[i + 4].endswith("running " + "0" * 63 + "7"), out  # output, not an event
    assert out[i + 5] == f"no newlineRemoving intermediate container {cid2}"   # as dockerd's
    assert not any(x.startswith(" ---> Running in 0000") for x in out)
    # the last step's image is the one built
    built = _after(out, "Successfully built ")
    assert out[out.index(f"Successfully built {built}") - 1] == f" ---> {built}"
    [doc] = json.loads(serve.docker("image", "inspect", "lines:1").stdout)
    assert doc["Id"][7:19] == built
    # rongqi build's own output stays podman's: no event lines, a 12-hex RUN hostname
    own = serve.rongqi("build", "--network", "none", "--no-cache", "-t", "lines:2",
                       str(ctx)).stdout
    assert "\x1e" not in own.replace("\x1efeedface", "")
    lines = own.split("\n")
    assert HEX12.match(lines[lines.index("STEP 3/6: RUN hostname") + 1])
    serve.docker("rmi", "lines:1")
    serve.rongqi("rmi", "lines:2")


def test_a_failed_run_step_in_dockerds_words(serve: Any, tmp_path: Any) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM busybox\nRUN ["sh", "-c", "exit 5"]\n')
    p = serve.docker("build", "--network", "none", str(ctx), check=False)
    assert p.returncode == 5
    assert p.stderr.strip() == "The command 'sh -c exit 5' returned a non-zero code: 5"
    out = p.stdout.split("\n")
    assert HEX12.match(out[-2].removeprefix(" ---> Running in ")), out  # as dockerd's rm
    assert not any(x.startswith("Removing intermediate") for x in out)
    p = serve.docker("build", "--force-rm", "--network", "none", str(ctx), check=False)
    assert p.returncode == 5
    out = p.stdout.split("\n")
    cid = out[-3].removeprefix(" ---> Running in ")
    assert out[-2] == f"Removing intermediate container {cid}"
