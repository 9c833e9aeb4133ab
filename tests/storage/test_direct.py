"""
The contract of L{chat.storage.direct.IDirectMessages}: the same test
bodies on files (L{chat.storage.files.direct}) and on Redis
(L{chat.storage.redis.direct}), each reached as C{backend.direct}.

Caps are lowered through the attributes C{inbox_cap} and C{unread_shown}
so that a test of what happens past them stays fast.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import capturedLogs
from zope.interface.verify import verifyObject

from chat.message import Message, next_timestamp
from chat.storage.common import StoreUnavailable
from chat.storage.direct import (
    INBOX_CAP,
    UNREAD_SHOWN,
    DirectMessage,
    IDirectEvents,
    IDirectMessages,
    Unread,
)
from tests.storage.backends import STAMP, Recorder, Stores, within

EARLIER = "2026-12-02T09:00:00.000Z"


def later(stamp: str, ms: int) -> str:
    """
    C{ms} milliseconds after C{stamp}.
    """
    for _ in range(ms):
        stamp = next_timestamp(stamp)
    return stamp


async def start(stores: Stores) -> tuple[Any, Recorder]:
    """
    A process's private messages (C{backend.direct}), and what it tells
    its server.
    """
    backend, heard, _ = await stores.start()
    return backend.direct, heard


async def send(
    direct: Any, heard: Recorder, sender: str, recipient: str, text: str, stamp: str = STAMP
) -> tuple[DirectMessage, bool]:
    """
    Send a message and wait until it is shown: C{(message, to_recipient)}.
    """
    await within(direct.send(sender, recipient, stamp, text))
    event = await heard.next()
    assert event[0] == "dm"
    return event[1], event[2]


def texts(messages: list[Any]) -> list[str]:
    return [message.text for message in messages]


async def history(direct: Any, user: str, partner: str, before: str | None = None) -> list[str]:
    return texts(await within(direct.history(user, partner, before, 200)))


@pytest_twisted.ensureDeferred
async def test_provides(stores: Stores) -> None:
    direct, _ = await start(stores)
    assert verifyObject(IDirectMessages, direct)
    assert verifyObject(IDirectEvents, Recorder())
    assert (direct.inbox_cap, direct.unread_shown) == (INBOX_CAP, UNREAD_SHOWN)


@pytest_twisted.ensureDeferred
async def test_online_recipient_is_shown_and_both_copies_hold_it(stores: Stores) -> None:
    direct, heard = await start(stores)
    direct.online("bob")
    message, to_recipient = await send(direct, heard, "alice", "bob", "hi bob")
    assert message == DirectMessage(STAMP, "alice", "bob", "hi bob")
    assert type(message) is DirectMessage
    assert to_recipient is True
    assert await within(direct.history("alice", "bob", None, 10)) == [
        Message(STAMP, "alice", "hi bob")
    ]
    assert await within(direct.history("bob", "alice", None, 10)) == [
        Message(STAMP, "alice", "hi bob")
    ]
    assert await within(direct.take_unread("bob")) == Unread([], 0)
    assert heard.pending() == []


@pytest_twisted.ensureDeferred
async def test_names_are_keyed_in_any_case(stores: Stores) -> None:
    direct, heard = await start(stores)
    direct.online("Bob")
    _, to_recipient = await send(direct, heard, "Alice", "Bob", "hi")
    assert to_recipient is True
    _, to_recipient = await send(direct, heard, "bob", "ALICE", "hello")
    assert to_recipient is False
    assert await history(direct, "alice", "BOB") == ["hi", "hello"]
    assert await history(direct, "BOB", "alice") == ["hi", "hello"]
    assert [(p.lower(), ts) for p, ts in await within(direct.conversations("ALICE"))] == [
        ("bob", next_timestamp(STAMP))
    ]
    unread = await within(direct.take_unread("alice"))
    assert (texts(unread.messages), unread.older) == (["hello"], 0)


@pytest_twisted.ensureDeferred
async def test_offline_recipient_gets_it_in_its_inbox_once(stores: Stores) -> None:
    direct, heard = await start(stores)
    message, to_recipient = await send(direct, heard, "alice", "bob", "while you were out")
    assert to_recipient is False
    assert await within(direct.take_unread("alice")) == Unread([], 0)
    unread = await within(direct.take_unread("bob"))
    assert unread == Unread([message], 0)
    assert type(unread.messages[0]) is DirectMessage
    assert await within(direct.take_unread("bob")) == Unread([], 0)
    assert await history(direct, "bob", "alice") == ["while you were out"]


@pytest_twisted.ensureDeferred
async def test_going_offline_sends_to_the_inbox_again(stores: Stores) -> None:
    direct, heard = await start(stores)
    direct.online("bob")
    _, to_recipient = await send(direct, heard, "alice", "bob", "one")
    assert to_recipient is True
    direct.offline("bob")
    _, to_recipient = await send(direct, heard, "alice", "bob", "two")
    assert to_recipient is False
    unread = await within(direct.take_unread("bob"))
    assert (texts(unread.messages), unread.older) == (["two"], 0)


@pytest_twisted.ensureDeferred
async def test_inbox_and_conversations_survive_a_restart(stores: Stores) -> None:
    direct, heard = await start(stores)
    await send(direct, heard, "alice", "bob", "one")
    await send(direct, heard, "alice", "bob", "two")
    again, _ = await start(stores)
    unread = await within(again.take_unread("bob"))
    assert texts(unread.messages) == ["one", "two"]
    assert unread.older == 0
    assert [m.timestamp for m in unread.messages] == [STAMP, next_timestamp(STAMP)]
    assert await history(again, "bob", "alice") == ["one", "two"]
    assert await history(again, "alice", "bob") == ["one", "two"]
    assert await within(again.take_unread("bob")) == Unread([], 0)


@pytest_twisted.ensureDeferred
async def test_inbox_drops_the_oldest_past_its_cap_and_counts_them(stores: Stores) -> None:
    direct, heard = await start(stores)
    direct.inbox_cap = 5
    for i in range(8):
        await send(direct, heard, "alice", "bob", f"m{i}")
    # A restart keeps the inbox; what is past the cap is dropped, and counted.
    again, _ = await start(stores)
    again.inbox_cap = 5
    unread = await within(again.take_unread("bob"))
    assert texts(unread.messages) == [f"m{i}" for i in range(3, 8)]
    assert unread.older == 3
    # Dropped from the inbox only: the conversation keeps everything.
    assert await history(again, "bob", "alice") == [f"m{i}" for i in range(8)]
    assert await within(again.take_unread("bob")) == Unread([], 0)


@pytest_twisted.ensureDeferred
async def test_unread_shows_the_newest_and_counts_the_rest(stores: Stores) -> None:
    direct, heard = await start(stores)
    direct.inbox_cap = 5
    direct.unread_shown = 3
    for i in range(4):
        await send(direct, heard, "alice", "bob", f"m{i}")
    unread = await within(direct.take_unread("bob"))
    assert (texts(unread.messages), unread.older) == (["m1", "m2", "m3"], 1)
    for i in range(4, 12):
        await send(direct, heard, "carol", "bob", f"m{i}")
    unread = await within(direct.take_unread("bob"))
    # Eight arrived: three dropped past the cap, two more not shown.
    assert (texts(unread.messages), unread.older) == (["m9", "m10", "m11"], 5)
    assert [m.sender for m in unread.messages] == ["carol"] * 3
    assert await within(direct.take_unread("bob")) == Unread([], 0)


@pytest_twisted.ensureDeferred
async def test_ignored_sender_is_stored_for_itself_only(stores: Stores) -> None:
    direct, heard = await start(stores)
    assert await within(direct.ignore("bob", "Alice", 10)) is True
    message, to_recipient = await send(direct, heard, "alice", "bob", "psst")
    assert to_recipient is False
    direct.online("bob")
    _, to_recipient = await send(direct, heard, "alice", "bob", "psst again")
    assert to_recipient is False
    assert message.text == "psst"
    assert await history(direct, "alice", "bob") == ["psst", "psst again"]
    assert [p.lower() for p, _ in await within(direct.conversations("alice"))] == ["bob"]
    assert await history(direct, "bob", "alice") == []
    assert await within(direct.conversations("bob")) == []
    assert await within(direct.take_unread("bob")) == Unread([], 0)
    # Bob can still write to alice, and alice's copy has one order.
    await send(direct, heard, "bob", "alice", "hello?")
    assert await history(direct, "alice", "bob") == ["psst", "psst again", "hello?"]
    assert await history(direct, "bob", "alice") == ["hello?"]


@pytest_twisted.ensureDeferred
async def test_ignoring_survives_a_restart_and_unignore_ends_it(stores: Stores) -> None:
    direct, _ = await start(stores)
    assert await within(direct.ignore("bob", "alice", 10)) is True
    again, heard = await start(stores)
    assert [n.lower() for n in await within(again.ignored("bob"))] == ["alice"]
    again.online("bob")
    _, to_recipient = await send(again, heard, "alice", "bob", "ignored")
    assert to_recipient is False
    assert await within(again.unignore("Bob", "ALICE")) is None
    assert await within(again.ignored("bob")) == []
    _, to_recipient = await send(again, heard, "alice", "bob", "heard")
    assert to_recipient is True
    assert await history(again, "bob", "alice") == ["heard"]
    # Not ignoring is no error.
    assert await within(again.unignore("bob", "carol")) is None
    third, _ = await start(stores)
    assert await within(third.ignored("bob")) == []


@pytest_twisted.ensureDeferred
async def test_ignore_list_is_capped_and_sorted(stores: Stores) -> None:
    direct, _ = await start(stores)
    assert await within(direct.ignored("bob")) == []
    assert await within(direct.ignore("bob", "zed", 2)) is True
    assert await within(direct.ignore("bob", "Carol", 2)) is True
    assert await within(direct.ignore("bob", "amy", 2)) is False
    # Ignoring someone ignored already is not one more.
    assert await within(direct.ignore("bob", "ZED", 2)) is True
    assert [n.lower() for n in await within(direct.ignored("bob"))] == ["carol", "zed"]
    await within(direct.unignore("bob", "zed"))
    assert await within(direct.ignore("bob", "amy", 2)) is True
    assert [n.lower() for n in await within(direct.ignored("bob"))] == ["amy", "carol"]
    # Another user's list is its own.
    assert await within(direct.ignored("amy")) == []


@pytest_twisted.ensureDeferred
async def test_conversations_most_recent_first(stores: Stores) -> None:
    direct, heard = await start(stores)
    direct.online("alice")
    await send(direct, heard, "alice", "bob", "1", later(STAMP, 1))
    await send(direct, heard, "alice", "carol", "2", later(STAMP, 2))
    await send(direct, heard, "dave", "alice", "3", later(STAMP, 3))
    await send(direct, heard, "alice", "bob", "4", later(STAMP, 4))
    found = await within(direct.conversations("alice"))
    assert [(p.lower(), ts) for p, ts in found] == [
        ("bob", later(STAMP, 4)),
        ("dave", later(STAMP, 3)),
        ("carol", later(STAMP, 2)),
    ]
    assert [(p.lower(), ts) for p, ts in await within(direct.conversations("bob"))] == [
        ("alice", later(STAMP, 4))
    ]
    again, _ = await start(stores)
    assert await within(again.conversations("alice")) == found


async def pages(fetch: Any, total: int) -> list[Message]:
    """
    Page back through a history ten at a time, checking each page, and
    return everything read, oldest first.
    """
    read: list[Message] = []
    before = None
    while True:
        page = await within(fetch(before, 10))
        assert len(page) == min(10, total - len(read))
        if not page:
            return read
        assert [m.timestamp for m in page] == sorted(m.timestamp for m in page)
        assert all(type(m) is Message for m in page)
        read[:0] = page
        before = page[0].timestamp


@pytest_twisted.ensureDeferred
async def test_conversation_history_pages_back(stores: Stores) -> None:
    direct, heard = await start(stores)
    direct.online("bob")
    for i in range(30):
        await send(direct, heard, "alice" if i % 3 else "bob", "bob" if i % 3 else "alice", f"{i}")
    for user, partner in [("alice", "bob"), ("bob", "alice")]:
        read = await pages(partial(direct.history, user, partner), 30)
        assert texts(read) == [f"{i}" for i in range(30)]
        assert [m.timestamp for m in read] == [later(STAMP, i) for i in range(30)]
        assert [m.sender for m in read] == ["alice" if i % 3 else "bob" for i in range(30)]
    # Before a stamp between messages, and more than there is.
    assert texts(await within(direct.history("alice", "bob", later(STAMP, 2), 200))) == ["0", "1"]
    assert texts(await within(direct.history("alice", "bob", EARLIER, 10))) == []
    assert await within(direct.history("alice", "nobody", None, 10)) == []
    again, _ = await start(stores)
    read = await pages(partial(again.history, "bob", "alice"), 30)
    assert texts(read) == [f"{i}" for i in range(30)]


@pytest_twisted.ensureDeferred
async def test_room_history_pages_back(stores: Stores) -> None:
    backend, heard, _ = await stores.start()
    for i in range(30):
        await within(backend.publish("general", [Message(STAMP, "alice", f"{i}")]))
    for _ in range(30):
        await heard.next()
    read = await pages(partial(backend.direct.room_history, "general"), 30)
    assert texts(read) == [f"{i}" for i in range(30)]
    assert [m.timestamp for m in read] == [later(STAMP, i) for i in range(30)]
    assert await within(backend.direct.room_history("general", EARLIER, 5)) == []
    await within(backend.create_room("Lounge"))
    assert await within(backend.direct.room_history("Lounge", None, 5)) == []
    again, _, _ = await stores.start(history=0)
    read = await pages(partial(again.direct.room_history, "general"), 30)
    assert texts(read) == [f"{i}" for i in range(30)]


@pytest_twisted.ensureDeferred
async def test_stamps_in_a_conversation_are_unique_and_increasing(stores: Stores) -> None:
    direct, heard = await start(stores)
    direct.online("alice")
    direct.online("bob")
    first, _ = await send(direct, heard, "alice", "bob", "one")
    second, _ = await send(direct, heard, "bob", "alice", "two")
    third, _ = await send(direct, heard, "alice", "bob", "three", EARLIER)
    assert [first.timestamp, second.timestamp, third.timestamp] == [
        STAMP,
        later(STAMP, 1),
        later(STAMP, 2),
    ]
    # Another conversation has its own stamps.
    other, _ = await send(direct, heard, "alice", "carol", "elsewhere")
    assert other.timestamp == STAMP
    history = await within(direct.history("bob", "alice", None, 10))
    assert [m.timestamp for m in history] == [STAMP, later(STAMP, 1), later(STAMP, 2)]


@pytest_twisted.ensureDeferred
async def test_stamps_follow_the_fuller_copy_and_survive_a_restart(stores: Stores) -> None:
    direct, heard = await start(stores)
    await within(direct.ignore("bob", "alice", 10))
    for _ in range(3):
        await send(direct, heard, "alice", "bob", "unheard")
    await within(direct.unignore("bob", "alice"))
    # Bob's copy is empty, alice's holds three: the stamp follows hers.
    message, _ = await send(direct, heard, "bob", "alice", "hello")
    assert message.timestamp == later(STAMP, 3)
    again, heard = await start(stores)
    message, _ = await send(again, heard, "bob", "alice", "after", EARLIER)
    assert message.timestamp == later(STAMP, 4)
    assert [m.timestamp for m in await within(again.history("bob", "alice", None, 10))] == [
        later(STAMP, 3),
        later(STAMP, 4),
    ]


@pytest_twisted.ensureDeferred
async def test_stamps_roll_over_to_the_next_second(stores: Stores) -> None:
    direct, heard = await start(stores)
    await send(direct, heard, "alice", "bob", "one", "2026-12-02T10:00:59.999Z")
    message, _ = await send(direct, heard, "alice", "bob", "two", "2026-12-02T10:00:59.999Z")
    assert message.timestamp == "2026-12-02T10:01:00.000Z"


@pytest_twisted.ensureDeferred
async def test_a_message_to_oneself_is_stored_once(stores: Stores) -> None:
    direct, heard = await start(stores)
    direct.online("alice")
    await within(direct.send("alice", "alice", STAMP, "note to self"))
    event = await heard.next()
    assert event[:2] == ("dm", DirectMessage(STAMP, "alice", "alice", "note to self"))
    assert await history(direct, "alice", "alice") == ["note to self"]
    assert [(p.lower(), ts) for p, ts in await within(direct.conversations("alice"))] == [
        ("alice", STAMP)
    ]
    assert await within(direct.take_unread("alice")) == Unread([], 0)
    message, _ = await send(direct, heard, "alice", "alice", "again")
    assert message.timestamp == later(STAMP, 1)
    assert heard.pending() == []


@pytest_twisted.ensureDeferred
async def test_unavailable_means_not_stored_and_not_shown(stores: Stores) -> None:
    direct, heard = await start(stores)
    direct.online("bob")
    stores.break_()
    with capturedLogs():
        with pytest.raises(StoreUnavailable):
            await within(direct.send("alice", "bob", STAMP, "lost"))
        with pytest.raises(StoreUnavailable):
            await within(direct.send("alice", "carol", STAMP, "lost too"))
    assert heard.pending() == []
