"""The Docker API's image endpoints: pull (/images/create) and push with Docker's JSON progress
stream, list, inspect, history, tag, remove, load, save (get), search, prune, and /auth.

Documents come from engine/imageinfo.py (shared with api.py); pulls and pushes are the image
store's and registry client's own, their progress turned into Docker's messages here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from rongqi import units
from rongqi.engine import imageinfo
from rongqi.engine.imageinfo import ImageFacts, familiar
from rongqi.errors import RongqiError
from rongqi.image.progress import Progress
from rongqi.serve.app import HTTPError, Request, Response, json_response, json_stream, route

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.image.reference import Reference

CHUNK = 1 << 16
# Progress messages per layer at most this often (a fast loopback pull makes thousands).
PROGRESS_INTERVAL = 0.1


# -- shared helpers ------------------------------------------------------------------------------
def _auth_doc(header: str | None) -> dict[str, Any] | None:
    """X-Registry-Auth's AuthConfig (base64url JSON); None when it does not decode, which
    is no credentials, as dockerd reads it for pull and push."""
    if not header:
        return None
    try:
        raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        doc = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def registry_tokens(header: str | None) -> tuple[str, str]:
    """X-Registry-Auth's (identitytoken, registrytoken): the refresh token a `docker login`
    got back as IdentityToken, and a bearer token for the registry itself."""
    doc = _auth_doc(header) or {}
    return str(doc.get("identitytoken") or ""), str(doc.get("registrytoken") or "")


def use_auth(client: Any, host: str, header: str | None) -> None:
    """Give a RegistryClient what X-Registry-Auth says for `host`, as dockerd's pull and push
    use it: username and password, an identity token (refreshed at the registry's token
    server with OAuth2, client_id "docker" as dockerd's), a registry token (sent as is)."""
    client.client_id = DOCKER_CLIENT_ID
    creds = registry_auth(header)
    if creds:
        client.explicit_creds[host] = creds
    identity, registry = registry_tokens(header)
    if identity:
        client.identity_tokens[host] = identity
    if registry:
        client.registry_tokens[host] = registry


# dockerd's registry.AuthClientID: the OAuth2 client_id its token requests carry.
DOCKER_CLIENT_ID = "docker"


def registry_auth(header: str | None) -> tuple[str, str] | None:
    """X-Registry-Auth: base64url JSON of Docker's AuthConfig; (username, password) or None.

    A header that does not decode is no credentials, as dockerd reads it for pull and push.
    """
    doc = _auth_doc(header)
    if doc is None:
        return None
    user, password = doc.get("username") or "", doc.get("password") or ""
    if not user and doc.get("auth"):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            user, _, password = base64.b64decode(doc["auth"]).decode().partition(":")
    return (str(user), str(password)) if user else None


def parse_ref(text: str, *, default_tag: str | None = "latest") -> Reference:
    from rongqi.image import reference
    try:
        return reference.parse(text, default_tag=default_tag)
    except RongqiError as e:
        raise HTTPError(400, str(e)) from None


def find(engine: Engine, name: str) -> ImageFacts:
    """The image `name` names, or Docker's 404 "No such image: NAME"."""
    from rongqi.image.errors import ImageNotFound
    try:
        return imageinfo.image(engine.store, name)
    except ImageNotFound:
        raise HTTPError(404, f"No such image: {name}") from None


def _event(engine: Engine, action: str, image_id: str = "", name: str = "") -> None:
    """An image event with podman's actions (the CLI's: pull, push, tag, untag, remove...)."""
    from rongqi.engine import events
    events.emit(engine.root, "image", action, id=image_id.partition(":")[2] or image_id,
                name=name)


def _error(message: str, code: int | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"message": message}
    if code is not None:
        detail = {"code": code, "message": message}
    return {"errorDetail": detail, "error": message}


def human_size(n: float) -> str:
    """go-units' size words as dockerd's progress text prints them ("1.24MB", "512B")."""
    return units.human_size(n, 3)


def _bar(current: int, total: int) -> str:
    """The progress text dockerd sends beside progressDetail ("[==>   ]  1.2MB/3.4MB")."""
    width = 50
    if total <= 0:
        return human_size(current)
    filled = min(width, int(width * current / total))
    arrow = "=" * max(0, filled - 1) + (">" if filled else "")
    return f"[{arrow.ljust(width)}] {human_size(current):>8}/{human_size(total)}"


class _Streamed:
    """Runs `work` in a thread and yields what it puts in the queue, then its error as
    Docker's error object; the thread finishes its work even if the client goes away."""

    _END = object()

    def __init__(self) -> None:
        self.q: queue.Queue[Any] = queue.Queue()

    def put(self, item: dict[str, Any]) -> None:
        self.q.put(item)

    def run(self, work: Callable[[], None], describe: Callable[[BaseException], str]
            ) -> Iterator[dict[str, Any]]:
        def target() -> None:
            try:
                work()
            except RongqiError as e:
                self.q.put(_error(describe(e)))
            except Exception as e:  # noqa: BLE001 - reported in the stream, and re-raised
                self.q.put(e)
            finally:
                self.q.put(self._END)

        threading.Thread(target=target, name="rongqi-serve-image", daemon=True).start()
        while True:
            item = self.q.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                yield _error(f"internal error: {type(item).__name__}: {item}")
                raise item  # the app logs it: a bug, after the client got its error line
            yield item


class _LayerProgress(Progress):
    """image.progress's calls as Docker's per-layer messages, for the layers (not the config)."""

    def __init__(self, out: _Streamed, layers: list[str], kind: str,
                 have: Callable[[str], bool] | None = None):
        self.out = out
        self.kind = kind                       # "pull" or "push"
        self.layers = set(layers)
        self.have = have                       # a pull's blobs already here: no progress
        self.quiet: set[str] = set()
        self.current: dict[str, int] = {}
        self.total: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.finished: dict[str, str] = {}
        self.lock = threading.Lock()

    @staticmethod
    def short(digest: str) -> str:
        return digest.partition(":")[2][:12]

    def start(self, key: str, label: str, total: int) -> None:
        if key in self.layers:
            with self.lock:
                self.current[key], self.total[key] = 0, total
                if self.have is not None and self.have(key):
                    self.quiet.add(key)

    def advance(self, key: str, n: int) -> None:
        if key not in self.layers or key in self.quiet:
            return
        with self.lock:
            cur = self.current[key] = self.current.get(key, 0) + n
            total = self.total.get(key, 0)
            now = time.monotonic()
            if now - self.last.get(key, 0.0) < PROGRESS_INTERVAL and cur < total:
                return
            self.last[key] = now
        status = "Downloading" if self.kind == "pull" else "Pushing"
        self.out.put({"status": status, "progressDetail": {"current": cur, "total": total},
                      "progress": _bar(cur, total), "id": self.short(key)})

    def finish(self, key: str, status: str) -> None:
        if key not in self.layers:
            return
        self.finished[key] = status
        sid = self.short(key)
        if self.kind == "pull":
            if status == "already exists":
                self.out.put({"status": "Already exists", "progressDetail": {}, "id": sid})
            else:
                self.out.put({"status": "Verifying Checksum", "progressDetail": {}, "id": sid})
                self.out.put({"status": "Download complete", "progressDetail": {}, "id": sid})
            return
        text = {"layer already exists": "Layer already exists", "pushed": "Pushed"}.get(
            status, status[:1].upper() + status[1:])   # "mounted from X" -> "Mounted from X"
        self.out.put({"status": text, "progressDetail": {}, "id": sid})

    def message(self, text: str) -> None:
        # "Pulling X from H", "Digest: ..." are said in Docker's words by the handlers; the
        # rest (the built-in busybox made locally) is news the client should see.
        if not text.startswith(("Pulling ", "Pushing ", "Digest: ")):
            self.out.put({"status": text})


# -- pull and import (POST /images/create) -----------------------------------------------------
@route("POST", "/images/create")
def create(req: Request) -> Response:
    src = req.arg("fromSrc")
    if src:
        return _import(req, src)
    image = req.arg("fromImage") or ""
    if not image:
        raise HTTPError(400, "fromImage or fromSrc is required")
    ref = parse_ref(image, default_tag=None)
    tag = req.arg("tag") or ""
    if tag:
        from rongqi.image.reference import is_digest
        ref = ref.with_digest(tag) if is_digest(tag) else ref.with_tag(tag)
    elif not ref.tag and not ref.digest:
        return _pull(req, ref, req.arg("platform") or "", all_tags=True)   # dockerd's empty tag
    return _pull(req, ref, req.arg("platform") or "")


def _manifest_layers(client: Any, ref: Reference, platform: Any) -> list[str]:
    _host, body, _mt, _digest, _index = client.resolve(ref, platform)
    try:
        return [str(x["digest"]) for x in json.loads(body).get("layers") or []]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def _pull(req: Request, ref: Reference, platform_text: str, all_tags: bool = False) -> Response:
    """One tag (or every tag of the repository) pulled, with dockerd's progress stream."""
    from rongqi.engine import images
    from rongqi.image.builtin import is_builtin
    from rongqi.image.errors import AuthError, ImageError, RegistryError
    from rongqi.image.registry import Platform
    engine = req.engine
    platform = None
    if platform_text:
        try:
            platform = Platform.parse(platform_text)
        except RongqiError as e:
            raise HTTPError(400, f'"{platform_text}": unknown operating system or '
                                 f"architecture: {e}") from None
    repo = familiar(ref.repository)
    # Ask the registry first: a missing image or bad credentials is Docker's error status
    # before any stream (what the docker CLI reacts to), and the layers are known up front.
    client = engine.registry()
    use_auth(client, ref.api_host, req.headers.get("x-registry-auth"))
    known: dict[str, list[str]] = {}     # str(ref) -> its layers, asked before the stream
    try:
        if all_tags:
            refs = [ref.with_tag(t) for t in sorted(client.tags(ref))]
            if not refs:
                raise HTTPError(404, f"repository {repo} has no tags")
        else:
            refs = [ref]
            known[str(ref)] = _manifest_layers(client, ref, platform)
    except AuthError as e:
        raise HTTPError(401, f"pull access denied for {repo}: {e}") from None
    except RegistryError as e:
        if all_tags or not (is_builtin(str(ref)) and platform is None):
            raise HTTPError(500, str(e)) from None
        known[str(ref)] = []   # no registry: images.pull makes the built-in busybox, says so
    except ImageError as e:
        if "not known" in str(e):
            raise HTTPError(404, f"repository {repo} not found: does not exist") from None
        if "manifest unknown" in str(e):
            raise HTTPError(404, f"manifest for {familiar(str(ref))} not found: manifest "
                                 "unknown: manifest unknown") from None
        raise HTTPError(500, str(e)) from None
    _ = engine.store, engine.storage   # made here: the engine's lazy parts are not thread-safe
    out = _Streamed()
    header = req.headers.get("x-registry-auth")
    creds = registry_auth(header)
    identity, registry = registry_tokens(header)
    opts = images.PullOptions(platform=platform_text,
                              creds=f"{creds[0]}:{creds[1]}" if creds else "",
                              identity_token=identity, registry_token=registry,
                              client_id=DOCKER_CLIENT_ID)

    def one(r: Reference) -> bool:
        """Pull r; whether anything changed (a new manifest under its name)."""
        before = ""
        with contextlib.suppress(RongqiError):
            before = engine.store.resolve(str(r))[1].digest
        layers = known[str(r)] if str(r) in known else _manifest_layers(client, r, platform)
        progress = _LayerProgress(out, layers, "pull", have=engine.store.has_blob)
        out.put({"status": f"Pulling from {r.path}", "id": r.digest or r.tag or "latest"})
        for d in layers:
            if not engine.store.has_blob(d):   # else fetch_blob says "Already exists"
                out.put({"status": "Pulling fs layer", "progressDetail": {},
                         "id": progress.short(d)})
        name, desc = images.pull(engine, str(r), opts, progress)
        for d in layers:
            if progress.finished.get(d) not in (None, "already exists"):
                out.put({"status": "Pull complete", "progressDetail": {},
                         "id": progress.short(d)})
        digest = (desc.annotations or {}).get(imageinfo.REPO_DIGEST, "").rpartition("@")[2]
        out.put({"status": f"Digest: {digest or desc.digest}"})
        image_id = ""
        with contextlib.suppress(RongqiError, KeyError):
            image_id = engine.store.manifest(desc)["config"]["digest"]
        _event(engine, "pull", image_id, name)
        return before != desc.digest

    def work() -> None:
        fresh = False
        for r in refs:
            fresh = one(r) or fresh
        shown = repo if all_tags else familiar(str(ref))
        out.put({"status": f"Status: {'Downloaded newer image' if fresh else 'Image is up to date'}"
                           f" for {shown}"})

    return json_stream(out.run(work, str))


def _import(req: Request, src: str) -> Response:
    """fromSrc=-: the body is a rootfs tarball, made a one-layer image (docker import)."""
    from rongqi.image.archive import import_tarball
    if src != "-":
        raise HTTPError(400, f"importing from {src!r} is not supported: send the tarball in "
                             "the request body (fromSrc=-)")
    repo = req.arg("repo") or ""
    name = None
    if repo:
        ref = parse_ref(repo, default_tag=None)
        ref = ref.with_tag(req.arg("tag") or ref.tag or "latest")
        name = str(ref)
    from rongqi.engine.files import apply_changes
    config: dict[str, Any] = {}
    apply_changes(config, req.query.get("changes", []))   # podman's import -c set
    engine = req.engine
    with _spooled(engine, req.stream) as (f, _path):
        desc = import_tarball(engine.store, f, name, config)
    image_id = engine.store.manifest(desc)["config"]["digest"]
    _event(engine, "import", image_id, name or "")
    return json_stream([{"status": image_id}])


@contextlib.contextmanager
def _spooled(engine: Engine, stream: Any) -> Iterator[tuple[IO[bytes], str]]:
    """The request body in a temp file of the store's ingest dir (archives need seeking):
    the file (at its start) and its path."""
    fd, path = tempfile.mkstemp(prefix="serve-", dir=engine.store.ingest_dir)
    try:
        with os.fdopen(fd, "w+b") as f:
            while chunk := stream.read(1 << 20):
                f.write(chunk)
            f.flush()
            f.seek(0)
            yield f, path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# -- list, inspect, history ----------------------------------------------------------------------
_IMAGE_FILTERS = ("before", "dangling", "label", "reference", "since")


def _glob(pattern: str) -> re.Pattern[str]:
    """Go's path.Match as a regex: * and ? never cross a "/"."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise HTTPError(400, f"invalid reference filter {pattern!r}: syntax error in "
                                     "pattern")
            body = pattern[i + 1:j]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def _reference_matches(facts: ImageFacts, patterns: list[str]) -> bool:
    """Docker's reference filter: a pattern matches a tag's familiar name with or without
    its tag ("busybox", "busybox:*", "127.0.0.1:5000/*")."""
    for name in facts.names:
        full = familiar(name)
        bare = full.rsplit(":", 1)[0] if ":" in full.rsplit("/", 1)[-1] else full
        for p in patterns:
            rx = _glob(p)
            if rx.match(full) or rx.match(bare):
                return True
    return False


labels_match = imageinfo.labels_match


def _select(engine: Engine, filters: dict[str, list[str]]) -> list[ImageFacts]:
    for key in filters:
        if key not in _IMAGE_FILTERS:
            raise HTTPError(400, f"invalid filter '{key}'")
    images = imageinfo.all_images(engine.store)
    if "dangling" in filters:
        values = {v.lower() for v in filters["dangling"]}
        if not values <= {"true", "false", "1", "0"} or len(values) > 1:
            raise HTTPError(400, f"invalid filter 'dangling={','.join(filters['dangling'])}'")
        want = values <= {"true", "1"}
        images = [f for f in images if f.dangling == want]
    if "reference" in filters:
        images = [f for f in images if _reference_matches(f, filters["reference"])]
    if "label" in filters:
        images = [f for f in images if labels_match(f.labels, filters["label"])]
    for key, older in (("before", True), ("since", False)):
        for ref in filters.get(key, []):
            pivot = find(engine, ref).created_unix
            images = [f for f in images if (f.created_unix < pivot if older
                                            else f.created_unix > pivot)]
    return images


@route("GET", "/images/json")
def list_images(req: Request) -> Response:
    engine = req.engine
    images = _select(engine, req.filters())
    users: dict[str, int] = {}
    with contextlib.suppress(RongqiError, OSError):
        for c in engine.records.all():
            iid = c.config.get("image_id", "")
            users[iid] = users.get(iid, 0) + 1
    images.sort(key=lambda f: f.created_unix, reverse=True)
    # all: dockerd lists a dangling image without it only when no image is built on it;
    # rongqi's images have no parents, so both list the same images.
    return json_response([imageinfo.list_entry(f, containers=users.get(f.id, 0),
                                               engine=engine) for f in images])


@route("GET", "/images/{name:path}/json")
def inspect_image(req: Request) -> Response:
    facts = find(req.engine, req.params["name"])
    return json_response(imageinfo.inspect(facts, engine=req.engine))


@route("GET", "/images/{name:path}/history")
def history(req: Request) -> Response:
    return json_response(imageinfo.history(find(req.engine, req.params["name"])))


# -- tag and remove ------------------------------------------------------------------------------
@route("POST", "/images/{name:path}/tag")
def tag(req: Request) -> Response:
    engine = req.engine
    facts = find(engine, req.params["name"])
    repo = req.arg("repo") or ""
    if not repo:
        raise HTTPError(400, "repository name must have at least one component")
    ref = parse_ref(repo, default_tag=None)
    if ref.digest:
        raise HTTPError(400, "refusing to create a tag with a digest reference")
    ref = ref.with_tag(req.arg("tag") or ref.tag or "latest")
    engine.store.set_name(str(ref), _named_desc(facts))
    _event(engine, "tag", facts.id, str(ref))
    return Response(201)


def _named_desc(facts: ImageFacts) -> Any:
    """The manifest a new name of the image points at (without another name's annotations)."""
    from rongqi.image.media import Descriptor
    d = facts.desc
    return Descriptor(d.media_type, d.digest, d.size)


class _Conflict(HTTPError):
    def __init__(self, message: str):
        super().__init__(409, f"conflict: {message}")


def _users(engine: Engine, image_id: str) -> list[Any]:
    out = []
    for c in engine.list(all=True):
        if c.config.get("image_id") == image_id:
            out.append(c)
    return out


def _running(c: Any) -> bool:
    return str(c.status) in ("running", "paused", "restarting", "stopping")


def remove_image(engine: Engine, ref: str, *, force: bool = False) -> list[dict[str, str]]:
    """Docker's image delete (daemon/images/image_delete.go), over the store's names.

    By name: that name goes; the image goes with its last name unless a container uses it
    (then 409 without force; with force the image stays, unnamed, for its containers). By ID:
    every name goes and the image with them, refused (409) while a running container uses it,
    and without force while a stopped one does or the image has names in several
    repositories. Containers are never removed (podman's rmi -f does; Docker's does not).
    """
    from rongqi.image.errors import ImageNotFound
    store = engine.store
    try:
        resolved, _ = store.resolve(ref)
    except ImageNotFound:
        by_digest = imageinfo.by_repo_digest(store, ref)
        if by_digest is None:
            raise HTTPError(404, f"No such image: {ref}") from None
        return _remove_repo_digest(engine, ref, by_digest, force=force)
    facts = find(engine, ref)
    users = _users(engine, facts.id)
    # Every stored name of the image (a by-digest pull's "x@sha256:..." too).
    names = sorted(n for n, d in store.names() if d.digest in facts.manifests)
    records: list[dict[str, str]] = []
    if resolved in names and not _is_id_prefix(facts, ref, resolved):
        if not force and len(names) == 1 and users:
            raise _Conflict(f'unable to remove repository reference "{ref}" (must force) - '
                            f"container {users[0].id[:12]} is using its referenced image "
                            f"{facts.short_id}")
        before = _digests_held(store, facts)
        _untag(store, resolved, facts, keep=len(names) == 1 and bool(users))
        records.append({"Untagged": familiar(resolved)})
        _event(engine, "untag", facts.id, resolved)
        records += _gone_digests(engine, facts, before)
        if len(names) > 1 or users:
            return records
    else:
        running = [c for c in users if _running(c)]
        if running:
            raise _Conflict(f"unable to delete {facts.short_id} (cannot be forced) - image is "
                            f"being used by running container {running[0].id[:12]}")
        if not force and users:
            raise _Conflict(f"unable to delete {facts.short_id} (must be forced) - image is "
                            f"being used by stopped container {users[0].id[:12]}")
        repos = {n.split("@")[0].rsplit(":", 1)[0] for n in names}
        if not force and len(repos) > 1:
            raise _Conflict(f"unable to delete {facts.short_id} (must be forced) - image is "
                            "referenced in multiple repositories")
        before = _digests_held(store, facts)
        for i, n in enumerate(names):
            # force, stopped containers: untagged, the image stays for them
            _untag(store, n, facts, keep=bool(users) and i == len(names) - 1)
            records.append({"Untagged": familiar(n)})
            _event(engine, "untag", facts.id, n)
        records += _gone_digests(engine, facts, before)
        if users:
            return records
    for digest in facts.manifests:
        store.remove_unnamed(digest)
    records.append({"Deleted": facts.id})
    _event(engine, "remove", facts.id)
    records.extend({"Deleted": chain} for chain in collect_garbage(engine, facts))
    return records


def _digests_held(store: Any, facts: ImageFacts) -> set[str]:
    """The repository digests the image's names carry now (pull's annotation)."""
    return {(d.annotations or {}).get(imageinfo.REPO_DIGEST, "")
            for _n, d in store.names() if d.digest in facts.manifests} - {""}


def _gone_digests(engine: Engine, facts: ImageFacts, before: set[str]) -> list[dict[str, str]]:
    """dockerd's records for the digest references that went with the names removed (its
    digest refs of a repository go with the repository's last tag)."""
    gone = sorted(before - _digests_held(engine.store, facts))
    for rd in gone:
        _event(engine, "untag", facts.id, rd)
    return [{"Untagged": familiar(rd)} for rd in gone]


def _remove_repo_digest(engine: Engine, ref: str, facts: ImageFacts, *,
                        force: bool) -> list[dict[str, str]]:
    """dockerd's delete of a digest reference (`docker rmi busybox@sha256:...`): that
    reference goes; the image stays with its tags (rongqi keeps a repository digest on the
    names pulled with it, so there always are some: the image itself never goes here)."""
    from rongqi.image.media import REF_NAME, Descriptor
    store = engine.store
    rd = imageinfo.repo_digest_of(ref)
    refs = len(facts.names) + len(facts.repo_digests)
    users = _users(engine, facts.id)
    if not force and refs == 1 and users:
        raise _Conflict(f'unable to remove repository reference "{ref}" (must force) - '
                        f"container {users[0].id[:12]} is using its referenced image "
                        f"{facts.short_id}")
    with store.gc_lock(shared=True):
        for name, d in store.names():
            ann = dict(d.annotations or {})
            if ann.get(imageinfo.REPO_DIGEST) != rd:
                continue
            ann.pop(imageinfo.REPO_DIGEST)
            ann.pop(REF_NAME, None)
            store.set_name(name, Descriptor(d.media_type, d.digest, d.size, ann or None,
                                            d.platform))
    _event(engine, "untag", facts.id, rd)
    return [{"Untagged": familiar(rd)}]


def _untag(store: Any, name: str, facts: ImageFacts, *, keep: bool) -> None:
    """Remove a name; keep: the image stays in the index unnamed (dangling), with no moment
    in between at which a gc could take its blobs."""
    with store.gc_lock(shared=True):
        store.remove_name(name)
        if keep:
            store.keep(_named_desc(facts))


def _is_id_prefix(facts: ImageFacts, ref: str, resolved: str) -> bool:
    """Whether `ref` named the image by ID (a name that happens to be hex is a name)."""
    from rongqi.image import reference
    with contextlib.suppress(RongqiError):
        if str(reference.parse(ref)) == resolved:
            return False
    hexpart = ref.removeprefix("sha256:")
    return facts.id.partition(":")[2].startswith(hexpart) and ref != resolved


def collect_garbage(engine: Engine, facts: ImageFacts | None = None) -> list[str]:
    """Blobs and unpacked layers no image needs any more go; the chain IDs of facts' layers
    that went (dockerd lists each deleted layer after the image)."""
    from rongqi.engine.usage import collect_garbage as gc
    from rongqi.storage.overlay import chain_ids
    removed = set(gc(engine)[1])
    if facts is None:
        return []
    return [c for c in reversed(chain_ids(facts.diff_ids)) if c in removed]


@route("DELETE", "/images/{name:path}")
def delete(req: Request) -> Response:
    # noprune: dockerd's keeps untagged parent images; rongqi's images have no parents.
    return json_response(remove_image(req.engine, req.params["name"],
                                      force=req.flag("force")))


@route("POST", "/images/prune")
def prune(req: Request) -> Response:
    """Unused images: dangling ones (dangling=true, the default) or every image no container
    uses (dangling=false: docker image prune -a), narrowed by until and label."""
    engine = req.engine
    filters = req.filters()
    for key in filters:
        if key not in ("dangling", "until", "label", "label!"):
            raise HTTPError(400, f"invalid filter '{key}'")
    dangling_only = True
    if "dangling" in filters:
        values = {v.lower() for v in filters["dangling"]}
        if not values <= {"true", "false", "1", "0"}:
            raise HTTPError(400, f"invalid filter 'dangling={','.join(filters['dangling'])}'")
        dangling_only = values <= {"true", "1"}
    until = _until(filters.get("until", []))
    deleted: list[dict[str, str]] = []
    before = engine.store.disk_usage()
    for f in imageinfo.prunable(engine, dangling_only=dangling_only, until=until,
                                labels=filters.get("label"), not_labels=filters.get("label!")):
        with contextlib.suppress(HTTPError):
            deleted.extend(remove_image(engine, f.id.partition(":")[2], force=True))
    collect_garbage(engine)
    freed = max(0, before - engine.store.disk_usage())
    return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": freed})


def _until(values: list[str]) -> int | None:
    from rongqi.engine.events import parse_input_time
    if not values:
        return None
    try:
        return min(parse_input_time(v, since=True) for v in values) // 1_000_000_000
    except RongqiError as e:
        raise HTTPError(400, str(e)) from None


# -- push ----------------------------------------------------------------------------------------
@route("POST", "/images/{name:path}/push")
def push(req: Request) -> Response:
    engine = req.engine
    store = engine.store
    repo = parse_ref(req.params["name"], default_tag=None)
    tag_arg = req.arg("tag") or ""
    if repo.digest:
        raise HTTPError(400, "cannot push a digest reference")
    if tag_arg or repo.tag:
        targets = [repo.with_tag(tag_arg or repo.tag or "latest")]
    else:   # no tag: every local tag of the repository, as dockerd
        targets = sorted((parse_ref(n) for n, _ in store.names()
                          if n.rsplit(":", 1)[0] == repo.repository), key=str)
    found = []
    for t in targets:
        try:
            found.append((t, store.resolve(str(t))[1]))
        except RongqiError:
            continue
    if not found:
        raise HTTPError(404, "An image does not exist locally with the tag: "
                             f"{familiar(str(targets[0]) if targets else repo.repository)}")
    client = engine.registry()
    use_auth(client, repo.api_host, req.headers.get("x-registry-auth"))
    out = _Streamed()

    def work() -> None:
        from rongqi.image import reference
        from rongqi.image.media import Descriptor
        out.put({"status": f"The push refers to repository [{familiar(repo.repository)}]"})
        for dest, desc in found:
            m = store.manifest(desc)
            layers = [x["digest"] for x in m.get("layers") or []]
            progress = _LayerProgress(out, layers, "push")
            for d in reversed(layers):
                out.put({"status": "Preparing", "progressDetail": {}, "id": progress.short(d)})
            mount_from = []
            for n, d in store.names():
                r = reference.parse(n)
                if r.domain == dest.domain and r.path != dest.path and d.digest == desc.digest:
                    mount_from.append(r.path)
            digest = client.push(store, desc, dest, progress=progress, mount_from=mount_from)
            size = store.blob_size(desc.digest)
            # The pushed name now has a repo digest (RepoDigests), as after a pull.
            with contextlib.suppress(RongqiError):
                if store.resolve(str(dest))[1].digest == desc.digest:
                    store.set_name(str(dest), Descriptor(desc.media_type, desc.digest, desc.size, {
                        imageinfo.REPO_DIGEST: f"{dest.repository}@{digest}"}))
            out.put({"status": f"{dest.tag}: digest: {digest} size: {size}"})
            out.put({"progressDetail": {}, "aux": {"Tag": dest.tag, "Digest": digest,
                                                   "Size": size}})
            image_id = ""
            with contextlib.suppress(RongqiError, KeyError):
                image_id = m["config"]["digest"]
            _event(engine, "push", image_id, str(dest))

    return json_stream(out.run(work, str))


# -- load and save -------------------------------------------------------------------------------
@route("POST", "/images/load")
def load(req: Request) -> Response:
    from rongqi.image.archive import load_archive
    engine = req.engine
    with _spooled(engine, req.stream) as (_f, path):
        try:
            loaded = load_archive(engine.store, path)
        except RongqiError as e:
            # One line, about "the archive": the temp file's path means nothing to a client.
            line = str(e).replace(path, "the archive").splitlines()[0].rstrip(": ")
            raise HTTPError(400, line) from None
    lines = []
    for name, desc in loaded:
        image_id = ""
        with contextlib.suppress(RongqiError, KeyError):
            image_id = engine.store.manifest(desc)["config"]["digest"]
        _event(engine, "loadfromarchive", image_id, name)
        lines.append({"stream": f"Loaded image: {familiar(name)}\n" if name
                      else f"Loaded image ID: {image_id}\n"})
    return json_stream(lines)


def _save_list(engine: Engine, names: list[str]) -> list[tuple[str, Any]]:
    """What `docker save NAME...` writes: a repository without a tag is all of its tags; an
    ID is the image without names."""
    store = engine.store
    out: list[tuple[str, Any]] = []
    for n in names:
        ref = None
        with contextlib.suppress(RongqiError):
            ref = parse_ref(n, default_tag=None)
        if ref is not None and not ref.tag and not ref.digest:
            tags = [(name, d) for name, d in store.names()
                    if name.rsplit(":", 1)[0] == ref.repository]
            if tags:
                out.extend(sorted(tags, key=lambda t: t[0]))
                continue
        f = find(engine, n)
        resolved = store.resolve(n)[0]
        out.append((resolved if resolved in f.names else "", _named_desc(f)))
    return out


def _tar_response(engine: Engine, names: list[str]) -> Response:
    from rongqi.image.archive import save_docker_archive
    if not names:
        raise HTTPError(400, "no image names given")
    images = _save_list(engine, names)
    _ = engine.store

    def chunks() -> Iterator[bytes]:
        # The archive is written into a pipe by a thread (tarfile's stream mode): the client
        # gets it as it is made; one who goes away closes the pipe and so stops the writer.
        r, w = os.pipe2(os.O_CLOEXEC)

        def write() -> None:
            with contextlib.suppress(BrokenPipeError), os.fdopen(w, "wb") as f:
                save_docker_archive(engine.store, images, f)

        t = threading.Thread(target=write, name="rongqi-serve-save", daemon=True)
        t.start()
        with os.fdopen(r, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
        t.join()
        for n, _d in images:
            _event(engine, "save", "", n)

    return Response(200, chunks(), content_type="application/x-tar")


@route("GET", "/images/get")
def save_many(req: Request) -> Response:
    return _tar_response(req.engine, req.query.get("names", []))


@route("GET", "/images/{name:path}/get")
def save(req: Request) -> Response:
    return _tar_response(req.engine, [req.params["name"]])


# -- search --------------------------------------------------------------------------------------
@route("GET", "/images/search")
def search(req: Request) -> Response:
    """Answered from a registry's /v2/_catalog when the term names one (HOST[:PORT]/TERM);
    Docker Hub's search (a term without a registry) is never asked: no network here."""
    term = req.arg("term") or ""
    limit = req.int("limit", 25) or 25
    filters = req.filters()
    for key in filters:
        if key not in ("is-automated", "is-official", "stars"):
            raise HTTPError(400, f"invalid filter '{key}'")
    host, _, rest = term.partition("/")
    if not rest or not ("." in host or ":" in host or host == "localhost") or \
            host in ("docker.io", "index.docker.io"):
        raise HTTPError(500, f'searching "{term}" needs Docker Hub\'s search, which rongqi '
                             "does not ask: name a registry in the term "
                             "(REGISTRY[:PORT]/TERM) to search its catalog")
    client = req.engine.registry()
    use_auth(client, host, req.headers.get("x-registry-auth"))
    repos = client.catalog(host)
    if any(v.lower() in ("true", "1") for v in filters.get("is-official", []) +
           filters.get("is-automated", [])):
        repos = []
    for v in filters.get("stars", []):
        if v.isdigit() and int(v) > 0:
            repos = []
    hits = [r for r in repos if rest.lower() in r.lower()][:limit]
    return json_response([{"description": "", "is_automated": False, "is_official": False,
                           "name": f"{host}/{r}", "star_count": 0} for r in hits])


# -- auth ----------------------------------------------------------------------------------------
@route("POST", "/auth")
def auth(req: Request) -> Response:
    """A login check against the registry (dockerd keeps no credentials: the client does).
    IdentityToken is the refresh token the registry's token server gave (asked for with
    offline_token=true, as dockerd asks); an AuthConfig with an identitytoken logs in with it
    (OAuth2's refresh_token grant)."""
    from rongqi.image.errors import AuthError
    from rongqi.image.reference import registry_host
    doc = req.json() or {}
    if not isinstance(doc, dict):
        raise HTTPError(400, "the body must be a JSON object (an AuthConfig)")
    user = str(doc.get("username") or "")
    password = str(doc.get("password") or "")
    identity = str(doc.get("identitytoken") or "")
    host = registry_host(str(doc.get("serveraddress") or ""))
    client = req.engine.registry()
    client.client_id = DOCKER_CLIENT_ID
    try:
        token = client.login(host, user, password, identity)
    except AuthError:
        url = f"{client.base_url(host)}/v2/"
        raise HTTPError(401, f"login attempt to {url} failed with status: 401 "
                             "Unauthorized") from None
    return json_response({"IdentityToken": token, "Status": "Login Succeeded"})
