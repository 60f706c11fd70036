/* Escape attempts made with raw syscalls from inside a container; one result line per attempt.
 *
 * Built by the security tests with `gcc -static` (busybox lacks most of these calls). Usage:
 *   probe NAME[=ARG] ...     run each attempt in its own forked child, in order
 *   probe euid               print "euid N" (the setuid copy's payload)
 * Each attempt prints "NAME ok DETAIL" or "NAME err ERRNO_NAME STAGE", so that a test can tell
 * which call failed and how. Nothing here changes the host even when it succeeds: reboot only
 * asks for CAD_OFF inside a pid namespace, module load passes an empty image, time is "set" with
 * no value, sysrq-trigger and /sys files are opened but never written.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case ETXTBSY: return "ETXTBSY";
    case EROFS: return "EROFS";
    case ENOSYS: return "ENOSYS";
    case ENOEXEC: return "ENOEXEC";
    case ENOTBLK: return "ENOTBLK";
    case ENODEV: return "ENODEV";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ELOOP: return "ELOOP";
    case ENOKEY: return "ENOKEY";
    case EDQUOT: return "EDQUOT";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "E%d", e);
        return buf;
    }
    }
}

static void err(const char *name, const char *stage) { printf("%s err %s %s\n", name, ename(errno), stage); }

static void a_mount(const char *n, const char *arg) {
    (void)arg;
    if (mount("tmpfs", "/mnt", "tmpfs", 0, "size=64k") < 0) return err(n, "mount");
    if (umount2("/mnt", 0) < 0) return err(n, "umount-own");
    printf("%s ok mounted-and-unmounted\n", n);
}

static void a_umount(const char *n, const char *path) {
    if (umount2(path, MNT_DETACH) < 0) return err(n, "umount");
    printf("%s ok unmounted %s\n", n, path);
}

static void a_userns(const char *n, const char *arg) {
    (void)arg;
    if (unshare(CLONE_NEWUSER) < 0) return err(n, "unshare");
    printf("%s ok\n", n);
}

static void a_keyctl(const char *n, const char *arg) {
    (void)arg;
    long serial = syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, (char *)NULL);
    if (serial < 0) return err(n, "keyctl");
    printf("%s ok keyring=%ld\n", n, serial);
}

static void a_ptrace(const char *n, const char *pidstr) {
    pid_t pid = (pid_t)atoi(pidstr);
    if (ptrace(PTRACE_ATTACH, pid, 0, 0) < 0) return err(n, "attach");
    waitpid(pid, NULL, __WALL);
    ptrace(PTRACE_DETACH, pid, 0, 0);
    printf("%s ok attached-and-detached %d\n", n, pid);
}

static void a_reboot(const char *n, const char *arg) {
    (void)arg;
    /* Safety: CAD_OFF outside a pid namespace would change the host's ctrl-alt-del setting. */
    if (getpid() > 200) {
        printf("%s skip not-in-a-pid-namespace\n", n);
        return;
    }
    if (syscall(SYS_reboot, 0xfee1dead, 672274793, 0 /* LINUX_REBOOT_CMD_CAD_OFF */, NULL) < 0)
        return err(n, "reboot");
    printf("%s ok\n", n);
}

static void a_module(const char *n, const char *arg) {
    (void)arg;
    /* An empty image: the kernel checks the caller first, then refuses the image (ENOEXEC). */
    if (syscall(SYS_init_module, "", 0UL, "") < 0) return err(n, "init_module");
    printf("%s ok\n", n);
}

/* ARG is "b:MAJOR:MINOR" or "c:MAJOR:MINOR": make the node in /dev (a tmpfs without nodev), open
 * it and read from it. */
static void a_mknod(const char *n, const char *dev) {
    unsigned maj = 0, min = 0;
    char type = 'b', buf[8192];
    const char *path = "/dev/rq-probe-node";
    sscanf(dev, "%c:%u:%u", &type, &maj, &min);
    unlink(path);
    if (mknod(path, (type == 'c' ? S_IFCHR : S_IFBLK) | 0600, makedev(maj, min)) < 0) return err(n, "mknod");
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        err(n, "open");
        unlink(path);
        return;
    }
    ssize_t got = read(fd, buf, sizeof buf);
    int e = errno;
    close(fd);
    unlink(path);
    errno = e;
    if (got < 0) return err(n, "read");
    printf("%s ok read=%zd\n", n, got);
}

static void a_open_write(const char *n, const char *path, int do_write, const char *data) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return err(n, "open");
    if (do_write && write(fd, data, strlen(data)) < 0) {
        err(n, "write");
        close(fd);
        return;
    }
    close(fd);
    printf("%s ok %s\n", n, do_write ? "written" : "opened-not-written");
}

static void a_kcore(const char *n, const char *arg) {
    (void)arg;
    struct stat st;
    unsigned char buf[4] = {0};
    if (stat("/proc/kcore", &st) < 0) return err(n, "stat");
    int fd = open("/proc/kcore", O_RDONLY);
    if (fd < 0) return err(n, "open");
    ssize_t got = read(fd, buf, sizeof buf);
    int e = errno;
    close(fd);
    errno = e;
    if (got < 0) return err(n, "read");
    printf("%s ok read=%zd elf=%d chardev=%u:%u\n", n, got, got == 4 && memcmp(buf, "\177ELF", 4) == 0,
           S_ISCHR(st.st_mode) ? major(st.st_rdev) : 0, S_ISCHR(st.st_mode) ? minor(st.st_rdev) : 0);
}

static void a_chroot(const char *n, const char *marker) {
    struct stat st;
    mkdir("/dev/shm/rq-jail", 0700);
    int up = open("/", O_RDONLY | O_DIRECTORY);
    if (chroot("/dev/shm/rq-jail") < 0) return err(n, "chroot");
    /* The classic escape: cwd (and the fd) stay outside the new root, so ".." walks up
     * past it to the real root of the mount namespace, if the runtime only chrooted. */
    if (fchdir(up) < 0) return err(n, "fchdir");
    for (int i = 0; i < 64; i++) chdir("..");
    if (chroot(".") < 0) return err(n, "chroot-back");
    if (stat(marker, &st) < 0) return err(n, "stat-marker");
    printf("%s ok host-marker-visible\n", n);
}

static void a_stat_marker(const char *n, const char *path) {
    struct stat st;
    if (stat(path, &st) < 0) return err(n, "stat");
    printf("%s ok visible\n", n);
}

static void a_selfexe(const char *n, const char *arg) {
    (void)arg;
    char link[256] = {0};
    if (readlink("/proc/self/exe", link, sizeof link - 1) < 0) return err(n, "readlink");
    int fd = open("/proc/self/exe", O_WRONLY);
    if (fd < 0) {
        printf("%s err %s open-write target=%s\n", n, ename(errno), link);
        return;
    }
    close(fd);
    printf("%s ok opened-for-write target=%s\n", n, link);
}

/* Watch /proc for the runtime's processes (a `rongqi-oci exec` entering the container) and try
 * to open their executable, the host's interpreter, for writing and for reading. */
static void a_runtime_exe(const char *n, const char *secs) {
    char seen[32768] = {0};
    int hidden = 0, visible = 0, wopen = 0, ropen = 0, fdopen_ok = 0, rootopen = 0, werr[160] = {0};
    char self[16];
    snprintf(self, sizeof self, "%d", getpid());
    time_t end = time(NULL) + atoi(secs);
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        if (!d) return err(n, "opendir");
        struct dirent *de;
        while ((de = readdir(d))) {
            int pid = atoi(de->d_name);
            if (pid <= 1 || pid >= 32768 || seen[pid] || strcmp(de->d_name, self) == 0) continue;
            char path[64], link[256] = {0};
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            ssize_t l = readlink(path, link, sizeof link - 1);
            if (l >= 0 && strstr(link, "python") == NULL && strstr(link, "rongqi") == NULL) {
                if (strcmp(link, "/bin/busybox") == 0 || strstr(link, "probe")) seen[pid] = 1;
                continue;  /* a container program (or a short-lived child): not the runtime */
            }
            if (l < 0) {
                if (errno == ENOENT) continue; /* gone, or a zombie */
                hidden++;
            } else {
                visible++;
            }
            seen[pid] = 1;
            int fd = open(path, O_WRONLY);
            if (fd >= 0) {
                wopen++;
                close(fd); /* nothing written */
            } else if (errno < 160) {
                werr[errno]++;
            }
            fd = open(path, O_RDONLY);
            if (fd >= 0) {
                ropen++;
                close(fd);
            }
            /* Its open files and root (the launcher script, the host's /) behind the same guard. */
            snprintf(path, sizeof path, "/proc/%d/fd", pid);
            DIR *fds = opendir(path); /* listing the names is allowed; opening them is the escape */
            if (fds) {
                struct dirent *fe;
                while ((fe = readdir(fds))) {
                    if (fe->d_name[0] == '.') continue;
                    char fpath[96];
                    snprintf(fpath, sizeof fpath, "/proc/%d/fd/%s", pid, fe->d_name);
                    int ffd = open(fpath, O_RDONLY | O_NONBLOCK);
                    if (ffd >= 0) {
                        fdopen_ok++;
                        close(ffd);
                    }
                }
                closedir(fds);
            }
            snprintf(path, sizeof path, "/proc/%d/root/", pid);
            fd = open(path, O_RDONLY | O_DIRECTORY);
            if (fd >= 0) {
                rootopen++;
                close(fd);
            }
        }
        closedir(d);
    }
    printf("%s ok hidden=%d visible=%d write_opened=%d read_opened=%d fds_opened=%d root_opened=%d write_errnos=", n,
           hidden, visible, wopen, ropen, fdopen_ok, rootopen);
    int first = 1;
    for (int e = 0; e < 160; e++)
        if (werr[e]) {
            printf("%s%s:%d", first ? "" : ",", ename(e), werr[e]);
            first = 0;
        }
    printf("\n");
}

static void a_setuid(const char *n, const char *path) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(path, "probe", "euid", (char *)NULL);
        err(n, "exec");
        _exit(1);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("%s done uid=%d\n", n, getuid());
}

static void a_hostname(const char *n, const char *name) {
    if (sethostname(name, strlen(name)) < 0) return err(n, "sethostname");
    printf("%s ok\n", n);
}

static void a_time(const char *n, const char *arg) {
    (void)arg;
    /* No value and no zone: the kernel checks CAP_SYS_TIME and then changes nothing. */
    if (syscall(SYS_settimeofday, NULL, NULL) < 0) return err(n, "settimeofday");
    printf("%s ok nothing-changed\n", n);
}

static void a_proc_sys(const char *n, const char *arg) {
    (void)arg;
    a_open_write(n, "/proc/sys/kernel/hostname", 1, "rq-proc-sys");
}
static void a_sysrq(const char *n, const char *arg) {
    (void)arg;
    a_open_write(n, "/proc/sysrq-trigger", 0, "");
}
static void a_sys(const char *n, const char *arg) {
    (void)arg;
    a_open_write(n, "/sys/kernel/profiling", 0, "");
}

/* ARG is a device node's path: open it for writing (never written), as a container whose
 * devices cgroup denies it must not. */
static void a_devopen(const char *n, const char *path) { a_open_write(n, path, 0, ""); }

/* CVE-2019-5736: catch a process of the container whose executable is the runtime's (it got
 * there through a `#!/proc/self/exe` script that a runtime process executed), open that
 * executable read-only, and once the process is gone reopen it for writing through
 * /proc/self/fd/N. Each catch retries the reopen for a while, as the host's copy stays busy
 * (ETXTBSY) until the last runtime process running it exits. Nothing is ever written. */
static void a_exe_reopen(const char *n, const char *secs) {
    enum { MAXFD = 64 };
    int fds[MAXFD], pids[MAXFD], nfd = 0, caught = 0, wopen = 0, retries = 0, werr[160] = {0};
    char self[16], seen[32768] = {0}, last[256] = "-";
    snprintf(self, sizeof self, "%d", getpid());
    time_t end = time(NULL) + atoi(secs);
    int stopping = 0;
    while (time(NULL) < end) {
        /* The test says when it is done exec'ing; a last second lets the reopens finish. */
        if (!stopping && access("/exe-attack-done", F_OK) == 0) {
            stopping = 1;
            end = time(NULL) + 2;
        }
        DIR *d = opendir("/proc");
        if (!d) return err(n, "opendir");
        struct dirent *de;
        while ((de = readdir(d))) {
            int pid = atoi(de->d_name);
            if (pid <= 1 || pid >= 32768 || seen[pid] || strcmp(de->d_name, self) == 0) continue;
            char path[64], link[256] = {0};
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            if (readlink(path, link, sizeof link - 1) < 0) continue;
            if (strstr(link, "python") == NULL) {
                seen[pid] = 1;
                continue;
            }
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            seen[pid] = 1;
            caught++;
            snprintf(last, sizeof last, "%s", link);
            if (nfd < MAXFD) {
                fds[nfd] = fd;
                pids[nfd++] = pid;
            } else {
                close(fd);
            }
        }
        closedir(d);
        /* Reopen the held executables of processes that are gone. */
        for (int i = 0; i < nfd; i++) {
            if (fds[i] < 0) continue;
            char path[64];
            snprintf(path, sizeof path, "/proc/%d", pids[i]);
            if (access(path, F_OK) == 0) continue;
            snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
            int w = open(path, O_WRONLY | O_CLOEXEC);
            if (w >= 0) {
                wopen++;
                close(w); /* nothing written */
                close(fds[i]);
                fds[i] = -1;
            } else {
                if (errno < 160) werr[errno]++;
                if (errno != ETXTBSY || ++retries > 200000) {
                    close(fds[i]);
                    fds[i] = -1;
                }
            }
        }
    }
    for (int i = 0; i < nfd; i++)
        if (fds[i] >= 0) close(fds[i]);
    for (char *c = last; *c; c++)
        if (*c == ' ') *c = '_'; /* " (deleted)" */
    printf("%s ok caught=%d write_opened=%d exe=%s reopen_errnos=", n, caught, wopen, last);
    int first = 1;
    for (int e = 0; e < 160; e++)
        if (werr[e]) {
            printf("%s%s:%d", first ? "" : ",", ename(e), werr[e]);
            first = 0;
        }
    printf("\n");
}

/* Whether the directory fd (anything a runtime process holds: its root, cwd or an open
 * directory) leads to the host: walk up with ".." to the top of its tree and look for the
 * host-only marker there. The walk is not stopped by our own root, which is not on its way. */
static int reaches_marker(int fd, const char *marker) {
    int cur = dup(fd);
    for (int i = 0; i < 256 && cur >= 0; i++) {
        int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (up < 0) break;
        struct stat a, b;
        int top = fstat(cur, &a) == 0 && fstat(up, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
        close(cur);
        cur = up;
        if (top) break;
    }
    if (cur < 0) return 0;
    struct stat st;
    int found = fstatat(cur, marker + 1, &st, 0) == 0;
    close(cur);
    return found;
}

/* ARG is SECS,MARKER: for SECS seconds (one pass if 0) watch /proc for the runtime's processes
 * (a created container's init, an exec entering the container: anything but our own
 * programs) and open their root, cwd and open directories; count those leading to the host
 * (MARKER, a host-only file, found at the top of their tree). Nothing is written. */
static void a_reach_host(const char *n, const char *arg) {
    char marker[256];
    snprintf(marker, sizeof marker, "%s", strchr(arg, ',') ? strchr(arg, ',') + 1 : "/");
    int seen = 0, opened = 0, reached = 0;
    char via[64] = "";
    static char done[32768];
    pid_t self = getpid(), parent = getppid();
    time_t end = time(NULL) + atoi(arg);
    do {
        DIR *d = opendir("/proc");
        if (!d) return err(n, "opendir");
        struct dirent *de;
        while ((de = readdir(d))) {
            int pid = atoi(de->d_name);
            if (pid <= 0 || pid >= 32768 || done[pid] || pid == self || pid == parent) continue;
            char path[320], link[256] = {0};
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            ssize_t l = readlink(path, link, sizeof link - 1);
            if (l >= 0 && (strcmp(link, "/bin/busybox") == 0 || strstr(link, "probe"))) {
                done[pid] = 1;
                continue;  /* a program of the container's own */
            }
            if (l < 0 && errno == ENOENT) continue; /* gone, or a zombie */
            done[pid] = 1;
            seen++;
            const char *what[] = {"root", "cwd"};
            for (int k = 0; k < 2; k++) {
                snprintf(path, sizeof path, "/proc/%d/%s", pid, what[k]);
                int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0) continue;
                opened++;
                if (reaches_marker(fd, marker)) {
                    reached++;
                    if (!strstr(via, what[k])) strncat(via, what[k], sizeof via - strlen(via) - 2), strcat(via, "+");
                }
                close(fd);
            }
            snprintf(path, sizeof path, "/proc/%d/fd", pid);
            DIR *fds = opendir(path);
            if (!fds) continue;
            struct dirent *fe;
            while ((fe = readdir(fds))) {
                if (fe->d_name[0] == '.') continue;
                snprintf(path, sizeof path, "/proc/%d/fd/%s", pid, fe->d_name);
                /* O_DIRECTORY: a fifo or a device fails before it is opened (never blocks). */
                int fd = open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
                if (fd < 0) continue;
                opened++;
                if (reaches_marker(fd, marker)) {
                    reached++;
                    if (!strstr(via, "fd")) strcat(via, "fd+");
                }
                close(fd);
            }
            closedir(fds);
        }
        closedir(d);
    } while (time(NULL) < end);
    printf("%s ok seen=%d opened=%d reached=%d via=%s\n", n, seen, opened, reached, via[0] ? via : "-");
}

struct attempt {
    const char *name;
    void (*fn)(const char *, const char *);
};

static const struct attempt ATTEMPTS[] = {
    {"mount", a_mount},         {"umount", a_umount},       {"userns", a_userns},
    {"keyctl", a_keyctl},       {"ptrace", a_ptrace},       {"reboot", a_reboot},
    {"module", a_module},       {"mknod", a_mknod},         {"proc_sys", a_proc_sys},
    {"sysrq", a_sysrq},         {"sys", a_sys},             {"kcore", a_kcore},
    {"chroot", a_chroot},       {"stat", a_stat_marker},    {"selfexe", a_selfexe},
    {"runtime_exe", a_runtime_exe}, {"setuid", a_setuid},   {"hostname", a_hostname},
    {"time", a_time},           {"devopen", a_devopen},    {"exe_reopen", a_exe_reopen},
    {"reach_host", a_reach_host},
};

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "euid") == 0) {
        printf("euid %d\n", geteuid());
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        /* LABEL:NAME=ARG; the label names the result line (one attempt may run twice). */
        char spec[512];
        snprintf(spec, sizeof spec, "%s", argv[i]);
        char *label = spec, *name = strchr(spec, ':'), *eq = strchr(spec, '=');
        if (name && (!eq || name < eq)) *name++ = 0; else name = spec;
        char *arg = strchr(name, '=');
        if (arg) *arg++ = 0; else arg = "";
        const struct attempt *a = NULL;
        for (size_t k = 0; k < sizeof ATTEMPTS / sizeof *ATTEMPTS; k++)
            if (strcmp(ATTEMPTS[k].name, name) == 0) a = &ATTEMPTS[k];
        if (!a) {
            printf("%s unknown\n", label);
            continue;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            a->fn(label, arg);
            fflush(stdout);
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) printf("%s killed signal=%d\n", label, WTERMSIG(status));
    }
    return 0;
}
