"""
One server per data directory.

Two servers on one directory would each keep their own view of the
accounts and rooms and append to the same files: the same name registered
twice, accounts unknown to the other process, one of them dropped at the
next start.  So a server holds an exclusive C{flock} on
C{DATA/chatroom.lock} for as long as it runs, with its PID written in the
file for whoever is refused.

The kernel releases an C{flock} when the last descriptor of its open file
goes away, so a server killed with C{kill -9} leaves no lock behind (the
stale PID in the file means nothing: only the lock counts); and a
descriptor copied by C{fork} keeps the lock, so it survives twistd's
daemonizing.
"""

# test-case-name: tests.test_lock

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["LOCK_NAME", "DataLock", "DirectoryInUse", "lock_directory"]

LOCK_NAME = "chatroom.lock"


class DirectoryInUse(Exception):
    """
    Another process holds the lock.

    @ivar pid: The PID the holder wrote, or L{None} if it has not yet.
    """

    def __init__(self, directory: Path, pid: int | None) -> None:
        super().__init__(directory, pid)
        self.directory = directory
        self.pid = pid


class DataLock:
    """
    A held lock; it lasts as long as its descriptor, normally the life of
    the process.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def record_pid(self) -> None:
        """
        Write this process's PID into the lock file, for the message of a
        server that is refused.  Called again after twistd has forked into
        the background, where the PID is a new one.
        """
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, b"%d\n" % os.getpid(), 0)

    def release(self) -> None:
        os.close(self.fd)


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def lock_directory(directory: Path) -> DataLock:
    """
    Take the lock of a data directory (created if missing) without waiting.

    @raise DirectoryInUse: Another process holds it.
    @raise OSError: The lock file cannot be created or opened.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    # Not inheritable across exec (PEP 446), but kept across fork.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise DirectoryInUse(directory, pid) from None
    except BaseException:
        os.close(fd)
        raise
    lock = DataLock(fd, path)
    lock.record_pid()
    return lock
