"""
The connection every Redis feature shares, and the event stream.

Everything that changes shared state goes through a Lua script, which
Redis runs whole and one at a time, and each script appends what happened
to one stream, C{chatroom:events}.  Every process reads that stream, its
own writes included, and applies it in order: that is the one order of
each room, the order every member sees.  A sender's echo comes back the
same way, so it comes after Redis has the message.

A feature (L{chat.storage.redis.rooms}, L{chat.storage.redis.accounts},
...) registers with the L{RedisConnection}:

  - its scripts (L{RedisConnection.script}), loaded on every connection;
  - the event kinds it writes, one letter each, with a handler
    (L{RedisConnection.on_event}); a kind may be batched, its handler
    collecting events that a flush (L{RedisConnection.on_flush}) shows
    together at the end of a read, or before another event of the same
    room;
  - its part of the snapshot (L{RedisConnection.on_snapshot}): what a
    process reads at start, or when it has missed events the stream no
    longer holds, all parts in one script at one point of the stream.

Keys, under the prefix (C{chatroom:}), by owner:

    events           stream: k (kind) and its fields         (this module)
    rooms            hash: lower-case name -> Name             (rooms: R)
    history:<room>   stream per room (lower-case): t, u, m     (rooms: M)
    stamps           hash: room -> "<last stamp> <ms at which  (rooms)
                     its second began>"
    present          hash: "Room User" -> processes having it  (presence: J, P)
    online           hash: user -> processes it is online on   (presence)
    proc:<id>        hash per process: "Room User" -> 1, and   (presence)
                     "@user" -> 1 for each user online there
    procs            set of process ids                        (presence)
    alive:<id>       a process's heartbeat, with a TTL         (presence)
    users            hash: lower-case name -> "Name:hash"      (accounts: U)
    dm:<user>:<peer> stream: user's copy of the conversation   (direct: D)
                     with peer: t, u (sender), m
    dms:<user>       sorted set: peers by the milliseconds of  (direct)
                     the last message of the user's copy
    inbox:<user>     stream, capped: t, u, p (recipient), m    (direct)
    dropped:<user>   how many the inbox dropped past its cap   (direct)
    ignores:<user>   set of the users it ignores               (direct)
    owners           hash: room -> its owner                   (moderation: O)
    ops:<room>       hash: user -> "<n> Name", n the order     (moderation)
                     named (from the counter opsn)
    bans:<room>      hash: user -> "<ts> <by> <Name>[ :<why>]" (moderation)
    mutes:<room>     hash: user -> Name                        (moderation)
    topics           hash: room -> "<ts> <by> <text>"          (moderation)
    locks            hash: user -> the lock's reason           (moderation)
    moderated        set of the rooms with rules               (moderation)
    audit            stream, never trimmed: t a v r g m        (moderation)
    tokens:<user>    hash: sha256-hex of a session token ->    (tokens)
                     its expiry (POSIX seconds); expires with
                     its latest token

Names in keys are lower-case.  The entries of history and dm streams have
IDs made from their stamps' milliseconds (C{stamps.lua}), so that reading
back from a stamp seeks; history entries from before that have IDs from
Redis's clock, a little later than their stamps.
"""

# test-case-name: tests.storage.test_redis, tests.storage.test_redis_rooms

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from chat.resp import RedisAddress, RedisClient, RedisError
from chat.storage.common import NameTaken, StoreUnavailable
from chat.storage.redis.scripts import Script, read_lua

__all__ = ["RedisConnection", "added_or_taken", "pairs", "unavailable"]

#: An event of the stream, its fields as a dict (C{k} is its kind).
Event = dict[str, str]


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def pairs(flat: list[Any]) -> dict[Any, Any]:
    """
    A Redis reply of alternating fields and values (a stream entry,
    C{XINFO}) as a dict.
    """
    return dict(zip(flat[::2], flat[1::2], strict=False))


def unavailable(failure: Failure) -> Failure:
    """
    A refusal from Redis (out of memory, read-only replica, ...) as
    L{StoreUnavailable}: as unavailable as no Redis at all, to the user.
    """
    if failure.check(RedisError):
        return Failure(StoreUnavailable(str(failure.value)))
    return failure


def added_or_taken(added: int, name: str) -> None:
    """
    The reply of C{add.lua}: 1 if the name was added, 0 if it was taken.
    """
    if not added:
        raise NameTaken(name)


class _Part:
    """
    One feature's part of the snapshot.
    """

    def __init__(
        self, name: str, args: Callable[[], Sequence[Any]], loaded: Callable[[Any], None]
    ) -> None:
        self.name = name
        self.args = args
        self.loaded = loaded


class RedisConnection:
    """
    Two connections to Redis, one for commands, pipelined, and one that
    only reads the event stream (a blocking read holds its connection);
    and the reading of that stream, with catching up after a cut.

    @ivar ready: Fires once the snapshot is read and commands can be sent.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        address: RedisAddress,
        events_cap: int = 100_000,
        prefix: str = "chatroom:",
    ) -> None:
        """
        @param events_cap: About how many events the shared stream keeps: a
            process cut off for longer than that many events reads the
            snapshot again.
        """
        self.reactor = reactor
        self.address = address
        self.events_cap = events_cap
        self.prefix = prefix
        self.commands = RedisClient(reactor, address, name="redis commands")
        self.reader = RedisClient(reactor, address, name="redis events")
        self.ready: Deferred[None] = Deferred()
        self._scripts: dict[tuple[str, ...], Script] = {}
        self._handlers: dict[str, Callable[[Event], None]] = {}
        self._batched: set[str] = set()
        self._flushes: list[Callable[[str | None], None]] = []
        self._parts: list[_Part] = []
        self._snapshot: Script | None = None
        self._commands_up: list[Callable[[], None]] = []
        self._last_id: str | None = None
        #: How many events the stream had ever had when this process last
        #: read one (L{None}: Redis before 7 does not say).
        self._seen: int | None = None
        self._reading = False
        self.commands.on_connect.append(self._on_commands_up)
        self.reader.on_connect.append(self._reader_up)

    # What features use

    def key(self, name: str) -> str:
        """
        The full name of one of chatroom's keys.
        """
        return self.prefix + name

    def script(self, *names: str) -> Script:
        """
        Register a script made of these Lua files (see L{Script.load}): it
        is loaded on every connection from now on.
        """
        script = self._scripts.get(names)
        if script is None:
            script = Script.load(*names, prefix=self.prefix, events_cap=self.events_cap)
            self._scripts[names] = script
            self._install()
        return script

    def _install(self) -> None:
        texts = [script.text for script in self._scripts.values()]
        if self._snapshot is not None:
            texts.append(self._snapshot.text)
        self.commands.scripts[:] = texts
        self.reader.scripts[:] = texts

    def call(self, script: Script, *args: Any) -> Deferred[Any]:
        """
        Run a registered script on the commands connection.

        @return: Its reply, or a failure with L{StoreUnavailable}.
        """
        return self.execute("EVALSHA", script.sha, 0, *args)

    def execute(self, *args: Any) -> Deferred[Any]:
        """
        Send one command on the commands connection.

        @return: Its reply, or a failure with L{StoreUnavailable}.
        """
        return self.commands.execute(*args).addErrback(unavailable)

    def on_event(self, kind: str, handler: Callable[[Event], None], batched: bool = False) -> None:
        """
        Have C{handler} called with each event of this kind, in the order
        of the stream.

        @param batched: The handler only collects (see L{on_flush}): an
            event of another kind naming the same room (C{r}) flushes first.
        """
        if kind in self._handlers:
            raise ValueError(f"event kind {kind!r} is taken")
        self._handlers[kind] = handler
        if batched:
            self._batched.add(kind)

    def on_flush(self, flush: Callable[[str | None], None]) -> None:
        """
        Have C{flush} show what batched handlers collected: C{flush(room)}
        before an unbatched event of that room, C{flush(None)} (everything)
        at the end of each read.
        """
        self._flushes.append(flush)

    def on_snapshot(
        self, name: str, args: Callable[[], Sequence[Any]], loaded: Callable[[Any], None]
    ) -> None:
        """
        Add a part to the snapshot: the Lua file C{name}, the body of a
        function of C{ARGV} (given by C{args()} at each read) whose result
        is passed to C{loaded}.  It must return something (a Lua C{nil}
        would end the reply's list there), and it runs after the parts
        registered before it, in the same script.
        """
        self._parts.append(_Part(name, args, loaded))
        head = read_lua("snapshot.lua")
        body = [
            head,
            "local at = 1",
            "local function args()",
            "  local n, part = tonumber(ARGV[at]), {}",
            "  for i = 1, n do part[i] = ARGV[at + i] end",
            "  at = at + n + 1",
            "  return part",
            "end",
        ]
        for part in self._parts:
            body += [
                "reply[#reply + 1] = (function(ARGV)",
                read_lua(part.name),
                "end)(args())",
            ]
        body.append("return reply")
        text = "\n".join(body)
        self._snapshot = Script(
            text.replace("{prefix}", self.prefix).replace("{events_cap}", str(self.events_cap))
        )
        self._install()

    def on_commands_up(self, callback: Callable[[], None]) -> None:
        """
        Have C{callback} called each time the commands connection is
        (again) ready, before anyone is told the store is.
        """
        self._commands_up.append(callback)

    # Running

    def start(self) -> Deferred[None]:
        self.commands.startService()
        self.reader.startService()
        return self.ready

    def stop(self) -> Deferred[None]:
        d = self.reader.stopService()
        d.addBoth(lambda _: self.commands.stopService())
        return d.addBoth(lambda _: None)

    def _on_commands_up(self) -> None:
        for callback in self._commands_up:
            callback()
        self._ready_if_up()

    def _ready_if_up(self) -> None:
        """
        Ready once the snapshot is read and commands can be sent: the two
        connections come up independently, and a server that says it is
        ready must be able to log users in.
        """
        if self._last_id is not None and self.commands.connected and not self.ready.called:
            self.ready.callback(None)

    # The event stream

    def _reader_up(self) -> None:
        if self._reading:
            return
        d = self._catch_up()
        d.addErrback(self._read_failed)

    def _catch_up(self) -> Deferred[None]:
        """
        On a (new) connection: read the snapshot the first time, or when
        the event stream no longer holds everything this process missed
        (trimmed past it, or lost by a Redis that restarted without its
        data); otherwise go on from the last event seen.
        """
        self._reading = True
        if self._last_id is None:
            return self._load()
        d = self.reader.execute("XINFO", "STREAM", self.key("events"))

        def check(reply: list[Any]) -> Deferred[None] | None:
            assert self._last_id is not None
            info = pairs(reply)
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
        assert self._snapshot is not None
        args: list[Any] = []
        for part in self._parts:
            more = part.args()
            args.append(len(more))
            args.extend(more)
        d = self.reader.execute("EVALSHA", self._snapshot.sha, 0, *args)

        def loaded(reply: list[Any]) -> None:
            last_id, added, *parts = reply
            for part, value in zip(self._parts, parts, strict=True):
                part.loaded(value)
            self._last_id = last_id
            self._seen = added if added >= 0 else None
            self._ready_if_up()
            self._read()

        return d.addErrback(unavailable).addCallback(loaded)

    def _read(self) -> None:
        assert self._last_id is not None
        d = self.reader.execute(
            "XREAD",
            "COUNT",
            1000,
            "BLOCK",
            2000,
            "STREAMS",
            self.key("events"),
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
        Hand a batch of events, in order, to the features that own their
        kinds.  Kinds nobody here owns (written by a newer process) are
        passed over.
        """
        handlers = self._handlers
        batched = self._batched
        flushes = self._flushes
        for _, fields in entries:
            entry = pairs(fields)
            kind = entry.get("k", "")
            handler = handlers.get(kind)
            if handler is None:
                continue
            if kind not in batched:
                room = entry.get("r")
                if room is not None:
                    for flush in flushes:
                        flush(room)
            handler(entry)
        for flush in flushes:
            flush(None)
