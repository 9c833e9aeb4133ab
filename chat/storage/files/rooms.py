"""
Rooms and their history as files under the data directory: the embedded
store (L{FileChatStore}) and the backend that serves it to one process
(L{LocalBackend}).

Layout: C{DATA/rooms/<room>.log}, one message per line,
C{<timestamp> <user> <text>}.  A room exists when its file exists, so
creating a room and making it durable are the same act.

Timestamps: each message is stamped later than the last one in its room
(L{chat.message.stamp_after}), so a room and a stamp name one message; the
store learns each room's last stamp when it loads, keeping history or not.

Durability: every message is written with one C{write(2)} before it is
broadcast, so a message anyone has seen is in the kernel's page cache and
survives a crash of the server process (C{kill -9}).  Room creation is
fsynced (file and directory) before it is acknowledged; message files are
fsynced on shutdown and every few seconds by L{FileChatStore.sync}.

File descriptors: only a bounded number of files is open at once (those
written to most recently, rooms and private conversations alike: one
L{OpenFiles}); the others are opened again when next written to.  A
server with more rooms than it may open files starts and serves.

Private messages (L{LocalBackend.direct}) live beside the rooms, in
L{chat.storage.files.direct}; moderation (L{LocalBackend.moderation}:
rules, deletions, the audit log) in L{chat.storage.files.moderation};
session tokens (L{LocalBackend.tokens}) in L{chat.storage.files.tokens}.

Deleting a message overwrites its line in place with a tombstone (see
L{chat.storage.files.logs.tombstone}), which every reader skips; dropping
a room removes its file.
"""

# test-case-name: tests.storage.test_rooms, tests.test_store

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Interface, implementer

from chat.message import Message, next_timestamp
from chat.storage.common import NameTaken, Runner, StoreUnavailable
from chat.storage.files.direct import DirectFiles, find_line
from chat.storage.files.logs import (
    OPEN_FLAGS,
    STAMP_LENGTH,
    OpenFiles,
    default_open_files,
    drop_torn_line,
    fsync_directory,
    fsync_paths,
    is_tombstone,
    read_tail,
    read_tail_lines,
    tombstone,
)
from chat.storage.files.moderation import ModerationFiles
from chat.storage.files.tokens import TokenFiles
from chat.storage.moderation import IModerationEvents
from chat.storage.rooms import IChatBackend, IRoomEvents
from chat.storage.tokens import ITokenStore

__all__ = [
    "FileChatStore",
    "IChatStore",
    "LocalBackend",
    "Runner",
    "default_open_files",
    "read_tail_lines",
]

_SUFFIX = ".log"


class IChatStore(Interface):
    """
    Durable rooms and their history, as one process keeps them: what
    L{LocalBackend} serves.

    Every method that changes state fires its Deferred only once the change
    is durable, because the server acknowledges to clients right after.
    """

    def load(history: int) -> dict[str, list[Message]]:
        """
        Open the store and read what the server needs in memory: every room,
        spelled as created, with its last C{history} messages,
        oldest first.  A fresh store is
        seeded with the room C{general}.

        Called once, from C{startService}, before any port listens.
        """

    def create_room(name: str) -> Deferred[None]:
        """
        Create a room.

        @return: A Deferred that fires with L{None} once the room is durable,
            or fails with L{NameTaken} or L{StoreUnavailable}.
        """

    def append(room: str, messages: Sequence[Message]) -> Sequence[Message]:
        """
        Append messages to a room's history,
        durably enough that a crash of the server process right after this
        returns cannot lose them.

        @return: The messages as stored: any whose stamp is not later than
            the room's last is stamped one millisecond after it.

        Synchronous on purpose: it sits on the hot path of every message and
        the embedded store does one C{write(2)} for the whole batch.

        @raise StoreUnavailable: Nothing was stored; the room's history is as
            it was before the call.
        """

    def sync() -> Deferred[None]:
        """
        Make every message appended so far safe from a crash of the whole
        machine (fsync), off the reactor thread.  Called every few seconds.

        @return: A Deferred that fires when done.
        """

    def close() -> None:
        """
        Flush everything to stable storage and release the files.
        """


@implementer(IChatStore)
class FileChatStore:
    """
    Rooms and history in plain append-only files.

    Appends are single C{os.write} calls on an C{O_APPEND} descriptor, so a
    concurrent reader (or a crash) never sees half of an acknowledged
    message.  At most C{max_open} room files are open at once, the least
    recently written closed first: one account creating rooms, or a data
    directory holding more rooms than the process may open files, must
    not use up the descriptors that connections need.

    Closing a file does not make it durable, so the store remembers which
    rooms were written to since the last L{sync} by name, not by
    descriptor: the sync job opens each of those files itself, in its
    thread, and fsyncs it (on Linux, fsync flushes a file's data whichever
    descriptor wrote it).  The reactor thread never fsyncs while serving,
    and never has to keep a file open for the sync's sake.
    """

    log = Logger()

    def __init__(self, data: Path, run: Runner, max_open: int | None = None) -> None:
        """
        @param data: The data directory; rooms live in C{data/rooms}.
        @param run: Where blocking work (fsync) goes; see L{Runner}.
        @param max_open: How many files may be open at once; by
            default L{default_open_files}.
        """
        self.data = Path(data)
        self.rooms_dir = self.data / "rooms"
        self.run = self._run = run
        #: Open files, the least recently written first (shared with the
        #: private messages built on this store).
        self._fds = OpenFiles(max_open)
        self._sizes: dict[str, int] = {}
        #: Each room's last stamp: a new one must be later.
        self._last: dict[str, str | None] = {}
        self._dirty: set[str] = set()

    @property
    def max_open(self) -> int:
        return self._fds.max_open

    @property
    def files(self) -> OpenFiles:
        """
        The open files, for other features of this data directory to share.
        """
        return self._fds

    def load(self, history: int) -> dict[str, list[Message]]:
        self.rooms_dir.mkdir(parents=True, exist_ok=True)
        names = sorted(
            p.name[: -len(_SUFFIX)]
            for p in self.rooms_dir.iterdir()
            if p.name.endswith(_SUFFIX) and p.is_file()
        )
        if not names:
            self._create_file("general")
            names = ["general"]
        rooms: dict[str, list[Message]] = {}
        for name in names:
            # Each file is read and closed: the server opens a room's file
            # again when someone speaks there.
            fd = os.open(self._path(name), OPEN_FLAGS, 0o644)
            try:
                complete = drop_torn_line(fd, f"Room {name}")
                self._sizes[name] = complete
                # Past deleted messages, as many as asked for.
                recent = read_tail(fd, complete, history, partial(self._parse, name))
                # The last stamp: a deleted message's tombstone keeps it.
                last = read_tail_lines(fd, complete, 1)
                if last and len(last[0]) > STAMP_LENGTH and last[0][STAMP_LENGTH] == 0x20:
                    self._last[name] = last[0][:STAMP_LENGTH].decode("ascii", errors="replace")
                else:
                    self._last[name] = recent[-1].timestamp if recent else None
                rooms[name] = recent
            finally:
                os.close(fd)
        return rooms

    def _parse(self, room: str, lines: list[bytes]) -> list[Message]:
        messages = []
        for raw in lines:
            if is_tombstone(raw):
                continue
            parts = raw.decode("utf-8", errors="replace").split(" ", 2)
            if len(parts) < 3 or len(parts[0]) != STAMP_LENGTH:
                self.log.warn("Room {room}: skipping a damaged history line", room=room)
                continue
            messages.append(Message(parts[0], parts[1], parts[2]))
        return messages

    def _path(self, name: str) -> Path:
        return self.rooms_dir / (name + _SUFFIX)

    def path(self, room: str) -> Path:
        """
        Where a room's history is.
        """
        return self.rooms_dir / (room + _SUFFIX)

    def size(self, room: str) -> int | None:
        """
        Where a room's complete lines end, or L{None} for no such room:
        what a reader in another thread may read.
        """
        return self._sizes.get(room)

    def rooms(self) -> list[str]:
        """
        Every room, spelled as created.
        """
        return list(self._sizes)

    def find(self, room: str, stamp: str) -> Deferred[Message | None]:
        """
        The room's message stamped C{stamp}, if it has one (not deleted),
        read in a thread.

        @return: Fails with L{StoreUnavailable} if the file cannot be read.
        """
        size = self._sizes.get(room)
        if size is None:
            return succeed(None)
        d = self._run(_find_message, self._path(room), size, stamp)
        return d.addErrback(self._unavailable, "Room {room}: could not look up a message", room)

    def erase(self, room: str, stamp: str) -> Deferred[Message | None]:
        """
        Overwrite the room's message stamped C{stamp} with its tombstone,
        in place, and fsync: its text is gone from the file, not hidden.
        In a thread; appends may go on meanwhile (they write past the
        complete lines this reads, through another descriptor).

        @return: The message erased, or L{None} if there was none (no such
            room, no such stamp, deleted already).  Fails with
            L{StoreUnavailable}, the message then untouched.
        """
        size = self._sizes.get(room)
        if size is None:
            return succeed(None)
        d = self._run(_erase, self._path(room), size, stamp)
        return d.addErrback(self._unavailable, "Room {room}: could not delete a message", room)

    def drop_room(self, name: str) -> Deferred[None]:
        """
        Delete a room: its file is closed, forgotten and removed (the
        directory fsynced), in a thread.  From this call on, appends to
        the room fail, and its history reads empty; should the removal
        fail, the room is as it was.

        @return: Fails with L{StoreUnavailable}.
        """
        if name not in self._sizes:
            return succeed(None)
        size = self._sizes.pop(name)
        last = self._last.pop(name, None)
        dirty = name in self._dirty
        self._dirty.discard(name)
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)

        def failed(f: Any) -> Any:
            self._sizes[name] = size
            self._last[name] = last
            if dirty:
                self._dirty.add(name)
            return self._unavailable(f, "Room {room}: could not drop it", name)

        d = self._run(_remove, self._path(name))
        return d.addErrback(failed)

    def _unavailable(self, f: Any, why: str, room: str) -> Any:
        if f.check(StoreUnavailable):
            return f
        self.log.failure(why, f, room=room)
        raise StoreUnavailable(str(f.value))

    def _fd(self, name: str) -> int:
        """
        The room's open file (see L{OpenFiles.open}).

        @raise OSError: The file cannot be opened.
        """
        return self._fds.open(name, self._path(name))

    def _create_file(self, name: str) -> None:
        """
        Create a room's file and make its existence durable.  Runs in a
        thread: both fsyncs can take as long as the disk wants.
        """
        path = self._path(name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise NameTaken(name) from None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        dirfd = os.open(self.rooms_dir, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    def create_room(self, name: str) -> Deferred[None]:
        def created(_: object) -> None:
            # Created empty, and opened only when someone speaks.
            self._sizes[name] = 0
            self._last[name] = None

        def failed(f: Any) -> Any:
            if f.check(NameTaken, StoreUnavailable):
                return f
            self.log.failure("Could not create room {room}", f, room=name)
            raise StoreUnavailable(str(f.value))

        d = self._run(self._create_file, name)
        d.addCallbacks(created, failed)
        return d

    def append(self, room: str, messages: Sequence[Message]) -> Sequence[Message]:
        size = self._sizes.get(room)
        if size is None:
            # Dropped (or never created): its file must not come back.
            raise StoreUnavailable(f"no room {room}")
        last = self._last.get(room)
        stored = messages
        if len(messages) > 1 or (messages and last is not None and messages[0][0] <= last):
            stored = _stamped(messages, last)
        data = "".join([f"{ts} {user} {text}\n" for ts, user, text in stored]).encode()
        try:
            fd = self._fd(room)
        except OSError as e:
            self.log.error("Room {room}: cannot open its file: {error}", room=room, error=e)
            raise StoreUnavailable(errno.errorcode.get(e.errno or 0, str(e))) from e
        try:
            written = os.write(fd, data)
        except OSError as e:
            self._undo(room, fd)
            raise StoreUnavailable(errno.errorcode.get(e.errno or 0, str(e))) from e
        if written != len(data):
            # A short write to a regular file means the disk is full: take the
            # fragment back so the history holds no torn line.
            self._undo(room, fd)
            raise StoreUnavailable("short write")
        self._sizes[room] = size + written
        self._dirty.add(room)
        if stored:
            self._last[room] = stored[-1][0]
        return stored

    def _undo(self, room: str, fd: int) -> None:
        try:
            os.ftruncate(fd, self._sizes[room])
        except OSError:
            self.log.failure("Room {room}: could not undo a failed append", room=room)

    def sync(self) -> Deferred[None]:
        """
        fsync the files written since the last call, in a thread, so that a
        crash of the whole machine loses at most a few seconds of messages.

        The thread opens each file itself rather than use the store's
        descriptors, which the reactor thread may close meanwhile; so it
        holds one descriptor at a time.
        """
        paths = [self._path(name) for name in self._dirty]
        self._dirty.clear()
        d = self._run(fsync_paths, paths)
        d.addCallback(self._synced)
        return d

    def _synced(self, errors: list[OSError]) -> None:
        if errors:
            self.log.warn(
                "fsync failed for {count} room files: {error}", count=len(errors), error=errors[0]
            )

    def close(self) -> None:
        dirty = self._dirty
        for name, fd in self._fds.items():
            dirty.discard(name)
            try:
                os.fsync(fd)
            except OSError as e:
                self.log.warn("fsync failed on close: {error}", error=e)
            os.close(fd)
        self._fds.clear()
        # Those written to, then closed to make room for others.
        for error in fsync_paths([self._path(name) for name in dirty]):
            self.log.warn("fsync failed on close: {error}", error=error)
        dirty.clear()


def _find_message(path: Path, size: int, stamp: str) -> Message | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        found = find_line(fd, size, stamp)
    finally:
        os.close(fd)
    if found is None:
        return None
    parts = found[1].decode("utf-8", errors="replace").split(" ", 2)
    if len(parts) < 3:
        return None
    return Message(parts[0], parts[1], parts[2])


def _erase(path: Path, size: int, stamp: str) -> Message | None:
    """
    Overwrite a message's line with its tombstone, with C{pwrite} on a
    descriptor opened without C{O_APPEND} (on Linux, C{pwrite} on an
    C{O_APPEND} descriptor appends), then fsync.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        found = find_line(fd, size, stamp)
        if found is None:
            return None
        offset, line = found
        grave = tombstone(line)
        if os.pwrite(fd, grave, offset) != len(grave):
            raise OSError(errno.EIO, "short write")
        os.fsync(fd)
    finally:
        os.close(fd)
    parts = line.decode("utf-8", errors="replace").split(" ", 2)
    return Message(*parts) if len(parts) == 3 else None


def _remove(path: Path) -> None:
    """
    Remove a file, durably (its directory fsynced); gone already is done.
    """
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_directory(path.parent)


def _stamped(messages: Sequence[Message], last: str | None) -> Sequence[Message]:
    """
    The messages, each stamped later than the one before it (and the first
    later than C{last}): a string compare each, and a new list only when a
    stamp has to change, because every room message passes here.
    """
    out: list[Message] | None = None
    for i, message in enumerate(messages):
        stamp = message[0]
        if last is not None and stamp <= last:
            stamp = next_timestamp(last)
            if out is None:
                out = [Message(*m) for m in messages[:i]]
            out.append(Message(stamp, message[1], message[2]))
        elif out is not None:
            out.append(Message(*message))
        last = stamp
    return messages if out is None else out


@implementer(IChatBackend)
class LocalBackend:
    """
    One server on its own: rooms in an L{IChatStore} (files), presence in
    memory.  Everything is shown at once, inside the call that caused it.
    """

    log = Logger()
    #: What the log calls it when it is unavailable.
    label = "Storage"

    def __init__(
        self,
        store: IChatStore,
        clock: IReactorTime,
        sync_interval: float = 5.0,
        direct: DirectFiles | None = None,
        moderation: ModerationFiles | None = None,
        tokens: ITokenStore | None = None,
    ) -> None:
        """
        @param direct: The private messages; by default those of the data
            directory C{store} keeps (a L{FileChatStore}), sharing its
            thread runner and its budget of open files.
        @param moderation: The rules, deletions and audit log; by default
            those of that data directory, sharing its thread runner.
        @param tokens: The session tokens; by default those of that data
            directory, sharing its thread runner, expiring by C{clock}.
        """
        self.store = store
        self.clock = clock
        if direct is None or moderation is None or tokens is None:
            if not isinstance(store, FileChatStore):
                raise TypeError(
                    "LocalBackend needs the private messages, moderation and tokens of this store"
                )
            if direct is None:
                direct = DirectFiles(store.data, store.run, files=store.files, rooms=store)
            if moderation is None:
                moderation = ModerationFiles(store.data, store.run, store)
            if tokens is None:
                tokens = TokenFiles(store.data, store.run, clock)
        self.direct = direct
        self.moderation = moderation
        self.tokens = tokens
        self.sync_interval = sync_interval
        self.events: IRoomEvents | None = None
        self._sync_call: IDelayedCall | None = None

    def start(self, events: IRoomEvents) -> Deferred[None]:
        """
        Load the rooms, inside this call: a store that cannot load raises
        here, which stops the server before it listens.  Then the session
        tokens, the private messages' ignore lists and inboxes, and the
        moderation rules (C{events} hears of the last three).
        """
        self.events = events
        for name, recent in self.store.load(events.history).items():
            events.room_loaded(name, recent, ())
        # Inside this call too, as the rooms: unreadable tokens raise here.
        tokens = self.tokens.start()
        # The server hears of all three; the room events' type says one.
        server: Any = events
        d = self.direct.start(server)
        d.addCallback(lambda _: tokens)
        if IModerationEvents.providedBy(server):
            d.addCallback(lambda _: self.moderation.start(server))
        else:
            # A server from before moderation: it could not hear an act.
            self.log.warn("The server does not hear moderation: its rules are not loaded")
        self._schedule_sync()
        return d

    def _schedule_sync(self) -> None:
        if self.sync_interval > 0:
            self._sync_call = self.clock.callLater(self.sync_interval, self._sync)

    def _sync(self) -> None:
        d = gatherResults([self.store.sync(), self.direct.sync()], consumeErrors=True)
        d.addErrback(lambda f: self.log.failure("Periodic sync failed", f))
        d.addBoth(lambda _: self._schedule_sync() if self._sync_call is not None else None)

    def create_room(self, name: str) -> Deferred[None]:
        return self.store.create_room(name)

    def publish(self, room: str, messages: Sequence[Message]) -> Deferred[None]:
        try:
            stored = self.store.append(room, messages)
        except StoreUnavailable:
            return fail()
        assert self.events is not None
        self.events.messages_stored(room, stored)
        return succeed(None)

    def entered(self, room: str, user: str, timestamp: str) -> None:
        assert self.events is not None
        self.events.user_joined(room, user, timestamp)

    def left(self, room: str, user: str, timestamp: str) -> None:
        assert self.events is not None
        self.events.user_parted(room, user, timestamp)

    def stop(self) -> Deferred[None]:
        if self._sync_call is not None:
            if self._sync_call.active():
                self._sync_call.cancel()
            self._sync_call = None
        self.direct.close()
        self.moderation.close()
        self.tokens.close()
        self.store.close()
        return succeed(None)
