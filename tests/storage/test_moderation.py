"""
The contract of L{chat.storage.moderation.IModeration}: the same test
bodies on files (L{chat.storage.files.moderation}) and on Redis
(L{chat.storage.redis.moderation}), each reached as C{backend.moderation}.

On files a second C{stores.start()} is a restart of the one process (it
hears nothing of the first, and reads the rules again); on Redis it is a
second process that hears every act.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.logger import capturedLogs
from zope.interface.verify import verifyObject

from chat.message import Message, next_timestamp
from chat.storage.common import StoreUnavailable
from chat.storage.moderation import (
    Act,
    Ban,
    IModeration,
    IModerationEvents,
    RoomRules,
    Rules,
    Topic,
)
from tests.storage.backends import STAMP, Recorder, Stores, within

EARLIER = "2026-12-02T09:00:00.000Z"
#: When the acts are done: after every message of the tests.
ACTED = "2026-12-02T11:00:00.000Z"
SECRET = "xyzzy-the-spammers-secret-42"


def later(stamp: str, ms: int) -> str:
    """
    C{ms} milliseconds after C{stamp}.
    """
    for _ in range(ms):
        stamp = next_timestamp(stamp)
    return stamp


def act(
    n: int,
    actor: str,
    action: str,
    room: str | None,
    target: str | None = None,
    reason: str | None = None,
) -> Act:
    """
    The C{n}th act of a test: stamped C{n} ms after L{ACTED}.
    """
    return Act(later(ACTED, n), actor, action, room, target, reason)


async def start(stores: Stores, history: int = 10) -> tuple[Any, Any, Recorder]:
    """
    A process: its backend, its moderation (C{backend.moderation}), and
    what it tells its server.
    """
    backend, heard, _ = await stores.start(history=history)
    moderation = getattr(backend, "moderation", None)
    if moderation is None:
        pytest.skip(f"no moderation on {stores.kind} yet")
    return backend, moderation, heard


async def next_act(heard: Recorder) -> Act:
    """
    The next act heard, past any other news (rooms created, messages).
    """
    while True:
        event = await heard.next()
        if event[0] == "act":
            found: Act = event[1]
            return found


def acts_pending(heard: Recorder) -> list[Act]:
    return [event[1] for event in heard.pending() if event[0] == "act"]


async def do(moderation: Any, heard: Recorder, *acts: Act) -> None:
    """
    Do each act, and check that this process heard it.
    """
    for one in acts:
        assert await within(moderation.act(one)) is None
        assert await next_act(heard) == one


async def say(backend: Any, heard: Recorder, room: str, *said: tuple[str, str]) -> list[str]:
    """
    Put messages (sender, text) in a room, and wait until they are shown.

    @return: Their stamps, as stored.
    """
    before = len(heard.messages)
    for sender, text in said:
        await within(backend.publish(room, [Message(STAMP, sender, text)]))
    while len(heard.messages) < before + len(said):
        await heard.next()
    stored = heard.messages[before:]
    assert [(m.sender, m.text) for m in stored] == list(said)
    return [m.timestamp for m in stored]


async def history(backend: Any, room: str) -> list[tuple[str, str, str]]:
    return [tuple(m) for m in await within(backend.direct.room_history(room, None, 50))]


@pytest_twisted.ensureDeferred
async def test_provides(stores: Stores) -> None:
    _, moderation, heard = await start(stores)
    assert verifyObject(IModeration, moderation)
    assert verifyObject(IModerationEvents, Recorder())
    # A new store has no rules, and says so before start fires.
    assert heard.rules == Rules()


@pytest_twisted.ensureDeferred
async def test_each_act_is_heard_here_and_by_another_process(stores: Stores) -> None:
    backend, moderation, heard = await start(stores)
    await within(backend.create_room("Lounge"))
    [stamp] = await say(backend, heard, "Lounge", ("mallory", "spam"))
    _, _, other = await start(stores)
    acts = [
        act(0, "alice", "own", "Lounge", "alice"),
        act(1, "alice", "op", "Lounge", "Bob"),
        act(2, "Bob", "topic", "Lounge", None, "be nice"),
        act(3, "Bob", "mute", "Lounge", "mallory"),
        act(4, "Bob", "unmute", "Lounge", "mallory"),
        act(5, "Bob", "kick", "Lounge", "mallory", "spam"),
        act(6, "Bob", "ban", "Lounge", "mallory", "spam"),
        act(7, "Bob", "unban", "Lounge", "mallory"),
        act(8, "Bob", "delete", "Lounge", "mallory", stamp),
        act(9, "alice", "deop", "Lounge", "Bob"),
        act(10, "root", "lock", None, "mallory", "spam"),
        act(11, "root", "unlock", None, "mallory"),
        act(12, "root", "wall", None, None, "maintenance at noon"),
        act(13, "root", "drop", "Lounge", None, "closed"),
    ]
    for one in acts:
        assert await within(moderation.act(one)) is None
        assert await next_act(heard) == one
        if stores.kind == "redis":
            assert await next_act(other) == one
    if stores.kind == "files":
        # One process only: the second start was a restart, told nothing.
        assert acts_pending(other) == []
    assert acts_pending(heard) == []


@pytest_twisted.ensureDeferred
async def test_acts_are_heard_in_the_order_done(stores: Stores) -> None:
    _, moderation, heard = await start(stores)
    names = [f"user{i}" for i in range(8)]
    acts = [act(i, "root", "op", "general", name) for i, name in enumerate(names)]
    done = [moderation.act(one) for one in acts]
    for d in done:
        await within(d)
    assert [await next_act(heard) for _ in acts] == acts
    _, _, again = await start(stores)
    assert again.rules is not None
    rules = again.rules.room("general")
    assert rules is not None
    assert list(rules.operators.values()) == names


def expected_rules() -> tuple[list[Act], Rules]:
    """
    Acts touching every rule, and the rules they leave.
    """
    acts = [
        act(0, "alice", "own", "Lounge", "Alice"),
        act(1, "Alice", "op", "Lounge", "Bob"),
        act(2, "Alice", "op", "Lounge", "carol"),
        act(3, "Alice", "deop", "Lounge", "CAROL"),
        act(4, "Bob", "ban", "Lounge", "Mallory", "spam, and worse: links"),
        act(5, "Bob", "ban", "Lounge", "eve"),
        act(6, "Bob", "ban", "Lounge", "trent"),
        act(7, "Bob", "unban", "Lounge", "Trent"),
        act(8, "Bob", "mute", "Lounge", "Dave"),
        act(9, "Bob", "mute", "Lounge", "oscar"),
        act(10, "Bob", "unmute", "Lounge", "OSCAR"),
        act(11, "Bob", "topic", "Lounge", None, "first topic"),
        act(12, "Alice", "topic", "Lounge", None, "  ünïcode ☃ topic: with colons "),
        # A room whose rules all went again has none.
        act(13, "root", "op", "Den", "Bob"),
        act(14, "root", "topic", "Den", None, "gone soon"),
        act(15, "root", "deop", "Den", "bob"),
        act(16, "root", "topic", "Den", None, ""),
        # A topic cleared in a room with other rules.
        act(17, "root", "topic", "general", None, "hello"),
        act(18, "root", "op", "general", "Bob"),
        act(19, "root", "topic", "general", None, ""),
        act(20, "root", "lock", None, "Mallory", "spam"),
        act(21, "root", "lock", None, "eve"),
        act(22, "root", "lock", None, "carol", "by mistake"),
        act(23, "root", "unlock", None, "Carol"),
    ]
    rules = Rules(
        rooms={
            "lounge": RoomRules(
                owner="Alice",
                operators={"bob": "Bob"},
                bans={
                    "mallory": Ban("Mallory", later(ACTED, 4), "Bob", "spam, and worse: links"),
                    "eve": Ban("eve", later(ACTED, 5), "Bob", None),
                },
                mutes={"dave": "Dave"},
                topic=Topic("  ünïcode ☃ topic: with colons ", later(ACTED, 12), "Alice"),
            ),
            "general": RoomRules(operators={"bob": "Bob"}),
        },
        locks={"mallory": "spam", "eve": ""},
    )
    return acts, rules


@pytest_twisted.ensureDeferred
async def test_rules_survive_a_restart(stores: Stores) -> None:
    backend, moderation, heard = await start(stores)
    await within(backend.create_room("Lounge"))
    await within(backend.create_room("Den"))
    acts, rules = expected_rules()
    await do(moderation, heard, *acts)
    # The one definition of what acts do agrees with the literal above.
    applied = Rules()
    for one in acts:
        applied.apply(one)
    assert applied == rules
    _, _, again = await start(stores)
    assert again.rules == rules


@pytest_twisted.ensureDeferred
async def test_rules_of_a_room_start_empty_and_repeats_are_no_error(stores: Stores) -> None:
    backend, moderation, heard = await start(stores)
    await within(backend.create_room("Lounge"))
    await do(
        moderation,
        heard,
        act(0, "root", "op", "Lounge", "bob"),
        act(1, "root", "op", "Lounge", "bob"),
        act(2, "root", "unban", "Lounge", "nobody"),
        act(3, "root", "deop", "Lounge", "nobody"),
        act(4, "root", "unlock", None, "nobody"),
    )
    _, _, again = await start(stores)
    assert again.rules == Rules(rooms={"lounge": RoomRules(operators={"bob": "bob"})})
    entries = await within(moderation.audit(10))
    assert [entry.action for entry in entries] == ["op", "op", "unban", "deop", "unlock"]


@pytest_twisted.ensureDeferred
async def test_audit_keeps_every_field_oldest_first(stores: Stores) -> None:
    backend, moderation, heard = await start(stores)
    await within(backend.create_room("Lounge"))
    await within(backend.create_room("Den"))
    [stamp] = await say(backend, heard, "Lounge", ("mallory", "buy now"))
    own = act(0, "alice", "own", "Lounge", "alice")
    audited = [
        act(1, "alice", "op", "Lounge", "bob"),
        act(2, "bob", "topic", "Lounge", None, "rules: be nice"),
        act(3, "bob", "topic", "Lounge", None, ""),
        act(4, "bob", "kick", "Lounge", "mallory", "spam"),
        act(5, "bob", "kick", "Lounge", "mallory"),
        act(6, "bob", "delete", "Lounge", "mallory", stamp),
        act(7, "root", "wall", None, None, "  ünïcode ☃ and: colons "),
        act(8, "root", "lock", None, "mallory", "spam"),
        act(9, "root", "unlock", None, "mallory"),
        act(10, "root", "drop", "Lounge", None, "closed"),
        act(11, "root", "drop", "Den"),
    ]
    await do(moderation, heard, own, *audited)
    assert await within(moderation.audit(50)) == audited
    assert await within(moderation.audit(len(audited))) == audited
    assert await within(moderation.audit(3)) == audited[-3:]
    assert await within(moderation.audit(1)) == audited[-1:]
    for entry in await within(moderation.audit(50)):
        assert type(entry) is Act
    # Kept across a restart, and added to after it.
    _, again, again_heard = await start(stores)
    assert await within(again.audit(50)) == audited
    more = act(12, "root", "wall", None, None, "back")
    await do(again, again_heard, more)
    assert await within(again.audit(2)) == [audited[-1], more]


@pytest_twisted.ensureDeferred
async def test_audit_of_a_new_store_is_empty(stores: Stores) -> None:
    _, moderation, heard = await start(stores)
    assert await within(moderation.audit(50)) == []
    # Owning a room is not audited.
    await do(moderation, heard, act(0, "alice", "own", "general", "alice"))
    assert await within(moderation.audit(50)) == []


@pytest_twisted.ensureDeferred
async def test_kick_and_wall_change_no_rule(stores: Stores) -> None:
    _, moderation, heard = await start(stores)
    kick = act(0, "bob", "kick", "general", "mallory", "spam")
    wall = act(1, "root", "wall", None, None, "hello all")
    await do(moderation, heard, kick, wall)
    _, _, again = await start(stores)
    assert again.rules == Rules()
    assert await within(moderation.audit(5)) == [kick, wall]


@pytest_twisted.ensureDeferred
async def test_find_a_stored_message(stores: Stores) -> None:
    backend, moderation, heard = await start(stores)
    await within(backend.create_room("Lounge"))
    stamps = await say(
        backend, heard, "Lounge", ("alice", "one"), ("mallory", "two: spam"), ("bob", "three")
    )
    assert stamps == [STAMP, later(STAMP, 1), later(STAMP, 2)]
    for stamp, sender, text in zip(
        stamps, ["alice", "mallory", "bob"], ["one", "two: spam", "three"], strict=True
    ):
        found = await within(moderation.find("Lounge", stamp))
        assert found == Message(stamp, sender, text)
        assert type(found) is Message
    assert await within(moderation.find("Lounge", EARLIER)) is None
    assert await within(moderation.find("Lounge", later(STAMP, 3))) is None
    assert await within(moderation.find("general", STAMP)) is None
    assert await within(moderation.find("Nowhere", STAMP)) is None
    # After a restart too.
    _, again, _ = await start(stores)
    assert await within(again.find("Lounge", stamps[1])) == Message(
        stamps[1], "mallory", "two: spam"
    )


async def check_deleted(
    stores: Stores, deleted: int, texts: list[str], history_size: int = 10
) -> None:
    """
    Put C{texts} in a room (alternately by alice and mallory), delete the
    C{deleted}th, and check it is gone everywhere and the rest intact.
    """
    backend, moderation, heard = await start(stores)
    await within(backend.create_room("Lounge"))
    senders = ["alice" if i % 2 else "mallory" for i in range(len(texts))]
    stamps = await say(backend, heard, "Lounge", *zip(senders, texts, strict=True))
    gone = texts[deleted]
    assert stores.raw_contains(gone)
    delete = act(0, "bob", "delete", "Lounge", senders[deleted], stamps[deleted])
    await do(moderation, heard, delete)
    kept = [
        (stamp, sender, text)
        for i, (stamp, sender, text) in enumerate(zip(stamps, senders, texts, strict=True))
        if i != deleted
    ]
    assert await within(moderation.find("Lounge", stamps[deleted])) is None
    for stamp, sender, text in kept:
        assert await within(moderation.find("Lounge", stamp)) == Message(stamp, sender, text)
    assert await history(backend, "Lounge") == kept
    assert not stores.raw_contains(gone)
    assert await within(moderation.audit(1)) == [delete]
    # A restart loads the newest messages that are left.
    restarted, moderation, heard = await start(stores, history=history_size)
    assert heard.loaded["Lounge"][0] == [text for _, _, text in kept][-history_size:]
    assert await history(restarted, "Lounge") == kept
    assert await within(moderation.find("Lounge", stamps[deleted])) is None
    # Stamps stay unique: a new message is stamped after the deleted one.
    [new] = await say(restarted, heard, "Lounge", ("alice", "after"))
    assert new == later(STAMP, len(texts))
    assert await within(moderation.find("Lounge", stamps[deleted])) is None
    assert not stores.raw_contains(gone)


@pytest_twisted.ensureDeferred
async def test_delete_a_middle_message_erases_its_text(stores: Stores) -> None:
    await check_deleted(stores, 1, ["hello", f"buy now {SECRET}", "bye"])


@pytest_twisted.ensureDeferred
async def test_delete_the_first_message(stores: Stores) -> None:
    await check_deleted(stores, 0, [f"first {SECRET}", "two", "three"])


@pytest_twisted.ensureDeferred
async def test_delete_the_last_message(stores: Stores) -> None:
    await check_deleted(stores, 2, ["one", "two", f"last {SECRET}"])


@pytest_twisted.ensureDeferred
async def test_delete_the_only_message(stores: Stores) -> None:
    await check_deleted(stores, 0, [SECRET])


@pytest_twisted.ensureDeferred
async def test_a_restart_loads_as_many_messages_as_asked_past_deleted_ones(
    stores: Stores,
) -> None:
    await check_deleted(stores, 4, [f"m{i}" for i in range(4)] + [SECRET, "m5"], history_size=3)


@pytest_twisted.ensureDeferred
async def test_deleting_twice_and_deleting_nothing(stores: Stores) -> None:
    backend, moderation, heard = await start(stores)
    stamps = await say(backend, heard, "general", ("mallory", SECRET), ("alice", "hi"))
    first = act(0, "bob", "delete", "general", "mallory", stamps[0])
    # Deleted already, and never there: no error, and audited.
    again = act(1, "bob", "delete", "general", "mallory", stamps[0])
    never = act(2, "bob", "delete", "general", "mallory", EARLIER)
    await do(moderation, heard, first, again, never)
    assert await history(backend, "general") == [(stamps[1], "alice", "hi")]
    assert not stores.raw_contains(SECRET)
    assert await within(moderation.audit(5)) == [first, again, never]


@pytest_twisted.ensureDeferred
async def test_drop_deletes_the_room_and_frees_its_name(stores: Stores) -> None:
    backend, moderation, heard = await start(stores)
    await within(backend.create_room("Lounge"))
    await within(backend.create_room("Den"))
    stamps = await say(backend, heard, "Lounge", ("mallory", SECRET), ("alice", "hi"))
    await say(backend, heard, "Den", ("alice", "elsewhere"))
    await do(
        moderation,
        heard,
        act(0, "alice", "own", "Lounge", "alice"),
        act(1, "alice", "ban", "Lounge", "mallory", "spam"),
        act(2, "alice", "topic", "Lounge", None, "soon gone"),
        act(3, "root", "op", "Den", "bob"),
    )
    drop = act(4, "root", "drop", "Lounge", None, "spam den")
    await do(moderation, heard, drop)
    assert await history(backend, "Lounge") == []
    assert await within(moderation.find("Lounge", stamps[0])) is None
    assert not stores.raw_contains(SECRET)
    # Other rooms keep theirs.
    assert [text for _, _, text in await history(backend, "Den")] == ["elsewhere"]
    assert await within(moderation.audit(1)) == [drop]
    _, _, again = await start(stores)
    assert "Lounge" not in again.loaded
    assert sorted(again.loaded) == ["Den", "general"]
    assert again.rules == Rules(rooms={"den": RoomRules(operators={"bob": "bob"})})
    # The name is free: a new room of that name, with nothing of the old.
    assert await within(backend.create_room("Lounge")) is None
    assert await history(backend, "Lounge") == []
    [stamp] = await say(backend, heard, "Lounge", ("bob", "new room"))
    assert await history(backend, "Lounge") == [(stamp, "bob", "new room")]
    _, _, third = await start(stores)
    assert third.loaded["Lounge"][0] == ["new room"]
    assert third.rules == Rules(rooms={"den": RoomRules(operators={"bob": "bob"})})


@pytest_twisted.ensureDeferred
async def test_drop_of_a_room_without_rules_or_messages(stores: Stores) -> None:
    backend, moderation, heard = await start(stores)
    await within(backend.create_room("Lounge"))
    await do(moderation, heard, act(0, "root", "drop", "Lounge"))
    _, _, again = await start(stores)
    assert "Lounge" not in again.loaded
    assert again.rules == Rules()


@pytest_twisted.ensureDeferred
async def test_unavailable_means_nothing_done_and_nothing_heard(stores: Stores) -> None:
    backend, moderation, heard = await start(stores)
    await within(backend.create_room("Lounge"))
    stamps = await say(backend, heard, "Lounge", ("mallory", SECRET), ("alice", "hi"))
    before, rules = expected_rules()
    await do(moderation, heard, *before)
    stores.break_()
    failing = [
        act(30, "Alice", "op", "Lounge", "dave"),
        act(31, "Alice", "deop", "Lounge", "bob"),
        act(32, "Bob", "topic", "Lounge", None, "new topic"),
        act(33, "Bob", "ban", "Lounge", "dave", "no"),
        act(34, "Bob", "unban", "Lounge", "mallory"),
        act(35, "Bob", "mute", "Lounge", "bob"),
        act(36, "Bob", "unmute", "Lounge", "dave"),
        act(37, "Bob", "kick", "Lounge", "dave"),
        act(38, "Bob", "delete", "Lounge", "mallory", stamps[0]),
        act(39, "root", "lock", None, "bob"),
        act(40, "root", "unlock", None, "mallory"),
        act(41, "root", "wall", None, None, "hello"),
        act(42, "root", "drop", "Lounge"),
        act(43, "alice", "own", "Den", "alice"),
    ]
    with capturedLogs():
        for one in failing:
            with pytest.raises(StoreUnavailable):
                await within(moderation.act(one))
        with pytest.raises(StoreUnavailable):
            await within(moderation.audit(10))
    assert acts_pending(heard) == []
    stores.repair()
    _, again, fresh = await start(stores)
    assert fresh.rules == rules
    assert fresh.loaded["Lounge"][0] == [SECRET, "hi"]
    assert await within(again.find("Lounge", stamps[0])) == Message(stamps[0], "mallory", SECRET)
    assert await within(again.audit(50)) == [one for one in before if one.action != "own"]
