"""
What only L{chat.storage.redis.moderation} has: acts heard by every
process on one Redis, rules read again after a gap in the event stream,
an audit stream that is never trimmed, and deleted text erased from every
key Redis holds, not only hidden.
"""

from __future__ import annotations

import calendar
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import capturedLogs
from zope.interface.verify import verifyObject

from chat.message import Message, next_timestamp
from chat.resp import parse_redis_url
from chat.storage.moderation import Act, Ban, IModeration, IModerationEvents, Rules
from chat.storage.redis import RedisBackend
from chat.storage.redis.connection import pairs
from tests.storage.backends import STAMP, Recorder, RedisStores, within


class Heard(Recorder):
    """
    A server's ear that also tells when the rules are read again (not at
    start), as C{("rules",)}, and keeps every reading in C{loads}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[Rules] = []

    def rules_loaded(self, rules: Rules) -> None:
        super().rules_loaded(rules)
        self.loads.append(rules)
        if self.started:
            self.events.put(("rules",))


async def process(stores: RedisStores, **options: Any) -> tuple[RedisBackend, Heard]:
    """
    One more process on the Redis, its server hearing acts.
    """
    backend = RedisBackend(
        reactor, parse_redis_url(stores.redis.url), heartbeat=0.1, presence_ttl=0.5, **options
    )
    heard = Heard()
    await within(backend.start(heard))
    heard.started = True
    stores.backends.append(backend)
    return backend, heard


async def next_act(heard: Heard) -> Act:
    while True:
        event = await heard.next()
        if event[0] == "act":
            act = event[1]
            assert isinstance(act, Act)
            return act


async def call(backend: RedisBackend, *args: Any) -> Any:
    return await within(backend.commands.execute(*args))


async def dumps(backend: RedisBackend) -> dict[str, str]:
    """
    Every key of chatroom's as C{DUMP} serializes it (what RDB files and
    replicas get), decoded leniently: text stored in it reads as itself.
    """
    keys: list[str] = []
    cursor = "0"
    while True:
        cursor, found = await call(backend, "SCAN", cursor, "MATCH", "chatroom:*", "COUNT", 1000)
        keys += found
        if cursor == "0":
            break
    return {key: await call(backend, "DUMP", key) for key in keys}


async def holding(backend: RedisBackend, text: str) -> list[str]:
    """
    The keys whose serialized form holds this text.
    """
    return sorted(key for key, dump in (await dumps(backend)).items() if text in dump)


def stamp(n: int) -> str:
    at = STAMP
    for _ in range(n):
        at = next_timestamp(at)
    return at


def act(action: str, n: int, room: str | None = "Lounge", **fields: Any) -> Act:
    return Act(stamp(n), fields.pop("actor", "alice"), action, room, **fields)


@pytest_twisted.ensureDeferred
async def test_interface(redis_stores: RedisStores) -> None:
    backend, _ = await process(redis_stores)
    assert verifyObject(IModeration, backend.moderation)
    assert verifyObject(IModerationEvents, Heard())


@pytest_twisted.ensureDeferred
async def test_every_process_hears_an_act_once_it_is_stored(redis_stores: RedisStores) -> None:
    (a, heard_a), (b, heard_b) = await process(redis_stores), await process(redis_stores)
    kick = act("kick", 1, target="Mallory", reason="spam")
    await within(a.moderation.act(kick))
    assert await next_act(heard_a) == kick
    assert await next_act(heard_b) == kick
    # The audit stream and the event have the act's fields, and only those
    # it has.
    [(_, fields)] = await call(a, "XRANGE", "chatroom:audit", "-", "+")
    assert pairs(fields) == {
        "t": kick.stamp,
        "a": "alice",
        "v": "kick",
        "r": "Lounge",
        "g": "Mallory",
        "m": "spam",
    }
    wall = Act(stamp(2), "root", "wall", reason="maintenance at noon")
    await within(b.moderation.act(wall))
    assert await next_act(heard_a) == wall
    assert await within(a.moderation.audit(10)) == [kick, wall]


@pytest_twisted.ensureDeferred
async def test_the_rules_are_read_whole_by_a_new_process(redis_stores: RedisStores) -> None:
    backend, heard = await process(redis_stores)
    acts = [
        act("own", 0, target="Alice"),
        act("op", 1, target="Zed"),
        act("op", 2, target="Bob"),
        act("op", 3, target="carol"),
        act("deop", 4, target="Zed"),
        act("op", 5, target="zed"),
        # A repeat keeps its place.
        act("op", 6, target="BOB"),
        act("ban", 7, target="Mallory", reason="spam: and more"),
        act("ban", 8, actor="Bob", target="Eve"),
        act("ban", 9, target="Trudy", reason=""),
        act("unban", 10, target="eve"),
        act("mute", 11, target="Oscar"),
        act("mute", 12, target="Peggy"),
        act("unmute", 13, target="peggy"),
        act("topic", 14, reason="Welcome: be kind"),
        act("topic", 15, room="general", reason="first"),
        act("topic", 16, room="general", reason=""),
        act("op", 17, room="Other", target="Bob"),
        act("deop", 18, room="Other", target="bob"),
        Act(stamp(19), "root", "lock", None, "Mallory", "spam"),
        Act(stamp(20), "root", "lock", None, "Eve"),
        Act(stamp(21), "root", "lock", None, "Trudy"),
        Act(stamp(22), "root", "unlock", None, "trudy"),
    ]
    expected = Rules()
    for each in acts:
        await within(backend.moderation.act(each))
        expected.apply(each)
    for each in acts:
        assert await next_act(heard) == each
    _, fresh = await process(redis_stores)
    [rules] = fresh.loads
    assert rules == expected
    lounge = rules.rooms["lounge"]
    assert list(lounge.operators.values()) == ["BOB", "carol", "zed"]
    assert lounge.bans["mallory"] == Ban("Mallory", stamp(7), "alice", "spam: and more")
    assert lounge.bans["trudy"].reason == ""
    assert set(rules.rooms) == {"lounge"}
    assert rules.locks == {"mallory": "spam", "eve": ""}
    # Owning is not audited.
    audited = await within(backend.moderation.audit(500))
    assert audited == [each for each in acts if each.action != "own"]
    assert await within(backend.moderation.audit(2)) == acts[-2:]


@pytest_twisted.ensureDeferred
async def test_a_process_that_missed_acts_reads_the_rules_again(
    redis_stores: RedisStores,
) -> None:
    (a, _), (b, heard) = await process(redis_stores), await process(redis_stores)
    await within(b.reader.stopService())
    ban = act("ban", 1, target="Mallory")
    await within(a.moderation.act(ban))
    await call(a, "XTRIM", "chatroom:events", "MAXLEN", 0)
    b.reader.startService()
    while (await heard.next()) != ("rules",):
        pass
    assert heard.loads[-1].rooms["lounge"].bans == {"mallory": Ban("Mallory", stamp(1), "alice")}
    # And hears acts again from there.
    unban = act("unban", 2, target="Mallory")
    await within(a.moderation.act(unban))
    assert await next_act(heard) == unban


@pytest_twisted.ensureDeferred
async def test_the_audit_stream_is_never_trimmed(redis_stores: RedisStores) -> None:
    backend, _ = await process(redis_stores, events_cap=10)
    acts = [act("kick", i, target="Mallory", reason=f"{i}") for i in range(300)]
    for each in acts:
        await within(backend.moderation.act(each))
    assert await call(backend, "XLEN", "chatroom:audit") == 300
    assert await call(backend, "XLEN", "chatroom:events") < 300
    assert await within(backend.moderation.audit(500)) == acts
    assert await within(backend.moderation.audit(0)) == []


async def say(backend: RedisBackend, heard: Heard, room: str, *batches: list[str]) -> list[Message]:
    """
    Publish batches of messages (one M event each) and wait until they are
    heard: the messages, as stamped.
    """
    start = len(heard.messages)
    total = 0
    for batch in batches:
        await within(backend.publish(room, [Message(STAMP, "mallory", text) for text in batch]))
        total += len(batch)
    while len(heard.messages) < start + total:
        await heard.next()
    return heard.messages[start:]


async def uncompressed(backend: RedisBackend, *options: tuple[str, Any]) -> None:
    """
    Have Redis dump keys uncompressed, so that stored text shows as itself,
    and set other options (before the first act, which reads them).
    """
    for option, value in (("rdbcompression", "no"), *options):
        await call(backend, "CONFIG", "SET", option, value)


@pytest.mark.parametrize("node_size", [100, 7, 0])
@pytest_twisted.ensureDeferred
async def test_a_deleted_message_is_erased_from_every_key(
    redis_stores: RedisStores, node_size: int
) -> None:
    (a, heard_a), (b, heard_b) = await process(redis_stores), await process(redis_stores)
    await uncompressed(a, ("stream-node-max-entries", node_size))
    await within(a.create_room("Lounge"))
    # More than a stream node's worth either side; the secret alone in
    # its event, the other amid its batch.
    before = [[f"before {i}" for i in range(j, j + 30)] for j in range(0, 150, 30)]
    after = [[f"after {i}" for i in range(j, j + 30)] for j in range(0, 150, 30)]
    said = await say(
        a,
        heard_a,
        "Lounge",
        *before,
        ["secret alone 7f3a"],
        ["buried 1", "secret amid c9e1", "buried 2"],
        *after,
    )
    while len(heard_b.messages) < len(said):
        await heard_b.next()
    assert heard_b.messages == said
    while heard_b.pending():
        await heard_b.next()
    alone, amid = said[150], said[152]
    assert await holding(a, "secret alone 7f3a") == ["chatroom:events", "chatroom:history:lounge"]
    assert await within(a.moderation.find("lounge", alone.timestamp)) == alone
    for message in (alone, amid):
        delete = Act(stamp(1000), "bob", "delete", "Lounge", "mallory", message.timestamp)
        await within(a.moderation.act(delete))
        assert await next_act(heard_a) == delete
        # The other process hears the act, and none of the events added
        # back again.
        assert await heard_b.next() == ("act", delete)
        assert await within(a.moderation.find("Lounge", message.timestamp)) is None
    for text in ("secret", "7f3a", "c9e1"):
        assert await holding(a, text) == []
    kept = [m for m in said if m not in (alone, amid)]
    assert await within(a.direct.room_history("Lounge", None, 1000)) == kept
    # Every other entry kept its ID (its stamp's milliseconds).
    entries = await call(a, "XRANGE", "chatroom:history:lounge", "-", "+")
    assert [pairs(fields)["t"] for _, fields in entries] == [m.timestamp for m in kept]
    # The event that carried the secret amid others carries the others.
    events = await call(a, "XRANGE", "chatroom:events", "-", "+")
    batches = [pairs(fields)["d"] for _, fields in events if pairs(fields)["k"] == "M"]
    assert len(batches) == 11
    assert [line.split(" ", 2)[2] for line in batches[5].split("\n")] == ["buried 1", "buried 2"]
    # Both go on hearing what comes next, once.
    await within(b.publish("Lounge", [Message(STAMP, "bob", "next")]))
    for heard in (heard_a, heard_b):
        assert await heard.next() == ("msg", "Lounge", "bob", "next")
        assert heard.pending() == []
    # A process that was cut off hears what it missed, once.
    await within(b.reader.stopService())
    await within(a.publish("Lounge", [Message(STAMP, "mallory", "missed secret 51bd")]))
    while heard_a.messages[-1].text != "missed secret 51bd":
        await heard_a.next()
    missed = heard_a.messages[-1]
    delete = Act(stamp(1001), "bob", "delete", "Lounge", "mallory", missed.timestamp)
    await within(a.moderation.act(delete))
    await within(a.publish("Lounge", [Message(STAMP, "mallory", "last")]))
    b.reader.startService()
    assert await heard_b.next() == ("act", delete)
    assert await heard_b.next() == ("msg", "Lounge", "mallory", "last")
    assert await holding(a, "51bd") == []


@pytest_twisted.ensureDeferred
async def test_a_dropped_room_is_erased_and_its_name_free(redis_stores: RedisStores) -> None:
    (a, heard_a), (b, heard_b) = await process(redis_stores), await process(redis_stores)
    await uncompressed(a)
    await within(a.create_room("Lounge"))
    await within(a.moderation.act(act("own", 0, target="alice")))
    await within(a.moderation.act(act("ban", 1, target="Mallory")))
    await within(a.moderation.act(act("topic", 2, reason="lounging")))
    await say(
        a,
        heard_a,
        "Lounge",
        *[[f"lounge secret {i}"] for i in range(120)],
    )
    await say(a, heard_a, "general", ["in general"])
    drop = Act(stamp(3), "root", "drop", "Lounge", None, "closed")
    await within(a.moderation.act(drop))
    while (await next_act(heard_b)) != drop:
        pass
    assert await holding(a, "lounge secret") == []
    assert await holding(a, "in general") == ["chatroom:events", "chatroom:history:general"]
    assert await call(a, "HGET", "chatroom:rooms", "lounge") is None
    assert await call(a, "EXISTS", "chatroom:bans:lounge", "chatroom:history:lounge") == 0
    assert await call(a, "HGET", "chatroom:topics", "lounge") is None
    _, fresh = await process(redis_stores)
    assert "Lounge" not in fresh.loaded
    assert fresh.loads == [Rules()]
    # The name is free: a new room of that name starts afresh.
    await within(b.create_room("lounge"))
    assert await within(b.direct.room_history("lounge", None, 10)) == []
    assert (await within(a.moderation.audit(1))) == [drop]


async def files_written(backend: RedisBackend) -> None:
    """
    Wait until Redis has no rewrite of its append-only file under way or
    scheduled (the test's Redis keeps one, fsynced always).
    """
    while True:
        info = await call(backend, "INFO", "persistence")
        if "aof_rewrite_in_progress:0" in info and "aof_rewrite_scheduled:0" in info:
            return
        await deferLater(reactor, 0.01)  # type: ignore[arg-type]


def on_disk(directory: Path, text: str) -> list[str]:
    return sorted(
        path.name
        for path in directory.rglob("*")
        if path.is_file() and text.encode() in path.read_bytes()
    )


@pytest_twisted.ensureDeferred
async def test_redis_writes_its_files_anew_after_an_erasure(redis_stores: RedisStores) -> None:
    backend, heard = await process(redis_stores)
    directory = redis_stores.redis.directory
    [secret, _] = await say(backend, heard, "general", ["secret 4e2b"], ["kept d81c"])
    await files_written(backend)
    assert on_disk(directory, "4e2b") != []
    delete = Act(stamp(5), "bob", "delete", "general", "mallory", secret.timestamp)
    await within(backend.moderation.act(delete))
    # The act was answered once Redis had started (or scheduled) it.
    await files_written(backend)
    # Redis unlinks the files it replaced in a thread of its own.
    for _ in range(100):
        if not on_disk(directory, "4e2b"):
            break
        await deferLater(reactor, 0.01)  # type: ignore[arg-type]
    assert on_disk(directory, "4e2b") == []
    assert on_disk(directory, "d81c") != []
    # What was written since is in the files too.
    await within(backend.moderation.act(Act(stamp(6), "root", "wall", None, None, "after 9c0f")))
    assert on_disk(directory, "9c0f") != []


@pytest_twisted.ensureDeferred
async def test_acts_waiting_for_the_configuration_ask_for_it_once(
    redis_stores: RedisStores,
) -> None:
    backend, heard = await process(redis_stores)
    acts = [act("op", i, target=f"user{i}") for i in range(5)]
    for d in [backend.moderation.act(each) for each in acts]:
        await within(d)
    assert [await next_act(heard) for _ in acts] == acts
    stats = await call(backend, "INFO", "commandstats")
    # One CONFIG GET per setting (stream-node-max-entries, appendonly, save).
    assert "cmdstat_config|get:calls=3," in stats


@pytest_twisted.ensureDeferred
async def test_history_written_before_stamped_ids_is_found_and_erased(
    redis_stores: RedisStores,
) -> None:
    backend, _ = await process(redis_stores)
    await uncompressed(backend)
    # As stored before: IDs from Redis's clock, a few ms after the stamps.
    millis = calendar.timegm((2026, 12, 2, 10, 0, 0)) * 1000
    stamps = [stamp(2 * i) for i in range(150)]
    for i, at in enumerate(stamps):
        entry_id = f"{millis + 2 * i + (0, 1, 2, 3, 4, 3, 2, 1)[i % 8]}-0"
        await call(
            backend, "XADD", "chatroom:history:general", entry_id, "t", at, "u", "old", "m", f"{i}x"
        )
    for i in (3, 77, 149):
        assert await within(backend.moderation.find("general", stamps[i])) == Message(
            stamps[i], "old", f"{i}x"
        )
    assert await within(backend.moderation.find("general", stamp(1))) is None
    delete = Act(stamp(1000), "bob", "delete", "general", "old", stamps[77])
    await within(backend.moderation.act(delete))
    assert await within(backend.moderation.find("general", stamps[77])) is None
    assert await holding(backend, "77x") == []
    left = await within(backend.direct.room_history("general", None, 200))
    assert [m.text for m in left] == [f"{i}x" for i in range(150) if i != 77]


@pytest_twisted.ensureDeferred
async def test_an_answered_act_survives_redis_killed(redis_stores: RedisStores) -> None:
    backend, heard = await process(redis_stores)
    [said] = await say(backend, heard, "general", ["gone for good 0b7e"])
    acts = [
        act("ban", 1, target="Mallory", reason="spam"),
        Act(stamp(2), "root", "lock", None, "Mallory"),
        Act(stamp(3), "bob", "delete", "general", "mallory", said.timestamp),
    ]
    for each in acts:
        await within(backend.moderation.act(each))
    with capturedLogs():
        redis_stores.break_()
        redis_stores.repair()
        again, fresh = await process(redis_stores)
    [rules] = fresh.loads
    assert rules.rooms["lounge"].bans["mallory"].reason == "spam"
    assert rules.locks == {"mallory": ""}
    assert await within(again.moderation.audit(5)) == acts
    assert await holding(again, "0b7e") == []
