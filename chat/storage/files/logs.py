"""
What the files under the data directory share: append-only logs of
C{<timestamp> <sender> <text>} lines, read back from the end, kept open
within one budget of descriptors, and fsynced in a thread.

A deleted message's line is overwritten in place by a tombstone of the
same length (L{tombstone}): its stamp, C{" *"} (never a user name, whose
letters are C{[A-Za-z0-9_-]}), then spaces.  The stamp stays, so the lines
stay sorted for a binary search and a room's last stamp is kept; every
reader skips tombstones (L{is_tombstone}).
"""

# test-case-name: tests.test_store, tests.storage.test_direct

from __future__ import annotations

import errno
import os
import resource
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TypeVar

from twisted.logger import Logger

__all__ = [
    "OpenFiles",
    "complete_size",
    "default_open_files",
    "drop_torn_line",
    "fsync_directory",
    "fsync_paths",
    "is_tombstone",
    "read_tail",
    "read_tail_lines",
    "replace_file",
    "tombstone",
]

BLOCK = 16384
OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
#: The length of a stamp, C{2026-12-02T10:00:00.000Z}.
STAMP_LENGTH = 24
_MARK = b" *"

T = TypeVar("T")


def tombstone(line: bytes) -> bytes:
    """
    What overwrites a deleted message's line (without its LF): as long,
    with its stamp and nothing of the rest.
    """
    stamp = line[:STAMP_LENGTH]
    return stamp + _MARK + b" " * (len(line) - len(stamp) - len(_MARK))


def is_tombstone(line: bytes) -> bool:
    """
    Whether a line (without its LF) is a deleted message's.
    """
    return line[STAMP_LENGTH : STAMP_LENGTH + 2] == _MARK


def default_open_files() -> int:
    """
    How many room and conversation files to keep open: 256, or a quarter of this process's
    file descriptor limit when that is lower, so that connections, the
    account file and the thread pool always have descriptors left.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 256
    return max(1, min(256, soft // 4))


def read_tail_lines(fd: int, size: int, count: int) -> list[bytes]:
    """
    Read the last C{count} complete lines of a file, reading backwards in
    blocks so that a history of any size costs only what is returned.

    @param size: Where the complete lines end (the file may go on with a
        torn line after it, which is not returned).
    @return: Up to C{count} lines without their LF, oldest first.
    """
    if count <= 0 or size <= 0:
        return []
    chunks: list[bytes] = []
    newlines = 0
    pos = size
    # count + 1 LFs bound count whole lines (the last LF ends the last line).
    while pos > 0 and newlines <= count:
        step = min(BLOCK, pos)
        pos -= step
        chunk = os.pread(fd, step, pos)
        chunks.append(chunk)
        newlines += chunk.count(b"\n")
    data = b"".join(reversed(chunks))
    lines = data.split(b"\n")
    # The last element is what follows the final LF: empty by construction.
    lines.pop()
    if pos > 0:
        # The first element may be the tail of a longer line: drop it.
        lines = lines[1:]
    return lines[-count:]


def read_tail(fd: int, size: int, count: int, parse: Callable[[list[bytes]], list[T]]) -> list[T]:
    """
    The last C{count} items that C{parse} makes of a file's complete
    lines, oldest first, reading further back for each line it skips (a
    tombstone, a damaged line), so that deleting messages does not shorten
    a page of history.  Each line is parsed once.
    """
    if count <= 0:
        return []
    found: list[T] = []
    parsed = 0
    want = count
    while True:
        lines = read_tail_lines(fd, size, want)
        fresh = lines[: len(lines) - parsed]
        found[:0] = parse(fresh)
        parsed = len(lines)
        if len(found) >= count or len(lines) < want:
            return found[-count:]
        want = parsed + max(count - len(found), parsed)


def complete_size(fd: int, size: int) -> int:
    """
    Where the last complete line of a file ends: a crash in the middle of a
    write can leave a torn line after it.
    """
    pos = size
    while pos > 0:
        step = min(BLOCK, pos)
        chunk = os.pread(fd, step, pos - step)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return pos - step + nl + 1
        pos -= step
    return 0


def drop_torn_line(fd: int, whose: str) -> int:
    """
    Cut a torn last line off a history file (a crash in the middle of a
    write), saying so in the log.

    @param whose: What the file is, for the log: C{Room general}.
    @return: Where the complete lines end: the file's size now.
    """
    size = os.fstat(fd).st_size
    complete = complete_size(fd, size)
    if complete != size:
        _log.warn("{whose}: dropping a torn last line of {n} bytes", whose=whose, n=size - complete)
        os.ftruncate(fd, complete)
    return complete


_log = Logger(namespace="chat.storage.files")


class OpenFiles(OrderedDict[Hashable, int]):
    """
    The append-only files a process keeps open, the least recently written
    first, at most C{max_open} of them: rooms and private conversations
    share one budget, so neither can use up the descriptors connections
    need.  Keys are a room's name, or a tuple for other kinds of files.
    """

    def __init__(self, max_open: int | None = None) -> None:
        super().__init__()
        self.max_open = max_open if max_open is not None else default_open_files()

    def open(self, key: Hashable, path: Path, keep: Hashable = None) -> int:
        """
        The file's descriptor, opened now if it is not, closing the least
        recently written one if that many are open already.

        Closing does not lose durability: owners remember what they wrote
        by path and fsync it by opening it again.

        @param keep: A file not to close, whose descriptor the caller holds
            (the other copy of a private message): two may be open even
            when only one may.
        @raise OSError: The file cannot be opened.
        """
        fd = self.get(key)
        if fd is not None:
            self.move_to_end(key)
            return fd
        while len(self) >= self.max_open and self._close_one(keep):
            pass
        try:
            fd = os.open(path, OPEN_FLAGS, 0o644)
        except OSError as e:
            # Out of descriptors (connections took them): give one back.
            if e.errno not in (errno.EMFILE, errno.ENFILE) or not self._close_one(keep):
                raise
            fd = os.open(path, OPEN_FLAGS, 0o644)
        self[key] = fd
        return fd

    def _close_one(self, keep: Hashable) -> bool:
        """
        Close the least recently written file but C{keep}.

        @return: Whether there was one.
        """
        for key in self:
            if key != keep:
                os.close(self.pop(key))
                return True
        return False


def fsync_paths(paths: Sequence[Path]) -> list[OSError]:
    """
    Open, fsync and close each file in turn.

    @return: What failed, for the caller to report.
    """
    errors = []
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            errors.append(e)
            continue
        try:
            os.fsync(fd)
        except OSError as e:
            errors.append(e)
        finally:
            os.close(fd)
    return errors


def replace_file(path: Path, text: str) -> None:
    """
    Make C{path} hold C{text}, whole or not at all, durably: written to a
    temporary file, fsynced, renamed over it, the directory fsynced.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)


def fsync_directory(path: Path) -> None:
    """
    Make the names in a directory durable (a file created, renamed or
    removed).
    """
    dirfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)
