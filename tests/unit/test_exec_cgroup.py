"""exec --cgroup's argument, as runc parses it: `path` for every hierarchy, or
`controller[,controller]:path` per controller; always below the container's own cgroup."""

from __future__ import annotations

import pytest

from rongqi.errors import UsageError
from rongqi.oci.execution import sub_cgroup_dirs

V1 = {"memory": "/sys/fs/cgroup/memory/c", "pids": "/sys/fs/cgroup/pids/c", "name=systemd": "/sys/fs/cgroup/systemd/c",
      "unified": "/sys/fs/cgroup/unified/c"}
V2 = {"unified": "/sys/fs/cgroup/c"}


def test_a_bare_path_is_below_the_container_in_every_hierarchy() -> None:
    assert sub_cgroup_dirs(V1, ["sub/x"]) == {k: v + "/sub/x" for k, v in V1.items()}
    assert sub_cgroup_dirs(V2, ["/sub"]) == {"unified": "/sys/fs/cgroup/c/sub"}


def test_controller_prefixes_choose_hierarchies_and_the_rest_stay() -> None:
    dirs = sub_cgroup_dirs(V1, ["memory,pids:a", "name=systemd:b"])
    assert dirs == {"memory": V1["memory"] + "/a", "pids": V1["pids"] + "/a", "name=systemd": V1["name=systemd"] + "/b",
                    "unified": V1["unified"]}
    assert sub_cgroup_dirs(V1, ["memory:"]) == V1  # runc: the container's own cgroup


@pytest.mark.parametrize("args, words", [
    (["a:b:c"], "invalid --cgroup argument: a:b:c"),
    (["sub", "memory:sub"], "invalid --cgroup argument: sub (missing <controller>: prefix)"),
    (["nosuch:sub"], "unknown controller nosuch in SubCgroupPaths"),
    (["memory:../x"], "../x is not a sub cgroup path"),
    (["../c2"], "../c2 is not a sub cgroup path"),
    (["memory:sub"], "unknown controller memory"),  # v2: one tree, bare paths only (as runc)
])
def test_what_runc_refuses_is_refused_in_its_words(args: list[str], words: str) -> None:
    with pytest.raises(UsageError, match="^exec --cgroup: " + words.replace("(", r"\(").replace(")", r"\)")):
        sub_cgroup_dirs(V2 if args == ["memory:sub"] else V1, args)
