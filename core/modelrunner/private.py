"""Files only the server's user may read: the store, recorded prompts, stored responses, logs,
sockets.

Prompts and answers are the users' data (a model's config holds its system prompt), and a Unix
socket in a folder others can write to can be swapped for theirs. So these folders are 0700 and
their files 0600 whatever the umask, and a folder that already exists must belong to this user:
one owned by someone else (made ahead of us in /tmp, say) is refused rather than used. The
server's processes run with ``SERVER_UMASK``. ``loose_entries`` finds what others could read and
``narrow`` closes it, never through a symlink (``model fsck --repair``, store/modes.py).
"""

import hashlib
import os
import stat
import tempfile
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
SERVER_UMASK = 0o077           # the server's processes: whatever they create is theirs alone
SOCKET_PATH_MAX = 107          # sun_path is 108 bytes with its NUL
SOCKET_NAME_ROOM = 40          # "scheduler.sock.start", "runner-123-<key>.sock" and the like


class NotPrivate(PermissionError):
    """A folder that should be ours is someone else's (or is a symlink)."""


def private_dir(path):
    """Create ``path`` (and parents) and make it 0700; refuse it when another user owns it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise NotPrivate(f"{path} is not a plain folder; refusing to keep private files there")
    if info.st_uid != os.getuid():
        raise NotPrivate(f"{path} belongs to uid {info.st_uid}, not to this user ({os.getuid()}); "
                         f"refusing to keep private files there")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def private_open(path, mode="a", encoding=None):
    """open() for a 0600 file (an existing one is narrowed to 0600 too)."""
    flags = {"a": os.O_WRONLY | os.O_CREAT | os.O_APPEND, "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC}
    fd = os.open(path, flags[mode.replace("b", "")] | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, mode, encoding=None if "b" in mode else (encoding or "utf-8"))
    except BaseException:
        os.close(fd)
        raise


def write_private(path, text):
    """Write ``text`` to a 0600 file."""
    with private_open(path, "w") as f:
        f.write(text)


def private_mode(st):
    """The mode a file or folder with ``os.lstat`` result ``st`` should have (None: a symlink,
    socket or other special file, left as it is)."""
    if stat.S_ISDIR(st.st_mode):
        return DIR_MODE
    if stat.S_ISREG(st.st_mode):
        return FILE_MODE
    return None


def is_loose(st):
    """Whether a file or folder others could read, write or enter (group or other bits set)."""
    return private_mode(st) is not None and bool(stat.S_IMODE(st.st_mode) & 0o077)


def narrow(path, st=None):
    """Make ``path`` 0700 (a folder) or 0600 (a file) without following a symlink: the name is
    opened with O_PATH|O_NOFOLLOW, checked to be the very file ``st`` (its lstat) describes, and
    changed through that descriptor, so a name swapped for a symlink meanwhile changes nothing.
    Returns the mode set, or None for a symlink or special file (left alone)."""
    st = st or os.lstat(path)
    wanted = private_mode(st)
    if wanted is None:
        return None
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        now = os.fstat(fd)
        if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev) or private_mode(now) != wanted:
            raise FileNotFoundError(f"{path} was replaced while its mode was changed")
        try:
            os.chmod(f"/proc/self/fd/{fd}", wanted)  # the O_PATH descriptor's own inode
        except FileNotFoundError:  # no /proc: open it for real (O_NOFOLLOW still holds)
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            real = os.open(path, flags | (os.O_DIRECTORY if wanted == DIR_MODE else 0))
            try:
                if (os.fstat(real).st_ino, os.fstat(real).st_dev) != (st.st_ino, st.st_dev):
                    raise FileNotFoundError(f"{path} was replaced while its mode was changed")
                os.fchmod(real, wanted)
            finally:
                os.close(real)
    finally:
        os.close(fd)
    return wanted


def loose_entries(root, top_only=False):
    """``(path, lstat)`` of every folder and file under ``root`` (``root`` itself included)
    that others could read; no symlink is followed. ``top_only``: ``root`` and the entries
    directly in it."""
    root = Path(root)
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return
    if is_loose(st):
        yield root, st
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                est = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if is_loose(est):
                yield Path(entry.path), est
            if stat.S_ISDIR(est.st_mode) and not top_only:
                stack.append(Path(entry.path))


def socket_dir(models_path):
    """A private folder for the scheduler's and runners' Unix sockets, specific to the store.

    Under ``$XDG_RUNTIME_DIR`` (the per-user 0700 runtime folder) when there is one; else in the
    store itself (``<models_path>/sockets``) when that path is short enough for a socket path;
    else ``/tmp/modelrunner-<uid>`` (created 0700 and owner-checked). Never a fixed /tmp name used
    without checking whose it is."""
    digest = hashlib.sha256(str(Path(models_path).expanduser()).encode()).hexdigest()[:10]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and _ours(runtime):
        candidate = Path(runtime) / "modelrunner" / digest
        if _short(candidate):
            private_dir(candidate.parent)
            return private_dir(candidate)
    in_store = Path(models_path).expanduser() / "sockets"
    if _short(in_store):
        return private_dir(in_store)
    fallback = Path(tempfile.gettempdir()) / f"modelrunner-{os.getuid()}"
    private_dir(fallback)
    return private_dir(fallback / digest)


def user_runtime_dir():
    """A private per-user folder for what is about this machine's servers rather than a store
    (the CLI's record of the servers it started, its start locks): ``$XDG_RUNTIME_DIR/modelrunner``
    when that is ours, else ``/tmp/modelrunner-<uid>`` (created 0700 and owner-checked)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and _ours(runtime):
        return private_dir(Path(runtime) / "modelrunner")
    return private_dir(Path(tempfile.gettempdir()) / f"modelrunner-{os.getuid()}")


def _ours(path):
    try:
        info = os.stat(path)
    except OSError:
        return False
    return info.st_uid == os.getuid() and not stat.S_IMODE(info.st_mode) & 0o077


def _short(path):
    return len(os.fsencode(str(path))) + 1 + SOCKET_NAME_ROOM <= SOCKET_PATH_MAX
