"""`rongqi images` with podman's --format templates, --noheading and --no-trunc, over the
built-in busybox; the default table keeps its layout; `image inspect -f` runs Go templates."""

from __future__ import annotations

import json
import os

import pytest

from rongqi.cli.main import main

pytestmark = pytest.mark.skipif(not os.path.exists("/bin/busybox"),
                                reason="needs busybox-static (apt-get install busybox-static)")


def run(capsys, root, *args):
    code = main(["--root", str(root), "--runroot", str(root / "run"), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    # one store for the module (the tests only read it): the built-in busybox is made once
    path = tmp_path_factory.mktemp("images")
    assert main(["--root", str(path), "--runroot", str(path / "run"), "tag", "busybox",
                 "localhost/longer-name:2"]) == 0
    return path


def test_a_table_template_aligns_as_podman_and_names_its_headers(capsys, root):
    code, out, err = run(capsys, root, "images", "--format",
                         r"table {{.ID}}\t{{.Repository}}:{{.Tag}}\t{{.Size}}")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "IMAGE ID      REPOSITORY:TAG           SIZE"
    image_id, _, size = lines[1].partition("  busybox:latest           ")
    assert len(image_id) == 12 and size.endswith((" kB", " MB"))  # podman's "1.04 MB"
    assert lines[2] == f"{image_id}  localhost/longer-name:2  {size}"


def test_a_plain_template_prints_each_image_raw(capsys, root):
    code, out, _ = run(capsys, root, "images", "--format",
                       "{{.Repository}} {{len .Names}} {{.Containers}} {{.ReadOnly}}")
    assert out == "busybox 2 0 false\nlocalhost/longer-name 2 0 false\n"
    code, out, _ = run(capsys, root, "images", "--format", "{{.CreatedAt}}")
    assert out.splitlines()[0].startswith("1970-01-01 00:00:00 ")  # a Go time.Time


def test_noheading_no_trunc_and_errors(capsys, root):
    _, out, _ = run(capsys, root, "images", "-n")
    assert out.splitlines()[0].split()[:2] == ["busybox", "latest"]
    _, out, _ = run(capsys, root, "images", "--no-trunc")
    assert out.splitlines()[1].split()[2].startswith("sha256:")
    assert len(out.splitlines()[1].split()[2]) == 71
    code, out, err = run(capsys, root, "images", "--format", "{{.Nope}}")
    assert (code, out) == (125, "")
    # column 13: podman counts the {{range .}} it wraps a per-row template in
    assert err == ('Error: template: images:1:13: executing "images" at <.Nope>: can\'t '
                   "evaluate field Nope in type images\n")
    code, _, err = run(capsys, root, "images", "--format", "{{humanize .Size}}")
    assert (code, err) == (125, 'Error: template: images:1: function "humanize" not defined\n')


def test_json_spellings_give_the_json_listing(capsys, root):
    _, plain, _ = run(capsys, root, "images", "--format", "json")
    _, braces, _ = run(capsys, root, "images", "--format", "{{json .}}")
    # podman's shape: one entry per image, its two names in Names
    assert plain == braces and len(json.loads(plain)) == 1
    assert len(json.loads(plain)[0]["Names"]) == 2


def test_image_inspect_format_runs_go_templates(capsys, root):
    code, out, _ = run(capsys, root, "image", "inspect", "-f",
                       '{{.Os}}/{{.Architecture}} {{len .RepoTags}} {{index .RepoTags 0}} '
                       '{{json .RootFS.Type}} {{range .RepoTags}}[{{.}}]{{end}}', "busybox")
    assert code == 0
    assert out == ("linux/amd64 2 docker.io/library/busybox:latest \"layers\" "
                   "[docker.io/library/busybox:latest][localhost/longer-name:2]\n")
    _, out, _ = run(capsys, root, "image", "inspect", "-f", "{{json .}}", "busybox")
    assert json.loads(out)[0]["Os"] == "linux"  # `{{json .}}` is the standard output
