"""The container's root: propagation, the spec's mounts, /dev, pivot_root, masked and read-only paths.

Every destination is resolved inside the root with openat2(RESOLVE_IN_ROOT) and
mounted through /proc/self/fd/N, so a symlink in the image (or one swapped in
by a racing container process) can never send a mount outside the root.
"""

from __future__ import annotations

import errno
import os
import stat as st

from rongqi.linux import syscall as s
from rongqi.linux.mount import MountOptions, locked_flags, parse_options

O_PATH = os.O_PATH
_RESOLVE = s.RESOLVE_IN_ROOT | s.RESOLVE_NO_MAGICLINKS


class MountSpec:
    """One mount to make (plain values; rongqi.oci converts spec mounts to these)."""

    __slots__ = ("destination", "type", "source", "options", "source_fd")

    def __init__(self, destination: str, type_: str, source: str, options: list[str], source_fd: int = -1):
        self.destination = destination
        self.type = type_
        self.source = source
        self.options = options
        # A bind source opened by the host's root (O_PATH, in our mount namespace): in a
        # user namespace our root may not be able to reach the source by its path.
        self.source_fd = source_fd


class DeviceSpec:
    __slots__ = ("path", "type", "major", "minor", "mode", "uid", "gid")

    def __init__(self, path: str, type_: str, major: int, minor: int, mode: int = 0o666, uid: int = 0, gid: int = 0):
        self.path = path
        self.type = type_
        self.major = major
        self.minor = minor
        self.mode = mode
        self.uid = uid
        self.gid = gid


DEFAULT_DEVICES = (
    DeviceSpec("/dev/null", "c", 1, 3),
    DeviceSpec("/dev/zero", "c", 1, 5),
    DeviceSpec("/dev/full", "c", 1, 7),
    DeviceSpec("/dev/random", "c", 1, 8),
    DeviceSpec("/dev/urandom", "c", 1, 9),
    DeviceSpec("/dev/tty", "c", 5, 0),
)

DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _unescape_mountinfo(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return text.encode().decode("unicode_escape") if "\\" in text else text


def _open_dev_null() -> int:
    """An O_PATH fd of the container's /dev/null, checked to be the null device (1:3): a mask
    bound from a /dev/null that the image made a symlink to, or a file of its own, would expose
    that file where the mask should hide (CVE-2025-31133)."""
    fd = os.open("/dev/null", O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    info = os.fstat(fd)
    if not st.S_ISCHR(info.st_mode) or info.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise OSError(errno.EINVAL, "/dev/null in the container is not the null device (1:3): "
                                    "refusing to mask paths with it")
    return fd


# -- resolving and creating paths inside the root -----------------------------------

def open_in_root(sc: s.Syscalls, root_fd: int, path: str, flags: int = O_PATH) -> int:
    return sc.openat2(root_fd, path.lstrip("/") or ".", flags, 0, _RESOLVE)


def mkdir_all(sc: s.Syscalls, root_fd: int, path: str, mode: int = 0o755, _depth: int = 0) -> int:
    """Create path (and its parents) inside the root; return an O_PATH fd of the directory.

    A dangling symlink on the way is followed inside the root (its target is created
    there), as runc's securejoin does; nothing is ever created outside the root.
    """
    rel = path.strip("/")
    if not rel:
        return os.dup(root_fd)
    try:
        return open_in_root(sc, root_fd, rel, O_PATH | os.O_DIRECTORY)
    except OSError as err:
        if err.errno != errno.ENOENT:
            raise
    parent, _, name = rel.rpartition("/")
    pfd = mkdir_all(sc, root_fd, parent, mode, _depth)
    try:
        try:
            sc.mkdirat(pfd, name, mode)
        except FileExistsError:
            try:
                target = os.readlink(name, dir_fd=pfd)
            except OSError:
                raise OSError(errno.ENOTDIR, f"{path} in the container's root is not a directory") from None
            if _depth >= 40:
                raise OSError(errno.ELOOP, f"{path}: too many levels of symbolic links") from None
            resolved = target if target.startswith("/") else parent + "/" + target
            return mkdir_all(sc, root_fd, os.path.normpath("/" + resolved), mode, _depth + 1)
        return sc.openat2(pfd, name, O_PATH | os.O_DIRECTORY, 0, s.RESOLVE_NO_SYMLINKS)
    finally:
        os.close(pfd)


def make_mountpoint(sc: s.Syscalls, root_fd: int, path: str, is_dir: bool) -> int:
    """Return an O_PATH fd of path inside the root, creating a dir or an empty file."""
    if is_dir:
        return mkdir_all(sc, root_fd, path)
    try:
        return open_in_root(sc, root_fd, path, O_PATH)
    except OSError as err:
        if err.errno != errno.ENOENT:
            raise
    parent, _, name = path.strip("/").rpartition("/")
    pfd = mkdir_all(sc, root_fd, parent)
    try:
        try:
            fd = sc.openat2(pfd, name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o644, s.RESOLVE_NO_SYMLINKS)
            os.close(fd)
        except FileExistsError:
            pass
        return sc.openat2(pfd, name, O_PATH | os.O_NOFOLLOW, 0, s.RESOLVE_NO_SYMLINKS)
    finally:
        os.close(pfd)


# -- the sequence ----------------------------------------------------------------------

class RootfsSetup:
    """Builds a container's root filesystem in the current (new) mount namespace.

    Call in this order: prepare(), mount_all(), create_devices(), then (after
    the createRuntime/createContainer hooks) pivot(), then finalize().
    """

    def __init__(self, sc: s.Syscalls, rootfs: str, *, propagation: str = "", userns: bool = False,
                 bundle: str = "", mount_label: str = "", cgroupns: bool = False,
                 cgroup_dirs: dict[str, str] | None = None):
        self.sc = sc
        self.rootfs = rootfs
        self.propagation = propagation
        self.userns = userns
        self.bundle = bundle
        self.mount_label = mount_label
        self.cgroupns = cgroupns
        self.cgroup_dirs = cgroup_dirs  # hierarchy key ("memory", "name=systemd", "unified") -> host dir
        self.root_fd = -1
        self._ro_after_devices: list[tuple[str, int]] = []
        self._dev_is_bind = False

    # 1. propagation and the root bind mount
    def prepare(self) -> None:
        from rongqi.linux.mount import PROPAGATION

        prop = PROPAGATION.get(self.propagation, s.MS_SLAVE | s.MS_REC)
        self.sc.mount(None, "/", None, prop)
        if prop & s.MS_SHARED:
            self._make_parent_private()
        try:
            self.sc.mount(self.rootfs, self.rootfs, "bind", s.MS_BIND | s.MS_REC)
        except PermissionError as err:
            if not self.userns:
                raise
            raise OSError(err.errno, f"{err.strerror}: in a user namespace, every directory on the path to "
                                     f"{self.rootfs} must be searchable by the container's mapped root uid") from None
        self.root_fd = os.open(self.rootfs, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def _make_parent_private(self) -> None:
        # pivot_root refuses a shared parent mount; make the mount holding the rootfs private.
        best = "/"
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].replace("\\040", " ")
                if (self.rootfs == mp or self.rootfs.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
                    best = mp
        self.sc.mount(None, best, None, s.MS_PRIVATE)

    # 2. the spec's mounts
    def mount_all(self, mounts: list[MountSpec]) -> None:
        for m in mounts:
            try:
                self.mount_one(m)
            except OSError as err:
                raise OSError(err.errno, f"mounts {m.destination}: {err.strerror or err}") from None

    def mount_one(self, m: MountSpec) -> None:
        o = parse_options(m.options)
        kind = m.type
        if kind == "bind" or o.is_bind:
            self._bind(m, o)
            return
        if kind == "cgroup" or kind == "cgroup2":
            self._mount_cgroup(m, o)
            return
        if kind in ("proc", "sysfs"):
            self._check_ordinary_dir(m.destination, kind)
        dir_mode = self._existing_dir_mode(m.destination) if kind == "tmpfs" else None
        fd = make_mountpoint(self.sc, self.root_fd, m.destination, True)
        try:
            target = fd_path(fd)
            flags = o.flags
            data = o.data_string()
            if dir_mode is not None:
                # runc: a tmpfs over a directory of the image keeps that directory's mode
                # (setuid, setgid and sticky bits too); a mode= of the spec comes after it, so
                # it wins. Over a directory the runtime makes, tmpfs's own default (1777).
                data = f"mode={dir_mode:04o}" + ("," + data if data else "")
            if self.mount_label and kind in ("tmpfs", "devpts", "mqueue"):
                data = (data + "," if data else "") + f'context="{self.mount_label}"'
            if kind == "tmpfs" and m.destination == "/dev" and flags & s.MS_RDONLY:
                # /dev read-only: make the devices first, then remount.
                self._ro_after_devices.append((m.destination, flags))
                flags &= ~s.MS_RDONLY
            if "tmpcopyup" in o.extensions:
                self._tmpcopyup(fd, m, flags, data)
            else:
                try:
                    self.sc.mount(m.source or kind, target, kind, flags, data or None)
                except PermissionError:
                    if kind == "sysfs" or (kind == "mqueue" and self.userns):
                        # Inside a user namespace without its own network namespace
                        # sysfs cannot be mounted; bind the host's, as runc does.
                        src = "/sys" if kind == "sysfs" else "/dev/mqueue"
                        self.sc.mount(src, target, "bind", s.MS_BIND | s.MS_REC)
                        self.sc.mount(None, target, None, s.MS_BIND | s.MS_REMOUNT | s.MS_REC |
                                      (flags & (s.MS_RDONLY | s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC)) |
                                      locked_flags(target))
                    else:
                        raise
            self._finish(m.destination, o)
        finally:
            os.close(fd)

    def _existing_dir_mode(self, dest: str) -> int | None:
        """The permission bits of the directory at dest in the root, or None if there is none."""
        try:
            fd = open_in_root(self.sc, self.root_fd, dest, O_PATH)
        except (FileNotFoundError, NotADirectoryError):
            return None  # made below, as a directory of the runtime's
        try:
            mode = os.fstat(fd).st_mode
        finally:
            os.close(fd)
        return st.S_IMODE(mode) if st.S_ISDIR(mode) else None

    def _check_ordinary_dir(self, dest: str, kind: str) -> None:
        """proc and sysfs go on a real directory of the image, never through a symlink (runc's
        rule, CVE-2019-16884): a /proc that links elsewhere would put the procfs, and what the
        runtime later writes there (labels, sysctls), where the image chose."""
        parent, _, name = dest.strip("/").rpartition("/")
        try:
            pfd = open_in_root(self.sc, self.root_fd, parent or ".", O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            return  # made as a directory below
        try:
            mode = os.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return
        finally:
            os.close(pfd)
        if not st.S_ISDIR(mode):
            raise OSError(errno.ENOTDIR, f'filesystem "{kind}" must be mounted on ordinary directory')

    def _mounted(self, dest: str) -> int:
        """An O_PATH fd of what is mounted at dest now.

        An fd opened before a mount names the directory underneath it; remounts and
        propagation changes must go through a fresh one, or they hit the parent mount.
        """
        return open_in_root(self.sc, self.root_fd, dest, O_PATH)

    def _bind(self, m: MountSpec, o: MountOptions) -> None:
        src = m.source
        if not src.startswith("/"):
            src = os.path.join(self.bundle, src)
        try:
            sstat = os.fstat(m.source_fd) if m.source_fd >= 0 else os.stat(src)
        except OSError as err:
            raise OSError(err.errno, f"bind source {src}: {err.strerror}") from None
        if m.destination == "/dev":
            self._dev_is_bind = True
        fd = make_mountpoint(self.sc, self.root_fd, m.destination, st.S_ISDIR(sstat.st_mode))
        try:
            self.sc.mount(fd_path(m.source_fd) if m.source_fd >= 0 else src, fd_path(fd), "bind",
                          o.flags & (s.MS_BIND | s.MS_REC))
        finally:
            os.close(fd)
            if m.source_fd >= 0:
                os.close(m.source_fd)
                m.source_fd = -1
        remount = o.flags & ~(s.MS_BIND | s.MS_REC | s.MS_REMOUNT)
        if remount:
            # The bind itself ignores flags: apply them with a remount that keeps
            # the flags the kernel locked on the source (nosuid, nodev... in a user ns).
            fd = self._mounted(m.destination)
            try:
                target = fd_path(fd)
                self.sc.mount(None, target, None, s.MS_BIND | s.MS_REMOUNT | remount | locked_flags(target))
            finally:
                os.close(fd)
        self._finish(m.destination, o)

    def _finish(self, dest: str, o: MountOptions) -> None:
        if not o.propagation and not (o.attr_set or o.attr_clr):
            return
        fd = self._mounted(dest)
        try:
            for p in o.propagation:
                self.sc.mount(None, fd_path(fd), None, p)
            if o.attr_set or o.attr_clr:
                # Recursive flags (rro, rnosuid...): mount_setattr on the new mount (AT_EMPTY_PATH).
                self.sc.mount_setattr(fd, "", 0x1000 | s.AT_RECURSIVE, o.attr_set, o.attr_clr)
        finally:
            os.close(fd)

    def _tmpcopyup(self, fd: int, m: MountSpec, flags: int, data: str) -> None:
        # Copy what the image has at the destination into the new tmpfs (runc's tmpcopyup).
        import shutil
        import tempfile

        tmp = tempfile.mkdtemp(prefix="rongqi-tmpcopyup-")
        try:
            self.sc.mount("tmpfs", tmp, "tmpfs", flags & ~s.MS_RDONLY, data or None)
            try:
                src = os.path.join(self.rootfs, m.destination.lstrip("/"))
                for name in os.listdir(src):
                    p = os.path.join(src, name)
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.copytree(p, os.path.join(tmp, name), symlinks=True)
                    else:
                        shutil.copy2(p, os.path.join(tmp, name), follow_symlinks=False)
                self.sc.mount(tmp, fd_path(fd), None, s.MS_MOVE)
            except BaseException:
                self.sc.umount2(tmp, s.MNT_DETACH)
                raise
            if flags & s.MS_RDONLY:
                nfd = self._mounted(m.destination)
                try:
                    self.sc.mount(None, fd_path(nfd), None, s.MS_REMOUNT | flags)
                finally:
                    os.close(nfd)
        finally:
            os.rmdir(tmp)

    def _mount_cgroup(self, m: MountSpec, o: MountOptions) -> None:
        """A cgroup mount shows the container's own cgroups, read-only unless asked otherwise.

        With a cgroup namespace, fresh cgroup filesystems are rooted at the container's
        cgroup by the kernel; without one, the container's cgroup directories are bound.
        """
        flags = o.flags | s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC
        dirs = self.cgroup_dirs or {}
        fd = make_mountpoint(self.sc, self.root_fd, m.destination, True)
        try:
            target = fd_path(fd)
            unified_only = list(dirs) == ["unified"] or m.type == "cgroup2"
            if unified_only:
                if self.cgroupns:
                    self.sc.mount("cgroup2", target, "cgroup2", flags, None)
                else:
                    self._bind_ro(dirs.get("unified", "/sys/fs/cgroup"), target, flags,
                                  lambda: self._mounted(m.destination))
                self._finish(m.destination, o)
                return
            # v1 or hybrid: a tmpfs with one cgroup mount per hierarchy.
            self.sc.mount("tmpfs", target, "tmpfs", flags & ~s.MS_RDONLY, "mode=755")
        finally:
            os.close(fd)
        dest_fd = self._mounted(m.destination)
        try:
            for key, host_dir in dirs.items():
                sub = key[5:] if key.startswith("name=") else key
                self.sc.mkdirat(dest_fd, sub, 0o755)
                sfd = self.sc.openat2(dest_fd, sub, O_PATH | os.O_DIRECTORY, 0, s.RESOLVE_NO_SYMLINKS)
                try:
                    if not self.cgroupns:
                        self._bind_ro(host_dir, fd_path(sfd), flags,
                                      lambda sub=sub: self.sc.openat2(dest_fd, sub, O_PATH | os.O_DIRECTORY, 0,
                                                                      s.RESOLVE_NO_SYMLINKS))
                    elif key == "unified":
                        self.sc.mount("cgroup2", fd_path(sfd), "cgroup2", flags, None)
                    else:
                        self.sc.mount("cgroup", fd_path(sfd), "cgroup", flags, key)
                finally:
                    os.close(sfd)
                if "," in key:
                    for alias in key.split(","):
                        try:
                            self.sc.symlinkat(key, dest_fd, alias)
                        except FileExistsError:
                            pass
            if flags & s.MS_RDONLY:
                self.sc.mount(None, fd_path(dest_fd), None, s.MS_BIND | s.MS_REMOUNT | (flags & ~s.MS_BIND))
        finally:
            os.close(dest_fd)

    def _bind_ro(self, src: str, target: str, flags: int, reopen) -> None:
        """Bind src on target, then remount it with flags through a fresh fd (reopen())."""
        self.sc.mount(src, target, "bind", s.MS_BIND)
        fd = reopen()
        try:
            t = fd_path(fd)
            self.sc.mount(None, t, None, s.MS_BIND | s.MS_REMOUNT | (flags & ~s.MS_BIND) | locked_flags(t))
        finally:
            os.close(fd)

    # 3. /dev
    def create_devices(self, devices: list[DeviceSpec], *, default: bool = True) -> None:
        if self._dev_is_bind:
            return
        wanted: dict[str, DeviceSpec] = {}
        if default:
            for d in DEFAULT_DEVICES:
                wanted[d.path] = d
        for d in devices:
            wanted[d.path] = d
        for d in wanted.values():
            self._create_device(d)
        dev_fd = mkdir_all(self.sc, self.root_fd, "/dev")
        try:
            for target, link in DEV_SYMLINKS + ((("/proc/kcore", "/dev/core"),) if os.path.exists("/proc/kcore") else ()):
                name = link.rpartition("/")[2]
                try:
                    self.sc.symlinkat(target, dev_fd, name)
                except FileExistsError:
                    pass
            # /dev/ptmx points at the container's own devpts instance.
            try:
                os.unlink("ptmx", dir_fd=dev_fd)
            except FileNotFoundError:
                pass
            except OSError:
                pass
            try:
                self.sc.symlinkat("pts/ptmx", dev_fd, "ptmx")
            except FileExistsError:
                pass
        finally:
            os.close(dev_fd)
        for dest, flags in self._ro_after_devices:
            fd = open_in_root(self.sc, self.root_fd, dest, O_PATH)
            try:
                self.sc.mount(None, fd_path(fd), None, s.MS_REMOUNT | flags)
            finally:
                os.close(fd)

    def _create_device(self, d: DeviceSpec) -> None:
        parent, _, name = d.path.strip("/").rpartition("/")
        pfd = mkdir_all(self.sc, self.root_fd, parent)
        try:
            try:
                os.unlink(name, dir_fd=pfd)
            except FileNotFoundError:
                pass
            if self.userns:
                # mknod is not allowed in a user namespace: bind the host's node.
                fd = self.sc.openat2(pfd, name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o644, s.RESOLVE_NO_SYMLINKS)
                os.close(fd)
                nfd = self.sc.openat2(pfd, name, O_PATH | os.O_NOFOLLOW, 0, s.RESOLVE_NO_SYMLINKS)
                try:
                    self.sc.mount(d.path, fd_path(nfd), "bind", s.MS_BIND)
                finally:
                    os.close(nfd)
                return
            kind = {"c": st.S_IFCHR, "u": st.S_IFCHR, "b": st.S_IFBLK, "p": st.S_IFIFO}[d.type]
            self.sc.mknodat(pfd, name, kind | (d.mode & 0o7777), os.makedev(d.major, d.minor))
            self.sc.fchownat(pfd, name, d.uid, d.gid)
            self.sc.chmod(f"/proc/self/fd/{pfd}/{name}", d.mode & 0o7777)
        finally:
            os.close(pfd)

    def make_cwd(self, cwd: str) -> None:
        os.close(mkdir_all(self.sc, self.root_fd, cwd))

    # 4. the switch
    def pivot(self, no_pivot: bool = False) -> None:
        sc = self.sc
        os.close(self.root_fd)
        self.root_fd = -1
        if no_pivot:
            # For initramfs hosts, where pivot_root is not possible: move the root over "/".
            self._hide_host_proc_and_sys()
            sc.chdir(self.rootfs)
            sc.mount(self.rootfs, "/", None, s.MS_MOVE)
            sc.chroot(".")
            sc.chdir("/")
            return
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.chdir(new)
            # pivot_root(".", ".") stacks the old root under the new one; no put_old dir needed.
            sc.pivot_root(".", ".")
            sc.chdir(old)
            # Keep the unmount of the old root from propagating to the host.
            sc.mount(None, ".", None, s.MS_SLAVE | s.MS_REC)
            sc.umount2(".", s.MNT_DETACH)
            sc.chdir("/")
        finally:
            os.close(old)
            os.close(new)

    def _hide_host_proc_and_sys(self) -> None:
        """Unmount the host's full procfs and sysfs mounts before a --no-pivot move (runc's
        msMoveRoot does the same).

        MS_MOVE leaves the old root's mounts in the container's mount namespace, under the
        moved root. The kernel lets a new user namespace mount a fresh procfs or sysfs only if
        one is already fully visible in its mount namespace (mount_too_revealing): the host's
        /proc, with no masks over it, is, so a container could `unshare -mrpf` and mount a bare
        /proc (or /sys) past its masked and read-only paths. With pivot_root the old root is
        gone and only the container's own, masked, /proc remains.
        """
        sc = self.sc
        root = os.path.realpath(self.rootfs)
        with open("/proc/self/mountinfo", "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
        for line in lines:
            fields = line.split()
            try:
                sep = fields.index("-")
            except ValueError:
                continue
            fstype, mroot, point = fields[sep + 1], fields[3], _unescape_mountinfo(fields[4])
            if fstype not in ("proc", "sysfs") or mroot != "/" or point == root or point.startswith(root + "/"):
                continue
            try:
                # Never let the unmount reach the host's namespace.
                sc.mount(None, point, None, s.MS_SLAVE | s.MS_REC)
            except FileNotFoundError:
                continue  # below a mount already detached
            try:
                sc.umount2(point, s.MNT_DETACH)
            except OSError as err:
                if err.errno not in (errno.EINVAL, errno.EPERM):
                    raise
                # Not ours to unmount (locked, in a user namespace): cover it instead.
                sc.mount("tmpfs", point, "tmpfs", 0, None)

    # 5. after the switch: paths are the container's own
    def finalize(self, *, readonly_root: bool, sysctl: dict[str, str], readonly_paths: list[str],
                 masked_paths: list[str]) -> None:
        sc = self.sc
        for key, value in sysctl.items():
            path = "/proc/sys/" + key.replace(".", "/")
            try:
                sc.write_file(path, value)
            except OSError as err:
                raise OSError(err.errno, f"linux.sysctl.{key}: cannot write {value!r}: {err.strerror}") from None
        for p in readonly_paths:
            try:
                sc.mount(p, p, "bind", s.MS_BIND | s.MS_REC)
            except FileNotFoundError:
                continue
            sc.mount(None, p, None, s.MS_BIND | s.MS_REMOUNT | s.MS_RDONLY | s.MS_REC | locked_flags(p))
        null = -1
        try:
            for p in masked_paths:
                try:
                    isdir = st.S_ISDIR(os.stat(p).st_mode)
                except FileNotFoundError:
                    continue
                if isdir:
                    sc.mount("tmpfs", p, "tmpfs", s.MS_RDONLY, None)
                else:
                    if null < 0:
                        null = _open_dev_null()
                    sc.mount(fd_path(null), p, "bind", s.MS_BIND)
        finally:
            if null >= 0:
                os.close(null)
        if readonly_root:
            sc.mount(None, "/", None, s.MS_BIND | s.MS_REMOUNT | s.MS_RDONLY | locked_flags("/"))


class SharedRoot:
    """The root of a container without a mount namespace: it keeps the runtime's (the spec's
    rule for a namespace not listed), so nothing is mounted and /dev is the root's own; the root
    is a chroot, as runc makes it. oci/spec.py refuses what would need a mount (mounts, masked
    and read-only paths, a read-only root, devices). RootfsSetup's interface, for the init."""

    def __init__(self, sc: s.Syscalls, rootfs: str, sysctl: dict[str, str]):
        self.sc = sc
        self.rootfs = rootfs
        self.sysctl = sysctl

    def prepare(self) -> None:
        # Sysctls through the runtime's /proc (the root may have none mounted): each file is
        # the writer's own namespace's (net, ipc, uts), which the init already is in.
        for key, value in self.sysctl.items():
            try:
                self.sc.write_file("/proc/sys/" + key.replace(".", "/"), value)
            except OSError as err:
                raise OSError(err.errno, f"linux.sysctl.{key}: cannot write {value!r}: {err.strerror}") from None

    def mount_all(self, mounts: list[MountSpec]) -> None:
        if mounts:
            raise ValueError("mounts without a mount namespace (refused by the spec's parser)")

    def create_devices(self, devices: list[DeviceSpec], *, default: bool = True) -> None:
        pass

    def make_cwd(self, cwd: str) -> None:
        pass  # nothing is made in the bundle's root: chdir names a missing cwd

    def pivot(self, no_pivot: bool = False) -> None:
        self.sc.chdir(self.rootfs)
        self.sc.chroot(".")
        self.sc.chdir("/")

    def finalize(self, **_: object) -> None:
        pass
