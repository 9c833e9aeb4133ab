"""
L{chat.storage.redis.RedisBackend} on the test reactor against a real Redis:
several backends in one test stand for several processes, with a short
heartbeat so that dying and coming back take a fraction of a second.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from chat.resp import RedisProtocol, parse_redis_url
from chat.storage.redis import RedisBackend
from chat.storage.rooms import IChatBackend, IRoomEvents
from tests.storage.backends import STAMP, Recorder, RedisStores


async def process(stores: RedisStores, **options: Any) -> tuple[RedisBackend, Recorder]:
    """
    One more process on the Redis: its backend, and what that told it.
    """
    backend, heard, _ = await stores.start(**options)
    assert isinstance(backend, RedisBackend)
    return backend, heard


def crash(backend: RedisBackend) -> None:
    """
    Stop a backend the way a killed process stops: no goodbye.
    """
    backend.presence._beat.stop()
    backend.commands.stopService()
    backend.reader.stopService()


@pytest_twisted.ensureDeferred
async def test_interface(redis_stores: RedisStores) -> None:
    backend, _ = await process(redis_stores)
    assert verifyObject(IChatBackend, backend)
    assert verifyObject(IRoomEvents, Recorder())


@pytest_twisted.ensureDeferred
async def test_a_user_is_counted_once_whatever_the_processes(redis_stores: RedisStores) -> None:
    (one, heard_one), (two, heard_two) = await process(redis_stores), await process(redis_stores)
    one.entered("general", "alice", STAMP)
    assert await heard_one.next() == ("join", "general", "alice")
    assert await heard_two.next() == ("join", "general", "alice")
    two.entered("general", "alice", STAMP)
    # Pipelined behind it: once this answers, Redis has two's count too.
    await two.commands.execute("PING")
    one.left("general", "alice", STAMP)
    # Neither of those was news; the next event is.
    one.entered("general", "bob", STAMP)
    assert await heard_two.next() == ("join", "general", "bob")
    two.left("general", "alice", STAMP)
    assert await heard_two.next() == ("part", "general", "alice")
    assert await heard_one.next() == ("join", "general", "bob")
    assert await heard_one.next() == ("part", "general", "alice")


@pytest_twisted.ensureDeferred
async def test_a_dead_process_loses_its_users(redis_stores: RedisStores) -> None:
    (_, heard), (two, _) = await process(redis_stores), await process(redis_stores)
    two.entered("general", "carol", STAMP)
    assert await heard.next() == ("join", "general", "carol")
    crash(two)
    assert await heard.next() == ("part", "general", "carol")


@pytest_twisted.ensureDeferred
async def test_a_process_given_up_for_dead_comes_back(redis_stores: RedisStores) -> None:
    (_, heard), (two, _) = await process(redis_stores), await process(redis_stores)
    two.entered("general", "carol", STAMP)
    assert await heard.next() == ("join", "general", "carol")
    # Cut off (stopped, or too slow) for longer than its heartbeat lasts...
    two.presence._beat.stop()
    assert await heard.next() == ("part", "general", "carol")
    # ...and back: it finds out and records its users again.
    two.presence._beat.start(0.1)
    assert await heard.next() == ("join", "general", "carol")


@pytest_twisted.ensureDeferred
async def test_a_new_process_reads_rooms_history_and_presence(redis_stores: RedisStores) -> None:
    one, heard = await process(redis_stores)
    await one.create_room("Lounge")
    one.entered("Lounge", "alice", STAMP)
    await one.publish("Lounge", [(STAMP, "alice", f"line {i}") for i in range(12)])
    while (await heard.next())[0] != "msg":
        pass
    _, fresh = await process(redis_stores)
    texts, users = fresh.loaded["Lounge"]
    assert texts == [f"line {i}" for i in range(2, 12)]
    assert users == ["alice"]
    assert fresh.loaded["general"] == ([], [])


@pytest_twisted.ensureDeferred
async def test_events_missed_while_cut_off_are_caught_up(redis_stores: RedisStores) -> None:
    (one, _), (two, heard) = await process(redis_stores), await process(redis_stores)
    await two.reader.stopService()
    await one.publish("general", [(STAMP, "alice", "while you were out")])
    two.reader.startService()
    assert await heard.next() == ("msg", "general", "alice", "while you were out")


@pytest_twisted.ensureDeferred
async def test_events_gone_from_the_stream_mean_reading_the_rooms_again(
    redis_stores: RedisStores,
) -> None:
    (one, _), (two, heard) = await process(redis_stores), await process(redis_stores)
    await two.reader.stopService()
    await one.publish("general", [(STAMP, "alice", "missed")])
    await one.commands.execute("XTRIM", "chatroom:events", "MAXLEN", 0)
    two.reader.startService()
    # The events stream no longer has what two missed: it reads the rooms
    # whole, history included, then goes on from there.
    assert await heard.next() == ("loaded", "general")
    assert heard.loaded["general"] == (["missed"], [])
    await one.publish("general", [(STAMP, "alice", "next")])
    assert await heard.next() == ("msg", "general", "alice", "next")


class ReadyTests(SynchronousTestCase):
    """
    When a backend says it is ready, driven by hand on a clock.
    """

    def test_ready_waits_for_the_commands_connection_too(self) -> None:
        backend = RedisBackend(MemoryReactorClock(), parse_redis_url("redis://127.0.0.1/0"))
        recorder = Recorder()
        backend.events = recorder
        ready = backend.connection.ready
        # The events connection comes up first and loads the rooms...
        reader = StringTransport()
        RedisProtocol(backend.reader).makeConnection(reader)
        protocol = backend.reader._protocol
        assert protocol is not None
        # (the fourteen scripts loaded, then the snapshot: no events, the
        # rooms' part: one room, no history, nobody present; and the rules'
        # part: none)
        self.assertEqual(len(backend.reader.scripts), 14)
        protocol.dataReceived(b"+sha\r\n" * 14)
        protocol.dataReceived(
            b"*4\r\n$3\r\n0-0\r\n:0\r\n*3\r\n*1\r\n$7\r\ngeneral\r\n*1\r\n*0\r\n*0\r\n"
            b"*4\r\n*0\r\n*0\r\n*0\r\n*0\r\n"
        )
        self.assertIn("general", recorder.loaded)
        # ...but nothing can be stored or logged in to yet.
        self.assertNoResult(ready)
        RedisProtocol(backend.commands).makeConnection(StringTransport())
        self.successResultOf(ready)
