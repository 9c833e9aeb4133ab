"""
Accounts in the Redis hash C{users} (lower-case name -> C{Name:hash}),
added with an event (C{U}) so that every process learns the name; a
password change replaces the field, with no event (logins read it).
"""

# test-case-name: tests.storage.test_accounts

from __future__ import annotations

from functools import partial

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from chat.storage.accounts import AccountStore
from chat.storage.common import Runner, StoreUnavailable
from chat.storage.passwords import hash_password
from chat.storage.redis.connection import Event, RedisConnection, added_or_taken
from chat.storage.redis.rooms import RedisBackend

__all__ = ["RedisAccounts"]


class RedisAccounts(AccountStore):
    """
    Accounts in Redis, checked and added with bcrypt in the server's pool,
    as L{chat.storage.files.accounts.BcryptFileChecker} does with a file.

    @ivar known: Every account's name as registered, by its lower-case
        name, kept up to date
        from the event stream, so that C{user_exists} (asked while a user
        types) needs no round trip; adding is decided by Redis.
    """

    log = Logger()

    def __init__(
        self,
        connection: RedisConnection | RedisBackend,
        rounds: int = 12,
        run: Runner | None = None,
    ) -> None:
        """
        @param connection: The Redis connection to share, or the backend
            whose connection to share.
        """
        super().__init__()
        if isinstance(connection, RedisBackend):
            connection = connection.connection
        self.connection = connection
        self.rounds = rounds
        self.run = run
        self.known: dict[str, str] = {}
        self._add = connection.script("add.lua")
        connection.on_event("U", self._added)
        connection.on_snapshot("accounts_snapshot.lua", list, self._loaded)

    def _added(self, entry: Event) -> None:
        name = entry["u"]
        self.known[name.lower()] = name

    def _loaded(self, names: list[str]) -> None:
        self.known.update((name.lower(), name) for name in names)

    def _has(self, key: str) -> bool:
        return key in self.known

    def _spelled(self, key: str) -> str | None:
        return self.known.get(key)

    def _stored(self, key: str) -> Deferred[tuple[str, str] | None]:
        def parse(record: str | None) -> tuple[str, str] | None:
            known, _, stored = (record or "").partition(":")
            return (known, stored) if stored else None

        d: Deferred[str | None] = self.connection.execute("HGET", self.connection.key("users"), key)
        return d.addCallback(parse)

    def _store(self, key: str, name: str, password: str) -> Deferred[None]:
        assert self.run is not None
        connection = self.connection
        d: Deferred[str] = self.run(hash_password, password, self.rounds)

        def store(stored: str) -> Deferred[None]:
            added = connection.call(self._add, "users", key, f"{name}:{stored}", "U", "u", name)
            return added.addCallback(added_or_taken, name)

        def known(_: None) -> None:
            self.known[key] = name

        return d.addCallback(store).addCallback(known)

    def _replace(self, key: str, password: str) -> Deferred[None]:
        """
        Replace the account's field of C{users}: every process reads it at
        each login, so the next login anywhere checks the new hash, with
        no event.  The name as registered is read back first, to be kept;
        accounts are never removed, so nothing can come between the read
        and the write that would make the write wrong.
        """
        assert self.run is not None
        connection = self.connection
        hashed: Deferred[str] = self.run(hash_password, password, self.rounds)

        def write(stored: str, entry: tuple[str, str] | None) -> Deferred[None]:
            if entry is None:
                raise StoreUnavailable(f"no account {key}")
            name, _ = entry
            d = connection.execute("HSET", connection.key("users"), key, f"{name}:{stored}")
            return d.addCallback(
                lambda _: self.log.info("Changed the password of {name}", name=name)
            )

        hashed.addCallback(lambda stored: self._stored(key).addCallback(partial(write, stored)))
        return hashed.addCallback(lambda _: None)
