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


# -- the engine (`rongqi`): podman's wording and exit codes -------------------------------------

class EngineError(RongqiError):
    """A failure of the engine: `rongqi` prints "Error: <message>" and exits with exit_code.

    125 is podman's code for an engine error; commands change it where podman does (rm: 1 for
    a missing container, 2 for a running one; exists: 1).
    """

    exit_code = 125


class NoSuchContainer(EngineError):
    def __init__(self, ref: str):
        super().__init__(f'no container with name or ID "{ref}" found: no such container')
        self.ref = ref


class NameInUse(EngineError):
    def __init__(self, name: str, owner: str):
        super().__init__(f'the container name "{name}" is already in use by {owner}. You have '
                         "to remove that container to be able to reuse that name: that name is "
                         "already in use")
        self.name, self.owner = name, owner


class ContainerStateImproper(EngineError):
    """An operation the container's status does not allow (podman's "container state improper")."""

    def __init__(self, message: str):
        super().__init__(f"{message}: container state improper")


class ContainerRunning(ContainerStateImproper):
    """rm of a running or paused container without -f: podman exits 2."""

    exit_code = 2


class CommandNotFound(EngineError):
    """The container's command does not exist in its root (podman: 127)."""

    exit_code = 127


class CommandNotExecutable(EngineError):
    """The container's command exists but cannot be executed (podman: 126)."""

    exit_code = 126


class TemplateError(EngineError):
    """A --format Go template that does not parse or execute; the message is Go's
    (`template: NAME:LINE:COL: executing ...`), the exit code podman's 125."""


# -- the Python API (rongqi.api): docker-py's kinds, so code written for docker-py catches them --

class APIError(EngineError):
    """docker.errors.APIError: any failure of the engine seen through rongqi.Client.

    `explanation` is the engine's own message (docker-py keeps the daemon's there);
    `status_code` the HTTP status dockerd answers the same failure with (404 for a missing
    object, 409 for a conflict: a running container removed, a name in use; 400 for a bad
    argument; else 500), which docker-py's callers test."""

    status_code = 500

    def __init__(self, message: str, response: object = None, explanation: str | None = None,
                 status_code: int | None = None):
        super().__init__(message)
        self.response = response
        self.explanation = explanation if explanation is not None else message
        if status_code is not None:
            self.status_code = status_code

    def is_error(self) -> bool:
        return self.is_client_error() or self.is_server_error()

    def is_client_error(self) -> bool:
        return 400 <= self.status_code < 500

    def is_server_error(self) -> bool:
        return 500 <= self.status_code < 600


class NotFound(APIError):
    """docker.errors.NotFound: no container, volume or network of that name or id."""

    status_code = 404


class ImageNotFound(NotFound):
    """docker.errors.ImageNotFound: no image of that name or id (locally, or to pull)."""


class ContainerError(RongqiError):
    """docker.errors.ContainerError: a blocking `containers.run` whose command exited non-zero.

    `exit_status` is its code, `stderr` its standard error (bytes), as docker-py has them."""

    def __init__(self, container: object, exit_status: int, command: object, image: str,
                 stderr: bytes | None):
        self.container = container
        self.exit_status = exit_status
        self.command = command
        self.image = image
        self.stderr = stderr
        err = f": {stderr.decode(errors='replace')}" if stderr else ""
        super().__init__(f"Command '{command}' in image '{image}' returned non-zero exit "
                         f"status {exit_status}{err}")


class InvalidArgument(RongqiError, ValueError):
    """docker.errors.InvalidArgument: keywords the call cannot take together (stats'
    decode without stream, one_shot with it), refused before anything is asked."""


def os_error_line(err: OSError) -> str:
    """An OSError as the one line a user reads: "FILE: reason", or the reason alone (the
    runtime's CLI, its init and its exec say it so)."""
    text = err.strerror or str(err)
    return f"{err.filename}: {text}" if err.filename not in (None, "") else text
