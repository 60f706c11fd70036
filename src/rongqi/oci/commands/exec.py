"""rongqi-oci exec: run a new process in a running container; in the foreground, exit with its code."""

from __future__ import annotations

import os

from rongqi.errors import UsageError

_FORWARDED = (1, 2, 3, 10, 12, 14, 15, 28)


def run(g, opts, args, log) -> int:
    if not args:
        raise UsageError('"exec" requires a container id and a command (or --process FILE)')
    cid, cmd = args[0], args[1:]
    from rongqi.oci.exec import ExecOptions, exec_process

    o = ExecOptions(args=cmd, process_file=opts["process"], tty=opts["tty"], console_socket=opts["console-socket"],
                    pidfd_socket=opts["pidfd-socket"], detach=opts["detach"], pid_file=opts["pid-file"],
                    cwd=opts["cwd"], env=opts["env"], user=opts["user"], additional_gids=opts["additional-gids"],
                    caps=opts["cap"], no_new_privs=opts["no-new-privs"], apparmor=opts["apparmor"],
                    process_label=opts["process-label"], preserve_fds=opts["preserve-fds"],
                    ignore_paused=opts["ignore-paused"], cgroup=opts["cgroup"])
    if o.tty and not o.console_socket:
        raise UsageError("exec -t without --console-socket: a foreground terminal is not supported yet; "
                         "pass --console-socket or drop -t")
    pid = exec_process(g.root, cid, o)
    if o.detach:
        return 0
    import _signal

    def forward(sig, frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for sig in _FORWARDED:
        _signal.signal(sig, forward)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
