"""The files nbpar puts on this machine, where, and who removes them.

A process that runs steps on the process backend (a kernel) gets two
folders of its own, made together the first time either is needed::

    private   $TMPDIR (/tmp)/nbpar-PID-RANDOM, mode 0700
        channel            the channel's Unix socket (channel.py)
        faults-WORKER.txt  a worker's faulthandler file, 0600 (worker.init_worker)
    shared    /dev/shm ($NBPAR_SHARED_DIR)/nbpar-share-PID-RANDOM, mode 0700
        i*.buf, o*.buf     large buffers crossing to and from workers, 0600 (sharing.py)

and loky makes 8 semaphores, /dev/shm/sem.loky-PID-*, which its resource
tracker unlinks.

Made safely: `tempfile.mkdtemp` picks a random name and creates the folder
itself, mode 0700, so a folder made in advance (by another user, 0777) is
never used; a base folder that someone else can change (not owned by this
user or root, or writable by every user without the sticky bit, where
another user could put a link in place of ours) is refused. Files in them are
created exclusively (O_EXCL: never an existing file, never through a link).

Removed:

- at the process's exit (atexit): both folders;
- when it is killed (SIGKILL, the out-of-memory killer, jupyter_client's
  `shutdown_kernel(now=True)` and `restart_kernel(now=True)`, which kill the
  kernel's whole process group, loky's resource tracker included): by its
  watchdog, a few seconds later, with loky's semaphores if they are left;
- if the watchdog was killed too: by the next process that makes its
  folders, which removes the folders (and semaphores) of dead PIDs.

The watchdog is this file run as a script (``python -I -S folders.py PID
FOLDER...``: the standard library only, no site, no nbpar: a few MiB). The
kernel starts it as its child, in a process group of its own: a kill of the
kernel's process group spares it, as do Ctrl-C in a terminal and
ipykernel's shutdown, which signals only the children in the kernel's
process group. It looks at its parent every half second and at nothing
else. Once the kernel is gone:

1. it kills the kernel's workers that still run, each with its process
   group (the processes its steps started): a worker is named by its fault
   file in the private folder, which it holds open while it lives, and a
   process is killed only if it holds that file open (never one that got
   the pid of a dead worker). A worker exits by itself within a second of
   its kernel (worker._exit_with_parent), but that is a Python thread,
   which cannot run while the worker's step is in C code that holds the
   GIL (`sum(range(10**12))`): the watchdog stops that one;
2. it waits (at most `PATIENCE` seconds) for loky's resource tracker to
   unlink the kernel's semaphores, which it does when the last worker has
   exited, so that no worker writes in the folders any more;
3. it removes the folders and what is left of the semaphores, and exits:
   about a second after the kernel alone was killed, PATIENCE seconds after
   its process group was.
"""

from __future__ import annotations

import atexit
import glob
import grp
import os
import pwd
import re
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time

SHARED_ENV = "NBPAR_SHARED_DIR"  # where the shared folders go (default /dev/shm, else the temp dir)
PATIENCE = 3.0  # seconds the watchdog waits for loky's resource tracker to unlink the semaphores
_POLL = 0.5  # seconds between the watchdog's looks at its parent
_SEMAPHORES = "/dev/shm"  # where Linux keeps named semaphores, as sem.NAME
_PRIVATE = "nbpar-{pid}-"  # the names of a process's folders: mkdtemp adds 8 random characters
_SHARED = "nbpar-share-{pid}-"
_FAULTS = re.compile(r"faults-(\d+)\.txt")  # a worker's fault file (backends/process.py)
_NAMES = {_PRIVATE: re.compile(r"nbpar-(\d+)-\w+"), _SHARED: re.compile(r"nbpar-share-(\d+)-\w+")}

_lock = threading.Lock()  # guards _made
_made: tuple[int, str, str] | None = None  # (the pid that made them, private, shared)


class UnsafeFolder(PermissionError):
    """A base folder where another user could replace nbpar's files: refused."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]  # IPython shows this line, not nbpar's frames


def private() -> str:
    """This process's private folder (the channel's socket, the workers' fault files)."""
    return _folders()[0]


def shared() -> str:
    """This process's folder for shared buffers."""
    return _folders()[1]


def _folders() -> tuple[str, str]:
    """Both folders, made on first use (in a forked child too: its own),
    with a watchdog; the folders of dead processes go first."""
    global _made
    with _lock:
        if _made is None or _made[0] != os.getpid():
            bases = (tempfile.gettempdir(), _shared_base())
            _check_base(bases[0], "TMPDIR")
            _check_base(bases[1], SHARED_ENV)
            _sweep_dead(*bases)
            pid = os.getpid()
            own = tempfile.mkdtemp(prefix=_PRIVATE.format(pid=pid), dir=bases[0])
            try:
                share = tempfile.mkdtemp(prefix=_SHARED.format(pid=pid), dir=bases[1])
            except BaseException:
                os.rmdir(own)
                raise
            _made = (pid, own, share)
            _start_watchdog([own, share])
        return _made[1], _made[2]


def _shared_base() -> str:
    chosen = os.environ.get(SHARED_ENV)
    if chosen:
        os.makedirs(chosen, mode=0o700, exist_ok=True)
        return chosen
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


def _check_base(base: str, knob: str) -> None:
    """Refuse a base folder where another user could replace nbpar's
    folder (`knob`: the environment variable that chooses it)."""
    info = os.stat(base)
    if info.st_uid not in (0, os.getuid()):
        why = "belongs to another user"
    elif info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        why = "can be written by every user and is not sticky (chmod +t)"
    elif info.st_mode & stat.S_IWGRP and not info.st_mode & stat.S_ISVTX and _shared_group(info.st_gid):
        why = f"can be written by the users of group {_group_name(info.st_gid)} and is not sticky (chmod +t)"
    else:
        return
    raise UnsafeFolder(
        f"nbpar: {base} {why}: another user could put their files in place of nbpar's there; "
        f"set {knob} to a folder of your own"
    )


def _shared_group(gid: int) -> bool:
    """Whether users other than this one may be in group `gid`: all but
    this user's own primary group with no other members (a user private
    group, where group-writable is harmless)."""
    if gid != os.getgid():
        return True
    try:
        members = set(grp.getgrgid(gid).gr_mem)
        me = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return True
    return bool(members - {me})


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _start_watchdog(folders: list[str]) -> None:
    """Start the process that removes `folders` when this one is killed
    (see the module's docstring), in a process group of its own. If it
    cannot start, the next process that makes its folders removes these.
    posix_spawn, not subprocess: nothing here waits for it, and a Popen
    would warn that it still runs as this process exits."""
    if not sys.executable or not hasattr(os, "posix_spawn"):
        return
    argv = [sys.executable, "-I", "-S", os.path.abspath(__file__), str(os.getpid()), *folders]
    quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    try:
        os.posix_spawn(sys.executable, argv, os.environ, file_actions=quiet, setpgroup=0)
    except OSError:
        pass


@atexit.register
def _remove_own() -> None:
    if _made is not None and _made[0] == os.getpid():
        for folder in _made[1:]:
            _remove(folder)


# -- removing a process's files (the process at exit, its watchdog, the next process) --


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie has died)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has died
    except OSError:
        return True


def _ours(path: str) -> bool:
    """Whether `path` is a folder (not a link) of this user."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def _remove(folder: str) -> None:
    if _ours(folder):
        shutil.rmtree(folder, ignore_errors=True)


def _semaphores(pid: int) -> list[str]:
    """loky's semaphores that process `pid` made (loky names them /loky-PID-RANDOM)."""
    return glob.glob(os.path.join(_SEMAPHORES, f"sem.loky-{pid}-*"))


def _unlink_semaphores(pid: int) -> None:
    for path in _semaphores(pid):
        try:
            if os.lstat(path).st_uid == os.getuid():
                os.unlink(path)
        except OSError:
            pass


def _sweep_dead(private_base: str, shared_base: str) -> None:
    """Remove the folders, and loky's semaphores, of dead processes whose
    watchdog did not (it was killed too)."""
    if os.name != "posix":
        return  # alive() is POSIX's
    dead = set()
    for base, prefix in ((private_base, _PRIVATE), (shared_base, _SHARED)):
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            match = _NAMES[prefix].fullmatch(name)
            if match and int(match[1]) != os.getpid() and not alive(int(match[1])):
                path = os.path.join(base, name)
                if _ours(path):
                    _remove(path)
                    dead.add(int(match[1]))
    for pid in dead:
        _unlink_semaphores(pid)


def _watch(kernel: int, folders: list[str]) -> None:
    """The watchdog: wait for `kernel` (the parent) to end, kill its workers
    that still run, then remove its files. folders[0] is its private folder."""
    os.chdir("/")
    # One inherited (loky's tracker pipe, left inheritable) would keep its reader waiting.
    os.closerange(3, min(os.sysconf("SC_OPEN_MAX"), 1 << 16))
    while os.getppid() == kernel:
        time.sleep(_POLL)
    _kill_workers(folders[0])
    deadline = time.monotonic() + PATIENCE
    while _semaphores(kernel) and time.monotonic() < deadline:
        time.sleep(0.1)  # the resource tracker unlinks them once the last worker is gone
    for folder in folders:
        _remove(folder)
    _unlink_semaphores(kernel)


def _kill_workers(private: str) -> None:
    """Kill the dead kernel's workers that still run, each with its process
    group (worker.init_worker made it one: the processes its steps started
    are in it). Its workers are named by the fault files in its `private`
    folder: each worker makes its own, faults-PID.txt, and holds it open
    while it lives (worker.init_worker); a process is killed only if it
    holds that file open, so never one that got the pid of a worker that
    died. A worker exits by itself once its kernel is gone
    (worker._exit_with_parent), but that is a Python thread: it cannot run
    while the worker's step is in C code that holds the GIL."""
    try:
        names = os.listdir(private)
    except OSError:
        return
    for name in names:
        match = _FAULTS.fullmatch(name)
        if match and _holds(int(match[1]), os.path.join(private, name)):
            kill_worker(int(match[1]))


def kill_worker(pid: int) -> None:
    """Kill worker process `pid` and the processes its steps started: its
    process group (worker.init_worker made it one), or the process alone
    while it is not a group's leader yet. Nothing if it ended meanwhile.
    (Here, the standard library only, so that the watchdog has it too; the
    process backend stops a worker with it.)"""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass  # it ended meanwhile


def _holds(pid: int, path: str) -> bool:
    """Whether process `pid` has the file `path` open (one stat per open file)."""
    try:
        info = os.lstat(path)
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            held = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if (held.st_dev, held.st_ino) == (info.st_dev, info.st_ino):
            return True
    return False


if __name__ == "__main__":
    _watch(int(sys.argv[1]), sys.argv[2:])
