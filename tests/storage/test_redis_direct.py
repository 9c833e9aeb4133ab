"""
What only L{chat.storage.redis.direct} has: private messages across
several processes on one Redis, online counts that die with a process,
stamps made unique by Redis whichever process made them, and the Lua
calendar behind those stamps.
"""

from __future__ import annotations

import calendar
import time
from datetime import date, timedelta
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import capturedLogs

from chat.message import Message, next_timestamp
from chat.storage.common import StoreUnavailable
from chat.storage.direct import DirectMessage, Unread
from chat.storage.redis.connection import pairs
from chat.storage.redis.scripts import read_lua
from tests.storage.backends import STAMP, Recorder, RedisStores, within
from tests.storage.test_redis_rooms import crash, process

#: How many messages of a room's history were stored before stamped IDs.
OLD = 150


def later(stamp: str, ms: int) -> str:
    for _ in range(ms):
        stamp = next_timestamp(stamp)
    return stamp


async def call(backend: Any, *args: Any) -> Any:
    return await within(backend.commands.execute(*args))


async def dm(heard: Recorder) -> tuple[DirectMessage, bool]:
    """
    The next private message a process heard, skipping anything else.
    """
    while True:
        event = await heard.next()
        if event[0] == "dm":
            return event[1], event[2]


@pytest_twisted.ensureDeferred
async def test_a_message_reaches_the_process_the_recipient_is_on(
    redis_stores: RedisStores,
) -> None:
    (a, heard_a), (b, heard_b) = await process(redis_stores), await process(redis_stores)
    b.direct.online("bob")
    # Pipelined behind it: once this answers, Redis counts bob online.
    await call(b, "PING")
    await within(a.direct.send("alice", "bob", STAMP, "hi bob"))
    sent = DirectMessage(STAMP, "alice", "bob", "hi bob")
    # Every process hears it: A shows alice's copy, B shows bob his.
    assert await dm(heard_b) == (sent, True)
    assert await dm(heard_a) == (sent, True)
    assert await within(b.direct.take_unread("bob")) == Unread([], 0)


@pytest_twisted.ensureDeferred
async def test_offline_on_every_process_means_the_inbox_read_on_another(
    redis_stores: RedisStores,
) -> None:
    (a, heard_a), (b, heard_b) = await process(redis_stores), await process(redis_stores)
    b.direct.online("bob")
    b.direct.offline("bob")
    await call(b, "PING")
    await within(a.direct.send("alice", "bob", STAMP, "while you were out"))
    sent = DirectMessage(STAMP, "alice", "bob", "while you were out")
    assert await dm(heard_a) == (sent, False)
    assert await dm(heard_b) == (sent, False)
    # Bob logs in on a third process.
    c, _ = await process(redis_stores)
    c.direct.online("bob")
    assert await within(c.direct.take_unread("bob")) == Unread([sent], 0)
    await within(a.direct.send("alice", "bob", STAMP, "now you are here"))
    assert (await dm(heard_b))[1] is True


@pytest_twisted.ensureDeferred
async def test_online_on_two_processes_counts_until_both_log_out(
    redis_stores: RedisStores,
) -> None:
    (a, heard), (b, _) = await process(redis_stores), await process(redis_stores)
    a.direct.online("Bob")
    b.direct.online("bob")
    await call(b, "PING")
    a.direct.offline("Bob")
    await within(a.direct.send("alice", "bob", STAMP, "one"))
    assert (await dm(heard))[1] is True
    b.direct.offline("bob")
    await call(b, "PING")
    await within(a.direct.send("alice", "bob", STAMP, "two"))
    assert (await dm(heard))[1] is False


@pytest_twisted.ensureDeferred
async def test_a_dead_process_takes_its_users_offline(redis_stores: RedisStores) -> None:
    (a, heard), (b, _) = await process(redis_stores), await process(redis_stores)
    b.direct.online("bob")
    # In a room too, so that its PART tells when B was given up for dead.
    b.entered("general", "bob", STAMP)
    assert await heard.next() == ("join", "general", "bob")
    await within(a.direct.send("alice", "bob", STAMP, "before"))
    assert (await dm(heard))[1] is True
    crash(b)
    assert await heard.next() == ("part", "general", "bob")
    assert await call(a, "HGETALL", "chatroom:online") == []
    await within(a.direct.send("alice", "bob", STAMP, "after"))
    assert (await dm(heard))[1] is False
    unread = await within(a.direct.take_unread("bob"))
    assert [m.text for m in unread.messages] == ["after"]


@pytest_twisted.ensureDeferred
async def test_a_process_given_up_for_dead_puts_its_users_online_again(
    redis_stores: RedisStores,
) -> None:
    (a, heard), (b, _) = await process(redis_stores), await process(redis_stores)
    b.direct.online("bob")
    b.entered("general", "bob", STAMP)
    assert await heard.next() == ("join", "general", "bob")
    b.presence._beat.stop()
    assert await heard.next() == ("part", "general", "bob")
    b.presence._beat.start(0.1)
    assert await heard.next() == ("join", "general", "bob")
    assert pairs(await call(a, "HGETALL", "chatroom:online")) == {"bob": "1"}


@pytest_twisted.ensureDeferred
async def test_two_processes_stamping_one_millisecond_get_distinct_stamps(
    redis_stores: RedisStores,
) -> None:
    (a, heard_a), (b, heard_b) = await process(redis_stores), await process(redis_stores)
    first = a.publish("general", [Message(STAMP, "alice", "from a")])
    second = b.publish("general", [Message(STAMP, "bob", "from b")])
    await within(first)
    await within(second)
    for heard in (heard_a, heard_b):
        for _ in range(2):
            await heard.next()
    # Whichever reached Redis first has the stamp, the other the next.
    assert heard_a.messages == heard_b.messages
    assert sorted(m.text for m in heard_a.messages) == ["from a", "from b"]
    assert [m.timestamp for m in heard_a.messages] == [STAMP, next_timestamp(STAMP)]
    # The stream IDs are the stamps' milliseconds, so paging can seek.
    millis = calendar.timegm((2026, 12, 2, 10, 0, 0)) * 1000
    entries = await call(a, "XRANGE", "chatroom:history:general", "-", "+")
    assert [entry_id for entry_id, _ in entries] == [f"{millis}-0", f"{millis + 1}-0"]
    # And the room's last stamp is kept where it is quick to read, with
    # the milliseconds its second began at.
    assert pairs(await call(a, "HGETALL", "chatroom:stamps")) == {
        "general": f"{next_timestamp(STAMP)} {millis}"
    }


@pytest_twisted.ensureDeferred
async def test_history_written_before_stamped_ids_is_paged_too(
    redis_stores: RedisStores,
) -> None:
    backend, heard = await process(redis_stores)
    # As stored before: IDs from Redis's clock, a little after the stamps
    # (here 0 to 4 ms), so that some stamped before a page's first stamp
    # were added after its millisecond.  More than are read at once.
    millis = calendar.timegm((2026, 12, 2, 10, 0, 0)) * 1000
    stamps = [later(STAMP, 2 * i) for i in range(OLD)]
    for i, stamp in enumerate(stamps):
        entry_id = f"{millis + 2 * i + (0, 1, 2, 3, 4, 3, 2, 1)[i % 8]}-0"
        await call(
            backend, "XADD", "chatroom:history:general", entry_id, "t", stamp, "u", "old", "m", i
        )
    # Proposed stamps from before the old history's last: stamped after it,
    # with IDs after the old ones'.
    for first in (OLD, OLD + 10):
        batch = [Message(STAMP, "new", f"{i}") for i in range(first, first + 10)]
        await within(backend.publish("general", batch))
    for _ in range(20):
        await heard.next()
    stamps += [m.timestamp for m in heard.messages]
    assert stamps == sorted(set(stamps))
    assert stamps[OLD] == next_timestamp(stamps[OLD - 1])
    for size in (1, 7, 200):
        read: list[Message] = []
        before = None
        while page := await within(backend.direct.room_history("general", before, size)):
            read[:0] = page
            before = page[0].timestamp
        assert [m.text for m in read] == [f"{i}" for i in range(OLD + 20)]
    for cut in range(OLD + 20):
        page = await within(backend.direct.room_history("general", stamps[cut], 3))
        assert [m.timestamp for m in page] == stamps[max(0, cut - 3) : cut], cut
        # Between two stamps, too.
        page = await within(backend.direct.room_history("general", next_timestamp(stamps[cut]), 3))
        assert [m.timestamp for m in page] == stamps[max(0, cut - 2) : cut + 1], cut


@pytest_twisted.ensureDeferred
async def test_keys_are_laid_out_as_documented(redis_stores: RedisStores) -> None:
    backend, heard = await process(redis_stores)
    direct = backend.direct
    direct.online("Carol")
    await within(direct.send("Alice", "Bob", STAMP, "hi"))
    await within(direct.send("Alice", "Carol", STAMP, "hey"))
    await within(direct.ignore("Dave", "Alice", 10))
    await within(direct.send("Alice", "Dave", STAMP, "ignored"))
    millis = calendar.timegm((2026, 12, 2, 10, 0, 0)) * 1000
    fields = ["t", STAMP, "u", "Alice", "m", "hi"]
    for key in ("dm:alice:bob", "dm:bob:alice"):
        assert await call(backend, "XRANGE", f"chatroom:{key}", "-", "+") == [
            [f"{millis}-0", fields]
        ]
    assert await call(backend, "ZRANGE", "chatroom:dms:alice", 0, -1) == ["bob", "carol", "dave"]
    assert await call(backend, "ZRANGE", "chatroom:dms:bob", 0, -1, "WITHSCORES") == [
        "alice",
        str(millis),
    ]
    ((_, inbox),) = await call(backend, "XRANGE", "chatroom:inbox:bob", "-", "+")
    assert inbox == ["t", STAMP, "u", "Alice", "p", "Bob", "m", "hi"]
    assert await call(backend, "EXISTS", "chatroom:inbox:carol", "chatroom:dm:dave:alice") == 0
    assert await call(backend, "SMEMBERS", "chatroom:ignores:dave") == ["alice"]
    assert pairs(await call(backend, "HGETALL", "chatroom:online")) == {"carol": "1"}
    assert pairs(await call(backend, "HGETALL", f"chatroom:proc:{backend.process_id}")) == {
        "@carol": "1"
    }
    events = [fields for _, fields in await call(backend, "XRANGE", "chatroom:events", "-", "+")]
    assert events[0] == ["k", "D", "u", "Alice", "p", "Bob", "t", STAMP, "m", "hi", "x", "0"]
    assert [event[-1] for event in events] == ["0", "1", "0"]
    # Nothing for presence's JOIN and PART: online is not in a room.
    assert await call(backend, "HGETALL", "chatroom:present") == []
    for _ in range(3):
        await dm(heard)


def _stamps_to_check() -> list[str]:
    """
    Stamps whose next millisecond carries: the ends of minutes, hours,
    days, months (28 and 29 February in leap and other years, centuries
    included) and years, and a few that do not carry.
    """
    stamps = [
        "2026-12-02T10:00:00.000Z",
        "2026-12-02T10:00:00.998Z",
        "2026-12-02T10:00:59.999Z",
        "2026-12-02T10:59:59.999Z",
        "2026-12-02T23:59:59.999Z",
        "1970-01-01T00:00:00.999Z",
        "1969-12-31T23:59:59.999Z",
    ]
    day = date(1896, 1, 1)
    while day.year < 2404:
        following = day + timedelta(days=1)
        if following.day == 1 or (day.month == 2 and day.day >= 27):
            stamps.append(f"{day.isoformat()}T23:59:59.999Z")
            stamps.append(f"{day.isoformat()}T23:59:58.999Z")
        day = following
    return stamps


@pytest_twisted.ensureDeferred
async def test_the_lua_calendar_agrees_with_next_timestamp(redis_stores: RedisStores) -> None:
    backend, _ = await process(redis_stores)
    script = "\n".join(
        [
            read_lua("stamps.lua"),
            "local reply = {}",
            "for i, stamp in ipairs(ARGV) do",
            "  local ms = stamp_ms(stamp)",
            "  reply[i] = {next_stamp(stamp), string.format('%d', ms), ms_stamp(ms)}",
            "end",
            "return reply",
        ]
    )
    stamps = _stamps_to_check()
    assert len(stamps) > 10_000
    for start in range(0, len(stamps), 2000):
        chunk = stamps[start : start + 2000]
        reply = await call(backend, "EVAL", script, 0, *chunk)
        for stamp, (following, millis, again) in zip(chunk, reply, strict=True):
            assert following == next_timestamp(stamp), stamp
            assert again == stamp
            whole = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
            assert int(millis) == whole * 1000 + int(stamp[20:23]), stamp


@pytest_twisted.ensureDeferred
async def test_every_call_fails_as_unavailable_without_redis(redis_stores: RedisStores) -> None:
    backend, heard = await process(redis_stores)
    direct = backend.direct
    redis_stores.break_()
    calls = [
        lambda: direct.send("alice", "bob", STAMP, "lost"),
        lambda: direct.take_unread("bob"),
        lambda: direct.conversations("bob"),
        lambda: direct.history("bob", "alice", None, 10),
        lambda: direct.room_history("general", STAMP, 10),
        lambda: direct.ignore("bob", "alice", 10),
        lambda: direct.unignore("bob", "alice"),
        lambda: direct.ignored("bob"),
    ]
    with capturedLogs():
        for make in calls:
            with pytest.raises(StoreUnavailable):
                await within(make())
    assert heard.pending() == []
