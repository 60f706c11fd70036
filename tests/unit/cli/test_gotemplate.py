"""The Go template engine beyond the recorded podman cases: Go's printing of values, the dict and
struct models, variables and control flow, podman's normalisation, and one-line errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rongqi.cli import gotemplate as gt
from rongqi.cli.gotemplate import Struct, TemplateError, go_sprint, go_sprintf
from rongqi.cli.output import GoTime, render_each, render_one
from rongqi.errors import RongqiError


def run(template: str, data: object) -> str:
    return gt.Template(template, "t").execute(data)


# -- Go's printing of values ---------------------------------------------------------------------
@pytest.mark.parametrize(("value", "printed"), [
    ({"b": 2, "a": 1}, "map[a:1 b:2]"),
    ({}, "map[]"),
    ([1, "x", None], "[1 x <nil>]"),
    ([], "[]"),
    ([[1, 2], {"k": [3]}], "[[1 2] map[k:[3]]]"),
    (True, "true"),
    (None, "<nil>"),
    (3, "3"),
    (-0.5, "-0.5"),
    (1.0, "1"),
    (100000.0, "100000"),
    (1000000.0, "1e+06"),
    (123456789.0, "1.23456789e+08"),
    (0.0001, "0.0001"),
    (0.00001, "1e-05"),
    (1e21, "1e+21"),
    (float("inf"), "+Inf"),
    (float("nan"), "NaN"),
    ({2: "b", 10: "a"}, "map[2:b 10:a]"),  # numeric keys sort by value
])
def test_values_print_as_go_prints_them(value: object, printed: str) -> None:
    assert go_sprint(value) == printed


def test_a_struct_prints_its_values_in_order_and_plus_v_names_them() -> None:
    s = Struct("define.Version", Version="4.3.1", Built=0, OsArch="linux/amd64")
    assert run("{{.}}", s) == "{4.3.1 0 linux/amd64}"
    assert run('{{printf "%+v" .}}', s) == "{Version:4.3.1 Built:0 OsArch:linux/amd64}"
    assert run("{{json .}}", s) == '{"Version":"4.3.1","Built":0,"OsArch":"linux/amd64"}'


def test_a_dataclass_is_a_struct() -> None:
    @dataclass
    class Port:
        HostPort: int
        Protocol: str

    assert run("{{.}} {{.HostPort}}", Port(8080, "tcp")) == "{8080 tcp} 8080"
    with pytest.raises(TemplateError, match="can't evaluate field Nope in type Port"):
        run("{{.Nope}}", Port(1, "udp"))


@pytest.mark.parametrize(("fmt", "args", "printed"), [
    ("%d|%5d|%-5d|%05d|%+d|%x|%X|%o|%b|%#x", [42, 42, 42, 42, 42, 255, 255, 8, 5, 255],
     "42|   42|42   |00042|+42|ff|FF|10|101|0xff"),
    ("%s|%10s|%-10s|%.2s|%q", ["abc", "abc", "abc", "abc", 'a"b'],
     'abc|       abc|abc       |ab|"a\\"b"'),
    ("%f|%.2f|%8.3f|%e|%g|%.3g", [3.14159, 3.14159, 3.14159, 1234.5678, 0.000012, 1234.5678],
     "3.141590|3.14|   3.142|1.234568e+03|1.2e-05|1.23e+03"),
    ("%v %v %v", [[1, 2], {"a": "b"}, None], "[1 2] map[a:b] <nil>"),
    ("%t %c %U", [True, 0x4E16, 0x4E16], "true 世 U+4E16"),
    ("%T %T %T %T %T", [1, 1.5, "s", ["a"], {"k": "v"}],
     "int float64 string []string map[string]string"),
    ("%d", ["x"], "%!d(string=x)"),
    ("%s %s", ["one"], "one %!s(MISSING)"),
    ("%s", ["a", 2], "a%!(EXTRA int=2)"),
    ("100%%", [], "100%"),
    ("%*d|%-*d|", [4, 7, 3, 1], "   7|1  |"),
])
def test_printf_formats_as_go_fmt_does(fmt: str, args: list[object], printed: str) -> None:
    assert go_sprintf(fmt, args) == printed


# -- fields, maps, nil and "no value" ------------------------------------------------------------
def test_a_missing_map_key_is_no_value_and_its_fields_too() -> None:
    data = {"Labels": {"app": "web"}, "State": None}
    assert run("{{.Nope}}|{{.Labels.nope}}|{{.Nope.Deeper}}", data) == \
        "<no value>|<no value>|<no value>"
    # index of a map of strings gives the zero string, as Go's map[string]string does
    assert run('[{{index .Labels "nope"}}]', data) == "[]"


def test_a_field_of_nil_is_an_error_and_nil_prints_as_no_value() -> None:
    data = {"State": None}
    assert run("{{.State}}", data) == "<no value>"
    with pytest.raises(TemplateError) as e:
        run("{{.State.Status}}", data)
    assert str(e.value) == ('template: t:1:8: executing "t" at <.State.Status>: '
                            'nil pointer evaluating interface {}.Status')


def test_a_struct_field_it_lacks_is_an_error_with_gos_wording() -> None:
    with pytest.raises(TemplateError) as e:
        run("{{.Status}}", Struct("define.Version", Version="1"))
    assert str(e.value) == ('template: t:1:2: executing "t" at <.Status>: '
                            "can't evaluate field Status in type define.Version")


def test_only_listed_methods_of_objects_are_called_with_their_arguments() -> None:
    removed = []

    class Box:
        Name = "web"
        template_methods = ("Short",)

        def Short(self, n: int) -> str:  # noqa: N802 - a Go-style method name
            return self.Name[:n]

        def remove(self) -> None:
            removed.append(self)

        @property
        def Size(self) -> int:  # noqa: N802
            return 3

    assert run("{{.Name}} {{.Short 2}} {{.Size}}", Box()) == "web we 3"
    with pytest.raises(TemplateError, match="can't evaluate field remove in type Box"):
        run("{{.remove}}", Box())
    assert removed == []
    t = GoTime("2026-12-01T08:21:58.35775909Z")
    assert run("{{.T.Unix}} {{.T.UnixNano}}", {"T": t}) == "1796113318 1796113318357759090"
    assert run("{{json .T}}", {"T": t}) == '"2026-12-01T08:21:58.35775909Z"'


# -- control flow and variables ------------------------------------------------------------------
def test_range_over_a_map_visits_keys_sorted_and_binds_key_and_value() -> None:
    assert run("{{range $k, $v := .}}{{$k}}={{$v}};{{end}}", {"b": 2, "a": 1}) == "a=1;b=2;"
    assert run("{{range $v := .}}{{$v}}{{end}}", {"b": 2, "a": 1}) == "12"


def test_range_else_break_continue_and_dollar() -> None:
    data = {"Items": [1, 2, 3, 4], "Empty": [], "Name": "n"}
    assert run("{{range .Empty}}x{{else}}none{{end}}", data) == "none"
    assert run("{{range .Items}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}", data) == "12"
    assert run("{{range .Items}}{{if eq . 2}}{{continue}}{{end}}{{.}}{{end}}", data) == "134"
    assert run("{{range .Items}}{{$.Name}}{{end}}", data) == "nnnn"
    assert run("{{range .Missing}}x{{else}}nothing{{end}}", data) == "nothing"


def test_variables_are_scoped_to_their_block_and_assignable() -> None:
    assert run("{{$x := 1}}{{if true}}{{$x = 2}}{{$y := 3}}{{end}}{{$x}}", {}) == "2"
    with pytest.raises(TemplateError, match='undefined variable "\\$y"'):
        run("{{if true}}{{$y := 3}}{{end}}{{$y}}", {})


def test_if_else_if_chains_and_with_else() -> None:
    t = '{{if eq .S "a"}}A{{else if eq .S "b"}}B{{else if eq .S "c"}}C{{else}}?{{end}}'
    assert [run(t, {"S": s}) for s in "abcd"] == ["A", "B", "C", "?"]
    assert run("{{with .X}}[{{.}}]{{else}}empty{{end}}", {"X": ""}) == "empty"
    assert run("{{with $v := .X}}{{$v}}{{end}}", {"X": "set"}) == "set"


def test_truth_is_gos_empty_values() -> None:
    falsy = [False, 0, 0.0, "", [], {}, None]
    assert all(run("{{if .}}t{{else}}f{{end}}", v) == "f" for v in falsy)
    assert run("{{if .}}t{{end}}", Struct("S")) == "t"  # a struct is always true


def test_and_or_return_a_deciding_argument_and_stop_there() -> None:
    assert run("{{and 1 0 .Nope.X}}|{{or 0 \"\" \"x\"}}|{{or 0 \"\"}}", {"Nope": None}) == \
        "0|x|"


def test_pipelines_pass_the_value_as_the_last_argument() -> None:
    data = {"Names": ["a", "b"], "Id": "0123456789abcdef"}
    assert run('{{.Names | json}}|{{"x" | printf "%s-%s" "y"}}|{{.Id | printf "%.4s"}}',
               data) == '["a","b"]|y-x|0123'
    assert run('{{join .Names ", " | upper}}', data) == "A, B"


def test_whitespace_trimming_and_comments() -> None:
    assert run("a  {{- 1 -}}  b", {}) == "a1b"
    assert run("a {{- /* gone */ -}} b", {}) == "ab"
    assert run("{{/* a\nmulti-line comment */}}x", {}) == "x"
    assert run("{{-3}}", {}) == "-3"  # "{{-" without a space is a number, not a trim


def test_define_template_and_block() -> None:
    t = '{{define "row"}}<{{.}}>{{end}}{{range .}}{{template "row" .}}{{end}}'
    assert run(t, ["a", "b"]) == "<a><b>"
    assert run('{{block "x" .}}[{{.}}]{{end}}', "v") == "[v]"


def test_literals_numbers_strings_and_chars() -> None:
    assert run(r'{{"a\tb"}}|{{`raw\n`}}|{{0x1F}}|{{0o17}}|{{1_000}}|{{.5}}|{{1e3}}|{{'
               r"'a'}}", {}) == "a\tb|raw\\n|31|15|1000|0.5|1000|97"


def test_podman_functions() -> None:
    assert run('{{pad "ab" 1 2}}|{{truncate "abcdef" 3}}|{{title "hello world"}}|'
               '{{split "a,b" ","}}|{{lower "AB"}}|{{upper "ab"}}', {}) == \
        " ab  |abc|Hello World|[a b]|ab|AB"


def test_builtin_functions_len_index_slice_comparisons() -> None:
    data = {"L": [10, 20, 30], "M": {"a.b": "c"}, "S": "hello"}
    assert run('{{len .L}} {{index .L 1}} {{index .M "a.b"}} {{slice .L 1 2}} {{slice .S 1}}',
               data) == "3 20 c [20] ello"
    assert run("{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge 2 3}} {{ne 1 2}} {{eq 1 2 1}}", {}) == \
        "true true false false true true"
    assert run('{{html "<a&b>"}} {{js "it\'s"}} {{urlquery "a b&c"}}', {}) == \
        "&lt;a&amp;b&gt; it\\'s a+b%26c"


# -- errors: one line, Go's wording, exit 125 ----------------------------------------------------
@pytest.mark.parametrize(("template", "message"), [
    ("{{.X", "template: t:1: unclosed action"),
    ("{{if .X}}a", "template: t:1: unexpected EOF"),
    ("{{end}}", "template: t:1: unexpected {{end}}"),
    ("{{else}}", "template: t:1: unexpected {{else}}"),
    ("{{nosuch .X}}", 'template: t:1: function "nosuch" not defined'),
    ("{{$x}}", 'template: t:1: undefined variable "$x"'),
    ("{{}}", "template: t:1: missing value for command"),
    ("{{if}}x{{end}}", "template: t:1: missing value for if"),
    ('{{"abc}}', "template: t:1: unterminated quoted string"),
    ("{{.X | 1}}", "template: t:1: non executable command in pipeline stage 2"),
    ("{{break}}", "template: t:1: {{break}} outside {{range}}"),
    ("{{.X #}}", "template: t:1: bad character U+0023 '#'"),
    ("{{/* x }}", "template: t:1: unclosed comment"),
    ("{{upper 3}}", 'template: t:1:8: executing "t" at <3>: expected string; found 3'),
    ("{{upper .N}}",
     'template: t:1:8: executing "t" at <.N>: wrong type for value; expected string; got int'),
    ("{{pad .S}}", 'template: t:1:2: executing "t" at <pad>: wrong number of args for pad: '
                   "want 3 got 1"),
    ("{{index .L 9}}", 'template: t:1:2: executing "t" at <index .L 9>: error calling index: '
                       "index out of range: 9"),
    ("{{len .N}}", 'template: t:1:2: executing "t" at <len .N>: error calling len: '
                   "len of type int"),
    ('{{lt .S 1}}', 'template: t:1:2: executing "t" at <lt .S 1>: error calling lt: '
                    "incompatible types for comparison"),
    ("{{range .N}}{{end}}", 'template: t:1:8: executing "t" at <.N>: range can\'t iterate '
                            "over 5"),
    ("{{nil}}", 'template: t:1:2: executing "t" at <nil>: nil is not a command'),
    ("{{.S.X}}", "template: t:1:4: executing \"t\" at <.S.X>: can't evaluate field X in type "
                 "string"),
    ('{{template "nope"}}', 'template: t:1:2: executing "t" at <{{template "nope"}}>: '
                            'template "nope" not defined'),
])
def test_errors_are_one_line_in_gos_wording(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as e:
        run(template, {"S": "s", "N": 5, "L": [1]})
    assert str(e.value) == message
    assert "\n" not in str(e.value)
    assert isinstance(e.value, RongqiError) and e.value.exit_code == 125


def test_nesting_too_deep_is_an_error_not_a_crash() -> None:
    with pytest.raises(TemplateError, match="max expression depth exceeded"):
        run("{{" + "(" * 5000 + "1" + ")" * 5000 + "}}", {})
    with pytest.raises(TemplateError, match="exceeded maximum template depth"):
        run('{{define "a"}}{{template "a"}}{{end}}{{template "a"}}', {})


# -- podman's handling of CLI format strings -----------------------------------------------------
def test_escapes_typed_on_the_command_line_become_tabs_and_newlines() -> None:
    assert gt.normalize(r"{{.A}}\t{{.B}}\n") == ("{{.A}}\t{{.B}}\n", False)
    assert gt.normalize("{{.A}}") == ("{{.A}}\n", False)
    # table: the keyword goes, spaces become column breaks
    assert gt.normalize(r"table {{.A}} {{.B}}\t{{.C}}") == ("{{.A}}\t{{.B}}\t{{.C}}\n", True)


def test_an_escape_inside_a_quoted_string_is_left_to_go() -> None:
    # podman: normalizing would break the string, so the format runs as typed
    assert render_each([{}], r'x{{"\n"}}y') == "x\ny"
    assert render_each([{}], r'{{"a"}}\n{{"b"}}') == "a\nb\n"


def test_a_format_that_fails_is_reported_as_the_user_typed_it() -> None:
    # podman falls back to the format as typed, so the line is the user's, not the
    # normalized text's (which has a newline and {{end}} appended)
    with pytest.raises(TemplateError, match="^template: ps:1: unexpected EOF$"):
        render_each([{}], "{{if .X}}x", name="ps")
    with pytest.raises(TemplateError, match="^template: ps:1: unexpected {{end}}$"):
        render_each([{}], "{{.X}}{{end}}", name="ps")


def test_json_formats_are_recognised_as_podman_does() -> None:
    assert all(gt.is_json(f) for f in ("json", " json ", "{{json .}}", "{{ json . }}", "{{json}}"))
    assert not any(gt.is_json(f) for f in ("{{json .Labels}}", "table json", "{{.json}}"))


def test_enforce_range_keeps_a_template_that_ranges_itself() -> None:
    assert gt.enforce_range("{{.A}}") == "{{range .}}{{.A}}{{end -}}"
    own = "{{range .}}{{.A}}{{end}}"
    assert gt.enforce_range(own) == own
    assert render_each([{"A": 1}, {"A": 2}], "{{range .}}{{.A}},{{end}}") == "1,2,\n"


def test_render_one_runs_the_template_over_one_object() -> None:
    v = Struct("define.Version", Client=Struct("define.Client", Version="0.1.0"))
    assert render_one(v, "{{.Client.Version}}") == "0.1.0\n"
    assert render_one(v, r"{{.Client.Version}}\t|") == "0.1.0\t|\n"
