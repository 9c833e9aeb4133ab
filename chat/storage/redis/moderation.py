"""
Moderation in Redis (L{chat.storage.moderation.IModeration}), shared by
every process pointed at it: C{RedisBackend.moderation}.

An act is one script call (C{moderation_act.lua}), as a message is: it
changes the rules, erases what a C{delete} or a C{drop} names, appends the
audit entry and announces the act (event C{O}), all at once, so that an
outage leaves nothing half-done and every process applies the act from
the event stream, in the stream's order, this one's included.  The rules
are part of the snapshot (C{moderation_snapshot.lua}): read at start, and
again whenever a process may have missed events.

Keys (lower-case names):

    owners           hash: room -> owner, as registered
    ops:<room>       hash: user -> "<n> Name" (n: the order named, from
                     the counter opsn)
    bans:<room>      hash: user -> "<stamp> <by> <Name>[ :<reason>]"
    mutes:<room>     hash: user -> Name
    topics           hash: room -> "<stamp> <by> <text>"
    locks            hash: user -> reason ("" for none)
    moderated        set: the rooms with any rules, for the snapshot
    audit            stream, never trimmed: t a v [r] [g] [m]

The audit entry and the event C{O} have the act's fields: C{t} stamp,
C{a} actor, C{v} action (the verb), C{r} room, C{g} target, C{m} reason;
the last three only when the act has them.

Erasing (a C{delete}, a C{drop}): C{XDEL} only marks a stream entry
deleted; its bytes stay in the stream's node (a listpack of up to
C{stream-node-max-entries} entries) until every entry of that node is
deleted, and C{DUMP}, RDB files and replicas copy nodes whole.  So the
script deletes every entry from that many before the erased one to the
stream's end, which frees each node that held it, lowers the stream's
last ID (C{XSETID}) and adds them back with their own IDs, the erased one
left out, then puts back the stream's last ID and count of entries
added: readers going on from an ID see each entry once.  It does so to
the room's history and to the event stream, whose C{M} event carried the
message (added back without its line).  Cost: O(entries after the
message) in each stream, in one script, during which Redis serves no
one; a C{drop} also reads the whole event stream for the room's C{M}
events.  Then Redis is asked to write its files (append-only file, RDB
snapshot) anew, in the background, since they hold what was written.
"""

# test-case-name: tests.storage.test_moderation, tests.storage.test_redis_moderation

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, FirstError, gatherResults, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chat.message import Message
from chat.resp import RedisError
from chat.storage.moderation import (
    Act,
    Ban,
    IModeration,
    IModerationEvents,
    RoomRules,
    Rules,
    Topic,
)
from chat.storage.redis.connection import Event, RedisConnection, pairs, unavailable

__all__ = ["RedisModeration"]


@dataclass(frozen=True, slots=True)
class _Config:
    """
    Redis's configuration, as erasing needs it.

    @ivar node_max: C{stream-node-max-entries}; 0 when unknown or
        unlimited, which erases whole streams.
    @ivar aof: Whether Redis keeps an append-only file.
    @ivar rdb: Whether Redis saves RDB snapshots.
    """

    node_max: int = 0
    aof: bool = False
    rdb: bool = False


_LIBRARY = ("stamps.lua", "moderation.lua")


def _rules(reply: list[Any]) -> Rules:
    """
    C{moderation_snapshot.lua}'s reply as rules.
    """
    owners, topics, locks, rooms = reply
    rules = Rules(locks=pairs(locks))

    def room(name: str) -> RoomRules:
        found = rules.rooms.get(name)
        if found is None:
            found = rules.rooms[name] = RoomRules()
        return found

    for name, owner in pairs(owners).items():
        room(name).owner = owner
    for name, value in pairs(topics).items():
        stamp, by, text = value.split(" ", 2)
        room(name).topic = Topic(text, stamp, by)
    for name, ops, bans, mutes in rooms:
        rules_ = room(name)
        named = [value.split(" ", 1) for value in pairs(ops).values()]
        for _, user in sorted(named, key=lambda pair: int(pair[0])):
            rules_.operators[user.lower()] = user
        for who, value in pairs(bans).items():
            stamp, by, user, *reason = value.split(" ", 3)
            rules_.bans[who] = Ban(user, stamp, by, reason[0][1:] if reason else None)
        rules_.mutes.update(pairs(mutes))
    for name in [name for name, kept in rules.rooms.items() if kept.empty()]:
        del rules.rooms[name]
    return rules


@implementer(IModeration)
class RedisModeration:
    """
    Rules, erasures and the audit log in Redis.

    @ivar slack: How many milliseconds after its stamp a history entry's
        ID may be (see L{chat.storage.redis.direct.RedisDirect.slack}).
    """

    log = Logger()
    slack = 1000

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self.events: IModerationEvents | None = None
        self._started: Deferred[None] = Deferred()
        #: What Redis's configuration says (L{None}: not read yet on this
        #: connection).
        self._conf: _Config | None = None
        self._waiting: list[Deferred[_Config]] = []
        self._act = connection.script(*_LIBRARY, "moderation_act.lua")
        self._find = connection.script(*_LIBRARY, "moderation_find.lua")
        connection.on_event("O", self._acted)
        connection.on_snapshot("moderation_snapshot.lua", list, self._loaded)
        connection.on_commands_up(self._forget_config)

    def start(self, events: IModerationEvents) -> Deferred[None]:
        """
        Hear acts from now on.  The rules come with the snapshot the
        connection reads when it starts (the backend's C{start} fires after
        it).
        """
        self.events = events
        d: Deferred[None] = Deferred()
        self._started.addCallback(lambda _: d.callback(None))
        return d

    def act(self, act: Act) -> Deferred[None]:
        d = self._config()

        def call(config: _Config) -> Deferred[None]:
            done = self.connection.call(
                self._act,
                act.stamp,
                act.actor,
                act.action,
                act.room or "",
                act.target or "",
                "0" if act.reason is None else "1",
                act.reason or "",
                config.node_max,
                self.slack,
            )
            if act.action in ("delete", "drop"):
                done.addCallback(lambda _: self._rewrite_files(config))
            return done.addCallback(lambda _: None)

        return d.addCallback(call)

    def find(self, room: str, stamp: str) -> Deferred[Message | None]:
        d = self.connection.call(self._find, room.lower(), stamp, self.slack)
        return d.addCallback(lambda reply: Message(*reply) if reply else None)

    def audit(self, count: int) -> Deferred[list[Act]]:
        if count <= 0:
            return succeed([])
        d = self.connection.execute(
            "XREVRANGE", self.connection.key("audit"), "+", "-", "COUNT", count
        )
        return d.addCallback(lambda entries: [_act(pairs(f)) for _, f in reversed(entries)])

    def close(self) -> None:
        pass

    # What CONFIG GET says (scripts cannot ask), read once per connection.

    def _forget_config(self) -> None:
        self._conf = None

    def _config(self) -> Deferred[_Config]:
        """
        The configuration, asked for once however many acts wait for it;
        they are told in the order they asked, so that their scripts are
        sent in that order.
        """
        if self._conf is not None:
            return succeed(self._conf)
        waiting: Deferred[_Config] = Deferred()
        self._waiting.append(waiting)
        if len(self._waiting) == 1:
            self._ask().addBoth(self._answer)
        return waiting

    def _answer(self, result: _Config | Failure) -> None:
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    def _ask(self) -> Deferred[_Config]:
        commands = self.connection.commands

        def get(name: str) -> Deferred[str | None]:
            d = commands.execute("CONFIG", "GET", name)
            d.addCallback(lambda reply: pairs(reply).get(name))

            def refused(failure: Failure) -> None:
                # CONFIG may be renamed away (managed Redis): erase whole
                # streams, slower but as thorough, and leave Redis's files
                # to whoever runs it.
                failure.trap(RedisError)
                self.log.warn(
                    "Cannot read Redis's {name} ({why})", name=name, why=failure.getErrorMessage()
                )

            return d.addErrback(refused)

        asked = [get(name) for name in ("stream-node-max-entries", "appendonly", "save")]
        d = gatherResults(asked, consumeErrors=True)
        d.addErrback(_first)

        def read(values: list[str | None]) -> _Config:
            node_max, appendonly, save = values
            self._conf = _Config(int(node_max or 0), appendonly == "yes", bool(save))
            return self._conf

        return d.addCallbacks(read, unavailable)

    def _rewrite_files(self, config: _Config) -> Deferred[None]:
        """
        After an erasure: have Redis write its files anew from what it
        holds, so that the append-only file (which has every command that
        wrote the text) and the last RDB snapshot no longer hold it.  Redis
        does it in the background, after the act is answered; a failure is
        logged, the act being done.
        """
        asked = []
        if config.aof:
            asked.append(self.connection.commands.execute("BGREWRITEAOF"))
        if config.rdb:
            asked.append(self.connection.commands.execute("BGSAVE", "SCHEDULE"))

        def failed(failure: Failure) -> None:
            self.log.warn(
                "Redis did not rewrite its files after an erasure ({why}): they may "
                "hold the erased text until it next does",
                why=failure.getErrorMessage(),
            )

        for d in asked:
            d.addErrback(failed)
        return gatherResults(asked).addCallback(lambda _: None)

    # The event stream

    def _loaded(self, reply: list[Any]) -> None:
        if self.events is not None:
            self.events.rules_loaded(_rules(reply))
        if not self._started.called:
            self._started.callback(None)

    def _acted(self, entry: Event) -> None:
        if self.events is not None:
            self.events.acted(_act(entry))


def _first(failure: Failure) -> Failure:
    """
    The failure of the first of L{gatherResults}'s Deferreds to fail.
    """
    failure.trap(FirstError)
    assert isinstance(failure.value, FirstError)
    return failure.value.subFailure


def _act(fields: dict[str, str]) -> Act:
    """
    An audit entry or C{O} event as an act.
    """
    return Act(
        fields["t"], fields["a"], fields["v"], fields.get("r"), fields.get("g"), fields.get("m")
    )
