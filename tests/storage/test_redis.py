"""
What only the Redis implementations have: the keys and events other
processes (older and newer) read, the registry of event kinds, and the
Lua shipped as files.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.testing import MemoryReactorClock

from chat.resp import parse_redis_url
from chat.storage.redis import RedisAccounts, RedisBackend, RedisConnection
from chat.storage.redis.connection import pairs
from tests.storage.backends import STAMP, RedisStores, within


async def call(backend: Any, *args: Any) -> Any:
    return await within(backend.commands.execute(*args))


@pytest_twisted.ensureDeferred
async def test_keys_and_events_are_laid_out_as_before(redis_stores: RedisStores) -> None:
    backend, heard, accounts = await redis_stores.start(accounts=True)
    await within(backend.create_room("Lounge"))
    backend.entered("Lounge", "alice", STAMP)
    await within(backend.publish("Lounge", [(STAMP, "alice", "hello there")]))
    await within(accounts.add_user("Alice", "password1"))
    while await heard.next() != ("msg", "Lounge", "alice", "hello there"):
        pass
    assert pairs(await call(backend, "HGETALL", "chatroom:rooms")) == {
        "general": "general",
        "lounge": "Lounge",
    }
    ((_, history),) = await call(backend, "XRANGE", "chatroom:history:lounge", "-", "+")
    assert history == ["t", STAMP, "u", "alice", "m", "hello there"]
    events = [fields for _, fields in await call(backend, "XRANGE", "chatroom:events", "-", "+")]
    assert events == [
        ["k", "R", "r", "Lounge"],
        ["k", "J", "r", "Lounge", "u", "alice", "t", STAMP],
        ["k", "M", "r", "Lounge", "d", f"{STAMP} alice hello there"],
        ["k", "U", "u", "Alice"],
    ]
    user = await call(backend, "HGET", "chatroom:users", "alice")
    assert user.startswith("Alice:bcrypt-sha256$2b$04$")
    assert pairs(await call(backend, "HGETALL", "chatroom:present")) == {"Lounge alice": "1"}
    process = backend.process_id
    assert pairs(await call(backend, "HGETALL", f"chatroom:proc:{process}")) == {
        "Lounge alice": "1"
    }
    assert await call(backend, "SMEMBERS", "chatroom:procs") == [process]
    assert await call(backend, "EXISTS", f"chatroom:alive:{process}") == 1


@pytest_twisted.ensureDeferred
async def test_an_account_added_elsewhere_is_known_at_once(redis_stores: RedisStores) -> None:
    _, _, here = await redis_stores.start(accounts=True)
    there_backend, there_heard, there = await redis_stores.start(accounts=True)
    await within(here.add_user("Alice", "password1"))
    # The account's event is in the stream before this message's.
    await within(there_backend.publish("general", [(STAMP, "bob", "hi")]))
    assert await there_heard.next() == ("msg", "general", "bob", "hi")
    assert there.user_exists("alice")
    assert there.spelling("ALICE") == "Alice"


@pytest_twisted.ensureDeferred
async def test_kinds_nobody_here_owns_are_passed_over(redis_stores: RedisStores) -> None:
    backend, heard, _ = await redis_stores.start()
    await call(backend, "XADD", "chatroom:events", "*", "k", "Z", "r", "general", "x", "1")
    await within(backend.publish("general", [(STAMP, "alice", "still here")]))
    assert await heard.next() == ("msg", "general", "alice", "still here")


def test_an_event_kind_has_one_owner() -> None:
    connection = RedisConnection(MemoryReactorClock(), parse_redis_url("redis://127.0.0.1/0"))
    connection.on_event("X", lambda entry: None)
    with pytest.raises(ValueError, match="'X' is taken"):
        connection.on_event("X", lambda entry: None)


def test_each_feature_registers_its_kinds_and_scripts() -> None:
    backend = RedisBackend(MemoryReactorClock(), parse_redis_url("redis://127.0.0.1/0"))
    connection = backend.connection
    assert sorted(connection._handlers) == ["D", "J", "M", "O", "P", "R"]
    before = len(connection.commands.scripts)
    RedisAccounts(backend)
    assert sorted(connection._handlers) == ["D", "J", "M", "O", "P", "R", "U"]
    # add.lua is shared with rooms; the snapshot grew a part.
    assert len(connection.commands.scripts) == before
    assert connection.commands.scripts == connection.reader.scripts


def test_the_lua_is_in_files_with_its_placeholders_filled() -> None:
    lua = resources.files("chat.storage.redis") / "lua"
    names = sorted(p.name for p in lua.iterdir() if p.name.endswith(".lua"))
    assert "rooms_say.lua" in names and "presence.lua" in names
    backend = RedisBackend(
        MemoryReactorClock(), parse_redis_url("redis://127.0.0.1/0"), prefix="p:", events_cap=7
    )
    RedisAccounts(backend)
    for text in backend.commands.scripts:
        assert "{prefix}" not in text and "{events_cap}" not in text
        assert "'p:'" in text
    assert any("'MAXLEN', '~', 7, '*'" in text for text in backend.commands.scripts)
