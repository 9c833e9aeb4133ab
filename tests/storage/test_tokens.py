"""
The contract of L{chat.storage.tokens.ITokenStore}: the same test bodies
on files (L{chat.storage.files.tokens}) and on Redis
(L{chat.storage.redis.tokens}), each reached as C{backend.tokens}.

Expiry is by the C{now} each check is given; what a store drops when it
adds a token is by its C{clock}, which tests replace with a L{Clock}.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from zope.interface.verify import verifyObject

from chat.storage.common import StoreUnavailable
from chat.storage.tokens import DEFAULT_TTL, ITokenStore, new_token, token_hash
from tests.helpers import HeldRunner
from tests.storage.backends import RedisStores, Stores, within

#: Now, in whole seconds, so that expiries compare exactly.
NOW = int(time.time())


async def start(stores: Stores) -> Any:
    """
    A process's session tokens (C{backend.tokens}).
    """
    backend, _, _ = await stores.start()
    return backend.tokens


async def issue(tokens: Any, user: str, expires: float = NOW + DEFAULT_TTL) -> str:
    """
    A new token of C{user}, stored: what C{/token} would show.
    """
    token = new_token()
    await within(tokens.add(user, token_hash(token), expires))
    return token


async def valid(tokens: Any, user: str, token: str, now: float = NOW) -> bool:
    return bool(await within(tokens.valid(user, token_hash(token), now)))


@pytest_twisted.ensureDeferred
async def test_provides(stores: Stores) -> None:
    tokens = await start(stores)
    assert verifyObject(ITokenStore, tokens)


def test_tokens_are_long_random_and_printable() -> None:
    token = new_token()
    # 32 random bytes: 256 bits, 43 URL-safe base64 characters.
    assert len(token) == 43
    assert token.isprintable() and " " not in token and ":" not in token
    assert new_token() != token
    assert token_hash(token) == token_hash(token)
    assert len(token_hash(token)) == 64
    assert token_hash(token) != token_hash(new_token())


@pytest_twisted.ensureDeferred
async def test_a_stored_token_is_valid_in_any_case(stores: Stores) -> None:
    tokens = await start(stores)
    token = await issue(tokens, "Alice")
    assert await valid(tokens, "Alice", token)
    assert await valid(tokens, "aLICE", token)


@pytest_twisted.ensureDeferred
async def test_a_wrong_token_or_another_users_is_not(stores: Stores) -> None:
    tokens = await start(stores)
    alices = await issue(tokens, "alice")
    bobs = await issue(tokens, "bob")
    assert not await valid(tokens, "alice", new_token())
    assert not await valid(tokens, "alice", bobs)
    assert not await valid(tokens, "bob", alices)
    assert not await valid(tokens, "carol", alices)
    # The token itself is not its hash: only the hash of the token counts.
    assert not await within(tokens.valid("alice", alices, NOW))
    assert await valid(tokens, "bob", bobs)


@pytest_twisted.ensureDeferred
async def test_a_token_expires(stores: Stores) -> None:
    tokens = await start(stores)
    token = await issue(tokens, "alice", NOW + 60)
    assert await valid(tokens, "alice", token, NOW + 59.999)
    assert not await valid(tokens, "alice", token, NOW + 60)
    assert not await valid(tokens, "alice", token, NOW + DEFAULT_TTL)
    again = await start(stores)
    assert await valid(again, "alice", token, NOW + 59)
    assert not await valid(again, "alice", token, NOW + 61)


@pytest_twisted.ensureDeferred
async def test_expiries_are_kept_in_whole_seconds(stores: Stores) -> None:
    tokens = await start(stores)
    token = await issue(tokens, "alice", NOW + 60.75)
    assert await valid(tokens, "alice", token, NOW + 59.5)
    assert not await valid(tokens, "alice", token, NOW + 60.25)


@pytest_twisted.ensureDeferred
async def test_tokens_survive_a_restart(stores: Stores) -> None:
    tokens = await start(stores)
    first = await issue(tokens, "alice")
    second = await issue(tokens, "alice")
    bobs = await issue(tokens, "Bob")
    again = await start(stores)
    assert await valid(again, "ALICE", first)
    assert await valid(again, "alice", second)
    assert await valid(again, "bob", bobs)


@pytest_twisted.ensureDeferred
async def test_adds_at_once_are_all_kept(stores: Stores) -> None:
    tokens = await start(stores)
    made = [new_token() for _ in range(5)]
    adds = [tokens.add("alice", token_hash(token), NOW + 60) for token in made]
    for d in adds:
        assert await within(d) is None
    again = await start(stores)
    for token in made:
        assert await valid(again, "alice", token)


@pytest_twisted.ensureDeferred
async def test_revoke_all_revokes_every_token_of_the_account_only(stores: Stores) -> None:
    tokens = await start(stores)
    first = await issue(tokens, "alice")
    second = await issue(tokens, "alice")
    bobs = await issue(tokens, "bob")
    assert await within(tokens.revoke_all("ALICE")) is None
    assert not await valid(tokens, "alice", first)
    assert not await valid(tokens, "alice", second)
    assert await valid(tokens, "bob", bobs)
    # A restart does not bring them back.
    again = await start(stores)
    assert not await valid(again, "alice", first)
    assert not await valid(again, "alice", second)
    assert await valid(again, "bob", bobs)
    # New tokens work again.
    third = await issue(again, "alice")
    assert await valid(again, "alice", third)
    # Revoking with nothing to revoke is no error.
    assert await within(again.revoke_all("carol")) is None


@pytest_twisted.ensureDeferred
async def test_a_revocation_counts_at_once_on_every_process(redis_stores: RedisStores) -> None:
    one = await start(redis_stores)
    two = await start(redis_stores)
    token = await issue(one, "alice")
    assert await valid(two, "alice", token)
    await within(two.revoke_all("alice"))
    # No event to wait for: the very next check on either process refuses.
    assert not await valid(one, "alice", token)
    assert not await valid(two, "alice", token)


@pytest_twisted.ensureDeferred
async def test_only_the_hash_is_stored(stores: Stores) -> None:
    tokens = await start(stores)
    token = await issue(tokens, "alice")
    assert stores.raw_contains(token_hash(token))
    assert not stores.raw_contains(token)


@pytest_twisted.ensureDeferred
async def test_expired_tokens_are_dropped_when_another_is_added(stores: Stores) -> None:
    tokens = await start(stores)
    tokens.clock = clock = Clock()
    clock.advance(NOW)
    old = await issue(tokens, "alice", NOW + 10)
    kept = await issue(tokens, "alice", NOW + 100)
    clock.advance(10)
    await issue(tokens, "alice", NOW + 200)
    assert not stores.raw_contains(token_hash(old))
    assert stores.raw_contains(token_hash(kept))
    assert await valid(tokens, "alice", kept)
    # One that is expired when added is not kept either.
    stale = await issue(tokens, "alice", NOW)
    assert not stores.raw_contains(token_hash(stale))
    assert not await valid(tokens, "alice", stale, NOW - 1)


@pytest_twisted.ensureDeferred
async def test_the_hash_expires_with_its_latest_token(redis_stores: RedisStores) -> None:
    backend, _, _ = await redis_stores.start()
    tokens = backend.tokens
    await issue(tokens, "alice", NOW + 500)
    await issue(tokens, "alice", NOW + 300)
    key = backend.connection.key("tokens:alice")
    assert await within(backend.connection.execute("EXPIRETIME", key)) == NOW + 500
    await within(tokens.revoke_all("alice"))
    assert await within(backend.connection.execute("EXISTS", key)) == 0


@pytest_twisted.ensureDeferred
async def test_unavailable_changes_nothing(stores: Stores) -> None:
    tokens = await start(stores)
    kept = await issue(tokens, "alice")
    stores.break_()
    lost = new_token()
    with capturedLogs():
        with pytest.raises(StoreUnavailable):
            await within(tokens.add("alice", token_hash(lost), NOW + 60))
        with pytest.raises(StoreUnavailable):
            await within(tokens.revoke_all("alice"))
    stores.repair()
    again = await start(stores)
    assert await valid(again, "alice", kept)
    assert not await valid(again, "alice", lost)


@pytest_twisted.ensureDeferred
async def test_files_write_one_account_at_a_time(tmp_path: Any) -> None:
    """
    A later change must not be overwritten by an earlier one finishing
    late: each write starts from what the one before it stored.
    """
    from tests.storage.backends import FileStores

    stores = FileStores(tmp_path / "data")
    try:
        tokens = await start(stores)
        held = HeldRunner()
        tokens._run = held
        first, second = new_token(), new_token()
        one = tokens.add("alice", token_hash(first), NOW + 60)
        two = tokens.add("alice", token_hash(second), NOW + 60)
        bobs = tokens.add("bob", token_hash(new_token()), NOW + 60)
        # Alice's second write waits for her first; Bob's does not.
        assert len(held.jobs) == 2
        held.release()
        await within(one)
        await within(bobs)
        assert len(held.jobs) == 1
        held.release()
        await within(two)
        again = await start(stores)
        assert await valid(again, "alice", first)
        assert await valid(again, "alice", second)
        assert tokens._writes == {}
    finally:
        await stores.stop()


@pytest_twisted.ensureDeferred
async def test_files_skip_damaged_lines_and_leftovers(tmp_path: Any) -> None:
    from tests.storage.backends import FileStores

    stores = FileStores(tmp_path / "data")
    try:
        token, other = new_token(), new_token()
        directory = stores.data / "tokens"
        directory.mkdir(parents=True)
        (directory / "alice").write_text(
            f"nonsense\n{token_hash(other)} soon\n{token_hash(token)} {NOW + 60}\n"
            f"{token_hash(other)[:10]}"
        )
        # What a write cut short by a crash leaves, and what is no account.
        (directory / "alice.tmp").write_text(f"{token_hash(other)} {NOW + 60}\n")
        (directory / "Bob").write_text(f"{token_hash(other)} {NOW + 60}\n")
        with capturedLogs() as events:
            tokens = await start(stores)
        assert len([e for e in events if e["log_level"].name == "warn"]) == 3
        assert await valid(tokens, "alice", token)
        assert not await valid(tokens, "alice", other)
        assert not await valid(tokens, "bob", other)
    finally:
        await stores.stop()
