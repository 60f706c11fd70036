"""Images for the engine: pulling (shared by `rongqi pull` and `run`/`create`), the pull
policies of run/create (--pull missing|always|never|newer) and the built-in busybox.

Prints nothing: progress goes to the image.progress.Progress the caller passes.
"""

from __future__ import annotations

import threading
TYPE_CHECKING = False  # typing is not imported on run's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

from rongqi.errors import EngineError, RongqiError
from rongqi.values import dataclass, field

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.image.media import Descriptor
    from rongqi.image.progress import Progress

POLICIES = ("missing", "always", "never", "newer")


@dataclass
class ResolvedImage:
    """An image in the store, ready for a container: its names, digests and config."""

    name: str                    # the name it is stored under (normalized)
    manifest_digest: str
    config_digest: str           # podman's image ID
    config: dict[str, Any]       # the whole OCI image config JSON
    chain_ids: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.config_digest.partition(":")[2]


@dataclass
class PullOptions:
    platform: str = ""           # os/arch[/variant]; "" = this host's
    tls_verify: bool = True
    creds: str = ""              # user:password
    # Docker's AuthConfig tokens (rongqi serve's X-Registry-Auth; image/registry.py): an
    # OAuth2 refresh token for the token server, a bearer token for the registry itself
    identity_token: str = ""
    registry_token: str = ""
    client_id: str = ""          # the OAuth2 client_id (rongqi's own when empty)
    unpack: bool = True
    jobs: int = 4


def normalized(name: str) -> str:
    from rongqi.image import reference
    try:
        return str(reference.parse(name))
    except RongqiError:
        return name


def pull(engine: Engine, name: str, opts: PullOptions | None = None,
         progress: Progress | None = None) -> tuple[str, Descriptor]:
    """Pull `name` into the store (unpacking layers while they download unless opts.unpack is
    false); returns (the normalized reference, the manifest descriptor).

    The built-in busybox is made locally when the registry cannot be reached (no network on
    this machine is the normal case), unless a platform was asked for.
    """
    from rongqi.image import reference
    from rongqi.image.builtin import is_builtin, make_busybox_image
    from rongqi.image.errors import BlobVerificationError, LayerError
    from rongqi.image.progress import Progress as SilentProgress
    from rongqi.image.registry import Platform
    from rongqi.image.store import FollowAborted

    opts = opts or PullOptions()
    progress = progress or SilentProgress()
    ref = reference.parse(name)
    client = engine.registry()
    if not opts.tls_verify:
        client.config.insecure.add(ref.api_host)
    if opts.creds:
        user, _, pw = opts.creds.partition(":")
        client.explicit_creds[ref.api_host] = (user, pw)
    if opts.identity_token:
        client.identity_tokens[ref.api_host] = opts.identity_token
    if opts.registry_token:
        client.registry_tokens[ref.api_host] = opts.registry_token
    if opts.client_id:
        client.client_id = opts.client_id
    platform = Platform.parse(opts.platform) if opts.platform else None
    cancelled = threading.Event()

    def unpack_while_downloading(manifest: dict[str, Any], config: dict[str, Any]) -> None:
        try:
            engine.storage.unpack_layers(engine.store, manifest, config, parallel=opts.jobs,
                                         cancelled=cancelled)
        except FollowAborted:
            pass  # a download restarted: unpacked below from the finished blobs
        except BaseException:
            cancelled.set()
            raise

    try:
        desc = client.pull(ref, engine.store, platform=platform, progress=progress,
                           while_downloading=unpack_while_downloading if opts.unpack else None)
    except RongqiError as e:
        if not is_builtin(name) or opts.platform or isinstance(e, (LayerError,
                                                                   BlobVerificationError)):
            raise
        progress.message(f"cannot pull {ref} ({e}); using the built-in busybox")
        desc = make_busybox_image(engine.store)
    finally:
        cancelled.set()
    if opts.unpack:
        engine.storage.unpack_image(engine.store, desc.digest, parallel=opts.jobs)
    return str(ref), desc


def _local(engine: Engine, name: str) -> tuple[str, Descriptor] | None:
    from rongqi.image.errors import ImageNotFound
    try:
        return engine.store.resolve(name)
    except ImageNotFound:
        pass
    if "@" in name:
        # NAME@sha256:... of an image pulled by tag: its repository digest (as dockerd's
        # reference store and podman find it), not a name of its own
        from rongqi.engine.imageinfo import by_repo_digest
        facts = by_repo_digest(engine.store, name)
        if facts is not None:
            return name, facts.desc
    return None


def _remote_digest(engine: Engine, name: str, opts: PullOptions) -> str | None:
    """The manifest digest the registry has for `name` now (None when it cannot be asked)."""
    from rongqi.image import reference
    from rongqi.image.registry import Platform
    try:
        ref = reference.parse(name)
        client = engine.registry()
        if not opts.tls_verify:
            client.config.insecure.add(ref.api_host)
        platform = Platform.parse(opts.platform) if opts.platform else None
        return client.resolve(ref, platform)[3]
    except RongqiError:
        return None
    except OSError:
        return None


def resolve(engine: Engine, name: str, policy: str = "missing",
            opts: PullOptions | None = None, progress: Progress | None = None
            ) -> ResolvedImage:
    """The image `run`/`create` use, pulled as `policy` says, with its layers unpacked.

    missing: the local image, else pull (the built-in busybox is made locally, no registry);
    always: pull, always; never: the local image or "image not known"; newer: pull when the
    registry's manifest differs from the local one (the local one when it cannot be asked).
    """
    if policy not in POLICIES:
        raise EngineError(f'invalid pull policy "{policy}": must be one of '
                          f"{', '.join(POLICIES)}")
    opts = opts or PullOptions()
    local = _local(engine, name)
    if policy == "never":
        if local is None:
            from rongqi.image.errors import ImageNotFound
            raise ImageNotFound(name)
    elif policy == "missing":
        if local is None:
            # (image.builtin imports the archive code: only when the image is missing)
            from rongqi.image.builtin import is_builtin, make_busybox_image
            if is_builtin(name) and not opts.platform:
                make_busybox_image(engine.store)
                local = _local(engine, name)
            else:
                local = pull(engine, name, opts, progress)
    elif policy == "always":
        local = pull(engine, name, opts, progress)
    elif policy == "newer":
        if local is None:
            local = pull(engine, name, opts, progress)
        else:
            remote = _remote_digest(engine, name, opts)
            if remote is not None and remote != local[1].digest:
                local = pull(engine, name, opts, progress)
    assert local is not None
    stored, desc = local
    manifest = engine.store.manifest(desc)
    config = engine.store.read_json(manifest["config"]["digest"])
    chains = engine.storage.unpack_image(engine.store, desc.digest)
    return ResolvedImage(stored, desc.digest, manifest["config"]["digest"], config, chains)
