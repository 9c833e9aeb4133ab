"""
The contract of L{chat.storage.rooms.IChatBackend}: the same test bodies
on files (L{chat.storage.files.rooms.LocalBackend}) and on Redis
(L{chat.storage.redis.rooms.RedisBackend}).
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.logger import capturedLogs
from zope.interface.verify import verifyObject

from chat.message import Message
from chat.storage.common import NameTaken, StoreUnavailable
from chat.storage.rooms import IChatBackend, IRoomEvents
from tests.storage.backends import STAMP, Recorder, Stores, within

EARLIER = "2026-12-02T09:00:00.000Z"


def said(*texts: str, user: str = "alice") -> list[Message]:
    return [Message(STAMP, user, text) for text in texts]


@pytest_twisted.ensureDeferred
async def test_provides(stores: Stores) -> None:
    backend, _, _ = await stores.start()
    assert verifyObject(IChatBackend, backend)
    assert verifyObject(IRoomEvents, Recorder())
    assert backend.label in ("Storage", "Redis")


@pytest_twisted.ensureDeferred
async def test_a_new_store_has_general_and_nothing_else(stores: Stores) -> None:
    _, heard, _ = await stores.start()
    assert heard.loaded == {"general": ([], [])}
    assert heard.pending() == []


@pytest_twisted.ensureDeferred
async def test_published_messages_are_shown_in_order(stores: Stores) -> None:
    backend, heard, _ = await stores.start()
    await within(backend.publish("general", said("one", "two")))
    await within(backend.publish("general", said("three", user="bob")))
    assert [await heard.next() for _ in range(3)] == [
        ("msg", "general", "alice", "one"),
        ("msg", "general", "alice", "two"),
        ("msg", "general", "bob", "three"),
    ]


@pytest_twisted.ensureDeferred
async def test_history_survives_a_restart_newest_kept(stores: Stores) -> None:
    backend, heard, _ = await stores.start()
    await within(backend.publish("general", said(*(f"line {i}" for i in range(12)))))
    for _ in range(12):
        await heard.next()
    _, again, _ = await stores.start(history=10)
    assert again.loaded["general"][0] == [f"line {i}" for i in range(2, 12)]
    _, none, _ = await stores.start(history=0)
    assert none.loaded["general"][0] == []


@pytest_twisted.ensureDeferred
async def test_text_is_kept_exactly(stores: Stores) -> None:
    backend, heard, _ = await stores.start()
    text = "  spaces,  a colon: and ünïcode ☃ "
    await within(backend.publish("general", said(text)))
    assert await heard.next() == ("msg", "general", "alice", text)
    _, again, _ = await stores.start()
    assert again.loaded["general"][0] == [text]


@pytest_twisted.ensureDeferred
async def test_messages_come_back_as_values(stores: Stores) -> None:
    backend, heard, _ = await stores.start()
    await within(backend.publish("general", said("one", user="bob")))
    await heard.next()
    _, again, _ = await stores.start()
    for message in [*heard.messages, *again.messages]:
        assert type(message) is Message
        assert (message.timestamp, message.sender, message.text) == (STAMP, "bob", "one")
    assert len(heard.messages) == len(again.messages) == 1


@pytest_twisted.ensureDeferred
async def test_created_rooms_are_durable_and_keep_their_spelling(stores: Stores) -> None:
    backend, heard, _ = await stores.start()
    assert await within(backend.create_room("Lounge")) is None
    with pytest.raises(NameTaken):
        await within(backend.create_room("Lounge"))
    await within(backend.publish("Lounge", said("hello")))
    while await heard.next() != ("msg", "Lounge", "alice", "hello"):
        pass
    _, again, _ = await stores.start()
    assert sorted(again.loaded) == ["Lounge", "general"]
    assert again.loaded["Lounge"] == (["hello"], [])


@pytest_twisted.ensureDeferred
async def test_entering_and_leaving_are_told(stores: Stores) -> None:
    backend, heard, _ = await stores.start()
    backend.entered("general", "alice", STAMP)
    assert await heard.next() == ("join", "general", "alice")
    backend.left("general", "alice", STAMP)
    assert await heard.next() == ("part", "general", "alice")


@pytest_twisted.ensureDeferred
async def test_one_order_for_messages_and_presence(stores: Stores) -> None:
    backend, heard, _ = await stores.start()
    first = backend.publish("general", said("before"))
    backend.entered("general", "bob", STAMP)
    second = backend.publish("general", said("after"))
    await within(first)
    await within(second)
    assert [await heard.next() for _ in range(3)] == [
        ("msg", "general", "alice", "before"),
        ("join", "general", "bob"),
        ("msg", "general", "alice", "after"),
    ]


@pytest_twisted.ensureDeferred
async def test_unavailable_means_not_stored_and_not_shown(stores: Stores) -> None:
    backend, heard, _ = await stores.start()
    stores.break_()
    with capturedLogs():
        with pytest.raises(StoreUnavailable):
            await within(backend.publish("general", said("lost")))
        with pytest.raises(StoreUnavailable):
            await within(backend.create_room("Lounge"))
    assert heard.pending() == []


def stamps(heard: Recorder) -> list[str]:
    return [message.timestamp for message in heard.messages]


@pytest_twisted.ensureDeferred
async def test_equal_stamps_become_one_millisecond_apart(stores: Stores) -> None:
    backend, heard, _ = await stores.start()
    await within(backend.publish("general", said("one")))
    await within(backend.publish("general", said("two")))
    # Within one batch too.
    await within(backend.publish("general", said("three", "four")))
    for _ in range(4):
        await heard.next()
    assert stamps(heard) == [
        STAMP,
        "2026-12-02T10:00:00.001Z",
        "2026-12-02T10:00:00.002Z",
        "2026-12-02T10:00:00.003Z",
    ]
    _, again, _ = await stores.start()
    assert stamps(again) == stamps(heard)


@pytest_twisted.ensureDeferred
async def test_older_stamps_follow_the_last_also_after_a_restart(stores: Stores) -> None:
    backend, heard, _ = await stores.start()
    await within(backend.publish("general", said("one")))
    await within(
        backend.publish(
            "general",
            [Message(EARLIER, "bob", "late"), Message("2026-12-02T10:00:00.500Z", "bob", "x")],
        )
    )
    for _ in range(3):
        await heard.next()
    assert stamps(heard) == [STAMP, "2026-12-02T10:00:00.001Z", "2026-12-02T10:00:00.500Z"]
    # A process that keeps no history still knows the last stamp.
    again, after, _ = await stores.start(history=0)
    await within(again.publish("general", [Message(EARLIER, "bob", "after")]))
    assert await after.next() == ("msg", "general", "bob", "after")
    assert stamps(after) == ["2026-12-02T10:00:00.501Z"]
    # Each room has its own.
    await within(again.create_room("Lounge"))
    await within(again.publish("Lounge", [Message(EARLIER, "bob", "first")]))
    while await after.next() != ("msg", "Lounge", "bob", "first"):
        pass
    assert stamps(after)[-1] == EARLIER


@pytest_twisted.ensureDeferred
async def test_stamps_roll_over_to_the_next_second(stores: Stores) -> None:
    backend, heard, _ = await stores.start()
    late = "2026-12-02T10:00:59.999Z"
    await within(backend.publish("general", [Message(late, "bob", "a"), Message(late, "bob", "b")]))
    for _ in range(2):
        await heard.next()
    assert stamps(heard) == [late, "2026-12-02T10:01:00.000Z"]
