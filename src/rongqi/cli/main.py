"""`rongqi`: the global flags, the image commands (pull, push, images, rmi, tag, history, load,
save, import, export, image prune, system df, login, logout), and the registration of the
engine's command modules (COMMAND_MODULES: containers, run, volumes, fs, system).

A RongqiError becomes one line on stderr, podman's `Error: ...`, and podman's exit code (125
unless the error names another); anything else is a bug and shows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
TYPE_CHECKING = False  # typing is not imported on run's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

from rongqi.errors import RongqiError, UsageError

DEFAULT_ROOT = "/var/lib/rongqi"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes a formatter on every add_argument (to check the metavar), and each one
        # asks for the terminal's size (environment reads and an ioctl): once is enough.
        global _WIDTH
        if _WIDTH is None:
            import shutil
            _WIDTH = shutil.get_terminal_size().columns - 2  # argparse's own default
        return self.formatter_class(prog=self.prog, width=_WIDTH)


_WIDTH: int | None = None


class Context:
    """What every command needs, made on first use (so `rongqi --help` stays cheap)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.root = args.root
        self._engine = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from rongqi.engine import Engine
            self._engine = Engine(self.root, getattr(self.args, "runroot", None),
                                  getattr(self.args, "runtime", None) or None,
                                  storage_mode=self.args.storage_mode,
                                  registries_conf=self.args.registries_conf)
        return self._engine

    @property
    def store(self) -> Any:
        return self.engine.store

    @property
    def storage(self) -> Any:
        return self.engine.storage

    def registry(self) -> Any:
        return self.engine.registry()

    def progress(self, quiet: bool) -> Any:
        from rongqi.image.progress import for_terminal
        return for_terminal(quiet)


def _mark_insecure(client: Any, ref: Any, tls_verify: bool) -> None:
    if not tls_verify:
        client.config.insecure.add(ref.api_host)


def _resolve(ctx: Context, name: str, *, builtin: bool = True) -> tuple[str, Any]:
    from rongqi.image.builtin import is_builtin, make_busybox_image
    from rongqi.image.errors import ImageNotFound
    try:
        return ctx.store.resolve(name)
    except ImageNotFound:
        if builtin and is_builtin(name):
            make_busybox_image(ctx.store)
            return ctx.store.resolve(name)
        raise


def _normalized(name: str) -> str:
    from rongqi.image import reference
    try:
        return str(reference.parse(name))
    except RongqiError:
        return name


def _short_id(digest: str) -> str:
    return digest.partition(":")[2][:12]


def _ago(created: str) -> str:
    from rongqi.cli.output import ago  # lazily: `run` and `exec` print no tables
    return ago(created)


def _human(n: float) -> str:
    from rongqi.cli.output import compact_size
    return compact_size(n)


def _split_name(name: str) -> tuple[str, str]:
    if not name:
        return "<none>", "<none>"  # an unnamed image
    from rongqi.image import reference
    ref = reference.parse(name)
    fam = ref.familiar()
    if ref.tag:
        return fam.rsplit(":", 1)[0], ref.tag
    return fam.split("@")[0], "<none>"


def _image_event(ctx: Context, action: str, desc: Any = None, name: str = "") -> None:
    """An image event as podman's: the image id (config digest's hex) and the name."""
    from rongqi.engine import events
    image_id = ""
    if desc is not None:
        try:
            image_id = ctx.store.manifest(desc)["config"]["digest"].partition(":")[2]
        except (RongqiError, OSError, KeyError):
            pass
    events.emit(ctx.engine.root, "image", action, id=image_id, name=name)


# -- commands ------------------------------------------------------------------------------------
def cmd_pull(ctx: Context, a: argparse.Namespace) -> int:
    from rongqi.engine import images
    if a.platform and (a.arch or a.os):
        raise UsageError("--platform option can not be specified with --arch or --os")
    if a.arch or a.os:
        machine = os.uname().machine
        a.platform = (f"{a.os or 'linux'}/"
                      f"{a.arch or {'x86_64': 'amd64', 'aarch64': 'arm64'}.get(machine, machine)}")
    if a.platform:
        from rongqi.image.registry import Platform
        Platform.parse(a.platform)  # a bad one is the error, before any progress shows
    opts = images.PullOptions(platform=a.platform or "", tls_verify=a.tls_verify,
                              creds=a.creds or "", unpack=not a.no_unpack, jobs=a.jobs)
    with ctx.progress(a.quiet) as progress:
        ref, _ = images.pull(ctx.engine, a.name, opts, progress)
    _image_event(ctx, "pull", name=str(ref))  # podman 4 leaves the id out of pull events
    if a.quiet:
        print(ref)
    return 0


def cmd_push(ctx: Context, a: argparse.Namespace) -> int:
    from rongqi.image import reference
    name, desc = _resolve(ctx, a.source)
    dest = reference.parse(a.destination or name)
    client = ctx.registry()
    _mark_insecure(client, dest, a.tls_verify)
    if a.creds:
        user, _, pw = a.creds.partition(":")
        client.explicit_creds[dest.api_host] = (user, pw)
    # Other repositories on the same registry that hold this image: blobs can be mounted.
    mount_from = []
    for n, d in ctx.store.names():
        r = reference.parse(n)
        if r.domain == dest.domain and r.path != dest.path and d.digest == desc.digest:
            mount_from.append(r.path)
    with ctx.progress(a.quiet) as progress:
        client.push(ctx.store, desc, dest, progress=progress, mount_from=mount_from)
    _image_event(ctx, "push", desc, str(dest))
    return 0


HISTORY_HEADERS = {"CreatedBy": "CREATED BY", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT"}
IMAGES_HEADERS = {"ID": "IMAGE ID", "Id": "IMAGE ID", "ReadOnly": "R/O", "CreatedSince": "CREATED",
                  "CreatedAt": "CREATED AT", "IsReadOnly": "R/O"}


def _whole_seconds(t: Any) -> Any:
    """podman's image times are Unix seconds (its API's Created): `images` and `history`
    print `2022-06-15 12:00:00 +0000 UTC`, no fraction."""
    t.ns -= t.ns % 1_000_000_000
    return t


def _image_rows(ctx: Context, records: list[Any], no_trunc: bool) -> list[dict[str, Any]]:
    """podman's imageReporter fields, for `images --format TEMPLATE`."""
    from rongqi.cli.output import GoTime, human_size
    names_of: dict[str, list[str]] = {}
    for r in records:
        names_of.setdefault(r.config_digest, [])
        if r.name:
            names_of[r.config_digest].append(r.name)
    users: dict[str, int] = {}
    try:
        for c in ctx.engine.list(all=True):
            image_id = c.config.get("image_id", "")
            users[image_id] = users.get(image_id, 0) + 1
    except (RongqiError, OSError):
        pass
    from rongqi.engine.usage import sized
    sizes: dict[str, int] = {}
    for r in records:
        if r.config_digest not in sizes:
            sizes[r.config_digest] = sized(ctx.engine, r)
    rows = []
    for r in records:
        repo, tag = _split_name(r.name)
        annotated = (r.manifest.annotations or {}).get("io.rongqi.repo.digest", "")
        digest = annotated.split("@")[-1] or r.manifest.digest
        labels = {}
        try:
            labels = (ctx.store.config(r.manifest).get("config") or {}).get("Labels") or {}
        except (RongqiError, OSError, ValueError):
            pass
        rows.append({
            "ID": r.config_digest if no_trunc else _short_id(r.config_digest), "Id": r.id,
            "Repository": repo, "Tag": tag, "Digest": digest,
            "CreatedSince": _ago(r.created), "CreatedAt": _whole_seconds(GoTime(r.created)),
            "Created": _ago(r.created), "Size": human_size(sizes[r.config_digest]),
            "VirtualSize": sizes[r.config_digest],
            "SharedSize": 0, "ReadOnly": False, "IsReadOnly": False,
            "History": ", ".join(names_of[r.config_digest]),
            "Containers": users.get(r.config_digest, 0), "Dangling": not r.name,
            "Names": names_of[r.config_digest], "Labels": labels,
            "RepoTags": [r.name] if r.name else [],
            "RepoDigests": [annotated] if annotated else [],
            "ParentId": ""})
    return rows


def _image_matches(name: str, pattern: str) -> bool:
    """podman's reference match: a glob against the full name, the familiar one or the last
    path component, with or without the tag (`images my-img` finds localhost/my-img:latest)."""
    import fnmatch
    if not name:
        return False
    repo, _, tag = name.rpartition(":") if ":" in name.rpartition("/")[2] else (name, "", "")
    fam = _familiar(repo)
    has_tag = ":" in pattern.rpartition("/")[2]
    for r in {repo, fam, repo.rpartition("/")[2]}:
        if fnmatch.fnmatchcase(f"{r}:{tag}" if has_tag else r, pattern):
            return True
    return False


def _familiar(repo: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/"):
        if repo.startswith(prefix):
            return repo[len(prefix):]
    return repo


def _select_images(ctx: Context, records: list[Any], a: argparse.Namespace) -> list[Any]:
    """`images [REFERENCE] [--filter K=V]... [--sort KEY]`: podman's image filters (before,
    after/since, reference, dangling, label, id, readonly) and sort keys."""
    from rongqi.cli.output import parse_time_ns
    if getattr(a, "reference", None):
        records = [r for r in records if _image_matches(r.name, a.reference)]
    for f in getattr(a, "filter", None) or []:
        key, eq, value = f.partition("=")
        if key in ("before", "after", "since"):
            _, desc = _resolve(ctx, value)
            digest = ctx.store.manifest(desc)["config"]["digest"]
            pivot = next((r for r in ctx.store.images() if r.config_digest == digest), None)
            t = parse_time_ns(pivot.created) if pivot else None
            if t is None:
                continue
            if key == "before":
                records = [r for r in records if (parse_time_ns(r.created) or 0) < t]
            else:
                records = [r for r in records if (parse_time_ns(r.created) or 0) > t]
        elif key == "reference":
            records = [r for r in records if _image_matches(r.name, value)]
        elif key == "dangling":
            if value.lower() not in ("true", "false", "1", "0"):
                raise RongqiError(f"invalid dangling filter value \"{value}\"")
            want = value.lower() in ("true", "1")
            records = [r for r in records if (not r.name) == want]
        elif key == "readonly":
            if value.lower() in ("true", "1"):
                records = []
        elif key == "id":
            records = [r for r in records if r.id.startswith(value.removeprefix("sha256:"))]
        elif key == "label":
            lk, leq, lv = value.partition("=")
            kept = []
            for r in records:
                try:
                    labels = (ctx.store.config(r.manifest).get("config") or {}).get("Labels") or {}
                except (RongqiError, OSError, ValueError):
                    labels = {}
                if lk in labels and (not leq or labels[lk] == lv):
                    kept.append(r)
            records = kept
        else:
            raise RongqiError(f"invalid image filter \"{key}\"" if eq else
                              f"invalid image filter \"{f}\": bad format")
    sort = getattr(a, "sort", None) or "created"
    if sort == "created":
        # newest first; an image's names in the order it got them (stable), as podman's
        records = sorted(records, key=lambda r: -(parse_time_ns(r.created) or 0))
    elif sort == "id":
        records = sorted(records, key=lambda r: (r.id, r.name))
    elif sort == "size":
        records = sorted(records, key=lambda r: (r.size, r.name))
    elif sort == "tag":
        records = sorted(records, key=lambda r: (_split_name(r.name)[1], r.name))
    else:
        records = sorted(records, key=lambda r: _split_name(r.name))
    return records


def _images_json(ctx: Context, records: list[Any]) -> list[dict[str, Any]]:
    """podman's `images --format json`: one entry per image, its names together."""
    from rongqi.cli.output import parse_time_ns, rfc3339_nano
    rows = _image_rows(ctx, records, True)
    out: dict[str, dict[str, Any]] = {}
    for r, row in zip(records, rows):
        if r.config_digest in out:
            continue
        ns = parse_time_ns(r.created) or 0
        out[r.config_digest] = {
            "Id": r.id, "ParentId": "", "RepoTags": row["Names"],
            "RepoDigests": row["RepoDigests"], "Size": row["VirtualSize"], "SharedSize": 0,
            "VirtualSize": row["VirtualSize"], "Labels": row["Labels"] or None,
            "Containers": row["Containers"], "Names": row["Names"], "Digest": row["Digest"],
            "History": row["Names"], "Created": ns // 1_000_000_000,
            "CreatedAt": rfc3339_nano(r.created)}
    return list(out.values())


def _unnamed_records(ctx: Context) -> list[Any]:
    """Images the store holds without a name (a load of an archive saved by ID, an untag of
    the last name): podman lists them as <none> <none>."""
    from rongqi.image.errors import ImageError
    from rongqi.image.store import ImageRecord
    named = {d.digest for _, d in ctx.store.names()}
    out = []
    for d in ctx.store.unnamed():
        if d.digest in named:
            continue
        try:
            m = ctx.store.manifest(d)
            cfg = ctx.store.read_json(m["config"]["digest"])
        except (ImageError, OSError, KeyError):
            continue
        size = m["config"].get("size", 0) + sum(x.get("size", 0) for x in m["layers"])
        out.append(ImageRecord("", d, m["config"]["digest"], cfg.get("created", ""), size))
    return out


def cmd_images(ctx: Context, a: argparse.Namespace) -> int:
    records = _select_images(ctx, ctx.store.images() + _unnamed_records(ctx), a)
    if a.format and a.format not in ("table", "json"):
        from rongqi.cli import gotemplate
        from rongqi.cli.output import render
        if not gotemplate.is_json(a.format):
            default = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Created}}\t{{.Size}}"
            sys.stdout.write(render(_image_rows(ctx, records, a.no_trunc), a.format,
                                    default=default, headers=IMAGES_HEADERS,
                                    noheading=a.noheading, name="images", row_type="images"))
            return 0
        a.format = "json"
    if a.format == "json":
        from rongqi.cli.output import to_json
        print(to_json(_images_json(ctx, records)))
        return 0
    if a.quiet:
        seen = []
        for r in records:
            shown = r.config_digest if a.no_trunc else _short_id(r.config_digest)
            if shown not in seen:
                seen.append(shown)
        for image_id in seen:
            print(image_id)
        return 0
    # podman's table: its tabwriter layout and HumanSizeWithPrecision sizes ("2.14 MB")
    from rongqi.cli.output import render
    default = ("table {{.Repository}}\t{{.Tag}}\t" + ("{{.Digest}}\t" if a.digests else "")
               + "{{.ID}}\t{{.Created}}\t{{.Size}}")
    sys.stdout.write(render(_image_rows(ctx, records, a.no_trunc), "", default=default,
                            headers=IMAGES_HEADERS, noheading=a.noheading, name="images",
                            row_type="images"))
    return 0


def _gc(ctx: Context) -> tuple[int, int]:
    from rongqi.engine.usage import collect_garbage
    blobs, layers, freed = collect_garbage(ctx.engine)
    return len(blobs) + len(layers), freed


class ImageInUse(RongqiError):
    exit_code = 2  # podman rmi: 2 when a container uses the image


def cmd_rmi(ctx: Context, a: argparse.Namespace) -> int:
    """podman's rmi: each missing image an `Error:` line (exit 1); an image a container
    uses is refused (exit 2) unless -f, which removes those containers first."""
    from rongqi.image.errors import ImageNotFound
    code = 0
    names = list(a.names)
    if getattr(a, "all", False):
        if names:
            raise RongqiError("when using the --all switch, you may not pass any images names "
                              "or IDs")
        names = sorted({n for n, _ in ctx.store.names()})
    elif not names:
        raise RongqiError("image name or ID must be specified")
    for name in names:
        try:
            full, desc = ctx.store.resolve(name)
        except ImageNotFound:
            if getattr(a, "ignore", False):
                continue
            print(f"Error: {name}: image not known", file=sys.stderr)
            code = 1
            continue
        from rongqi.engine.files import commit_name
        same = [n for n, d in ctx.store.names() if d.digest == desc.digest]
        by_id = full not in (name, _normalized(name), commit_name(name))
        if by_id and len(same) > 1 and not a.force:
            raise RongqiError(f"image {name} is referenced by several names ({', '.join(same)});"
                              " use -f to remove them all")
        going = same if by_id else [full]
        if not set(same) - set(going):
            _containers_of_image(ctx, desc, force=a.force)
        for n in going:
            ctx.store.remove_name(n)
            _image_event(ctx, "untag", desc, n)
            print(f"Untagged: {n}")
        if not any(d.digest == desc.digest for _, d in ctx.store.names()):
            ctx.store.remove_unnamed(desc.digest)  # an unnamed (<none>) image goes too
            _image_event(ctx, "remove", desc)  # podman: the id, no name
            print(f"Deleted: {ctx.store.manifest(desc)['config']['digest'].partition(':')[2]}")
    if not a.no_prune:
        _gc(ctx)
    return code


def _containers_of_image(ctx: Context, desc: Any, *, force: bool) -> None:
    """The last name of an image goes: refuse while containers use it, or with -f remove them."""
    image_id = ctx.store.manifest(desc)["config"]["digest"]
    users = [c for c in ctx.engine.records.all() if c.config.get("image_id") == image_id]
    if not users:
        return
    if not force:
        raise ImageInUse(f"image used by {users[0].id}: image is in use by a container: "
                         "consider listing external containers and force-removing image")
    for c in users:
        ctx.engine.remove(c.id, force=True)


def cmd_tag(ctx: Context, a: argparse.Namespace) -> int:
    # podman's naming: a name without a registry is localhost's (`tag img foo` ->
    # localhost/foo:latest), as commit names its images
    from rongqi.engine.files import commit_name
    _, desc = _resolve(ctx, a.source)
    for t in a.targets:
        ctx.store.set_name(commit_name(t), desc)
        _image_event(ctx, "tag", desc, commit_name(t))
    return 0


def cmd_untag(ctx: Context, a: argparse.Namespace) -> int:
    """podman's untag: the names given (every name of the image without any); the image
    stays, unnamed, and a name it does not have is an error."""
    from rongqi.engine.files import commit_name
    _, desc = _resolve(ctx, a.image)
    mine = [n for n, d in ctx.store.names() if d.digest == desc.digest]
    going = []
    for t in a.names or mine:
        full = t if t in mine else commit_name(t)
        if full not in mine:
            raise RongqiError(f"{t}: tag not known")
        going.append(full)
    for n in going:
        ctx.store.remove_name(n)
        _image_event(ctx, "untag", desc, n)
    if not any(d.digest == desc.digest for _, d in ctx.store.names()):
        ctx.store.keep(desc)  # the image stays in the store, unnamed, when its last name goes
    return 0


def cmd_image_exists(ctx: Context, a: argparse.Namespace) -> int:
    """podman's image exists: exit 0 when the image is in the store, 1 when not."""
    from rongqi.image.errors import ImageNotFound
    try:
        ctx.store.resolve(a.image)
    except ImageNotFound:
        return 1
    return 0


def _inspect_one(ctx: Context, name: str) -> dict[str, Any]:
    full, desc = _resolve(ctx, name)
    manifest = ctx.store.manifest(desc)
    cfg = ctx.store.read_json(manifest["config"]["digest"])
    tags = [n for n, d in ctx.store.names() if d.digest == desc.digest]
    repo_digests = sorted({(d.annotations or {}).get("io.rongqi.repo.digest", "")
                           for n, d in ctx.store.names() if d.digest == desc.digest} - {""})
    size = sum(x.get("size", 0) for x in manifest["layers"])
    from rongqi.cli.gotemplate import Struct
    # podman's inspect.ImageData: its Go field ID (JSON "Id") is what templates name
    data = Struct("*inspect.ImageData", {
        "Id": manifest["config"]["digest"], "Digest": desc.digest, "RepoTags": tags,
        "RepoDigests": repo_digests, "Created": cfg.get("created", ""),
        "Author": cfg.get("author", ""), "Architecture": cfg.get("architecture", ""),
        "Variant": cfg.get("variant", ""), "Os": cfg.get("os", ""),
        "Config": cfg.get("config", {}), "Size": size,
        "RootFS": {"Type": "layers", "Layers": cfg.get("rootfs", {}).get("diff_ids", [])},
        "ManifestMediaType": desc.media_type or manifest.get("mediaType", ""),
        "Annotations": manifest.get("annotations", {}),
        "Labels": (cfg.get("config") or {}).get("Labels") or None,
        "Comment": cfg.get("comment", ""), "VirtualSize": size,
        "User": (cfg.get("config") or {}).get("User", ""),
        "History": cfg.get("history", []), "NamesHistory": tags,
    })
    data.promoted = {"ID": data["Id"].partition(":")[2]}
    return data


def cmd_inspect(ctx: Context, a: argparse.Namespace) -> int:
    from rongqi.cli import gotemplate
    from rongqi.cli.output import inspect_json, render_each
    out = [_inspect_one(ctx, n) for n in a.names]
    if a.format and not gotemplate.is_json(a.format):
        sys.stdout.write(render_each(out, a.format, name="inspect"))
    else:
        print(inspect_json(out))
    return 0


def cmd_history(ctx: Context, a: argparse.Namespace) -> int:
    """podman's history: newest first, the image's id on the top row and <missing> below
    (a pulled image has no ids for its earlier steps), -q, --format, --no-trunc, -H."""
    from rongqi.cli import gotemplate
    from rongqi.cli.output import GoTime, human_size, render
    _, desc = _resolve(ctx, a.name)
    manifest = ctx.store.manifest(desc)
    image_id = manifest["config"]["digest"]
    cfg = ctx.store.read_json(image_id)
    layers = list(manifest["layers"])
    from rongqi.storage.overlay import chain_ids
    chains = chain_ids((cfg.get("rootfs") or {}).get("diff_ids") or [])
    hist = cfg.get("history") or [{}] * len(layers)
    li = 0
    rows: list[dict[str, Any]] = []
    for h in hist:
        size = 0
        if not h.get("empty_layer") and li < len(layers):
            # uncompressed where the layer is unpacked here (podman's figure), else the blob's
            unpacked = ctx.storage.layer_size(chains[li]) if li < len(chains) else None
            size = layers[li].get("size", 0) if unpacked is None else unpacked
            li += 1
        rows.append({"created": h.get("created", ""), "by": h.get("created_by") or "",
                     "size": size, "comment": h.get("comment", "")})
    rows.reverse()
    out = []
    for i, r in enumerate(rows):
        full = image_id.partition(":")[2] if i == 0 else "<missing>"
        by = r["by"].replace("\n", " ")
        if not a.no_trunc and len(by) > 45:
            by = by[:44] + "…"
        out.append({"ID": full if a.no_trunc or i else full[:12], "Id": full,
                    "Created": _ago(r["created"]) if a.human else r["created"],
                    "CreatedSince": _ago(r["created"]),
                    "CreatedAt": _whole_seconds(GoTime(r["created"])),
                    "CreatedBy": by, "Size": human_size(r["size"]) if a.human else str(r["size"]),
                    "Comment": r["comment"], "Tags": None})
    if a.quiet:
        for r in out:
            print(r["ID"])
        return 0
    if a.format and gotemplate.is_json(a.format):
        # podman 4's shape, to the letter: one line, empty fields left out, "Created" again
        # at the end (its reporter's own field beside libimage's "created")
        docs = []
        for i, r in enumerate(out):
            doc: dict[str, Any] = {"id": r["Id"], "created": rows[i]["created"]}
            if rows[i]["by"]:
                doc["CreatedBy"] = rows[i]["by"]
            doc["size"] = rows[i]["size"]
            if rows[i]["comment"]:
                doc["comment"] = rows[i]["comment"]
            doc["Created"] = rows[i]["created"]
            docs.append(doc)
        print(json.dumps(docs, separators=(",", ":"), ensure_ascii=False))
        return 0
    default = "table {{.ID}}\t{{.Created}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    sys.stdout.write(render(out, a.format or "", default=default, headers=HISTORY_HEADERS,
                            name="history", row_type="history"))
    return 0


def cmd_load(ctx: Context, a: argparse.Namespace) -> int:
    from rongqi.image.archive import load_archive
    path = a.input
    tmp = None
    if path in (None, "-"):
        if sys.stdin.isatty():
            raise UsageError("load: give -i FILE or pipe an archive into stdin")
        import tempfile
        fd, tmp = tempfile.mkstemp(dir=ctx.store.ingest_dir)
        with os.fdopen(fd, "wb") as f:
            while chunk := sys.stdin.buffer.read(1 << 20):
                f.write(chunk)
        path = tmp
    from rongqi.image.errors import ImageError
    try:
        loaded = load_archive(ctx.store, path)
    except ImageError as e:
        if "not a readable image archive" not in str(e) or not os.path.isfile(path):
            raise  # a file that is not there: its own one-line error
        detail = str(e).partition(": not a readable image archive: ")[2].splitlines()[0]
        detail = detail.rstrip(":") or "not a tar archive"
        raise RongqiError("payload does not match any of the supported image formats:\n"
                          f" * oci-archive: {detail}\n * docker-archive: {detail}") from None
    finally:
        if tmp:
            os.unlink(tmp)
    for name, desc in loaded:
        if not name:
            ctx.store.keep(desc)  # held unnamed (podman's <none>), not left for gc
        _image_event(ctx, "loadfromarchive", desc, name or "")
        print("Loaded image: " + (name or ctx.store.manifest(desc)["config"]["digest"]))
    return 0


def cmd_save(ctx: Context, a: argparse.Namespace) -> int:
    from rongqi.engine.files import commit_name
    from rongqi.image.archive import save_docker_archive, save_oci_archive
    images = []
    for n in a.names:
        full, desc = _resolve(ctx, n)
        # saved by ID, an image goes without a name (podman's: it loads as <none>)
        images.append((full if full in (n, _normalized(n), commit_name(n)) else "", desc))
    save = save_oci_archive if a.format == "oci-archive" else save_docker_archive
    if not a.output:
        if sys.stdout.isatty():
            raise UsageError("save: refusing to write an archive to a terminal; use -o FILE")
        save(ctx.store, images, sys.stdout.buffer)
        return 0
    tmp = a.output + ".tmp"
    try:
        with open(tmp, "wb") as f:
            save(ctx.store, images, f)
        os.rename(tmp, a.output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return 0


def cmd_import(ctx: Context, a: argparse.Namespace) -> int:
    from rongqi.image import reference
    from rongqi.image.archive import import_tarball
    name = str(reference.parse(a.name)) if a.name else None
    config: dict[str, Any] = {}
    for c in a.change or []:
        key, _, val = c.partition(" ")
        key = key.upper()
        if key in ("CMD", "ENTRYPOINT"):
            try:
                v = json.loads(val)
            except ValueError:
                v = ["/bin/sh", "-c", val]
            config["Cmd" if key == "CMD" else "Entrypoint"] = v
        elif key == "ENV":
            config.setdefault("Env", []).append(val.replace(" ", "=", 1) if "=" not in val
                                                else val)
        elif key == "WORKDIR":
            config["WorkingDir"] = val
        elif key == "USER":
            config["User"] = val
        else:
            raise UsageError(f"import --change: unsupported instruction {key}")
    if a.file == "-":
        desc = import_tarball(ctx.store, sys.stdin.buffer, name, config)
    else:
        try:
            f = open(a.file, "rb")
        except OSError as e:
            raise RongqiError(f"import: {a.file}: {e.strerror}") from None
        with f:
            desc = import_tarball(ctx.store, f, name, config)
    if not name:
        ctx.store.keep(desc)  # held unnamed (podman's <none>), not left for gc
    _image_event(ctx, "import", desc, name or "")
    print(ctx.store.manifest(desc)["config"]["digest"])
    return 0


def cmd_export(ctx: Context, a: argparse.Namespace) -> int:
    from rongqi.image.archive import export_rootfs
    _, desc = _resolve(ctx, a.name)
    if a.output:
        with open(a.output, "wb") as f:
            export_rootfs(ctx.store, desc, f)
    else:
        if sys.stdout.isatty():
            raise UsageError("export: refusing to write a tarball to a terminal; use -o FILE")
        export_rootfs(ctx.store, desc, sys.stdout.buffer)
    return 0


def cmd_mount(ctx: Context, a: argparse.Namespace) -> int:
    """A snapshot of an image (podman's `image mount`): its rootfs path on stdout, and on
    stderr how it was mounted (overlay, fuse-overlayfs or copy) and why."""
    import secrets
    _, desc = _resolve(ctx, a.name)
    chains = ctx.storage.unpack_image(ctx.store, desc.digest)
    snap = ctx.storage.create_snapshot(a.id or "rongqi-" + secrets.token_hex(6), chains)
    print(f"rongqi: snapshot {snap.id}: {snap.note}", file=sys.stderr)
    print(snap.rootfs)
    return 0


def cmd_unmount(ctx: Context, a: argparse.Namespace) -> int:
    for snap_id in a.ids:
        ctx.storage.get_snapshot(snap_id)  # a name that is not a snapshot is an error
        ctx.storage.remove_snapshot(snap_id)
        print(snap_id)
    return 0


def prune_images(ctx: Context, all_images: bool, filters: list[str] | None = None
                 ) -> tuple[list[tuple[str, str]], int, int]:
    """Image prune as podman's: the dangling (unnamed) images no container uses, or with
    all_images every image no container uses (engine/imageinfo.py prunable, the rule the
    Docker API's prune shares), narrowed by label=, label!= and until= filters; then the blobs
    and layers only they held. Returns the (name, image id) pairs removed ("" for an unnamed
    one), the count of blobs and layers removed and the bytes freed."""
    from rongqi.engine import imageinfo
    labels: list[str] = []
    not_labels: list[str] = []
    until = None
    for f in filters or []:
        key, eq, value = f.partition("=")
        if not eq:
            raise UsageError(f'invalid filter "{f}": expected key=value')
        if key == "label":
            labels.append(value)
        elif key == "label!":
            not_labels.append(value)
        elif key == "until":
            from rongqi.engine.events import parse_input_time
            t = parse_input_time(value, since=True) // 1_000_000_000
            until = t if until is None else min(until, t)
        # podman 4 accepts other keys and ignores them
    removed: list[tuple[str, str]] = []
    store = ctx.store
    for facts in imageinfo.prunable(ctx.engine, dangling_only=not all_images, until=until,
                                    labels=labels, not_labels=not_labels):
        names = [n for n, d in store.names() if d.digest in facts.manifests]
        for name in names:
            store.remove_name(name)
            removed.append((name, facts.id))
        for digest in facts.manifests:
            if store.remove_unnamed(digest) and not names:
                removed.append(("", facts.id))
    count, freed = _gc(ctx)
    return removed, count, freed


_IMAGE_PRUNE_WARNING = ("WARNING! This command removes all {what}.\n"
                        "Are you sure you want to continue? [y/N] ")


def cmd_prune(ctx: Context, a: argparse.Namespace) -> int:
    """podman's image prune: a prompt unless -f, then the removed images' IDs."""
    if not a.force:
        sys.stdout.write(_IMAGE_PRUNE_WARNING.format(
            what="images without at least one container associated with them" if a.all
            else "dangling images"))
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    if a.build_cache:
        from rongqi.engine.build import prune_cache
        prune_cache(ctx.engine)
    removed, _, _ = prune_images(ctx, a.all, a.filter)
    from rongqi.engine import events
    seen: list[str] = []
    for name, image_id in removed:
        if name:
            events.emit(ctx.engine.root, "image", "untag", id=image_id.partition(":")[2],
                        name=name)
        if image_id not in seen:
            seen.append(image_id)
    for image_id in seen:
        events.emit(ctx.engine.root, "image", "remove", id=image_id.partition(":")[2])
        print(image_id.partition(":")[2])
    return 0


def cmd_df(ctx: Context, a: argparse.Namespace) -> int:
    """podman's system df: a summary of images, containers and local volumes (TOTAL, ACTIVE,
    SIZE, RECLAIMABLE with its share), -v for a table of each, --format templates or json."""
    from rongqi.cli import gotemplate
    from rongqi.cli.output import go_units_size, render, since_text, to_json
    from rongqi.engine.usage import disk_usage
    u = disk_usage(ctx.engine)
    if a.verbose:
        images = [{"Repository": _split_name(n)[0], "Tag": _split_name(n)[1],
                   "ID": _short_id(i.id), "Created": since_text(i.created) or "N/A",
                   "Size": go_units_size(i.size), "SharedSize": go_units_size(i.shared_size),
                   "UniqueSize": go_units_size(i.size - i.shared_size),
                   "Containers": i.containers} for i in u.images for n in i.names]
        containers = [{"ContainerID": c.id[:12], "Image": _short_id(c.image_id) or c.image,
                       "Command": " ".join(c.command), "LocalVolumes": c.volumes,
                       "Size": go_units_size(c.rw_size), "Created": since_text(c.created),
                       "Status": c.status, "Names": c.names[0] if c.names else ""}
                      for c in u.containers]
        volumes = [{"VolumeName": v.name, "Links": v.links, "Size": go_units_size(v.size)}
                   for v in u.volumes]
        print("Images space usage:\n")
        sys.stdout.write(render(images, "", default="table {{.Repository}}\t{{.Tag}}\t"
                                "{{.ID}}\t{{.Created}}\t{{.Size}}\t{{.SharedSize}}\t"
                                "{{.UniqueSize}}\t{{.Containers}}",
                                headers={"ID": "IMAGE ID"}))
        print("\nContainers space usage:\n")
        sys.stdout.write(render(containers, "", default="table {{.ContainerID}}\t{{.Image}}\t"
                                "{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.Created}}\t"
                                "{{.Status}}\t{{.Names}}",
                                headers={"ContainerID": "CONTAINER ID"}))
        print("\nLocal Volumes space usage:\n")
        sys.stdout.write(render(volumes, "", default="table {{.VolumeName}}\t{{.Links}}\t"
                                "{{.Size}}"))
        return 0

    def summary(kind: str, total: int, active: int, size: int, reclaimable: int
                ) -> dict[str, Any]:
        share = int(reclaimable * 100 / size) if size else 0
        return {"Type": kind, "Total": total, "Active": active, "RawSize": size,
                "RawReclaimable": reclaimable, "TotalCount": total,
                "Size": go_units_size(size),
                "Reclaimable": f"{go_units_size(reclaimable)} ({share}%)"}

    running = {"running", "paused"}
    rows = [
        summary("Images", len(u.images), sum(1 for i in u.images if i.containers),
                sum(i.size for i in u.images), sum(i.size for i in u.images if not i.containers)),
        summary("Containers", len(u.containers),
                sum(1 for c in u.containers if c.status in running),
                sum(c.rw_size for c in u.containers),
                sum(c.rw_size for c in u.containers if c.status not in running)),
        summary("Local Volumes", len(u.volumes), sum(1 for v in u.volumes if v.links),
                sum(v.size for v in u.volumes), sum(v.size for v in u.volumes if not v.links)),
    ]
    if a.format and gotemplate.is_json(a.format):
        print(to_json(rows))
        return 0
    sys.stdout.write(render(rows, a.format or "", default="table {{.Type}}\t{{.Total}}\t"
                            "{{.Active}}\t{{.Size}}\t{{.Reclaimable}}", name="df",
                            row_type="dfSummary"))
    return 0


def _registry_host(server: str) -> str:
    from rongqi.image.reference import registry_host
    return registry_host(server)


def cmd_login(ctx: Context, a: argparse.Namespace) -> int:
    from rongqi.image.auth import CredentialStore
    host = _registry_host(a.server or "docker.io")
    user = a.username or input("Username: ")
    if a.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass  # (termios): login only

        password = a.password if a.password is not None else getpass.getpass("Password: ")
    client = ctx.registry()
    if not a.tls_verify:
        client.config.insecure.add(host)
    client.login(host, user, password)
    creds = CredentialStore([a.authfile] if a.authfile else None)
    path = creds.save(host, user, password)
    print(f"Login Succeeded (credentials in {path})")
    return 0


def cmd_logout(ctx: Context, a: argparse.Namespace) -> int:
    from rongqi.image.auth import CredentialStore
    host = _registry_host(a.server or "docker.io")
    creds = CredentialStore([a.authfile] if a.authfile else None)
    if not creds.remove(host):
        raise RongqiError(f"not logged in to {host}")
    print(f"Removed login credentials for {host}")
    return 0


# -- argv ----------------------------------------------------------------------------------------
def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class _Skipped:
    """The parser of a command this invocation does not run: every call on it is a no-op.

    Building all ~700 arguments of every command costs tens of milliseconds, which `run` and
    `exec` (whose speed is a goal) should not pay; only the command named on the line is built.
    """

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kw: Any) -> Any:
        return self

    def __contains__(self, item: Any) -> bool:
        return False

    def __iter__(self) -> Any:
        return iter(())


def _command_word(p: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """The top-level command in argv (global options and their values skipped)."""
    i = 0
    while i < len(argv):
        t = argv[i]
        if t == "--":
            return None
        if t.startswith("-"):
            act = p._option_string_actions.get(t.split("=", 1)[0])
            if act is not None and act.nargs != 0 and "=" not in t:
                i += 1
            i += 1
            continue
        return t
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; with argv, only the command argv names is built (see _Skipped)."""
    p = _Parser(prog="rongqi", description="rongqi (容器): a daemonless container engine")
    from rongqi.image import default_root  # not image.store: exec and ps need no store
    p.add_argument("--root", default=os.environ.get("RONGQI_ROOT") or default_root(),
                   help="image store and layer storage (default %(default)s; an ordinary "
                        "user's is $XDG_DATA_HOME/rongqi or ~/.local/share/rongqi)")
    p.add_argument("--runroot", default=os.environ.get("RONGQI_RUNROOT") or None,
                   help="monitors, attach sockets and exit records (default /run/rongqi/engine;"
                        " an ordinary user's is $XDG_RUNTIME_DIR/rongqi/engine)")
    p.add_argument("--runtime", default=os.environ.get("RONGQI_RUNTIME") or None,
                   metavar="PATH", help="an OCI runtime binary with runc's command line "
                   "(runc, crun, rongqi-oci) instead of rongqi's own, called in-process")
    p.add_argument("--registries-conf", default=None,
                   help="JSON with insecure registries and mirrors "
                        "(default /etc/rongqi/registries.json)")
    p.add_argument("--storage-mode", default="auto",
                   choices=("auto", "overlay", "copy", "fuse-overlayfs", "userns"),
                   help="how snapshots are mounted (auto: kernel overlay as root, "
                        "fuse-overlayfs rootless, else a copy)")
    p.add_argument("--version", action="version", version="rongqi version 0.1.0")
    # podman's global flags that scripts (and podman's own system tests) pass
    p.add_argument("--storage-driver", default=None, choices=("overlay", "vfs"),
                   help="vfs: snapshots are copies (--storage-mode copy)")
    p.add_argument("--log-level", default="warn", help="trace, debug, info, warn, warning, "
                   "error, fatal, panic (rongqi logs errors only)")
    # its own dest: build's positional CONTEXT is `context` in the same namespace
    p.add_argument("--context", dest="global_context", default="default",
                   help="only \"default\" (no swarm)")
    p.add_argument("--noout", action="store_true", help="nothing on stdout")
    p.add_argument("--events-backend", default="file", choices=("file", "journald", "none"),
                   help="accepted for podman's scripts: rongqi's events are always its file "
                        "(ROOT/events.log)")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    only = _command_word(p, argv) if argv is not None else None

    def add(names: list[str], fn: Any, help: str, parent: Any = sub) -> argparse.ArgumentParser:
        if only is not None and (isinstance(parent, _Skipped)
                                 or parent is sub and only not in names):
            return _Skipped()  # type: ignore[return-value]
        sp = parent.add_parser(names[0], aliases=names[1:], help=help)
        sp.set_defaults(fn=fn)
        return sp

    def pull_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("name")
        sp.add_argument("-q", "--quiet", action="store_true")
        sp.add_argument("--platform", help="os/arch[/variant]")
        sp.add_argument("--arch", default="", help="the architecture (with the host's OS)")
        sp.add_argument("--os", default="", help="the OS (with the host's architecture)")
        sp.add_argument("--tls-verify", type=_bool, default=True, metavar="BOOL",
                        help="false: allow plain http for this registry")
        sp.add_argument("--creds", help="user:password for the registry")
        sp.add_argument("--no-unpack", action="store_true",
                        help="only fetch the blobs, do not unpack the layers")
        sp.add_argument("-j", "--jobs", type=int, default=4, help="layers unpacked at once")

    def push_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("source")
        sp.add_argument("destination", nargs="?")
        sp.add_argument("-q", "--quiet", action="store_true")
        sp.add_argument("--tls-verify", type=_bool, default=True, metavar="BOOL")
        sp.add_argument("--creds")

    def images_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-q", "--quiet", action="store_true")
        sp.add_argument("--digests", action="store_true")
        sp.add_argument("--format", default="table",
                        help="table (the default), json, or a Go template (podman's fields)")
        sp.add_argument("-n", "--noheading", action="store_true", help="no header row")
        sp.add_argument("--no-trunc", action="store_true", help="full image ids")
        sp.add_argument("-a", "--all", action="store_true",
                        help="intermediate images too (rongqi keeps none: every image has a name)")
        sp.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                        help="before, after/since, reference, dangling, label, id")
        sp.add_argument("--sort", default="created",
                        choices=("created", "id", "repository", "size", "tag"))
        sp.add_argument("reference", nargs="?", help="only images whose name matches")

    def rmi_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("names", nargs="*")
        sp.add_argument("-f", "--force", action="store_true")
        sp.add_argument("-a", "--all", action="store_true", help="every image")
        sp.add_argument("-i", "--ignore", action="store_true",
                        help="no error for an image that does not exist")
        sp.add_argument("--no-prune", action="store_true")

    def inspect_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("names", nargs="+")
        sp.add_argument("-f", "--format")

    def history_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("name")
        sp.add_argument("--no-trunc", action="store_true")
        sp.add_argument("-q", "--quiet", action="store_true", help="print the IDs only")
        sp.add_argument("--format", default="", help="a Go template, or json")
        sp.add_argument("-H", "--human", action=argparse.BooleanOptionalAction, default=True,
                        help="sizes and dates in human-readable form (default true)")

    def load_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-i", "--input")
        sp.add_argument("-q", "--quiet", action="store_true")

    def save_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("names", nargs="+")
        sp.add_argument("-o", "--output")
        sp.add_argument("-q", "--quiet", action="store_true",
                        help="no progress (rongqi's save shows none)")
        sp.add_argument("--format", choices=("docker-archive", "oci-archive"),
                        default="docker-archive")

    def import_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("file")
        sp.add_argument("name", nargs="?")
        sp.add_argument("-q", "--quiet", action="store_true", help="the image's ID only")
        sp.add_argument("-c", "--change", action="append")

    def export_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("name")
        sp.add_argument("-o", "--output")

    def prune_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-a", "--all", action="store_true")
        sp.add_argument("-f", "--force", action="store_true")
        sp.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                        help="label=K[=V], label!=K[=V], until=TIME")
        sp.add_argument("--build-cache", action="store_true",
                        help="also remove the build cache: cached steps and the persistent "
                        "RUN --mount=type=cache directories (podman 4.4's flag)")

    def untag_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("image")
        sp.add_argument("names", nargs="*")

    def image_ref_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("image")

    table = [
        (["pull"], cmd_pull, "fetch an image from a registry", pull_args),
        (["push"], cmd_push, "send an image to a registry", push_args),
        (["images"], cmd_images, "list images", images_args),
        (["rmi"], cmd_rmi, "remove images", rmi_args),
        (["tag"], cmd_tag, "give an image more names", None),
        (["history"], cmd_history, "show an image's layers", history_args),
        (["load"], cmd_load, "load a docker-archive or oci-archive", load_args),
        (["save"], cmd_save, "write images to an archive", save_args),
        (["import"], cmd_import, "make an image from a rootfs tarball", import_args),
        (["untag"], cmd_untag, "remove names from an image", untag_args),
        # `export` is podman's container command (cli/fs.py); given an image instead it still
        # writes the image's flattened rootfs with cmd_export below.
    ]
    for names, fn, help, args in table:
        sp = add(names, fn, help)
        if args:
            args(sp)
        elif fn is cmd_tag:
            sp.add_argument("source")
            sp.add_argument("targets", nargs="+")

    img = add(["image"], None, "manage images")
    isub = img.add_subparsers(dest="image_command", parser_class=_Parser)
    for names, fn, help, args in [
        (["ls", "list"], cmd_images, "list images", images_args),
        (["pull"], cmd_pull, "fetch an image", pull_args),
        (["push"], cmd_push, "send an image", push_args),
        (["rm"], cmd_rmi, "remove images", rmi_args),
        (["inspect"], cmd_inspect, "show an image's details as JSON", inspect_args),
        (["history"], cmd_history, "show an image's layers", history_args),
        (["load"], cmd_load, "load an archive", load_args),
        (["save"], cmd_save, "save images", save_args),
        (["import"], cmd_import, "import a rootfs tarball", import_args),
        (["prune"], cmd_prune, "remove unused data", prune_args),
        (["untag"], cmd_untag, "remove names from an image", untag_args),
        (["exists"], cmd_image_exists, "exit 0 if the image is in the store, else 1",
         image_ref_args),
    ]:
        args(add(names, fn, help, isub))
    mnt = add(["mount"], cmd_mount, "make a snapshot of an image and print its rootfs", isub)
    mnt.add_argument("name")
    mnt.add_argument("id", nargs="?", help="snapshot id (default: a random one)")
    umnt = add(["unmount", "umount"], cmd_unmount, "unmount and remove snapshots", isub)
    umnt.add_argument("ids", nargs="+")
    tag = add(["tag"], cmd_tag, "name an image", isub)
    tag.add_argument("source")
    tag.add_argument("targets", nargs="+")

    system = add(["system"], None, "system information")
    ssub = system.add_subparsers(dest="system_command", parser_class=_Parser)
    df = add(["df"], cmd_df, "show podman-style disk usage of images, containers and volumes",
             ssub)
    df.add_argument("-v", "--verbose", action="store_true", help="a table of each")
    df.add_argument("--format", default="", help="a Go template, or json")
    # `system prune` (containers, images, volumes) is cli/system.py's

    login = add(["login"], cmd_login, "save credentials for a registry")
    login.add_argument("server", nargs="?")
    login.add_argument("-u", "--username")
    login.add_argument("-p", "--password")
    login.add_argument("--password-stdin", action="store_true")
    login.add_argument("--authfile")
    login.add_argument("--tls-verify", type=_bool, default=True, metavar="BOOL")
    logout = add(["logout"], cmd_logout, "forget credentials for a registry")
    logout.add_argument("server", nargs="?")
    logout.add_argument("--authfile")

    # The engine's commands live in one module per area (see docs/engine.md); each module's
    # register() adds its commands at the top level and under the groups podman has them in.
    container = add(["container"], None, "manage containers")
    volume = add(["volume"], None, "manage volumes")
    groups = {
        "image": isub,
        "system": ssub,
        "container": container.add_subparsers(dest="container_command", parser_class=_Parser),
        "volume": volume.add_subparsers(dest="volume_command", parser_class=_Parser),
    }
    import importlib
    modules = COMMAND_MODULES
    if only is not None and only not in groups:
        # One top-level command: only the module that registers it (none for this file's
        # own image commands); a group (`container ...`) gathers commands of all of them.
        modules = tuple(m for m in COMMAND_MODULES if only in COMMAND_WORDS.get(m, ()))
    for module in modules:
        importlib.import_module(f"rongqi.cli.{module}").register(add, sub, groups)
    if only is not None and only not in sub.choices:
        return build_parser()  # an unknown command: argparse lists them all
    if argv is None or "-h" in argv or "--help" in argv:
        from rongqi.cli import examples  # only help shows them: not on run's path
        examples.attach(p)
    return p


# Modules whose register(add, top, groups) adds commands; keep their top-level imports light
# (argparse only): `rongqi --help` and every command import all of them.
COMMAND_MODULES = ("containers", "run", "run_flags", "volumes", "fs", "system", "build",
                   "networks", "reference", "serve", "update")
# The top-level words each module's register() adds (besides what it adds under the groups),
# so that `rongqi run` imports cli/run.py alone; tests/unit/cli/test_command_words.py checks
# this against what the modules really register.
COMMAND_WORDS = {
    "containers": ("create", "start", "stop", "restart", "kill", "rm", "ps", "inspect", "wait",
                   "rename", "pause", "unpause"),
    "run": ("run", "attach", "exec", "logs", "healthcheck"),
    "fs": ("cp", "diff", "commit", "export", "stats", "top", "port"),
    "system": ("events", "info", "version"),
    "build": ("build",),
    "networks": ("network",),
    "reference": ("completion",),
    "serve": ("serve",),
    "update": ("update",),
}


def exit_code(err: RongqiError) -> int:
    """podman's exit code for an error: the one its class (or the error itself) names, else 125.

    RongqiError's own exit_code (1) is rongqi-oci's, runc's; the engine's default is 125."""
    if "exit_code" in vars(err):
        return int(err.exit_code)
    for cls in type(err).__mro__:
        if cls is RongqiError:
            break
        if "exit_code" in vars(cls):
            return int(cls.exit_code)
    return 125


_LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")


# Flags whose value may start with a dash: `kill -s -HUP` (podman reads "-HUP" as HUP),
# `logs --since -1s` (a second from now). argparse would take the value for an option, so it
# is joined to its flag.
_DASH_VALUES = {"kill": {"-s": "--signal", "--signal": "--signal"},
                "logs": {"--since": "--since", "--until": "--until"},
                "events": {"--since": "--since", "--until": "--until"}}


def _dash_values(argv: list[str]) -> list[str]:
    word = next((w for w in argv if w in _DASH_VALUES), None)
    if word is None:
        return argv
    flags = _DASH_VALUES[word]
    out = list(argv)
    i = out.index(word) + 1
    while i < len(out) - 1:
        if out[i] == "--":
            break
        if out[i] in flags and out[i + 1].startswith("-") and len(out[i + 1]) > 1:
            out[i:i + 2] = [f"{flags[out[i]]}={out[i + 1]}"]
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = _dash_values(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if args.log_level not in _LOG_LEVELS:
            # podman's words and exit code, before any command runs
            print(f'Log Level "{args.log_level}" is not supported, choose from: '
                  + ", ".join(_LOG_LEVELS), file=sys.stderr)
            return 1
        if args.global_context != "default":
            raise RongqiError(f"rongqi does not support {args.global_context}, the only --context "
                              'value allowed is "default"')
        if args.storage_driver == "vfs" and args.storage_mode == "auto":
            args.storage_mode = "copy"
        if args.noout:
            sys.stdout = open(os.devnull, "w")
        fn = getattr(args, "fn", None)
        if fn is None:
            # `rongqi`, `rongqi image`, `rongqi system` alone: show what there is.
            from rongqi.cli import examples
            examples.attach(parser)
            parser.parse_args([*argv, "--help"])
            return 0
        return fn(Context(args), args) or 0
    except RongqiError as e:
        print(f"Error: {e}", file=sys.stderr)
        return exit_code(e)
    except BrokenPipeError:
        # `rongqi images | head -1`: the reader left. End quietly, as a program SIGPIPE ended.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:
        # A file the user named or the store's permissions: their problem to fix, one line.
        where = f": {e.filename}" if e.filename else ""
        print(f"Error: {e.strerror or e}{where}", file=sys.stderr)
        return 125
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
