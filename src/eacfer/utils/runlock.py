"""A lock file that keeps two processes from writing into the same run folder at once.

Hand-written rather than ``filelock``: that library's lock files do not say who holds them, and an
OS-level lock (flock) is unreliable on the network file systems run folders often live on. Here the lock
is a file created with ``O_CREAT | O_EXCL`` (atomic everywhere) holding the owner's pid and host; a lock
left by a process that no longer exists on this host is detected as stale and taken over.

Holding the lock means no other eacfer process writes into the folder, so taking it also deletes the hidden
temporaries a killed or failed earlier run left there (:func:`eacfer.utils.atomic.remove_temporaries`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from eacfer.utils.atomic import remove_temporaries

log = logging.getLogger(__name__)

LOCK_NAME = ".eacfer.lock"


class RunFolderLocked(FileExistsError):
    """The folder is locked by another live process (a one-line, user-facing message)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def read_lock(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The owner recorded in ``folder``'s lock file, or None when unlocked (``{}`` when unreadable).

    Example:
        >>> read_lock("/nonexistent/run") is None
        True
    """
    path = Path(folder) / LOCK_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        owner = json.loads(text)
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def is_stale(owner: dict[str, Any]) -> bool:
    """True when ``owner`` is a process on this host that no longer runs.

    A lock from another host cannot be checked and is never considered stale; neither is one whose
    content cannot be read (it may be half-written by its owner at this very moment).

    Example:
        >>> is_stale({"pid": os.getpid(), "host": socket.gethostname()})
        False
    """
    pid, host = owner.get("pid"), owner.get("host")
    return isinstance(pid, int) and host == socket.gethostname() and not _pid_alive(pid)


class RunLock:
    """Hold ``FOLDER/.eacfer.lock`` for the duration of a ``with`` block.

    Entering fails at once with :class:`RunFolderLocked` when another live process holds the lock; a stale
    lock (its process is gone) is replaced, with a warning. The lock file is removed on exit.

    Example:
        >>> import tempfile
        >>> with RunLock(tempfile.mkdtemp(), what="training run") as lock:
        ...     lock.path.exists()
        True
    """

    def __init__(self, folder: str | os.PathLike[str], what: str = "run") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self._held = False

    def acquire(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "what": self.what}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = read_lock(self.folder)
                if owner is None:
                    continue  # released between our open and our read: try again
                if is_stale(owner):
                    log.warning("%s: removing a stale lock left by process %s (no longer running)",
                                self.path, owner.get("pid"))
                    self.path.unlink(missing_ok=True)
                    continue
                who = (f"process {owner.get('pid')} on {owner.get('host')} since {owner.get('started')}"
                       if owner else "another process")
                raise RunFolderLocked(
                    f"{self.folder}: in use by another eacfer {owner.get('what', 'run') if owner else 'run'} "
                    f"({who}); wait for it to finish or choose another --out (if that process is gone, "
                    f"delete {self.path})") from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(me, fh)
            self._held = True
            stale = remove_temporaries(self.folder)  # ours, and nobody else writes here now
            if stale:
                log.info("%s: removed %d temporary file(s) left by an earlier run", self.folder, len(stale))
            return
        raise RunFolderLocked(f"{self.folder}: could not take the lock {self.path} (contended); try again")

    def release(self) -> None:
        if self._held:
            self._held = False
            owner = read_lock(self.folder)
            if owner and owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
