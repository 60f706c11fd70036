"""A container's statuses and the transitions between them, in one table (podman's
define/containerstate.go, with the engine's in-between states named)."""

from __future__ import annotations

from rongqi.errors import ContainerStateImproper

# The statuses, as state.json's "status" holds them and `ps`/`inspect` show them.
CREATED = "created"      # record, snapshot and bundle made; no process yet (start makes one)
RUNNING = "running"      # the monitor runs and the container's process is alive
PAUSED = "paused"        # running, all processes frozen (cgroup freezer)
STOPPING = "stopping"    # stop sent the stop signal and waits for the exit (then SIGKILL)
EXITED = "exited"        # the process ended (exit record folded in) or the monitor/host died
REMOVING = "removing"    # rm is under way; a crashed rm leaves this and the next rm finishes

ALL = (CREATED, RUNNING, PAUSED, STOPPING, EXITED, REMOVING)

# Which statuses the process may be alive in: sync looks for an exit record in these.
ALIVE = frozenset({RUNNING, PAUSED, STOPPING})

# from -> the statuses it may go to. Each edge says which operation takes it.
TRANSITIONS: dict[str, frozenset[str]] = {
    CREATED: frozenset({
        RUNNING,    # start (the monitor created and started the runtime container)
        EXITED,     # start failed after the runtime ran something, or init/cleanup ran
        REMOVING,   # rm
    }),
    RUNNING: frozenset({
        RUNNING,    # the monitor restarted it (restart policy): new pid, restart_count + 1
        PAUSED,     # pause
        STOPPING,   # stop, restart
        EXITED,     # the process ended (sync folds in the exit record), or the monitor died
        REMOVING,   # rm -f (killed first)
    }),
    PAUSED: frozenset({
        RUNNING,    # unpause
        STOPPING,   # stop of a paused container (thawed, then signalled)
        EXITED,     # killed while paused (kill -s KILL thaws), or the monitor died
        REMOVING,   # rm -f
    }),
    STOPPING: frozenset({
        STOPPING,   # a second stop while the first waits
        EXITED,     # the process ended
        REMOVING,   # rm -f while a stop waits
        RUNNING,    # the stop signal was ignored and SIGKILL could not be sent (stop failed)
    }),
    EXITED: frozenset({
        RUNNING,    # start, restart, or the restart policy
        EXITED,     # sync folding in a late exit record, or cleanup
        REMOVING,   # rm, --rm, container prune
    }),
    REMOVING: frozenset({
        REMOVING,   # rm again after a crashed rm: finish the job
    }),
}


def can(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check(current: str, target: str, message: str) -> None:
    """Raise podman's "...: container state improper" unless current -> target is allowed."""
    if not can(current, target):
        raise ContainerStateImproper(message)

