"""
Private messages as files under the data directory, for one process
(L{DirectFiles}), and paging back through room histories.

Layout, under C{DATA/dms/<owner>/} (names lower-case):

  - C{<partner>.log}: the owner's copy of its conversation with
    C{partner}, one message per line, C{<timestamp> <sender> <text>}, as
    rooms are: append-only and sorted by stamp, so a page of history is a
    binary search and a read of its own size.
  - C{unread}: where the messages that arrived while the owner had no
    connection begin, one line C{<partner> <offset>} per conversation
    that has some.  The inbox is these pointers into the owner's own
    copies: an offline message costs no write of its own (one small one
    for the first of a conversation), the inbox holds no text twice, and
    its size is bounded by the number of partners.  The cap
    (L{chat.storage.direct.INBOX_CAP}) applies when it is taken: what lies
    past it counts as dropped.
  - C{ignored}: whom the owner ignores, one name a line, replaced whole
    (written, fsynced, renamed) on each change.

Durability as for rooms: each copy is written with one C{write(2)} before
anyone is told; the periodic sync fsyncs the files written since the last
one, in a thread.  Open descriptors come from the rooms' L{OpenFiles}, one
budget for both.
"""

# test-case-name: tests.storage.test_direct, tests.storage.test_files_direct

from __future__ import annotations

import errno
import os
from collections import OrderedDict, deque
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from twisted.internet.defer import Deferred, DeferredLock, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chat.message import Message, stamp_after
from chat.storage.common import Runner, StoreUnavailable
from chat.storage.direct import (
    INBOX_CAP,
    UNREAD_SHOWN,
    DirectMessage,
    IDirectEvents,
    IDirectMessages,
    Unread,
)
from chat.storage.files.logs import (
    BLOCK,
    OpenFiles,
    complete_size,
    drop_torn_line,
    fsync_paths,
    is_tombstone,
    read_tail,
    read_tail_lines,
    replace_file,
)

__all__ = ["DirectFiles", "find_line", "read_page"]

_SUFFIX = ".log"
_UNREAD = "unread"
_IGNORED = "ignored"
_STAMP = 24
#: How many conversations' sizes and last stamps stay in memory; the others
#: are learned again (a bounded read of the file's tail) when next written.
_KNOWN = 4096


class _Copy:
    """
    What the writer knows of one copy of a conversation: where its
    complete lines end (to take back a torn write) and its last stamp.
    """

    __slots__ = ("last", "size")

    def __init__(self, size: int, last: str | None) -> None:
        self.size = size
        self.last = last


class _Range(NamedTuple):
    """
    Unread messages of one conversation: the bytes C{[start, end)} of the
    owner's copy (C{end} L{None}: to the end of the file).
    """

    start: int
    end: int | None


class RoomFiles(Protocol):
    """
    Where the rooms' histories are, as their store knows
    (L{chat.storage.files.rooms.FileChatStore}).
    """

    def path(self, room: str) -> Path: ...

    def size(self, room: str) -> int | None: ...


@implementer(IDirectMessages)
class DirectFiles:
    """
    Private messages of one process, in files.

    @ivar inbox_cap: How many unread messages an inbox keeps.
    @ivar unread_shown: How many of them L{take_unread} returns.
    """

    log = Logger()

    def __init__(
        self,
        data: Path,
        run: Runner,
        files: OpenFiles | None = None,
        rooms: RoomFiles | None = None,
    ) -> None:
        """
        @param data: The data directory: conversations live in C{data/dms}.
        @param run: Where blocking work goes (reads of unknown size, fsync).
        @param files: The open-file budget to share, by default one of its own.
        @param rooms: The rooms' store, for L{room_history}; without it
            room files are found under C{data/rooms}.
        """
        self.dms_dir = Path(data) / "dms"
        self.rooms_dir = Path(data) / "rooms"
        self._run = run
        self._files = files if files is not None else OpenFiles()
        self._own_files = files is None
        self._rooms = rooms
        self.inbox_cap = INBOX_CAP
        self.unread_shown = UNREAD_SHOWN
        self.events: IDirectEvents | None = None
        self._online: set[str] = set()
        self._copies: OrderedDict[tuple[str, str], _Copy] = OrderedDict()
        #: owner -> {partner: where its unread messages begin and end}.
        self._unread: dict[str, dict[str, _Range]] = {}
        #: owner -> whom it ignores: read on every send, so in memory.
        self._ignores: dict[str, set[str]] = {}
        self._ignore_writes = DeferredLock()
        #: Copies written since the last sync, as (owner, partner).
        self._dirty: set[tuple[str, str]] = set()
        #: Directories and pointer files created since then.
        self._created: set[Path] = set()

    # Start, sync, close

    def start(self, events: IDirectEvents) -> Deferred[None]:
        """
        Read the ignore lists and the inboxes' pointers (small files, one
        of each per account at most), inside this call as the rooms are
        loaded: before the server listens, and failing it if they cannot
        be read.
        """
        self.events = events
        self._ignores, self._unread = _load(self.dms_dir)
        return succeed(None)

    def sync(self) -> Deferred[None]:
        """
        fsync, in a thread, the copies written since the last call (and the
        directories created for them).
        """
        d = self._run(fsync_paths, self._take_dirty())
        d.addCallback(self._synced)
        return d

    def _synced(self, errors: list[OSError]) -> None:
        if errors:
            self.log.warn(
                "fsync failed for {count} conversation files: {error}",
                count=len(errors),
                error=errors[0],
            )

    def _take_dirty(self) -> list[Path]:
        """
        What to fsync: the files first, then the directories naming them.
        """
        paths = [self._path(owner, partner) for owner, partner in self._dirty]
        paths.extend(sorted(self._created, key=lambda p: -len(p.parts)))
        self._dirty.clear()
        self._created.clear()
        return paths

    def close(self) -> None:
        """
        fsync what was written and let go of the files.
        """
        if self._own_files:
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()
        for error in fsync_paths(self._take_dirty()):
            self.log.warn("fsync failed on close: {error}", error=error)

    # Presence

    def online(self, user: str) -> Deferred[None]:
        self._online.add(user.lower())
        return succeed(None)

    def offline(self, user: str) -> None:
        self._online.discard(user.lower())

    # Sending

    def _path(self, owner: str, partner: str) -> Path:
        return self.dms_dir / owner / (partner + _SUFFIX)

    def _open(self, owner: str, partner: str, keep: Hashable = None) -> tuple[int, _Copy]:
        """
        The copy's descriptor and what is known of it, learning that (a
        bounded read of its tail) when it is not known.

        @param keep: The other copy's key in the open files, not to close.

        @raise OSError: It cannot be opened.
        """
        key = ("dm", owner, partner)
        files = self._files
        fd = files.get(key)
        if fd is not None:
            # The common case, without building a path.
            files.move_to_end(key)
        else:
            path = self._path(owner, partner)
            try:
                fd = files.open(key, path, keep)
            except FileNotFoundError:
                # The owner's first conversation.
                os.makedirs(path.parent, exist_ok=True)
                self._created.update((path.parent, path.parent.parent))
                fd = files.open(key, path, keep)
        copies = self._copies
        copy = copies.get((owner, partner))
        if copy is not None:
            copies.move_to_end((owner, partner))
            return fd, copy
        complete = drop_torn_line(fd, f"Conversation {owner}/{partner}")
        copy = _Copy(complete, _last_stamp(fd, complete))
        while len(copies) >= _KNOWN:
            copies.popitem(last=False)
        copies[(owner, partner)] = copy
        return fd, copy

    def send(self, sender: str, recipient: str, timestamp: str, text: str) -> Deferred[None]:
        return self.send_batch([(sender, recipient, timestamp, text)])[0]

    def send_batch(self, batch: Sequence[tuple[str, str, str, str]]) -> list[Deferred[None]]:
        """
        Store a turn's private messages with one C{write(2)} per copy of
        each conversation they belong to, then show them in order: the
        writes, not the Python around them, are what a message costs.
        All of them are stored, or none.
        """
        online = self._online
        ignores = self._ignores
        #: Per copy: what is known of it, and what to add.  Descriptors are
        #: looked up again when written: opening one copy may close another.
        copies: dict[tuple[str, str], tuple[_Copy, list[bytes]]] = {}
        lasts: dict[tuple[str, str], str | None] = {}
        pending: dict[tuple[str, str], int] = {}
        stored: list[tuple[DirectMessage, bool]] = []
        marks: list[tuple[str, str, int]] = []
        #: The (recipient, sender) copies whose unread range grows.
        unread_copies: set[tuple[str, str]] = set()

        def copy_of(owner: str, partner: str, keep: Hashable = None) -> tuple[_Copy, list[bytes]]:
            found = copies.get((owner, partner))
            if found is None:
                _, copy = self._open(owner, partner, keep)
                found = copies[(owner, partner)] = (copy, [])
                lasts[(owner, partner)] = copy.last
                pending[(owner, partner)] = 0
            return found

        try:
            for sender, recipient, timestamp, text in batch:
                s, r = sender.lower(), recipient.lower()
                delivered = s != r and s not in ignores.get(r, ())
                _, mine = copy_of(s, r)
                last = lasts[(s, r)]
                if delivered:
                    other_copy, theirs = copy_of(r, s, ("dm", s, r))
                    other = lasts[(r, s)]
                    if other is not None and (last is None or other > last):
                        last = other
                stamp = stamp_after(timestamp, last)
                data = f"{stamp} {sender} {text}\n".encode()
                mine.append(data)
                lasts[(s, r)] = stamp
                pending[(s, r)] += len(data)
                shown = delivered and r in online
                if delivered:
                    if not shown:
                        unread_copies.add((r, s))
                        if s not in self._unread.get(r, ()):
                            # Where this message starts in the recipient's copy.
                            marks.append((r, s, other_copy.size + pending[(r, s)]))
                    theirs.append(data)
                    lasts[(r, s)] = stamp
                    pending[(r, s)] += len(data)
                stored.append((DirectMessage(stamp, sender, recipient, text), shown))
        except OSError as e:
            return self._unavailable("cannot open a conversation file", e, len(batch))
        written: list[tuple[str, str]] = []
        error: OSError | None = None
        for key, (copy, chunks) in copies.items():
            try:
                fd, _ = self._open(*key)
            except OSError as e:
                error = e
                break
            error = self._write(fd, copy, b"".join(chunks))
            if error is not None:
                break
            written.append(key)
        marked: list[tuple[str, str]] = []
        if error is None:
            for owner, partner, start in marks:
                if partner in self._unread.get(owner, ()):
                    continue
                error = self._mark_unread(owner, partner, start)
                if error is not None:
                    break
                marked.append((owner, partner))
        if error is not None:
            for key in written:
                try:
                    fd, _ = self._open(*key)
                except OSError:
                    continue
                _undo(fd, copies[key][0].size)
            for owner, partner in marked:
                self._unread[owner].pop(partner, None)
            return self._unavailable("cannot write a private message", error, len(batch))
        dirty = self._dirty
        for key, (copy, _) in copies.items():
            copy.size += pending[key]
            copy.last = lasts[key]
            dirty.add(key)
        unread = self._unread
        for r, s in unread_copies:
            ranges = unread[r]
            ranges[s] = _Range(ranges[s].start, copies[(r, s)][0].size)
        events = self.events
        assert events is not None
        for message, shown in stored:
            events.direct_stored(message, shown)
        return [succeed(None) for _ in stored]

    def _write(self, fd: int, copy: _Copy, data: bytes) -> OSError | None:
        """
        One C{write(2)}, taken back if it was torn.
        """
        try:
            written = os.write(fd, data)
        except OSError as e:
            _undo(fd, copy.size)
            return e
        if written != len(data):
            _undo(fd, copy.size)
            return OSError(errno.ENOSPC, "short write")
        return None

    def _mark_unread(self, owner: str, partner: str, start: int) -> OSError | None:
        """
        Remember, durably, that the owner's copy has unread messages from
        C{start} on, unless it is known already (then the range grows in
        memory only: its end is the end of the file after a restart).
        """
        ranges = self._unread.setdefault(owner, {})
        if partner in ranges:
            return None
        path = self.dms_dir / owner / _UNREAD
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, f"{partner} {start}\n".encode())
            finally:
                os.close(fd)
        except OSError as e:
            return e
        self._created.add(path)
        ranges[partner] = _Range(start, None)
        return None

    def _unavailable(self, why: str, error: OSError, count: int) -> list[Deferred[None]]:
        """
        Say once why a batch could not be stored, and fail each of its
        messages on its own: every sender is told.
        """
        self.log.error("Private messages: {why}: {error}", why=why, error=error)
        code = errno.errorcode.get(error.errno or 0, str(error))
        return [fail(StoreUnavailable(code)) for _ in range(count)]

    # The inbox

    def take_unread(self, user: str) -> Deferred[Unread]:
        owner = user.lower()
        ranges = self._unread.pop(owner, None)
        if not ranges:
            return succeed(Unread([], 0))
        jobs = []
        for partner, (start, end) in ranges.items():
            if end is None:
                copy = self._copies.get((owner, partner))
                end = copy.size if copy is not None else None
            jobs.append((self._path(owner, partner), start, end))
        keep = min(self.inbox_cap, self.unread_shown)
        d = self._run(_read_unread, jobs, owner, keep)

        def taken(found: tuple[list[Message], int]) -> Unread:
            messages, total = found
            self._save_unread(owner)
            shown = [DirectMessage(ts, who, user, text) for ts, who, text in messages]
            return Unread(shown, total - len(shown))

        def failed(f: Failure) -> Failure:
            # Keep them for the next login.
            again = self._unread.setdefault(owner, {})
            for partner, old in ranges.items():
                new = again.get(partner)
                again[partner] = old if new is None else _Range(old.start, new.end)
            self.log.failure("Could not read the inbox of {user}", f, user=owner)
            return Failure(StoreUnavailable(str(f.value)))

        d.addCallbacks(taken, failed)
        return d

    def _save_unread(self, owner: str) -> None:
        """
        Replace the owner's pointer file by what is unread now (usually
        nothing: the file goes).
        """
        path = self.dms_dir / owner / _UNREAD
        ranges = self._unread.get(owner)
        try:
            if not ranges:
                os.unlink(path)
                return
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, "".join(f"{p} {r.start}\n" for p, r in ranges.items()).encode())
            finally:
                os.close(fd)
        except FileNotFoundError:
            pass
        except OSError as e:
            self.log.warn("Could not clear the inbox of {user}: {error}", user=owner, error=e)

    # Reading back

    def conversations(self, user: str) -> Deferred[list[tuple[str, str]]]:
        return self._run(_conversations, self.dms_dir / user.lower())

    def history(
        self, user: str, partner: str, before: str | None, count: int
    ) -> Deferred[list[Message]]:
        owner, other = user.lower(), partner.lower()
        copy = self._copies.get((owner, other))
        return self._run(
            read_page, self._path(owner, other), copy.size if copy else None, before, count
        )

    def room_history(self, room: str, before: str | None, count: int) -> Deferred[list[Message]]:
        if self._rooms is not None:
            size = self._rooms.size(room)
            if size is None:
                return succeed([])
            return self._run(read_page, self._rooms.path(room), size, before, count)
        return self._run(read_page, self.rooms_dir / (room + _SUFFIX), None, before, count)

    # Ignoring

    def ignore(self, user: str, other: str, limit: int) -> Deferred[bool]:
        owner, name = user.lower(), other.lower()
        names = self._ignores.setdefault(owner, set())
        if name in names:
            return succeed(True)
        if len(names) >= limit:
            return succeed(False)
        names.add(name)

        def saved(_: object) -> bool:
            return True

        def failed(f: Failure) -> Failure:
            names.discard(name)
            return f

        return self._ignore_writes.run(self._save_ignores, owner).addCallbacks(saved, failed)

    def unignore(self, user: str, other: str) -> Deferred[None]:
        owner, name = user.lower(), other.lower()
        names = self._ignores.get(owner, set())
        if name not in names:
            return succeed(None)
        names.discard(name)
        d = self._ignore_writes.run(self._save_ignores, owner)

        def failed(f: Failure) -> Failure:
            names.add(name)
            return f

        d.addErrback(failed)
        return d

    def ignored(self, user: str) -> Deferred[list[str]]:
        return succeed(sorted(self._ignores.get(user.lower(), ())))

    def _save_ignores(self, owner: str) -> Deferred[None]:
        """
        Write the owner's list as it is now, one write at a time: a later
        change must not be overwritten by an earlier one finishing late.
        """
        names = sorted(self._ignores.get(owner, ()))
        d = self._run(
            replace_file, self.dms_dir / owner / _IGNORED, "".join(f"{n}\n" for n in names)
        )

        def failed(f: Failure) -> Failure:
            self.log.failure("Could not save whom {user} ignores", f, user=owner)
            return Failure(StoreUnavailable(str(f.value)))

        d.addErrback(failed)
        return d


def _undo(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError:
        DirectFiles.log.failure("Could not undo a failed private message")


def _stamp_of(line: bytes) -> str | None:
    stamp = line[:_STAMP]
    if len(stamp) != _STAMP or line[_STAMP : _STAMP + 1] != b" ":
        return None
    return stamp.decode("ascii", errors="replace")


def _last_stamp(fd: int, size: int) -> str | None:
    """
    The stamp of a file's last line (one block read, as a rule).
    """
    for line in reversed(read_tail_lines(fd, size, 1)):
        stamp = _stamp_of(line)
        if stamp is not None:
            return stamp
    return None


def _parse(lines: list[bytes]) -> list[Message]:
    messages = []
    for raw in lines:
        if is_tombstone(raw):
            continue
        parts = raw.decode("utf-8", errors="replace").split(" ", 2)
        if len(parts) == 3 and len(parts[0]) == _STAMP:
            messages.append(Message(parts[0], parts[1], parts[2]))
    return messages


# What runs in a thread (but _load, at start-up).


def _load(dms: Path) -> tuple[dict[str, set[str]], dict[str, dict[str, _Range]]]:
    """
    Every ignore list and inbox pointer under C{dms}.
    """
    ignores: dict[str, set[str]] = {}
    unread: dict[str, dict[str, _Range]] = {}
    dms.mkdir(parents=True, exist_ok=True)
    for home in dms.iterdir():
        try:
            names = (home / _IGNORED).read_text().split()
        except FileNotFoundError:
            names = []
        if names:
            ignores[home.name] = set(names)
        try:
            pointers = (home / _UNREAD).read_text().splitlines()
        except FileNotFoundError:
            pointers = []
        ranges: dict[str, _Range] = {}
        for line in pointers:
            partner, _, offset = line.partition(" ")
            if not offset.isdigit():
                continue
            try:
                # Up to here, whatever came in before the restart.
                end = (home / (partner + _SUFFIX)).stat().st_size
            except FileNotFoundError:
                continue
            start = int(offset)
            old = ranges.get(partner)
            ranges[partner] = _Range(min(start, old.start) if old else start, end)
        if ranges:
            unread[home.name] = ranges
    return ignores, unread


def _read_unread(
    jobs: list[tuple[Path, int, int | None]], owner: str, keep: int
) -> tuple[list[Message], int]:
    """
    The newest C{keep} unread messages of all the ranges, oldest first, and
    how many there are (the owner's own lines, there when it wrote with no
    connection, do not count).
    """
    newest: list[Message] = []
    total = 0
    for path, start, end in jobs:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            if end is None:
                end = complete_size(fd, os.fstat(fd).st_size)
            last: deque[Message] = deque(maxlen=keep)
            pos, rest = start, b""
            while pos < end:
                chunk = os.pread(fd, min(BLOCK * 4, end - pos), pos)
                if not chunk:
                    break
                pos += len(chunk)
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for message in _parse(lines):
                    if message.sender.lower() != owner:
                        total += 1
                        last.append(message)
            newest.extend(last)
        finally:
            os.close(fd)
    newest.sort(key=lambda m: m.timestamp)
    return (newest[-keep:] if keep > 0 else []), total


def _conversations(home: Path) -> list[tuple[str, str]]:
    found = []
    try:
        entries = list(home.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        if not path.name.endswith(_SUFFIX):
            continue
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            stamp = _last_stamp(fd, complete_size(fd, os.fstat(fd).st_size))
        finally:
            os.close(fd)
        if stamp is not None:
            found.append((path.name[: -len(_SUFFIX)], stamp))
    found.sort(key=lambda c: c[1], reverse=True)
    return found


def _line_start(fd: int, pos: int, end: int) -> int:
    """
    Where the first line starting at or after C{pos} starts (C{end} if
    none does before it).
    """
    if pos == 0:
        return 0
    pos -= 1
    while pos < end:
        chunk = os.pread(fd, min(4096, end - pos), pos)
        if not chunk:
            return end
        nl = chunk.find(b"\n")
        if nl >= 0:
            return pos + nl + 1
        pos += len(chunk)
    return end


def _find(fd: int, size: int, before: bytes) -> int:
    """
    Where the first line stamped C{before} or later starts, by a binary
    search over byte offsets: lines are sorted by stamp.  (Should some not
    be, the answer is some line start, and the caller filters.)
    """
    lo, hi = 0, size
    # Invariant: lines starting before lo are earlier; hi is a line start
    # (or the end) whose line is not earlier.
    while hi - lo > BLOCK:
        start = _line_start(fd, (lo + hi) // 2, hi)
        if start >= hi:
            break
        if os.pread(fd, _STAMP, start) < before:
            lo = start
        else:
            hi = start
    pos = lo
    for line in os.pread(fd, hi - lo, lo).split(b"\n"):
        if pos >= hi or line[:_STAMP] >= before:
            break
        pos += len(line) + 1
    return min(pos, hi)


def read_page(path: Path, size: int | None, before: str | None, count: int) -> list[Message]:
    """
    Up to C{count} messages of a history file stamped before C{before} (or
    the last ones), oldest first: a binary search and a read of about the
    page's size, however long the file.  Runs in a thread.

    @param size: Where the complete lines end, if the caller knows.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        if size is None:
            size = complete_size(fd, os.fstat(fd).st_size)
        end = size if before is None else _find(fd, size, before.encode())
        messages = read_tail(fd, end, count, _parse)
    finally:
        os.close(fd)
    if before is not None:
        messages = [m for m in messages if m.timestamp < before]
    return messages


def find_line(fd: int, size: int, stamp: str) -> tuple[int, bytes] | None:
    """
    Where the line of the message stamped C{stamp} starts, and the line
    (without its LF), within a history file's first C{size} bytes (its
    complete lines): a binary search, lines being sorted by stamp.
    Tombstones are no message.  Runs in a thread.
    """
    target = stamp.encode()
    pos = _find(fd, size, target)
    # Should stamps repeat (files older than unique stamps), the first
    # such line still standing.
    while pos < size:
        chunk = os.pread(fd, min(BLOCK, size - pos), pos)
        end = chunk.find(b"\n")
        while end < 0 and pos + len(chunk) < size:
            more = os.pread(fd, min(BLOCK, size - pos - len(chunk)), pos + len(chunk))
            if not more:
                break
            found = more.find(b"\n")
            end = len(chunk) + found if found >= 0 else -1
            chunk += more
        line = chunk[:end] if end >= 0 else chunk
        if line[:_STAMP] != target or line[_STAMP : _STAMP + 1] != b" ":
            return None
        if not is_tombstone(line):
            return pos, line
        pos += len(line) + 1
    return None
