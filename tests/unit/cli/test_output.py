"""Tables, --format choices, sizes, durations, times and YAML, against what podman 4.3.1 printed
on this machine (images, ps, volume ls, version, info) and Go's tabwriter rules."""

from __future__ import annotations

import pytest

from rongqi.cli.gotemplate import Struct, TemplateError
from rongqi.cli.output import (GoTime, ago, go_time, header_name, human_duration, human_size,
                               render, rfc3339_nano, short_id, status_text, tabwrite, to_json,
                               to_yaml)

IMAGES = [
    {"Repository": "localhost/t", "Tag": "1", "ID": "0a52eb162ba0", "Created": "58 seconds ago",
     "Size": "11.4 kB"},
    {"Repository": "localhost/longer-name-here", "Tag": "latest", "ID": "26522432e675",
     "Created": "58 seconds ago", "Size": "11.3 kB"},
]
IMAGE_HEADERS = {"ID": "IMAGE ID"}
IMAGES_DEFAULT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Created}}\t{{.Size}}"
PS_DEFAULT = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.Created}}\t{{.Status}}\t{{.Ports}}"
              "\t{{.Names}}")
PS_HEADERS = {"ID": "CONTAINER ID", "Pod": "POD ID", "PodName": "PODNAME"}
PS_FIELDS = ["ID", "Image", "Command", "Created", "Status", "Ports", "Names"]


# -- Go's tabwriter (minwidth 12, padding 2, as podman's report package) -------------------------
def test_tabwriter_pads_columns_to_the_widest_cell_plus_two_and_at_least_twelve() -> None:
    assert tabwrite("a\tbb\tc\nlonger-than-twelve\tx\ty\n") == (
        "a                   bb          c\n"
        "longer-than-twelve  x           y\n")


def test_tabwriter_the_last_cell_of_a_line_is_not_padded() -> None:
    assert tabwrite("a\tb\n") == "a           b\n"
    assert tabwrite("a\t\n") == "a           \n"  # a tab-terminated empty cell is padded


def test_tabwriter_a_line_with_fewer_cells_ends_the_column_block() -> None:
    # the second column's width comes from its own block only
    text = "x\tshort\tz\nonly-one-cell\nx\ta-much-longer-cell\tz\n"
    assert tabwrite(text) == ("x           short       z\n"
                              "only-one-cell\n"
                              "x           a-much-longer-cell  z\n")


def test_tabwriter_counts_characters_not_bytes() -> None:
    assert tabwrite("é\tx\n") == "é           x\n"


# -- render: the choice every listing makes ------------------------------------------------------
def test_default_table_is_what_podman_images_printed() -> None:
    assert render(IMAGES, None, default=IMAGES_DEFAULT, headers=IMAGE_HEADERS) == (
        "REPOSITORY                  TAG         IMAGE ID      CREATED         SIZE\n"
        "localhost/t                 1           0a52eb162ba0  58 seconds ago  11.4 kB\n"
        "localhost/longer-name-here  latest      26522432e675  58 seconds ago  11.3 kB\n")


def test_table_format_with_spaces_makes_columns_as_podman_does() -> None:
    assert render(IMAGES, "table {{.ID}} {{.Repository}}", default=IMAGES_DEFAULT,
                  headers=IMAGE_HEADERS) == ("IMAGE ID      REPOSITORY\n"
                                             "0a52eb162ba0  localhost/t\n"
                                             "26522432e675  localhost/longer-name-here\n")


def test_table_headers_go_through_the_template_too() -> None:
    got = render(IMAGES, r"table {{.Repository}}:{{.Tag}}\t{{.Size}}", default=IMAGES_DEFAULT)
    assert got == ("REPOSITORY:TAG                     SIZE\n"
                   "localhost/t:1                      11.4 kB\n"
                   "localhost/longer-name-here:latest  11.3 kB\n")
    got = render(IMAGES, r"table {{.Repository | upper}}\t{{printf `%s` .Tag}}",
                 default=IMAGES_DEFAULT)
    assert got.splitlines()[:2] == ["REPOSITORY                  TAG",
                                    "LOCALHOST/T                 1"]


def test_a_field_the_rows_lack_is_no_value_in_the_header_and_an_error_in_typed_rows() -> None:
    with pytest.raises(TemplateError, match="can't evaluate field Nope in type images"):
        render(IMAGES, r"table {{.ID}}\t{{.Nope}}", default=IMAGES_DEFAULT, row_type="images")
    assert render(IMAGES, r"table {{.ID}}\t{{.Nope}}", default=IMAGES_DEFAULT,
                  noheading=False).splitlines()[0] == "ID            <no value>"


def test_a_plain_format_prints_each_row_raw_without_header_or_alignment() -> None:
    assert render(IMAGES, r"{{.ID}}\t{{.Repository}}", default=IMAGES_DEFAULT) == (
        "0a52eb162ba0\tlocalhost/t\n26522432e675\tlocalhost/longer-name-here\n")


def test_noheading_drops_the_header_row() -> None:
    assert render(IMAGES, None, default=IMAGES_DEFAULT, noheading=True).splitlines()[0] == \
        "localhost/t                 1           0a52eb162ba0  58 seconds ago  11.4 kB"


def test_an_empty_listing_still_has_its_header() -> None:
    assert render([], None, default=PS_DEFAULT, headers=PS_HEADERS, fields=PS_FIELDS) == (
        "CONTAINER ID  IMAGE       COMMAND     CREATED     STATUS      PORTS       NAMES\n")


def test_json_format_prints_the_rows_or_the_given_data_indented_by_four() -> None:
    assert render([], "json", default=PS_DEFAULT) == "[]\n"
    assert render(IMAGES[:1], "{{json .}}", default=IMAGES_DEFAULT,
                  json_data=[{"Id": "x"}]) == '[\n    {\n        "Id": "x"\n    }\n]\n'


def test_headers_are_field_names_split_at_case_changes() -> None:
    assert [header_name(f) for f in ("ID", "CreatedAt", "ImageID", "RunningFor", "IsInfra",
                                     "HTTPServer", "Names", "MemUsageBytes")] == \
        ["ID", "CREATED AT", "IMAGE ID", "RUNNING FOR", "IS INFRA", "HTTP SERVER", "NAMES",
         "MEM USAGE BYTES"]


def test_version_layout_is_podmans_client_section() -> None:
    from rongqi.cli.output import render_one
    from rongqi.cli.system import VERSION_TEMPLATE
    version = Struct("define.Version", Client=Struct(
        "*define.Version", APIVersion="0.1.0", Version="0.1.0", PythonVersion="python3.11.2",
        GitCommit="", BuiltTime="Thu Jan  1 00:00:00 1970", Built=0, OsArch="linux/amd64",
        Os="linux"))
    # podman 4.3.1 printed "Client:       Podman Engine" ... with Go Version (14 wide); the
    # longest label here is "Python Version:", so the column is 17 wide
    assert tabwrite(render_one(version, VERSION_TEMPLATE)) == (
        "Client:          Rongqi Engine\n"
        "Version:         0.1.0\n"
        "API Version:     0.1.0\n"
        "Python Version:  python3.11.2\n"
        "Built:           Thu Jan  1 00:00:00 1970\n"
        "OS/Arch:         linux/amd64\n")
    version["Client"]["GitCommit"] = "abc"
    assert "Git Commit:      abc\n" in tabwrite(render_one(version, VERSION_TEMPLATE))


# -- sizes, durations, times ---------------------------------------------------------------------
@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"), (999, "999 B"), (1000, "1 kB"), (11449, "11.4 kB"), (1234567, "1.23 MB"),
    (4_400_000_000, "4.4 GB"), (10**16, "10 PB"),
])
def test_sizes_are_go_units_with_three_digits(n: int, text: str) -> None:
    assert human_size(n) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0.4, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (59 * 60, "59 minutes"),
    (3600, "About an hour"), (5399, "About an hour"), (5400, "2 hours"), (47 * 3600, "47 hours"),
    (48 * 3600, "2 days"), (13 * 86400, "13 days"), (14 * 86400, "2 weeks"),
    (60 * 86400, "2 months"), (729 * 86400, "24 months"), (730 * 86400, "2 years"),
])
def test_durations_are_go_units_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_created_and_status_columns_read_as_podmans() -> None:
    now = 1796113320.0
    started = "2026-12-01T08:21:58.4568Z"  # 1.5 s before now
    assert ago(started, now) == "1 second ago"
    assert ago("", now) == "N/A"
    assert status_text("running", started_at=started, now=now) == "Up 1 second ago"
    assert status_text("running", started_at=started, health="healthy", now=now) == \
        "Up 1 second ago (healthy)"
    assert status_text("exited", finished_at="2026-12-01T08:21:00Z", exit_code=3, now=now) == \
        "Exited (3) About a minute ago"
    assert status_text("created") == "Created"
    assert status_text("configured") == "Created"
    assert status_text("paused") == "Paused"


def test_times_print_as_go_prints_a_time_in_utc() -> None:
    import os
    import time
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        _times_in_utc()
    finally:  # the C library keeps the zone it last read: read the old one again
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def _times_in_utc() -> None:
    assert go_time("2026-12-01T08:21:58.35775909Z") == "2026-12-01 08:21:58.35775909 +0000 UTC"
    assert go_time("2026-12-01T08:21:58Z") == "2026-12-01 08:21:58 +0000 UTC"
    assert go_time("2026-12-01T09:21:58.5+01:00") == "2026-12-01 08:21:58.5 +0000 UTC"
    assert rfc3339_nano(1796113318_357759090) == "2026-12-01T08:21:58.35775909Z"
    assert str(GoTime(1796113318)) == "2026-12-01 08:21:58 +0000 UTC"


def test_short_ids() -> None:
    assert short_id("sha256:" + "ab" * 32) == "abababababab"
    assert short_id("cd" * 32, no_trunc=True) == "cd" * 32


# -- JSON and YAML -------------------------------------------------------------------------------
def test_json_is_marshal_indent_with_four_spaces() -> None:
    assert to_json({"a": [1], "t": GoTime(0)}) == \
        '{\n    "a": [\n        1\n    ],\n    "t": "1970-01-01T00:00:00Z"\n}'


def test_inspect_json_is_indented_by_five_as_podmans() -> None:
    from rongqi.cli.output import inspect_json
    assert inspect_json([{"Labels": {"a": "<b&c>"}}]) == (
        '[\n     {\n          "Labels": {\n               "a": "<b&c>"\n          }\n     }\n]')


def test_yaml_is_podman_infos_style() -> None:
    data = {"host": {"arch": "amd64", "cgroupControllers": ["cpuset", "cpu"],
                     "conmon": {"version": "conmon version 2.1.6, commit: unknown"},
                     "distribution": {"version": "12"}, "idMappings": {"gidmap": None},
                     "ociRuntime": {"version": "runc version 1.1.5\nspec: 1.0.2-dev"},
                     "memFree": 24415064064, "rootless": False, "empty": ""},
            "registries": {}, "plugins": {"log": ["k8s-file"], "authorization": None}}
    assert to_yaml(data) == (
        "host:\n"
        "  arch: amd64\n"
        "  cgroupControllers:\n"
        "  - cpuset\n"
        "  - cpu\n"
        "  conmon:\n"
        "    version: 'conmon version 2.1.6, commit: unknown'\n"
        "  distribution:\n"
        "    version: \"12\"\n"
        "  idMappings:\n"
        "    gidmap: null\n"
        "  ociRuntime:\n"
        "    version: |-\n"
        "      runc version 1.1.5\n"
        "      spec: 1.0.2-dev\n"
        "  memFree: 24415064064\n"
        "  rootless: false\n"
        "  empty: \"\"\n"
        "registries: {}\n"
        "plugins:\n"
        "  log:\n"
        "  - k8s-file\n"
        "  authorization: null\n")


def test_an_empty_table_is_headed_from_its_template():
    # podman heads a table with no rows from its struct's fields ("podman images" on an
    # empty store prints the header line alone)
    assert render([], "", default="table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}",
                  headers={"ID": "IMAGE ID"}) == "REPOSITORY  TAG         IMAGE ID    SIZE\n"
