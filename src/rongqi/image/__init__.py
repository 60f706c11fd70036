"""Images: references, the content store, layers, registries and archives.

Knows nothing of running containers; the engine composes it with storage/ and oci/.
"""

import os

DEFAULT_ROOT = "/var/lib/rongqi"


def default_root() -> str:
    """/var/lib/rongqi for root; an ordinary user's own, as podman's rootless storage:
    $XDG_DATA_HOME/rongqi, else ~/.local/share/rongqi."""
    if os.geteuid() == 0:
        return DEFAULT_ROOT
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    return os.path.join(data, "rongqi")
