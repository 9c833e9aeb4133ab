"""
Who is in which room, across processes, and which processes are alive.

Each process records the (room, user) pairs it holds in a hash of its own
and keeps a heartbeat key alive; a script counts each pair across
processes and announces a JOIN (event C{J}) when the first process has it
and a PART (C{P}) when the last one lets go.  Any process that finds
another's heartbeat expired takes that process's pairs away
(C{presence_heartbeat.lua}), so the members of a process that died vanish
within seconds.  The same record counts who is online at all, for
private messages: a field C{@user} (room names have no C{@}), counted in
the hash C{online} without events.
"""

# test-case-name: tests.storage.test_redis_rooms

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from chat.message import format_timestamp
from chat.storage.redis.connection import Event, RedisConnection
from chat.storage.rooms import IRoomEvents

__all__ = ["RedisPresence"]

_LIBRARY = "presence.lua"


class RedisPresence:
    """
    This process's part of the presence records, and its heartbeat.

    @ivar process_id: This process's name in the presence records.
    @ivar events: Told of every JOIN and PART, from any process.
    """

    log = Logger()

    def __init__(
        self, connection: RedisConnection, heartbeat: float = 1.0, presence_ttl: float = 5.0
    ) -> None:
        """
        @param presence_ttl: Seconds after its last heartbeat that a
            process's users are taken out of their rooms.
        """
        self.connection = connection
        self.heartbeat = heartbeat
        self.presence_ttl = presence_ttl
        self.events: IRoomEvents | None = None
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self._move = connection.script(_LIBRARY, "presence_move.lua")
        self._sync = connection.script(_LIBRARY, "presence_sync.lua")
        self._heartbeat = connection.script(_LIBRARY, "presence_heartbeat.lua")
        #: The "Room User" pairs this process holds.
        self._held: dict[str, None] = {}
        self._resync = True
        self._beat = LoopingCall(self._pulse)
        self._beat.clock = connection.reactor
        connection.on_event("J", self._joined)
        connection.on_event("P", self._parted)
        connection.on_commands_up(self._commands_up)

    def start(self) -> None:
        self._beat.start(self.heartbeat, now=False)

    def leave(self) -> Deferred[None]:
        """
        Stop the heartbeat and take every user of this process out of their
        rooms at once, so other processes need not wait for it to expire.
        """
        if self._beat.running:
            self._beat.stop()
        connection = self.connection
        d = connection.call(self._sync, self.process_id, 0, self._now())
        d.addErrback(lambda f: self.log.warn("Could not leave Redis cleanly: {e}", e=f.value))
        return d.addBoth(lambda _: None)

    def entered(self, room: str, user: str, timestamp: str) -> None:
        self._change(f"{room} {user}", 1, timestamp)

    def left(self, room: str, user: str, timestamp: str) -> None:
        self._change(f"{room} {user}", -1, timestamp)

    def online(self, user: str) -> Deferred[None]:
        """
        The first connection of C{user} (lower-case) on this process logged
        in: counted in C{online}, for private messages, until it logs out
        or this process's heartbeat stops.

        @return: A Deferred that fires once Redis counts it (at once when
            the whole record is to be written again at the next heartbeat).
        """
        d = self._change(f"@{user}", 1, "")
        return d.addBoth(lambda _: None) if d is not None else succeed(None)

    def offline(self, user: str) -> None:
        self._change(f"@{user}", -1, "")

    def _joined(self, entry: Event) -> None:
        assert self.events is not None
        self.events.user_joined(entry["r"], entry["u"], entry["t"])

    def _parted(self, entry: Event) -> None:
        assert self.events is not None
        self.events.user_parted(entry["r"], entry["u"], entry["t"])

    def _now(self) -> str:
        return format_timestamp(self.connection.reactor.seconds())

    def _change(self, field: str, delta: int, timestamp: str) -> Deferred[None] | None:
        """
        @return: The Deferred of the script that records the change, or
            L{None} when the next heartbeat writes the whole record.
        """
        if delta > 0:
            self._held[field] = None
        else:
            self._held.pop(field, None)
        if self._resync:
            return None
        d = self.connection.call(self._move, self.process_id, field, delta, timestamp)
        return d.addErrback(self._failed)

    def _failed(self, failure: Failure) -> None:
        # The next heartbeat writes the whole record again.
        self._resync = True

    def _commands_up(self) -> None:
        self._resync = True
        self._pulse()

    def _pulse(self) -> None:
        """
        The heartbeat: stay alive, take away the dead, and write this
        process's presence whole when it may be out of step.
        """
        connection = self.connection
        if not connection.commands.connected:
            return
        ttl = int(self.presence_ttl * 1000)
        now = self._now()
        if self._resync:
            self._resync = False
            d = connection.call(self._sync, self.process_id, ttl, now, *self._held)
            d.addErrback(self._failed)
        d = connection.call(self._heartbeat, self.process_id, ttl, now)

        def beat(reply: list[Any]) -> None:
            lost, dead = reply
            for other in dead:
                self.log.warn(
                    "Process {other} stopped its heartbeat: its users left their rooms",
                    other=other,
                )
            if lost and not self._resync:
                self.log.warn("This process had been given up for dead; recording it again")
                self._resync = True
                self._pulse()

        d.addCallbacks(beat, lambda f: None)
