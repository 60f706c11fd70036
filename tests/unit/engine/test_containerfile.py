"""The Containerfile parser and docker's word rules: lines, continuations, directives,
heredocs, flags, variable expansion, .dockerignore patterns, and errors with line numbers."""

from __future__ import annotations

import pytest

from rongqi.engine import containerfile as cf
from rongqi.engine.build import Ignore


def test_stages_names_and_meta_args():
    f = cf.parse("ARG V=1\nFROM busybox:$V AS Build\nRUN true\nFROM scratch\nCOPY --from=build /a /a\n")
    assert [s.name for s in f.stages] == ["build", ""]
    assert f.stages[0].base == "busybox:$V"
    assert [a.rest for a in f.meta_args] == ["V=1"]
    assert f.stage("BUILD") is f.stages[0] and f.stage("1") is f.stages[1]
    assert f.stages[1].instructions[0].flag("from") == "build"


def test_continuations_skip_comments_and_empty_lines():
    f = cf.parse("FROM x\nRUN echo a \\\n# inner comment\n\n  && echo b\nCMD c\n")
    run = f.stages[0].instructions[0]
    assert run.rest == "echo a   && echo b"
    assert run.line == 2
    assert f.stages[0].instructions[1].line == 6


def test_escape_directive_backtick():
    f = cf.parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo b\n")
    assert f.escape == "`"
    assert f.stages[0].instructions[0].rest == "dir c:\\   && echo b"


def test_syntax_directive_is_noted_and_directives_end_at_first_other_line():
    f = cf.parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n")
    assert f.syntax == "docker/dockerfile:1" and f.escape == "`"
    f = cf.parse("FROM x\n# escape=`\nRUN a \\\n b\n")
    assert f.escape == "\\"


def test_exec_and_shell_forms():
    f = cf.parse('FROM x\nCMD ["a", "b c"]\nENTRYPOINT echo hi\nRUN [not json\n')
    cmd, ep, run = f.stages[0].instructions
    assert cmd.json_form == ["a", "b c"]
    assert ep.json_form is None
    assert cf.shell_or_exec(ep, ["/bin/sh", "-c"]) == (["/bin/sh", "-c", "echo hi"], True)
    assert run.json_form is None   # not valid JSON: the shell form, as docker


def test_heredocs_plain_chomped_and_quoted():
    text = ("FROM x\nRUN <<EOF\necho $A\nEOF\nCOPY <<-\"END\" /f\n\tkeep $A\n\tEND\n"
            "RUN cat <<A <<B\n1\nA\n2\nB\nCMD z\n")
    f = cf.parse(text)
    run, copy, two, last = f.stages[0].instructions
    assert run.heredocs[0].content == "echo $A\n" and run.heredocs[0].expand
    assert copy.heredocs[0].content == "keep $A\n" and not copy.heredocs[0].expand
    assert copy.heredocs[0].chomp
    assert [h.content for h in two.heredocs] == ["1\n", "2\n"]
    assert last.cmd == "CMD" and last.line == 13


def test_unterminated_heredoc_names_file_and_line():
    with pytest.raises(cf.ContainerfileError) as e:
        cf.parse("FROM x\nRUN <<EOF\necho\n", "Dockerfile")
    assert str(e.value) == ("Dockerfile: dockerfile parse error on line 2: unterminated "
                            'heredoc EOF: no line "EOF" ends it')
    assert e.value.exit_code == 125


@pytest.mark.parametrize("text,msg", [
    ("FROM x\nFOO bar\n", "line 2: unknown instruction: FOO"),
    ("RUN x\n", "line 1: no build stage in current context"),
    ("FROM x\nCOPY --frm=a b c\n", "line 2: unknown flag: frm"),
    ("FROM a b\n", "line 1: FROM requires either one or three arguments"),
    ("FROM a AS x\nFROM b AS x\n", 'line 2: duplicate stage name "x"'),
    ("FROM x\nSHELL sh -c\n", "line 2: SHELL requires the arguments to be in JSON form"),
    ("FROM x\nONBUILD FROM y\n", "line 2: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM x\nENV\n", "line 2: ENV requires at least one argument"),
])
def test_parse_errors_in_dockers_words(text, msg):
    with pytest.raises(cf.ContainerfileError) as e:
        cf.parse(text, "Containerfile")
    assert str(e.value) == f"Containerfile: dockerfile parse error on {msg}"


def test_empty_file():
    with pytest.raises(cf.ContainerfileError, match="cannot be empty"):
        cf.parse("# only a comment\n\n")


def test_variable_expansion_forms():
    lx = cf.Lexer()
    env = {"A": "1", "E": ""}
    assert lx.expand("$A ${A} ${B:-d} ${B-d} ${E:-d} ${E-d}", env) == "1 1 d d d "
    assert lx.expand("${A:+x} ${B:+x} ${E+x} ${E:+x}", env) == "x  x "
    assert lx.expand("'$A' \"$A\" \\$A", env) == "$A 1 $A"
    assert lx.expand("${B:-${A}}", env) == "1"
    with pytest.raises(cf.ContainerfileError, match="B: gone"):
        lx.expand("${B:?gone}", env)


def test_key_values_new_and_legacy_forms():
    lx = cf.Lexer()
    f = cf.parse('FROM x\nENV A=1 B="two words" C=$A\nENV D the rest  of it\nLABEL "k 1"=v\n')
    e1, e2, lab = f.stages[0].instructions
    assert cf.key_values(e1, {"A": "z"}, lx) == [("A", "1"), ("B", "two words"), ("C", "z")]
    assert cf.key_values(e2, {}, lx) == [("D", "the rest  of it")]
    assert cf.key_values(lab, {}, lx) == [("k 1", "v")]


def test_words_for_copy_json_and_plain():
    lx = cf.Lexer()
    f = cf.parse('FROM x\nCOPY ["a b", "$D/"]\nCOPY a*  ${D}\n')
    j, p = f.stages[0].instructions
    assert cf.plain_words(j, {"D": "/d"}, lx) == ["a b", "/d/"]
    assert cf.plain_words(p, {"D": "/d"}, lx) == ["a*", "/d"]


def test_durations():
    assert cf.duration_ns("1m30s", "interval") == 90_000_000_000
    assert cf.duration_ns("500ms", "timeout") == 500_000_000
    with pytest.raises(cf.ContainerfileError):
        cf.duration_ns("5x", "interval")


def test_dockerignore_patterns():
    ig = Ignore(["# comment", "*.log", "build/", "**/secret*", "!keep.log", "/docs/**/*.md",
                 "tmp?"])
    assert ig.excluded("a.log") and not ig.excluded("keep.log")
    assert not ig.excluded("sub/a.log")          # * does not cross /
    assert ig.excluded("build") and ig.excluded("build/x/y")   # a directory and its contents
    assert ig.excluded("secret.txt") and ig.excluded("a/b/secret")
    assert ig.excluded("docs/a/b/x.md") and ig.excluded("docs/x.md")
    assert not ig.excluded("docs/x.txt")
    assert ig.excluded("tmp1") and not ig.excluded("tmp12")
    assert not ig.excluded("src/main.py")


def test_build_glob_is_per_component_and_stays_in_its_tree(tmp_path):
    from rongqi.engine.build import _glob
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("")
    (tmp_path / "a" / "sub").mkdir()
    (tmp_path / "a" / "sub" / "y.txt").write_text("")
    (tmp_path / "b.txt").write_text("")
    os_link = tmp_path / "out"
    os_link.symlink_to("/etc")
    assert _glob(str(tmp_path), "*.txt") == ["b.txt"]
    assert _glob(str(tmp_path), "a/*.txt") == ["a/x.txt"]
    assert _glob(str(tmp_path), "*/*/y.txt") == ["a/sub/y.txt"]
    assert _glob(str(tmp_path), "out/pass*") == []     # never lists through a link out


def test_build_mount_fields_and_healthcheck():
    from rongqi.engine.build import _healthcheck, _mount_fields
    assert _mount_fields("type=cache,dst=/c,ro") == {"type": "cache", "dst": "/c", "ro": "",
                                                     "target": "/c"}
    hc = _healthcheck(cf.parse('FROM x\nHEALTHCHECK --retries=2 CMD ["a", "b"]\n')
                      .stages[0].instructions[0], ["/bin/sh", "-c"])
    assert hc == {"Test": ["CMD", "a", "b"], "Retries": 2}
    assert _healthcheck(cf.parse("FROM x\nHEALTHCHECK NONE\n").stages[0].instructions[0],
                        []) == {"Test": ["NONE"]}
    with pytest.raises(cf.ContainerfileError, match="Unknown type"):
        _healthcheck(cf.parse("FROM x\nHEALTHCHECK RUN x\n").stages[0].instructions[0], [])


def test_build_image_id_is_stable_for_the_same_steps():
    from rongqi.engine.build import ImageState
    cfg = {"config": {"Env": ["A=1"], "Cmd": None},
           "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "x"}]}
    a, b = ImageState(cfg, [], "k"), ImageState(json_copy(cfg), [], "k")
    assert a.image_id() == b.image_id()
    assert a.final_config()["created"] == "2026-01-01T00:00:00Z"
    assert "Cmd" not in a.final_config()["config"]
    assert a.final_config({"l": "v"})["config"]["Labels"] == {"l": "v"}


def json_copy(d):
    import json
    return json.loads(json.dumps(d))
