"""One error hierarchy for rongqi: a message for the user and an exit code.

The command lines turn a RongqiError into one line on stderr and its exit code;
anything else escaping is a bug in rongqi, not a user's mistake.
"""


class RongqiError(Exception):
    """A failure the user can act on; str(err) is the one line they see."""

    exit_code = 1


class SpecError(RongqiError):
    """config.json (or a resources/process file) is malformed or wrongly typed.

    The message starts with the JSON path of the offending value, as in
    ``linux.namespaces[2].type: unknown namespace "netx"``.
    """


class UsageError(RongqiError):
    """A bad flag or argument on the command line."""


class ContainerNotFound(RongqiError):
    """Clients (containerd's go-runc, podman) match the words "does not exist"."""

    def __init__(self, container_id: str):
        super().__init__(f"container {container_id} does not exist")
        self.container_id = container_id


class ContainerExists(RongqiError):
    def __init__(self, container_id: str):
        super().__init__(f"container with id {container_id} already exists")
        self.container_id = container_id


class ContainerStateError(RongqiError):
    """An operation that the container's current status does not allow.

    Keep runc's wording ("container not running", "cannot start an already
    running container", ...): the containerd shim matches on it.
    """


class UnsupportedError(RongqiError):
    """The host (kernel, privileges, hardware) cannot do what was asked."""


class HookError(RongqiError):
    """An OCI hook failed or timed out."""
