"""
Many chatroom processes on one Redis: rooms, history, presence and
accounts shared, so that users on different processes chat as on one
server.

Everything that changes a room goes through a Lua script, which Redis runs
whole and one at a time, and each script appends what happened to one
stream, C{chatroom:events}.  Every process reads that stream, its own
writes included, and applies it in order: that is the one order of each
room, the order every member sees and the order of the room's history
(C{chatroom:history:<room>}, a stream per room).  A sender's echo comes
back the same way, so it comes after Redis has the message.

Presence: each process records the (room, user) pairs it holds in a hash
of its own and keeps a heartbeat key alive; a script counts each pair
across processes and announces a JOIN when the first process has it and a
PART when the last one lets go.  Any process that finds another's
heartbeat expired takes that process's pairs away (L{_REAP}), so the
members of a process that died vanish within seconds.

Keys, under the prefix (C{chatroom:}):

    users            hash: lower-case name -> "Name:bcrypt-hash"
    rooms            hash: lower-case name -> Name
    history:<room>   stream per room (lower-case): t (timestamp), u, m
    events           stream: k (kind: M, J, P, R, U) and its fields
    present          hash: "Room User" -> how many processes have it
    proc:<id>        hash per process: "Room User" -> 1
    procs            set of process ids
    alive:<id>       a process's heartbeat, with a TTL
"""

# test-case-name: tests.test_cluster

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Sequence
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chat.auth import check_password, decode_credentials, hash_password
from chat.interfaces import IAccountStore, IChatBackend, IRoomEvents, NameTaken, StoreUnavailable
from chat.lines import format_timestamp
from chat.resp import RedisAddress, RedisClient, RedisError
from chat.store import Runner

__all__ = ["RedisAccounts", "RedisBackend"]

Message = tuple[str, str, str]

#: Presence bookkeeping shared by the scripts that change it.  C{change}
#: moves one process's hold on a "Room User" pair by one and announces the
#: user's arrival or departure when the count across processes crosses zero.
_PRESENCE = """
local prefix = '{prefix}'
local function change(proc, field, delta, ts)
  local mine = redis.call('HINCRBY', proc, field, delta)
  if mine <= 0 then redis.call('HDEL', proc, field) end
  local before = tonumber(redis.call('HGET', prefix .. 'present', field) or '0')
  local after = before + delta
  if after > 0 then
    redis.call('HSET', prefix .. 'present', field, after)
  else
    redis.call('HDEL', prefix .. 'present', field)
  end
  local kind = nil
  if before <= 0 and after > 0 then kind = 'J' elseif before > 0 and after <= 0 then kind = 'P' end
  if kind then
    local space = string.find(field, ' ', 1, true)
    redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', {events_cap}, '*', 'k', kind,
      'r', string.sub(field, 1, space - 1), 'u', string.sub(field, space + 1), 't', ts)
  end
end
"""

#: ARGV: room, history cap, then (timestamp, user, text) for each message.
_SAY = """
local prefix = '{prefix}'
local lines = {{}}
local history = prefix .. 'history:' .. string.lower(ARGV[1])
for i = 3, #ARGV, 3 do
  redis.call('XADD', history, 'MAXLEN', '~', ARGV[2], '*',
    't', ARGV[i], 'u', ARGV[i + 1], 'm', ARGV[i + 2])
  lines[#lines + 1] = ARGV[i] .. ' ' .. ARGV[i + 1] .. ' ' .. ARGV[i + 2]
end
redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', {events_cap}, '*',
  'k', 'M', 'r', ARGV[1], 'd', table.concat(lines, '\\n'))
return #lines
"""

#: ARGV: the hash, the lower-case name, the value, the event kind, its
#: field, the name as spelled.  Adds a user or a room unless taken.
_ADD = """
local prefix = '{prefix}'
if redis.call('HSETNX', prefix .. ARGV[1], ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', {events_cap}, '*',
  'k', ARGV[4], ARGV[5], ARGV[6])
return 1
"""

#: ARGV: process id, field, +1 or -1, timestamp.
_MOVE = (
    _PRESENCE
    + """
change(prefix .. 'proc:' .. ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4])
return 1
"""
)

#: ARGV: process id, heartbeat TTL in ms (0: the process is leaving),
#: timestamp, then every field the process holds.  Makes the process's
#: record say exactly that.
_SYNC = (
    _PRESENCE
    + """
local id, ttl, ts = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local proc = prefix .. 'proc:' .. id
local want, has = {{}}, {{}}
for i = 4, #ARGV do want[ARGV[i]] = true end
for _, field in ipairs(redis.call('HKEYS', proc)) do
  has[field] = true
  if not want[field] then change(proc, field, -1, ts) end
end
for i = 4, #ARGV do
  if not has[ARGV[i]] then has[ARGV[i]] = true; change(proc, ARGV[i], 1, ts) end
end
if ttl > 0 then
  redis.call('SET', prefix .. 'alive:' .. id, '1', 'PX', ttl)
  redis.call('SADD', prefix .. 'procs', id)
else
  redis.call('DEL', prefix .. 'alive:' .. id)
  redis.call('SREM', prefix .. 'procs', id)
end
return 1
"""
)

#: ARGV: process id, TTL in ms, timestamp.  Keeps this process alive, and
#: takes away the processes whose heartbeat has expired.  Returns whether
#: this process had been taken away itself (it was cut off for too long:
#: it must then record its presence again), and the ids taken away now.
_HEARTBEAT = (
    _PRESENCE
    + """
local id = ARGV[1]
redis.call('SET', prefix .. 'alive:' .. id, '1', 'PX', ARGV[2])
local lost = redis.call('SADD', prefix .. 'procs', id)
local dead = {{}}
for _, other in ipairs(redis.call('SMEMBERS', prefix .. 'procs')) do
  if redis.call('EXISTS', prefix .. 'alive:' .. other) == 0 then
    local proc = prefix .. 'proc:' .. other
    for _, field in ipairs(redis.call('HKEYS', proc)) do change(proc, field, -1, ARGV[3]) end
    redis.call('DEL', proc)
    redis.call('SREM', prefix .. 'procs', other)
    dead[#dead + 1] = other
  end
end
return {{lost, dead}}
"""
)

#: ARGV: history length.  Everything a process needs to start, read at one
#: point of the event stream: its last ID, the rooms with their recent
#: history, who is where, the account names, and how many events the
#: stream has ever had.  A new store gets the room general.
_SNAPSHOT = """
local prefix = '{prefix}'
if redis.call('HLEN', prefix .. 'rooms') == 0 then
  redis.call('HSET', prefix .. 'rooms', 'general', 'general')
end
local last = redis.call('XREVRANGE', prefix .. 'events', '+', '-', 'COUNT', 1)
local last_id = '0-0'
if #last > 0 then last_id = last[1][1] end
-- How many events were ever added (Redis 7 and later; -1 before).
local added = 0
local ok, info = pcall(redis.call, 'XINFO', 'STREAM', prefix .. 'events')
if ok then
  added = -1
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
  end
end
local rooms = redis.call('HVALS', prefix .. 'rooms')
local history = {{}}
for i, name in ipairs(rooms) do
  if tonumber(ARGV[1]) > 0 then
    history[i] = redis.call('XREVRANGE', prefix .. 'history:' .. string.lower(name),
      '+', '-', 'COUNT', ARGV[1])
  else
    history[i] = {{}}
  end
end
return {{last_id, rooms, history, redis.call('HKEYS', prefix .. 'present'),
  redis.call('HKEYS', prefix .. 'users'), added}}
"""


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _pairs(flat: list[Any]) -> dict[Any, Any]:
    """
    A Redis reply of alternating fields and values (a stream entry,
    C{XINFO}) as a dict.
    """
    return dict(zip(flat[::2], flat[1::2], strict=False))


def _parse_messages(payload: str) -> list[Message]:
    messages = []
    for line in payload.split("\n"):
        parts = line.split(" ", 2)
        if len(parts) == 3:
            messages.append((parts[0], parts[1], parts[2]))
    return messages


class _Script:
    """
    A Lua script, loaded on every new connection and called by its SHA.
    """

    def __init__(self, template: str, **values: object) -> None:
        self.text = template.format(**values)
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()


@implementer(IChatBackend)
class RedisBackend:
    """
    Rooms in Redis, shared by every process pointed at it.

    Two connections: one for commands, pipelined, and one that only reads
    the event stream (a blocking read holds its connection).

    @ivar process_id: This process's name in the presence records.
    """

    log = Logger()
    #: What the log calls it when it is unavailable.
    label = "Redis"

    def __init__(
        self,
        reactor: Any,
        address: RedisAddress,
        history_cap: int = 100_000,
        events_cap: int = 100_000,
        heartbeat: float = 1.0,
        presence_ttl: float = 5.0,
        prefix: str = "chatroom:",
    ) -> None:
        """
        @param history_cap: About how many messages each room's stream
            keeps (the oldest are trimmed).
        @param events_cap: About how many events the shared stream keeps: a
            process cut off for longer than that many events reads the
            rooms again whole.
        @param presence_ttl: Seconds after its last heartbeat that a
            process's users are taken out of their rooms.
        """
        self.reactor = reactor
        self.address = address
        self.history_cap = history_cap
        self.heartbeat = heartbeat
        self.presence_ttl = presence_ttl
        self.prefix = prefix
        #: Set by L{RedisAccounts}, which learns new names from the events.
        self.accounts: RedisAccounts | None = None
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        values = {"prefix": prefix, "events_cap": events_cap}
        scripts = [
            _Script(template, **values)
            for template in (_SAY, _ADD, _MOVE, _SYNC, _HEARTBEAT, _SNAPSHOT)
        ]
        self._say, self._add, self._move, self._sync, self._heartbeat, self._snapshot = scripts
        texts = [script.text for script in scripts]
        self.commands = RedisClient(reactor, address, name="redis commands", scripts=texts)
        self.reader = RedisClient(reactor, address, name="redis events", scripts=texts)
        self.events: IRoomEvents | None = None
        #: The "Room User" pairs this process holds.
        self._held: dict[str, None] = {}
        self._resync_presence = True
        self._last_id: str | None = None
        #: How many events the stream had ever had when this process last
        #: read one (L{None}: Redis before 7 does not say).
        self._seen: int | None = None
        self._reading = False
        self._loaded: Deferred[None] = Deferred()
        self._beat = LoopingCall(self._pulse)
        self._beat.clock = reactor
        self.commands.on_connect.append(self._commands_up)
        self.reader.on_connect.append(self._reader_up)

    def _call(self, client: RedisClient, script: _Script, *args: Any) -> Deferred[Any]:
        d = client.execute("EVALSHA", script.sha, 0, *args)
        return d.addErrback(_unavailable)

    # IChatBackend

    def start(self, events: IRoomEvents) -> Deferred[None]:
        self.events = events
        self.log.info(
            "Using Redis at {address} as process {id}",
            address=str(self.address),
            id=self.process_id,
        )
        self.commands.startService()
        self.reader.startService()
        self._beat.start(self.heartbeat, now=False)
        return self._loaded

    def create_room(self, name: str) -> Deferred[None]:
        d = self._call(self.commands, self._add, "rooms", name.lower(), name, "R", "r", name)
        return d.addCallback(_added, name)

    def publish(self, room: str, messages: Sequence[Message]) -> Deferred[None]:
        args: list[str | int] = [room, self.history_cap]
        for message in messages:
            args.extend(message)
        return self._call(self.commands, self._say, *args).addCallback(lambda _: None)

    def entered(self, room: str, user: str, timestamp: str) -> None:
        self._move_presence(f"{room} {user}", 1, timestamp)

    def left(self, room: str, user: str, timestamp: str) -> None:
        self._move_presence(f"{room} {user}", -1, timestamp)

    def stop(self) -> Deferred[None]:
        if self._beat.running:
            self._beat.stop()
        # Leave every room at once, so other processes need not wait for
        # the heartbeat to expire.
        d = self._call(self.commands, self._sync, self.process_id, 0, self._now())
        d.addErrback(lambda f: self.log.warn("Could not leave Redis cleanly: {e}", e=f.value))
        d.addBoth(lambda _: self.reader.stopService())
        d.addBoth(lambda _: self.commands.stopService())
        return d.addBoth(lambda _: None)

    # Presence

    def _now(self) -> str:
        return format_timestamp(self.reactor.seconds())

    def _move_presence(self, field: str, delta: int, timestamp: str) -> None:
        if delta > 0:
            self._held[field] = None
        else:
            self._held.pop(field, None)
        if self._resync_presence:
            return
        d = self._call(self.commands, self._move, self.process_id, field, delta, timestamp)
        d.addErrback(self._presence_failed)

    def _presence_failed(self, failure: Failure) -> None:
        # The next heartbeat writes the whole record again.
        self._resync_presence = True

    def _commands_up(self) -> None:
        self._resync_presence = True
        self._pulse()
        self._ready_if_up()

    def _ready_if_up(self) -> None:
        """
        Ready once the rooms are loaded and commands can be sent: the two
        connections come up independently, and a server that says it is
        ready must be able to log users in.
        """
        if self._last_id is not None and self.commands.connected and not self._loaded.called:
            self._loaded.callback(None)

    def _pulse(self) -> None:
        """
        The heartbeat: stay alive, take away the dead, and write this
        process's presence whole when it may be out of step.
        """
        if not self.commands.connected:
            return
        ttl = int(self.presence_ttl * 1000)
        now = self._now()
        if self._resync_presence:
            self._resync_presence = False
            d = self._call(self.commands, self._sync, self.process_id, ttl, now, *self._held)
            d.addErrback(self._presence_failed)
        d = self._call(self.commands, self._heartbeat, self.process_id, ttl, now)

        def beat(reply: list[Any]) -> None:
            lost, dead = reply
            for other in dead:
                self.log.warn(
                    "Process {other} stopped its heartbeat: its users left their rooms",
                    other=other,
                )
            if lost and not self._resync_presence:
                self.log.warn("This process had been given up for dead; recording it again")
                self._resync_presence = True
                self._pulse()

        d.addCallbacks(beat, lambda f: None)

    # The event stream

    def _reader_up(self) -> None:
        if self._reading:
            return
        d = self._catch_up()
        d.addErrback(self._read_failed)

    def _catch_up(self) -> Deferred[None]:
        """
        On a (new) connection: read the rooms whole the first time, or when
        the event stream no longer holds everything this process missed
        (trimmed past it, or lost by a Redis that restarted without its
        data); otherwise go on from the last event seen.
        """
        self._reading = True
        if self._last_id is None:
            return self._load()
        d = self.reader.execute("XINFO", "STREAM", self.prefix + "events")

        def check(reply: list[Any]) -> Deferred[None] | None:
            assert self._last_id is not None
            info = _pairs(reply)
            if _stream_id(info["last-generated-id"]) < _stream_id(self._last_id):
                return self._reload("Redis has lost events this process had seen")
            added = info.get("entries-added")
            if added is not None and self._seen is not None:
                # Trimming takes the oldest events; what this process has
                # not seen are the newest added - seen.
                if added < self._seen:
                    return self._reload("Redis has lost events this process had seen")
                missed = info["length"] < added - self._seen
            else:
                # Before Redis 7: the first event left tells as much (or a
                # little more) than was lost.
                first = info.get("first-entry")
                missed = not first or _stream_id(first[0]) > _stream_id(self._last_id)
            if missed:
                return self._reload("Events this process missed were trimmed away")
            self._read()
            return None

        def no_stream(failure: Failure) -> Deferred[None] | None:
            failure.trap(RedisError)
            if self._last_id != "0-0":
                return self._reload("Redis has lost the event stream")
            self._read()
            return None

        return d.addCallbacks(check, no_stream)

    def _reload(self, why: str) -> Deferred[None]:
        self.log.warn("{why}; reading the rooms again", why=why)
        return self._load()

    def _load(self) -> Deferred[None]:
        assert self.events is not None
        events = self.events
        d = self._call(self.reader, self._snapshot, events.history)  # type: ignore[attr-defined]

        def loaded(reply: list[Any]) -> None:
            last_id, rooms, histories, present, users, added = reply
            here: dict[str, list[str]] = {name.lower(): [] for name in rooms}
            for field in present:
                room, _, user = field.partition(" ")
                if room.lower() in here:
                    here[room.lower()].append(user)
            for name, history in zip(rooms, histories, strict=True):
                recent = []
                for _, fields in reversed(history):
                    entry = _pairs(fields)
                    recent.append((entry.get("t", ""), entry.get("u", ""), entry.get("m", "")))
                events.room_loaded(name, recent, sorted(here[name.lower()], key=str.lower))
            if self.accounts is not None:
                self.accounts.known.update(users)
            self._last_id = last_id
            self._seen = added if added >= 0 else None
            self._ready_if_up()
            self._read()

        return d.addCallback(loaded)

    def _read(self) -> None:
        assert self._last_id is not None
        d = self.reader.execute(
            "XREAD",
            "COUNT",
            1000,
            "BLOCK",
            2000,
            "STREAMS",
            self.prefix + "events",
            self._last_id,
            timeout=self.reader.timeout + 2,
        )
        d.addCallback(self._got)
        d.addErrback(self._read_failed)

    def _got(self, reply: list[Any] | None) -> None:
        if reply:
            entries = reply[0][1]
            self._apply(entries)
            self._last_id = entries[-1][0]
            if self._seen is not None:
                self._seen += len(entries)
        if self.reader.running:
            self._read()
        else:
            self._reading = False

    def _read_failed(self, failure: Failure) -> None:
        self._reading = False
        if not failure.check(StoreUnavailable):
            self.log.failure("Reading the event stream failed", failure)
        if self.reader.connected and self.reader.running:
            # Still connected (a bug, or Redis refused): try again shortly.
            self.reactor.callLater(1, self._reader_up)

    def _apply(self, entries: list[Any]) -> None:
        """
        Apply a batch of events in order.  Consecutive messages of one room
        are shown together: one write per member for the whole batch.
        """
        events = self.events
        assert events is not None
        said: dict[str, list[Message]] = {}
        for _, fields in entries:
            entry = _pairs(fields)
            kind = entry.get("k")
            if kind == "M":
                said.setdefault(entry["r"], []).extend(_parse_messages(entry["d"]))
                continue
            room = entry.get("r")
            if room is not None and room in said:
                events.messages_stored(room, said.pop(room))
            if kind == "J":
                events.user_joined(room, entry["u"], entry["t"])  # type: ignore[arg-type]
            elif kind == "P":
                events.user_parted(room, entry["u"], entry["t"])  # type: ignore[arg-type]
            elif kind == "R":
                events.room_created(room)  # type: ignore[arg-type]
            elif kind == "U" and self.accounts is not None:
                self.accounts.known.add(entry["u"].lower())
        for room, messages in said.items():
            events.messages_stored(room, messages)


def _unavailable(failure: Failure) -> Failure:
    if failure.check(RedisError):
        # A refusal (out of memory, read-only replica, ...): as unavailable
        # as no Redis at all, to the user.
        return Failure(StoreUnavailable(str(failure.value)))
    return failure


def _added(added: int, name: str) -> None:
    if not added:
        raise NameTaken(name)


@implementer(ICredentialsChecker, IAccountStore)
class RedisAccounts:
    """
    Accounts in the Redis hash C{users}, checked and added with bcrypt in
    the server's pool, as L{chat.auth.BcryptFileChecker} does with a file.

    @ivar known: The lower-case names of every account, kept up to date
        from the event stream, so that C{user_exists} (asked while a user
        types) needs no round trip; adding is decided by Redis.
    """

    credentialInterfaces = (IUsernamePassword,)
    log = Logger()

    def __init__(self, backend: RedisBackend, rounds: int = 12, run: Runner | None = None) -> None:
        self.backend = backend
        backend.accounts = self
        self.rounds = rounds
        self.run = run
        self.known: set[str] = set()
        self._pending: set[str] = set()

    def user_exists(self, name: str) -> bool:
        key = name.lower()
        return key in self.known or key in self._pending

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[str]:  # type: ignore[override]
        try:
            name, password = decode_credentials(credentials)
        except UnicodeDecodeError:
            return fail(UnauthorizedLogin())
        assert self.run is not None
        run = self.run
        d = self.backend.commands.execute("HGET", self.backend.prefix + "users", name.lower())

        def check(record: str | None) -> Deferred[str]:
            known, _, stored = (record or "").partition(":")
            checked: Deferred[bool] = run(check_password, password, stored or None, self.rounds)

            def verdict(ok: bool) -> str:
                if ok and record:
                    return known
                raise UnauthorizedLogin()

            return checked.addCallback(verdict)

        return d.addErrback(_unavailable).addCallback(check)

    def add_user(self, name: str, password: str) -> Deferred[None]:
        key = name.lower()
        if self.user_exists(name):
            return fail(NameTaken(name))
        self._pending.add(key)
        assert self.run is not None
        backend = self.backend
        d: Deferred[str] = self.run(hash_password, password, self.rounds)

        def store(stored: str) -> Deferred[None]:
            added = backend._call(
                backend.commands, backend._add, "users", key, f"{name}:{stored}", "U", "u", name
            )
            return added.addCallback(_added, name)

        def done(result: Any) -> Any:
            self._pending.discard(key)
            if not isinstance(result, Failure):
                self.known.add(key)
                self.log.info("Registered account {name}", name=name)
            return result

        return d.addCallback(store).addBoth(done)
