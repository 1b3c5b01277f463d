"""The processes of a modelrunner server on this machine, found from its port, and stopping them.

A server is a gunicorn master, its workers, the scheduler daemon (a process of its own, in its
own session, watching the master) and the scheduler's runners (llama-server, vLLM..., each in its
own session). `model stop-runner` stops them all and leaves nothing behind, however the server
was started (`model serve` in a terminal, `--detach`, `start-runner`, autostart).

Found through /proc: the process holding the port's listening socket (the master and its
workers share it; the master is the one whose parent does not), checked to be a modelrunner
gunicorn (its command line, or the title gunicorn gives it, names modelrunner), then the
schedulers whose ``--watch-pid`` is that master, then every descendant. Processes may vanish
while they are read: a /proc read that fails means that process is gone.
"""

import os
import signal
import time

TERM_GRACE = 10.0     # gunicorn's graceful stop: workers finish what they are answering
QUICK_GRACE = 5.0     # then gunicorn's quick stop (SIGINT), then SIGKILL for whatever is left
RUNNERS_GRACE = 15.0  # the scheduler stops its runners (SIGTERM, SIGKILL after 5 s each)


def _read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def cmdline(pid):
    raw = _read(f"/proc/{pid}/cmdline", "rb")
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a] if raw else []


def _stat(pid):
    """(ppid, state) of a process, or None when it is gone."""
    info = _stat_fields(pid)
    return (info[0], info[1]) if info else None


def _stat_fields(pid):
    """(ppid, state, start time in clock ticks since boot) or None: the start time tells a
    process from a later one that was given the same pid."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return int(fields[1]), fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def started_at(pid):
    info = _stat_fields(pid)
    return info[2] if info else None


def alive(pid):
    info = _stat(pid)
    return info is not None and info[1] not in ("Z", "X")


def _pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _listening_inodes(port):
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in (_read(table) or "").splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listeners(port):
    """PIDs (of this user's, the only ones readable) holding a listening socket on ``port``."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    found = []
    if not wanted:
        return found
    for pid in _pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    found.append(pid)
                    break
            except OSError:
                continue
    return found


def is_modelrunner_gunicorn(pid):
    """A modelrunner gunicorn master: the title gunicorn gives it ("gunicorn: master
    [modelrunner]", with setproctitle), or `model serve`'s own command line (gunicorn run with
    modelrunner's gunicorn.conf.py). Not any command line that merely mentions both words."""
    argv = cmdline(pid)
    if argv and argv[0].strip() == "gunicorn: master [modelrunner]":
        return True
    gunicorn = any(os.path.basename(a) == "gunicorn" for a in argv[:1]) or any(
        a == "-m" and b == "gunicorn" for a, b in zip(argv, argv[1:]))
    conf = any(a == "-c" and b.replace(os.sep, "/").endswith("/modelrunner/gunicorn.conf.py")
               for a, b in zip(argv, argv[1:]))
    return gunicorn and conf


def find_server(port):
    """(master pid or None, other pid or None): the modelrunner master listening on ``port``, or
    the process that listens there and is something else."""
    holders = listeners(port)
    masters = [pid for pid in holders if (_stat(pid) or (0, ""))[0] not in holders]
    for pid in masters or holders:
        if is_modelrunner_gunicorn(pid):
            return pid, None
    return None, (masters or holders or [None])[0]


def family(master):
    """The processes of the server whose gunicorn master is ``master``, by role: {"master":
    [pid], "workers": its descendants, "scheduler": the daemon(s) watching it, "runners":
    theirs (llama-server and the like, and anything those started)}."""
    parents = {}
    for pid in _pids():
        info = _stat(pid)
        if info is not None:
            parents[pid] = info[0]
    schedulers = set()
    for pid in parents:
        argv = cmdline(pid)
        if "modelrunner.scheduler.daemon" in argv and "--watch-pid" in argv:
            at = argv.index("--watch-pid") + 1
            if at < len(argv) and argv[at] == str(master):
                schedulers.add(pid)
    runners = _descendants(parents, schedulers)
    workers = _descendants(parents, {master}) - schedulers - runners  # a worker starts the daemon
    return {"master": [master], "workers": sorted(workers), "scheduler": sorted(schedulers),
            "runners": sorted(runners)}


def _descendants(parents, roots):
    found, frontier = set(), set(roots)
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found - roots
        found |= frontier
    return found


def _pids_of(roles):
    return {pid for pids in roles.values() for pid in pids}


def stop_server(master):
    """Stop the server of ``master`` and wait until none of its processes is left; returns its
    processes by role (:func:`family`). SIGTERM to the master (graceful), SIGINT (quick), then
    SIGKILL for any process of the family still there."""
    roles = family(master)
    started = {pid: started_at(pid) for pid in _pids_of(roles)}
    _signal(master, signal.SIGTERM)
    if not _wait_gone({master}, TERM_GRACE):
        _signal(master, signal.SIGINT)
        if not _wait_gone({master}, QUICK_GRACE):
            _signal(master, signal.SIGKILL)
    if started_at(master) == started[master]:  # still that master: its pid was not reused
        for role, pids in family(master).items():  # a scheduler or runner started meanwhile
            for pid in set(pids) - set(roles[role]):
                started[pid] = started_at(pid)
            roles[role] = sorted(set(roles[role]) | set(pids))
    members = _pids_of(roles)
    if not _wait_gone(members, RUNNERS_GRACE):
        for pid in members:
            # the same process as when it was found: never a newcomer given a reused pid
            if alive(pid) and started.get(pid) is not None and started_at(pid) == started[pid]:
                _signal(pid, signal.SIGKILL)
        _wait_gone(members, 5)
    return roles


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while True:
        if not any(alive(pid) for pid in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
