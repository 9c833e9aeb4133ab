"""
Accounts in the Redis hash C{users} (lower-case name -> C{Name:hash}),
added with an event (C{U}) so that every process learns the name.
"""

# test-case-name: tests.storage.test_accounts

from __future__ import annotations

from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chat.storage.accounts import IAccountStore
from chat.storage.common import NameTaken, Runner
from chat.storage.passwords import check_password, decode_credentials, hash_password
from chat.storage.redis.connection import Event, RedisConnection, added_or_taken
from chat.storage.redis.rooms import RedisBackend

__all__ = ["RedisAccounts"]


@implementer(ICredentialsChecker, IAccountStore)
class RedisAccounts:
    """
    Accounts in Redis, checked and added with bcrypt in the server's pool,
    as L{chat.storage.files.accounts.BcryptFileChecker} does with a file.

    @ivar known: The lower-case names of every account, kept up to date
        from the event stream, so that C{user_exists} (asked while a user
        types) needs no round trip; adding is decided by Redis.
    """

    credentialInterfaces = (IUsernamePassword,)
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
        if isinstance(connection, RedisBackend):
            connection = connection.connection
        self.connection = connection
        self.rounds = rounds
        self.run = run
        self.known: set[str] = set()
        self._pending: set[str] = set()
        self._add = connection.script("add.lua")
        connection.on_event("U", self._added)
        connection.on_snapshot("accounts_snapshot.lua", list, self._loaded)

    def _added(self, entry: Event) -> None:
        self.known.add(entry["u"].lower())

    def _loaded(self, names: list[str]) -> None:
        self.known.update(names)

    def user_exists(self, name: str) -> bool:
        key = name.lower()
        return key in self.known or key in self._pending

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[str]:  # type: ignore[override]
        try:
            name, password = decode_credentials(credentials)
        except UnicodeDecodeError:
            return fail(UnauthorizedLogin())
        assert self.run is not None
        run = self.run
        d = self.connection.execute("HGET", self.connection.key("users"), name.lower())

        def check(record: str | None) -> Deferred[str]:
            known, _, stored = (record or "").partition(":")
            checked: Deferred[bool] = run(check_password, password, stored or None, self.rounds)

            def verdict(ok: bool) -> str:
                if ok and record:
                    return known
                raise UnauthorizedLogin()

            return checked.addCallback(verdict)

        return d.addCallback(check)

    def add_user(self, name: str, password: str) -> Deferred[None]:
        key = name.lower()
        if self.user_exists(name):
            return fail(NameTaken(name))
        self._pending.add(key)
        assert self.run is not None
        connection = self.connection
        d: Deferred[str] = self.run(hash_password, password, self.rounds)

        def store(stored: str) -> Deferred[None]:
            added = connection.call(self._add, "users", key, f"{name}:{stored}", "U", "u", name)
            return added.addCallback(added_or_taken, name)

        def done(result: Any) -> Any:
            self._pending.discard(key)
            if not isinstance(result, Failure):
                self.known.add(key)
                self.log.info("Registered account {name}", name=name)
            return result

        return d.addCallback(store).addBoth(done)
