"""A sandbox per run: what the engine sees, who it runs as, and the limits it runs under.

A *sandbox plan* (a JSON-able dict, written to ``RUNDIR/.flowdeck/sandbox.json``) says
which folders the run sees (its run folder read-write, its inputs and the engine's
installation read-only, a private ``/tmp``), the unprivileged user it runs as,
whether it has a network, and its resource limits. It is applied in one of two
ways, with the same result:

- a cold start wraps the engine command in ``bwrap`` (bubblewrap), started by the
  launcher as the sandbox user with the limits set (:func:`wrap`, :func:`prepare_child`);
- a warm start (a fork of a warm server, which has no command to wrap) enters the
  same namespaces and mounts itself: the launcher's process unshares the PID namespace
  for its children and spawns a small init there (:func:`spawn_init`), and the engine,
  forked next as pid 2, does the rest (:func:`enter_engine`); this needs root, so an
  unprivileged service starts sandboxed runs cold.

A run whose steps run in containers (``plan["nested"]``, docs/adr/0013) starts cold the
second way too: :func:`wrap` runs this module (:func:`run_nested`), which makes the same
namespaces and mounts. bwrap's ``/proc`` carries read-only mounts over ``/proc/sys`` and
others, and the kernel refuses a nested user namespace (rootless podman's) a fresh ``proc``
while the one above is not fully visible; :func:`enter` mounts a plain one.

Either way the engine runs as pid 2 of a PID namespace whose pid 1 reaps and ignores
cancel signals, and whose end ends everything left in the run. Cold, the launcher follows
bwrap (or :func:`run_nested`), which ends with the engine's status; warm, it follows the
engine itself, as it does unsandboxed. A cancel reaches the engine through its process group.

Memory, CPU time and file size are kernel rlimits of every process of the run. The
number of processes is a ``pids`` cgroup per run when the service may create one
(root, cgroup v1 or v2), else ``RLIMIT_NPROC`` of the sandbox user; a run that reaches
its process ceiling is ended by the launcher (a fork bomb never ends by itself).

Standard library only: the launcher and the warm server import this.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import re
import resource
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PLAN_FILE = "sandbox.json"
CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
# Read-only parts of the host every engine needs; /etc only the files programs look up.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "gai.conf",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "R",  # Debian's R reads its configuration (ldpaths, Renviron) through /usr/lib/R/etc links
    "resolv.conf",
    "ssl",
)
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
HOSTNAME = "flowdeck-run"
# Paths inside the sandbox: each is a fresh tmpfs of the run's own.
PRIVATE_TMP = "/tmp"  # noqa: S108
PRIVATE_SHM = "/dev/shm"  # noqa: S108
_MiB = 1024 * 1024

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC, _CLONE_NEWPID, _CLONE_NEWNET = (
    0x00020000,
    0x04000000,
    0x08000000,
    0x20000000,
    0x40000000,
)
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = (
    1,
    2,
    4,
    8,
    32,
    4096,
    16384,
    1 << 18,
)
_MNT_DETACH = 2
_PR_SET_NO_NEW_PRIVS = 38
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
# A warm sandbox's init: any small program that reads its stdin to the end (see spawn_init).
INIT_COMMAND = "/bin/cat"

# What a run's logs say when it ran into a limit: (limit, setting, patterns).
LIMIT_SIGNS = (
    ("processes", "sandbox_max_processes", ("Resource temporarily unavailable", "Cannot fork", "can't fork")),
    ("memory", "sandbox_memory_mb", ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "Out of memory")),
    ("CPU time", "sandbox_cpu_seconds", ("CPU time limit exceeded", "exited with status: 152")),
    ("output size", "sandbox_max_file_mb", ("File size limit exceeded", "File too large", "exited with status: 153")),
)
_LIMIT_SETTING = {name: setting for name, setting, _ in LIMIT_SIGNS}


class SandboxError(RuntimeError):
    """The sandbox could not be set up."""


def make_plan(
    rundir: Path,
    read_only: Iterable[Path],
    writable_files: Iterable[Path],
    user: tuple[int, int],
    network: bool,
    limits: dict[str, int],
) -> dict[str, Any]:
    """The sandbox of one run. ``read_only`` are its inputs and the engine's installation;
    ``writable_files`` are files of the control folder the engine writes (the rest of that
    folder, the launcher's records, is read-only inside)."""
    binds: list[list[str]] = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            binds.append(["symlink", os.readlink(path), path])
        elif os.path.isdir(path):
            binds.append(["ro", path, path])
    binds += [["ro", f"/etc/{name}", f"/etc/{name}"] for name in ETC_FILES if os.path.exists(f"/etc/{name}")]
    seen: set[str] = set()
    for folder in read_only:
        real = str(folder.resolve())
        if real not in seen and os.path.exists(real):
            seen.add(real)
            binds.append(["ro", real, real])
    control = rundir / ".flowdeck"
    binds += [["rw", str(rundir), str(rundir)], ["ro", str(control), str(control)]]
    binds += [["rw", str(path), str(path)] for path in writable_files]
    binds += [["ro", str(control / name), f"/etc/{name}"] for name in ("passwd", "group")]
    return {
        "uid": user[0],
        "gid": user[1],
        "binds": binds,
        "network": network,
        "limits": limits,
        "rundir": str(rundir),
        "root": str(control / "root"),
    }


def write_identity(control: Path, uid: int, gid: int) -> None:
    """The sandbox's own passwd and group files: tools that look their user up find it."""
    (control / "passwd").write_text(f"run:x:{uid}:{gid}:flowdeck run:{PRIVATE_TMP}:/bin/sh\n")
    (control / "group").write_text(f"run:x:{gid}:\n")
    (control / "root").mkdir(exist_ok=True)


def wrap(plan: dict[str, Any], argv: list[str], as_root: bool) -> list[str]:
    """The engine command run inside ``bwrap``.

    As root, bwrap sets the sandbox up with its own privileges (it can read what the
    sandbox user cannot, such as an installation under /root) and ``setpriv`` then makes
    the command the sandbox user, with no capabilities; otherwise bwrap maps the
    service's user to the sandbox user in a user namespace.
    A plan with ``nested`` (containers inside, root only) runs :func:`run_nested` instead.
    """
    if plan.get("nested"):
        plan_file = Path(plan["root"]).parent / PLAN_FILE
        return [sys.executable, "-m", "flowdeck.backends.local.sandbox", str(plan_file), "--", *argv]
    namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    args = ["bwrap", *namespaces, *([] if plan["network"] else ["--unshare-net"])]
    uid, gid = str(plan["uid"]), str(plan["gid"])
    args += ["--hostname", HOSTNAME] + ([] if as_root else ["--unshare-user", "--uid", uid, "--gid", gid])
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", PRIVATE_SHM]
    args += ["--perms", "1777", "--tmpfs", PRIVATE_TMP]
    flags = {"ro": "--ro-bind", "rw": "--bind", "symlink": "--symlink"}
    made: set[str] = {"/", PRIVATE_TMP}
    for kind, source, target in plan["binds"]:
        # Folders on the way are made open (bwrap would copy the host's modes: /root is 0700).
        for parent in reversed(Path(target).parents):
            if str(parent) not in made and kind != "symlink":
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += [flags[kind], source, target]
    args += ["--chdir", plan["rundir"], "--"]
    if as_root:
        args += ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs"]
        args += ["--inh-caps=-all", "--bounding-set=-all", "--"]
    # bwrap itself (the process the launcher follows) ignores the cancel signals it inherits;
    # the engine gets the default ones back, as it would have outside.
    return [*args, "env", "--default-signal=INT,TERM,QUIT", *argv]


def prepare_child(plan: dict[str, Any]) -> None:
    """In the forked child, just before bwrap is executed (already the sandbox user)."""
    set_limits(plan["limits"])
    for signum in CANCEL_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def set_limits(limits: dict[str, int]) -> None:
    """The run's rlimits (soft and hard: the run cannot raise them)."""
    wanted = {
        resource.RLIMIT_AS: limits.get("memory_mb", 0) * _MiB,
        resource.RLIMIT_CPU: limits.get("cpu_seconds", 0),
        resource.RLIMIT_FSIZE: limits.get("file_mb", 0) * _MiB,
        resource.RLIMIT_NPROC: limits.get("nproc", 0),
    }
    for kind, value in wanted.items():
        if value > 0:
            resource.setrlimit(kind, (value, value))


def user_ids(name: str) -> tuple[int, int]:
    """uid and gid of the sandbox user (a name or a number)."""
    import pwd  # only the worker resolves names; the launcher gets numbers

    if name.isdigit():
        return int(name), int(name)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SandboxError(f"the sandbox user {name!r} does not exist on this machine") from None
    return entry.pw_uid, entry.pw_gid


# --- the pids cgroup of a run ---------------------------------------------------------


def cgroup_root() -> Path | None:
    """Where run cgroups are made (a ``pids`` hierarchy this process may write), or None."""
    if os.geteuid() != 0:
        return None
    v1, v2 = Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")
    if (v1 / "cgroup.procs").exists() and os.access(v1, os.W_OK):
        return v1 / "flowdeck"
    controllers = v2 / "cgroup.controllers"
    if controllers.exists() and "pids" in controllers.read_text().split() and os.access(v2, os.W_OK):
        return v2 / "flowdeck"
    return None


def _group(plan: dict[str, Any]) -> Path | None:
    folder, name = plan.get("cgroup"), plan.get("cgroup_name")
    return Path(folder) / name if folder and name else None


def join_cgroup(plan: dict[str, Any]) -> None:
    """Put this process (and so everything it starts) in the run's own pids cgroup."""
    group = _group(plan)
    if group is None:
        return
    try:
        group.parent.mkdir(exist_ok=True)
        if (group.parent / "cgroup.subtree_control").exists():  # cgroup v2: enable pids below
            with contextlib.suppress(OSError):
                (group.parent / "cgroup.subtree_control").write_text("+pids")
        group.mkdir(exist_ok=True)
        (group / "pids.max").write_text(str(plan["limits"]["processes"]))
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as exc:
        sys.stderr.write(f"flowdeck launcher: no process limit for this run: {exc}\n")


def processes_limit_hit(plan: dict[str, Any]) -> bool:
    """True once the run's cgroup refused a fork."""
    group = _group(plan)
    try:
        events = (group / "pids.events").read_text() if group else ""
    except OSError:
        return False
    match = re.search(r"^max (\d+)", events, re.MULTILINE)
    return bool(match and int(match[1]) > 0)


def leave_cgroup(plan: dict[str, Any]) -> None:
    """Move out of the run's cgroup and remove it (it is empty once the run is swept)."""
    group = _group(plan)
    if group is None:
        return
    with contextlib.suppress(OSError):
        (group.parent.parent / "cgroup.procs").write_text(str(os.getpid()))
    with contextlib.suppress(OSError):
        os.rmdir(group)


# --- entering the sandbox from a forked process (warm starts, root only) --------------


def new_pid_namespace() -> None:
    """Make the next child of this (root) process pid 1 of a new PID namespace (warm starts)."""
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.unshare(_CLONE_NEWPID), "unshare(CLONE_NEWPID)")


def spawn_init() -> int:
    """Make a small init pid 1 of a new PID namespace for this (root) process's next children
    (warm starts); the write end of a pipe that keeps it alive.

    The engine, forked next, becomes pid 2 and keeps that descriptor (close-on-exec: the
    tools it runs do not get it); the init (``cat`` on the pipe's read end) ends when the
    engine and its exec-less forks are gone, and with it the namespace and whatever is left
    in it. Spawned (vfork and exec), not forked, because a fork of a warm server copies the
    page tables of its whole heap: ~8 ms of CPU per run for a warm cwltool, the largest
    part of a warm sandbox's cost (bench/NOTES.md). The init ignores SIGCHLD, so the kernel
    reaps the orphans it inherits; as pid 1 of its namespace it never gets the cancel
    signals; it stays root and outside the run's mounts, so the run's user can neither
    signal nor trace it, nor follow its ``/proc/1/root``.
    """
    new_pid_namespace()
    read_end, hold = os.pipe()
    actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_DUP2, read_end, 0)]
    actions += [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0), (os.POSIX_SPAWN_DUP2, 1, 2)]
    # Descriptors meant for the launcher (the run's start lock) must not live on in the init.
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds() if fd > 2]
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kept across exec
    try:
        os.posix_spawn(INIT_COMMAND, [INIT_COMMAND], {}, file_actions=actions, setsigmask=())
    except OSError as exc:
        os.close(hold)
        raise SandboxError(f"the sandbox's init {INIT_COMMAND}: {exc.strerror or exc}") from exc
    finally:
        signal.signal(signal.SIGCHLD, previous)
        os.close(read_end)
    return hold


def enter_engine(plan: dict[str, Any]) -> None:
    """Make this process (root, pid 2 of the namespace :func:`spawn_init` made) the sandboxed
    engine: the run's other namespaces and mounts, its limits and its user."""
    _confine(ctypes.CDLL(None, use_errno=True), plan)


def enter(plan: dict[str, Any]) -> None:
    """Make this process (pid 1 of the PID namespace :func:`new_pid_namespace` made, root)
    the sandbox's init, and its child the sandboxed engine (:func:`run_nested`).

    Returns only in the engine process: pid 2, inside the run's mounts, as the sandbox user,
    under the run's limits. This process ignores cancel signals (as pid 1 it would anyway),
    reaps, and exits with the engine's status: the caller follows it.
    """
    for signum in CANCEL_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CANCEL_SIGNALS)
    _confine(ctypes.CDLL(None, use_errno=True), plan)
    engine = os.fork()
    if engine:
        os._exit(_wait_exit(engine))


def _confine(libc: ctypes.CDLL, plan: dict[str, Any]) -> None:
    """The run's namespaces (besides PID), its root, its limits and its user, for good."""
    flags = _CLONE_NEWNS | _CLONE_NEWIPC | _CLONE_NEWUTS
    _check(libc.unshare(flags | (0 if plan["network"] else _CLONE_NEWNET)), "unshare")
    _build_root(libc, plan)
    set_limits(plan["limits"])
    os.setgroups([])
    os.setresgid(plan["gid"], plan["gid"], plan["gid"])
    os.setresuid(plan["uid"], plan["uid"], plan["uid"])
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _inheritable_fds() -> list[int]:
    fds = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            if os.get_inheritable(int(name)):
                fds.append(int(name))
    return fds


def run_nested(plan_file: str, argv: list[str]) -> int:
    """Run ``argv`` in the sandbox of ``plan_file``, entered by :func:`enter` (root only).

    This process stays outside, ignoring cancel signals as bwrap does (:func:`prepare_child`),
    and ends with the engine's status; the engine gets the default cancel signals back."""
    plan = json.loads(Path(plan_file).read_text(encoding="utf-8"))
    new_pid_namespace()
    init = os.fork()
    if init == 0:
        try:
            enter(plan)
            for signum in CANCEL_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            os.execvp(argv[0], argv)  # noqa: S606 - an argument list, no shell involved
        except BaseException as exc:  # the child must never return into the caller's code
            sys.stderr.write(f"flowdeck sandbox: {argv[0]}: {exc}\n")
        os._exit(127)
    _, status = os.waitpid(init, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _wait_exit(pid: int) -> int:
    """Reap every child (as the namespace's init must) until ``pid`` ends; its exit code."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if done == pid:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(errno)}")


def _mount(libc: ctypes.CDLL, source: str | None, target: str, kind: str | None, flags: int, data: str = "") -> None:
    raw_source = source.encode() if source is not None else None
    raw_kind = kind.encode() if kind is not None else None
    _check(libc.mount(raw_source, target.encode(), raw_kind, flags, data.encode() or None), f"mount {target}")


def _build_root(libc: ctypes.CDLL, plan: dict[str, Any]) -> None:
    base = plan["root"]
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
    _mount(libc, "tmpfs", base, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755")
    _mount(libc, "proc", _made(base, "/proc"), "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    _mount(libc, "tmpfs", _made(base, "/dev"), "tmpfs", _MS_NOSUID | _MS_NOEXEC, "mode=0755")
    for node in DEV_NODES:
        _bind(libc, f"/dev/{node}", _made(base, f"/dev/{node}", is_file=True), read_only=False)
    _mount(libc, "tmpfs", _made(base, PRIVATE_SHM), "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1")):
        os.symlink(target, f"{base}/dev/{name}")
    os.symlink("/proc/self/fd/2", f"{base}/dev/stderr")
    _mount(libc, "tmpfs", _made(base, PRIVATE_TMP), "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777")
    for kind, source, target in plan["binds"]:
        if kind == "symlink":
            _made(base, str(Path(target).parent))
            os.symlink(source, base + target)
        else:
            made = _made(base, target, is_file=not os.path.isdir(source))
            _bind(libc, source, made, read_only=kind == "ro")
    os.chdir(base)
    os.mkdir(".oldroot")
    _check(libc.syscall(_PIVOT_ROOT.get(platform.machine(), 155), b".", b".oldroot"), "pivot_root")
    _check(libc.umount2(b"/.oldroot", _MNT_DETACH), "umount old root")
    os.rmdir("/.oldroot")
    _mount(libc, None, "/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    libc.sethostname(HOSTNAME.encode(), len(HOSTNAME))
    os.chdir(plan["rundir"])


def _made(base: str, target: str, is_file: bool = False) -> str:
    path = base + target
    if is_file:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    else:
        os.makedirs(path, exist_ok=True)
    return path


def _bind(libc: ctypes.CDLL, source: str, target: str, read_only: bool) -> None:
    _mount(libc, source, target, None, _MS_BIND | _MS_REC)
    flags = _MS_REMOUNT | _MS_BIND | _MS_NOSUID | (_MS_RDONLY if read_only else 0)
    _mount(libc, None, target, None, flags | (_MS_NODEV if not target.endswith(DEV_NODES) else 0))


# --- what the run's logs say about its limits ------------------------------------------


def limit_notes(texts: Iterable[str], limits: dict[str, int], ended_by: str | None = None) -> list[str]:
    """One line per limit the run ran into, naming the setting that sets it."""
    hit: list[str] = [ended_by] if ended_by else []
    joined = "\n".join(texts)
    hit += [name for name, _, signs in LIMIT_SIGNS if name not in hit and any(sign in joined for sign in signs)]
    values = {
        "processes": limits.get("processes"),
        "memory": limits.get("memory_mb"),
        "CPU time": limits.get("cpu_seconds"),
        "output size": limits.get("file_mb"),
    }
    return [
        f"the run reached the sandbox's {name} limit (FLOWDECK_{_LIMIT_SETTING[name].upper()}={values[name]})"
        for name in hit
    ]


if __name__ == "__main__":  # python -m flowdeck.backends.local.sandbox PLAN_FILE -- ARGV (see wrap)
    sys.exit(run_nested(sys.argv[1], sys.argv[3:]))
