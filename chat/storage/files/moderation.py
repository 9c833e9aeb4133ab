"""
Moderation as files under the data directory, for one process
(L{ModerationFiles}).

Layout:

  - C{DATA/rules/<room>.json} (the room's name in lower case), for each
    room that has rules: C{{"room": <as created>, "owner": <name> or null,
    "operators": [<name>...], "bans": [{"user", "ts", "by", "reason"}...],
    "mutes": [<name>...], "topic": {"text", "ts", "by"} or null}}.
  - C{DATA/locks.json}: the locked accounts, C{{<lower-case name>:
    <reason, "" for none>}}.
  - C{DATA/audit.log}: one JSON object a line, C{{"ts", "actor", "action",
    "room", "target", "reason"}} (null where there is none).

Rules files are replaced whole (a temporary file written, fsynced and
renamed, the directory fsynced), in a thread; acts are done one at a time,
so a later change is never overwritten by an earlier one finishing late,
and the audit log's order is the order every act is heard in.

Each act is audited first (one C{write(2)}, fsynced), then done; should
doing it fail, the audit entry is taken back (the log truncated to where
it was), so that a failed act leaves nothing behind.  Deletions and drops
are done by the rooms' store (L{chat.storage.files.rooms.FileChatStore}),
which owns the rooms' files.
"""

# test-case-name: tests.storage.test_moderation, tests.storage.test_files_moderation

from __future__ import annotations

import copy
import errno
import json
import os
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chat.message import Message
from chat.storage.common import Runner, StoreUnavailable
from chat.storage.files.logs import (
    drop_torn_line,
    fsync_directory,
    read_tail,
    replace_file,
)
from chat.storage.moderation import (
    OWN,
    Act,
    Ban,
    IModeration,
    IModerationEvents,
    RoomRules,
    Rules,
    Topic,
)

__all__ = ["ModerationFiles"]

_RULES = "rules"
_LOCKS = "locks.json"
_AUDIT = "audit.log"
_SUFFIX = ".json"
#: Acts that change the rules file of their room, or the locks.
_RULED = frozenset({OWN, "op", "deop", "ban", "unban", "mute", "unmute", "topic"})
_LOCKING = frozenset({"lock", "unlock"})


class RoomStore(Protocol):
    """
    What moderation needs of the rooms' store
    (L{chat.storage.files.rooms.FileChatStore}).
    """

    def rooms(self) -> list[str]: ...

    def find(self, room: str, stamp: str) -> Deferred[Message | None]: ...

    def erase(self, room: str, stamp: str) -> Deferred[Message | None]: ...

    def drop_room(self, name: str) -> Deferred[None]: ...


@implementer(IModeration)
class ModerationFiles:
    """
    Rules, deletions and the audit log of one process, in files.

    @ivar data: The data directory (what every path is under).
    """

    log = Logger()

    def __init__(self, data: Path, run: Runner, rooms: RoomStore) -> None:
        """
        @param run: Where blocking work goes (writes, fsync, reads of the
            audit log).
        @param rooms: The rooms' store: what a delete or a drop acts on.
        """
        self.data = Path(data)
        self._run = run
        self._rooms = rooms
        self.events: IModerationEvents | None = None
        #: The rules as stored: what the next write of a file starts from.
        self._rules = Rules()
        #: Where the audit log's complete lines end.
        self._audit_size = 0
        self._acting = DeferredLock()

    @property
    def rules_dir(self) -> Path:
        return self.data / _RULES

    @property
    def locks_path(self) -> Path:
        return self.data / _LOCKS

    @property
    def audit_path(self) -> Path:
        return self.data / _AUDIT

    def _rules_path(self, room: str) -> Path:
        return self.rules_dir / (room.lower() + _SUFFIX)

    # Start and close

    def start(self, events: IModerationEvents) -> Deferred[None]:
        """
        Read the rules (small files, one per moderated room) and where the
        audit log ends, inside this call, as the rooms are loaded: before
        the server listens, failing it if they cannot be read.  Rules of
        rooms that do not exist (dropped by a process that died before
        removing them) are ignored; damaged files are skipped, and said.
        """
        self.events = events
        self._rules = self._load()
        self._audit_size = self._load_audit()
        events.rules_loaded(copy.deepcopy(self._rules))
        return succeed(None)

    def _load(self) -> Rules:
        rules = Rules()
        existing = {name.lower() for name in self._rooms.rooms()}
        if not self.rules_dir.is_dir():
            self.rules_dir.mkdir(parents=True)
            fsync_directory(self.data)
        for path in sorted(self.rules_dir.iterdir()):
            key = path.name[: -len(_SUFFIX)]
            if not path.name.endswith(_SUFFIX) or key not in existing:
                continue
            try:
                room = _room_rules(json.loads(path.read_bytes()))
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                self.log.warn(
                    "Rules of room {room}: skipping a damaged file: {error}", room=key, error=e
                )
                continue
            if not room.empty():
                rules.rooms[key] = room
        try:
            locks = json.loads(self.locks_path.read_bytes())
        except FileNotFoundError:
            locks = {}
        except ValueError as e:
            self.log.warn("Locked accounts: skipping a damaged file: {error}", error=e)
            locks = {}
        if isinstance(locks, dict):
            rules.locks = {
                str(name).lower(): reason if isinstance(reason, str) else ""
                for name, reason in locks.items()
            }
        else:
            self.log.warn("Locked accounts: skipping a damaged file")
        return rules

    def _load_audit(self) -> int:
        try:
            fd = os.open(self.audit_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        try:
            return drop_torn_line(fd, "The audit log")
        finally:
            os.close(fd)

    def close(self) -> None:
        """
        Nothing is kept open: every write is fsynced before it is done.
        """

    # Acting

    def act(self, act: Act) -> Deferred[None]:
        return self._acting.run(self._act, act)

    def _act(self, act: Act) -> Deferred[None]:
        """
        Audit, then do; take the audit entry back if doing fails; apply
        and tell once both are durable.
        """
        if act.action == OWN:
            d: Deferred[Any] = succeed(None)
        else:
            d = self._run(_append, self.audit_path, _audit_line(act))

        def audited(sizes: tuple[int, int] | None) -> Deferred[None]:
            done = self._do(act)
            if sizes is not None:
                before, self._audit_size = sizes
                done.addErrback(self._unaudit, before)
            return done

        def failed(f: Failure) -> Failure:
            if f.check(StoreUnavailable):
                return f
            self.log.failure("Could not store a {action}", f, action=act.action)
            return Failure(StoreUnavailable(str(f.value)))

        def durable(_: object) -> None:
            self._rules.apply(act)
            assert self.events is not None
            self.events.acted(act)

        d.addCallback(audited)
        d.addCallbacks(durable, failed)
        return d

    def _unaudit(self, f: Failure, size: int) -> Deferred[None]:
        """
        Take back the audit entry of an act that could not be done.
        """
        self._audit_size = size
        d = self._run(_truncate, self.audit_path, size)

        def failed(why: Failure) -> None:
            self.log.failure("Could not take back an audit entry", why)

        d.addCallbacks(lambda _: None, failed)
        d.addCallback(lambda _: f)
        return d

    def _do(self, act: Act) -> Deferred[Any]:
        """
        What an act stores beyond its audit entry.
        """
        action = act.action
        if action in _LOCKING:
            scratch = Rules(locks=dict(self._rules.locks))
            scratch.apply(act)
            text = json.dumps(scratch.locks, ensure_ascii=False, sort_keys=True)
            return self._run(replace_file, self.locks_path, text)
        if act.room is None:
            return succeed(None)
        if action in _RULED:
            key = act.room.lower()
            room = self._rules.rooms.get(key)
            scratch = Rules(rooms={key: copy.deepcopy(room)} if room is not None else {})
            scratch.apply(act)
            after = scratch.rooms.get(key)
            if after is None:
                return self._run(_remove, self._rules_path(key))
            return self._run(replace_file, self._rules_path(key), _room_json(act.room, after))
        if action == "delete":
            if act.reason is None:
                return succeed(None)
            return self._rooms.erase(act.room, act.reason)
        if action == "drop":
            return self._drop(act.room)
        return succeed(None)

    def _drop(self, room: str) -> Deferred[None]:
        """
        The rules go first: should the room's file not go, they are written
        back.  (Were they to go last, a crash in between would leave rules
        for the next room of that name; as it is, at worst a room with no
        rules is left.)
        """
        path = self._rules_path(room)
        d = self._run(_remove, path)
        rules = self._rules.rooms.get(room.lower())

        def failed(f: Failure) -> Deferred[None] | Failure:
            if rules is None:
                return f
            back = self._run(replace_file, path, _room_json(room, rules))
            back.addErrback(lambda why: self.log.failure("Could not restore rules", why))
            back.addCallback(lambda _: f)
            return back

        d.addCallback(lambda _: self._rooms.drop_room(room))
        d.addErrback(failed)
        return d

    # Reading

    def find(self, room: str, stamp: str) -> Deferred[Message | None]:
        return self._rooms.find(room, stamp)

    def audit(self, count: int) -> Deferred[list[Act]]:
        if count <= 0:
            return succeed([])
        d = self._run(_read_audit, self.audit_path, self._audit_size, count)

        def failed(f: Failure) -> Failure:
            self.log.failure("Could not read the audit log", f)
            return Failure(StoreUnavailable(str(f.value)))

        return d.addErrback(failed)


# Formats


def _audit_line(act: Act) -> bytes:
    entry = {
        "ts": act.stamp,
        "actor": act.actor,
        "action": act.action,
        "room": act.room,
        "target": act.target,
        "reason": act.reason,
    }
    return (json.dumps(entry, ensure_ascii=False) + "\n").encode()


def _audit_entries(lines: list[bytes]) -> list[Act]:
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
            entries.append(
                Act(
                    entry["ts"],
                    entry["actor"],
                    entry["action"],
                    entry.get("room"),
                    entry.get("target"),
                    entry.get("reason"),
                )
            )
        except (ValueError, TypeError, KeyError) as e:
            ModerationFiles.log.warn("The audit log: skipping a damaged line: {error}", error=e)
    return entries


def _room_json(room: str, rules: RoomRules) -> str:
    topic = rules.topic
    return json.dumps(
        {
            "room": room,
            "owner": rules.owner,
            "operators": list(rules.operators.values()),
            "bans": [
                {"user": ban.user, "ts": ban.stamp, "by": ban.by, "reason": ban.reason}
                for ban in rules.bans.values()
            ],
            "mutes": list(rules.mutes.values()),
            "topic": None
            if topic is None
            else {"text": topic.text, "ts": topic.stamp, "by": topic.by},
        },
        ensure_ascii=False,
    )


def _room_rules(data: dict[str, Any]) -> RoomRules:
    """
    A room's rules as read back.

    @raise ValueError: (or L{TypeError}, L{KeyError}) It is not what
        L{_room_json} writes.
    """
    owner = data["owner"]
    topic = data["topic"]
    names = [owner, *data["operators"], *data["mutes"]]
    names.extend(ban["user"] for ban in data["bans"])
    if not all(name is None or isinstance(name, str) for name in names):
        raise ValueError("names must be strings")
    return RoomRules(
        owner=owner,
        operators={name.lower(): name for name in data["operators"]},
        bans={
            ban["user"].lower(): Ban(ban["user"], ban["ts"], ban["by"], ban.get("reason"))
            for ban in data["bans"]
        },
        mutes={name.lower(): name for name in data["mutes"]},
        topic=None if topic is None else Topic(topic["text"], topic["ts"], topic["by"]),
    )


# What runs in a thread.


def _append(path: Path, line: bytes) -> tuple[int, int]:
    """
    Append one line with one C{write(2)}, and fsync (the directory too,
    when the file is new).  A torn write is taken back.

    @return: Where the file ended before, and where it ends now.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
    if size == 0:
        fsync_directory(path.parent)
    return size, size + len(line)


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """
    Remove a file, durably; gone already is done.
    """
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_directory(path.parent)


def _read_audit(path: Path, size: int, count: int) -> list[Act]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise
        return []
    try:
        return read_tail(fd, size, count, _audit_entries)
    finally:
        os.close(fd)
