"""How rongqi's commands print: podman's tables, `--format` choices, JSON, YAML, sizes and times.

Owns Go's tabwriter as podman's report package sets it up (minwidth 12, padding 2), the
table / Go template / json choice every listing command makes, header names from field names,
podman's human sizes and durations ("11.4 kB", "5 seconds ago", "Up 3 minutes ago"), Go's
printing of times, and the small YAML that `info` prints.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from rongqi import units
from rongqi.cli import gotemplate
from rongqi.cli.gotemplate import Struct, TemplateError, _is_dataclass

__all__ = ["tabwrite", "render", "render_each", "render_one", "header_name", "headers_for",
           "human_size", "go_units_size", "compact_size", "human_duration", "ago", "since_text",
           "status_text", "short_id", "GoTime", "parse_time_ns", "go_time", "rfc3339_nano",
           "to_json", "inspect_json", "to_yaml", "Struct", "TemplateError"]

# podman's report.NewWriterDefault: tabwriter.NewWriter(w, 12, 2, 2, ' ', 0)
MIN_WIDTH, TAB_WIDTH, PADDING = 12, 2, 2


# -- Go's text/tabwriter -------------------------------------------------------------------------
def tabwrite(text: str, minwidth: int = MIN_WIDTH, padding: int = PADDING) -> str:
    """Align tab-separated cells as Go's tabwriter (padchar ' ', no flags) does: a column is
    a run of consecutive lines that have a tab-terminated cell in it; its width is the widest
    cell plus padding, at least minwidth; the last cell of a line is not part of a column."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []

    def write_lines(widths: list[int], line0: int, line1: int) -> None:
        for i in range(line0, line1):
            line = lines[i]
            for j, cell in enumerate(line):
                out.append(cell)
                if j < len(widths):
                    out.append(" " * (widths[j] - len(cell)))
            if i + 1 < len(lines):
                out.append("\n")

    def format_block(widths: list[int], line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            # A cell exists in this column: the block runs while lines have one.
            write_lines(widths, line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(widths, line0, this)
            widths.pop()
            line0 = this
        write_lines(widths, line0, line1)

    format_block([], 0, len(lines))
    return "".join(out)


# -- headers -------------------------------------------------------------------------------------
def _camel_split(name: str) -> list[str]:
    """containers/common's camelcase.Split (from fatih/camelcase): "CreatedAt" -> Created At,
    "ImageID" -> Image ID, "HTTPServer" -> HTTP Server."""
    runs: list[list[str]] = []
    last = None
    for c in name:
        kind = 1 if c.islower() else 2 if c.isupper() else 3 if c.isdigit() else 4
        if kind == last:
            runs[-1].append(c)
        else:
            runs.append([c])
        last = kind
    for i in range(len(runs) - 1):
        if runs[i][0].isupper() and runs[i + 1][0].islower():
            runs[i + 1].insert(0, runs[i].pop())
    return ["".join(r) for r in runs if r]


def header_name(field: str) -> str:
    """podman's report.Headers: the field name split at case changes, upper-cased."""
    return " ".join(_camel_split(field)).upper()


def _fields_of(row: Any) -> list[str]:
    if isinstance(row, Mapping):
        return [str(k) for k in row]
    if _is_dataclass(row):
        return list(type(row).__dataclass_fields__)
    names = [n for n in dir(row) if not n.startswith("_")]
    return names


class _Headers(dict):  # type: ignore[type-arg]
    """The header row: a field the rows did not name (there are no rows) is still headed by
    its name, as podman heads an empty table from its struct's fields."""

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        return header_name(key) if isinstance(key, str) else default


def headers_for(rows: list[Any], overrides: Mapping[str, str] | None = None,
                fields: Iterable[str] = ()) -> dict[str, str]:
    """The header row's values: every field of the rows (or the given fields) named as podman
    names them, then the command's own names (`ID` -> `CONTAINER ID`), upper-cased."""
    # No rows to name the fields: every field the template asks for is headed by its name.
    names: dict[str, str] = _Headers() if not rows and not fields else {}
    for f in [*fields, *(_fields_of(rows[0]) if rows else [])]:
        names[f] = header_name(f)
    for k, v in (overrides or {}).items():
        names[k] = v.upper()
    return names


# -- the choice every listing command makes ------------------------------------------------------
def render(rows: list[Any], fmt: str | None, *, default: str, headers: Mapping[str, str] | None
           = None, fields: Iterable[str] = (), noheading: bool = False, name: str = "",
           json_data: Any = None, row_type: str | None = None) -> str:
    """What `ps`, `images`, `volume ls`, `events`... print for their rows, as podman decides:
    no --format (or `table`): the command's default table, headed unless --noheading;
    `json` / `{{json .}}`: the rows (or json_data) as indented JSON;
    `table ...`: that template per row, with a header row, aligned by the tabwriter;
    anything else: the template once per row, no header, no alignment.
    rows are dicts, dataclasses or objects; with row_type, dict rows become Structs of that
    type (a field they lack is an error, as for podman's typed rows)."""
    if not fmt or fmt == "table":
        fmt = default
    if gotemplate.is_json(fmt):
        return to_json(rows if json_data is None else json_data) + "\n"
    if row_type:
        rows = [Struct(row_type, r) if isinstance(r, dict) and not isinstance(r, Struct) else r
                for r in rows]
    tmpl, table = gotemplate.compile_format(fmt, name or "template", _ranged)
    out = []
    if table and not noheading:
        out.append(tmpl.execute([headers_for(rows, headers, fields)]))
    out.append(tmpl.execute(rows))
    result = "".join(out)
    return tabwrite(result) if table else result


def _ranged(text: str, table: bool) -> str:
    return "{{range .}}" + text + "{{end -}}" if table else gotemplate.enforce_range(text)


def render_each(items: list[Any], fmt: str, *, name: str = "") -> str:
    """`inspect -f` and other one-object-per-item formats: the template over each item (as
    podman runs it: the items as a list, ranged over unless the template ranges itself)."""
    tmpl, table = gotemplate.compile_format(fmt, name or "template",
                                            lambda t, _: gotemplate.enforce_range(t))
    result = tmpl.execute(items)
    return tabwrite(result) if table else result


def render_one(item: Any, fmt: str, *, name: str = "") -> str:
    """`info -f`, `version -f`: the template over one object, with podman's escapes."""
    tmpl, table = gotemplate.compile_format(fmt, name or "template", lambda t, _: t)
    result = tmpl.execute(item)
    return tabwrite(result) if table else result


# -- JSON and YAML -------------------------------------------------------------------------------
def _plain(v: Any) -> Any:
    if isinstance(v, GoTime):
        return v.rfc3339()
    if _is_dataclass(v):
        return {name: _plain(getattr(v, name)) for name in type(v).__dataclass_fields__}
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def to_json(v: Any, indent: int = 4) -> str:
    """json.MarshalIndent(v, "", "    "): what podman prints for `--format json` (no HTML
    escaping). podman's `inspect` commands indent by 5: use inspect_json."""
    return json.dumps(_plain(v), indent=indent, ensure_ascii=False)


def inspect_json(v: Any) -> str:
    """podman's `inspect` output (container, image, volume...): a list indented by 5 spaces."""
    return to_json(v, indent=5)


_YAML_PLAIN_BAD = re.compile(r"^[-?:,\[\]{}#&*!|>'\"%@`]|: | #|^\s|\s$|:$")
_YAML_SPECIAL = re.compile(r"^(~|null|Null|NULL|true|True|TRUE|false|False|FALSE|y|Y|yes|Yes|"
                           r"YES|n|N|no|No|NO|on|On|ON|off|Off|OFF|"
                           r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|"
                           r"0x[0-9a-fA-F]+|0o?[0-7]+|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))$")


def _yaml_scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return gotemplate.go_sprint(v)
    s = str(v)
    if s == "":
        return '""'
    if _YAML_SPECIAL.match(s):
        return json.dumps(s)
    if _YAML_PLAIN_BAD.search(s) or any(ord(c) < 0x20 for c in s):
        if any(ord(c) < 0x20 and c != "\t" for c in s):
            return json.dumps(s)
        return "'" + s.replace("'", "''") + "'"
    return s


def to_yaml(v: Any, indent: int = 0) -> str:
    """YAML as podman's `info` prints it (gopkg.in/yaml.v2's style): block maps, list items
    indented under their key, multi-line strings as `|-` blocks, ambiguous strings quoted."""
    lines: list[str] = []
    _yaml_into(_plain(v), indent, lines)
    return "\n".join(lines) + "\n"


def _yaml_into(v: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(v, dict):
        for k, x in v.items():
            key = _yaml_scalar(k)
            if isinstance(x, dict) and x:
                lines.append(f"{pad}{key}:")
                _yaml_into(x, indent + 2, lines)
            elif isinstance(x, list) and x:
                lines.append(f"{pad}{key}:")
                _yaml_list(x, indent, lines)
            elif isinstance(x, dict):
                lines.append(f"{pad}{key}: {{}}")
            elif isinstance(x, list):
                lines.append(f"{pad}{key}: []")
            elif isinstance(x, str) and "\n" in x:
                chomp = "|-" if not x.endswith("\n") else "|"
                lines.append(f"{pad}{key}: {chomp}")
                for part in x.rstrip("\n").split("\n"):
                    lines.append(f"{pad}  {part}" if part else "")
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(x)}")
    elif isinstance(v, list):
        _yaml_list(v, indent, lines)
    else:
        lines.append(pad + _yaml_scalar(v))


def _yaml_list(items: list[Any], indent: int, lines: list[str]) -> None:
    # yaml.v2 puts a block list's dashes at its key's own indentation
    pad = " " * indent
    for x in items:
        if isinstance(x, dict) and x:
            sub: list[str] = []
            _yaml_into(x, indent + 2, sub)
            sub[0] = f"{pad}- " + sub[0].lstrip()
            lines.extend(sub)
        else:
            lines.append(f"{pad}- {_yaml_scalar(x)}")


# -- sizes ---------------------------------------------------------------------------------------
_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(n: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision, as podman prints sizes: "11.4 kB", "0 B", "1.05 GB"."""
    return units.human_size(n, precision, space=True)


def go_units_size(n: float) -> str:
    """go-units HumanSize (4 digits, no space), as podman prints reclaimed space: "2.021MB",
    "0B"."""
    return units.human_size(n, 4)


def compact_size(n: float) -> str:
    """The image commands' size column as rongqi has printed it so far: "11.4kB", "812B"."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}"


# -- times ---------------------------------------------------------------------------------------
_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*"
    r"(Z|z|[+-]\d{2}:?\d{2})?$")


def parse_time_ns(text: str) -> int | None:
    """An RFC 3339 time with up to nanoseconds (what records and events store) as nanoseconds
    since the epoch; None when it is empty or not such a time. No zone means UTC."""
    if not text:
        return None
    m = _RFC3339_RE.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    frac = (m.group(7) or "").ljust(9, "0")
    zone = m.group(8) or "Z"
    offset = 0
    if zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    try:
        base = datetime.datetime(y, mo, d, h, mi, s, tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return (int(base.timestamp()) - offset) * 1_000_000_000 + int(frac)


def _as_ns(t: Any) -> int | None:
    if t is None or t == "":
        return None
    if isinstance(t, GoTime):
        return t.ns
    if isinstance(t, bool):
        return None
    if isinstance(t, int):
        return t if t > 10**14 else t * 1_000_000_000  # nanoseconds, or seconds
    if isinstance(t, float):
        return int(t * 1_000_000_000)
    if isinstance(t, datetime.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=datetime.timezone.utc)
        return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
    return parse_time_ns(str(t))


def _fraction(ns: int) -> str:
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return "." + frac if frac else ""


def go_time(t: Any) -> str:
    """Go's time.Time.String() in the local zone: "2026-12-01 08:21:58.35775909 +0000 UTC"
    (trailing zeros of the fraction dropped, as Go's .999999999 layout does)."""
    ns = _as_ns(t)
    if ns is None:
        return "0001-01-01 00:00:00 +0000 UTC"
    lt = time.localtime(ns // 1_000_000_000)
    off = lt.tm_gmtoff
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return (time.strftime("%Y-%m-%d %H:%M:%S", lt) + _fraction(ns) +
            f" {sign}{off // 3600:02d}{off % 3600 // 60:02d} {lt.tm_zone}")


def rfc3339_nano(t: Any) -> str:
    """Go's time.RFC3339Nano in UTC: "2026-12-01T08:21:58.35775909Z"."""
    ns = _as_ns(t)
    if ns is None:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        _fraction(ns) + "Z"


class GoTime:
    """A time in a template's data: prints as Go prints a time.Time, `{{.Time.Unix}}` and
    `{{.Time.UnixNano}}` work, `json` gives RFC 3339 as encoding/json does."""

    __slots__ = ("ns",)
    template_methods = ("Unix", "UnixNano", "IsZero")

    def __init__(self, t: Any):
        self.ns = _as_ns(t) or 0

    def __str__(self) -> str:
        return go_time(self.ns)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoTime) and other.ns == self.ns

    def __hash__(self) -> int:
        return hash(self.ns)

    def rfc3339(self) -> str:
        return rfc3339_nano(self.ns)

    def go_json(self) -> str:
        return json.dumps(self.rfc3339())

    def Unix(self) -> int:  # noqa: N802 - Go's method names, as templates call them
        return self.ns // 1_000_000_000

    def UnixNano(self) -> int:  # noqa: N802
        return self.ns

    def IsZero(self) -> bool:  # noqa: N802
        return self.ns == 0


human_duration = units.human_duration


def since_text(t: Any, now: float | None = None) -> str:
    """The time from t to now in human_duration's words; "" for no time."""
    ns = _as_ns(t)
    if ns is None:
        return ""
    now_ns = int((time.time() if now is None else now) * 1_000_000_000)
    return human_duration(max(0, now_ns - ns) / 1e9)


def ago(t: Any, now: float | None = None) -> str:
    """podman's CREATED column: "5 seconds ago", "About a minute ago"; "N/A" for no time."""
    text = since_text(t, now)
    return f"{text} ago" if text else "N/A"


def status_text(status: str, *, started_at: Any = None, finished_at: Any = None,
                exit_code: int | None = 0, health: str = "", now: float | None = None) -> str:
    """podman 4's STATUS column: "Up 3 minutes ago", "Exited (3) 2 seconds ago", "Created",
    "Paused"; a running container's health after it: "Up 5 seconds ago (healthy)"."""
    if status == "configured":
        status = "created"
    if status == "running":
        text = f"Up {since_text(started_at, now) or 'Less than a second'} ago"
        return f"{text} ({health})" if health else text
    if status in ("exited", "stopped"):
        took = since_text(finished_at, now) or "Less than a second"
        return f"Exited ({exit_code or 0}) {took} ago"
    return status[:1].upper() + status[1:] if status else ""


def short_id(container_id: str, no_trunc: bool = False) -> str:
    """IDs as listings print them: 12 hex digits unless --no-trunc (a digest's algorithm
    prefix dropped either way, as podman does for image ids)."""
    hexpart = container_id.partition(":")[2] if ":" in container_id else container_id
    return hexpart if no_trunc else hexpart[:12]
