"""
Session tokens in Redis (L{chat.storage.tokens.ITokenStore}), shared by
every process pointed at it.

Each account's tokens are a hash, C{tokens:<user>} (lower-case name):
the token's SHA-256 in hex -> its expiry, integer POSIX seconds.  Nothing
is kept in a process's memory: checking a token is one C{HGET}, so that a
revocation by any process (a C{DEL} of the hash) counts on every process
at once, with no event to wait for.  Adding one is a script
(C{tokens_add.lua}) that also drops the account's expired tokens and has
the hash expire with its latest one, so that Redis forgets accounts whose
tokens have all expired.
"""

# test-case-name: tests.storage.test_tokens

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from chat.storage.redis.connection import RedisConnection
from chat.storage.tokens import ITokenStore

__all__ = ["RedisTokens"]


@implementer(ITokenStore)
class RedisTokens:
    """
    Session tokens in Redis, on the connection the other features share.

    @ivar clock: What says which tokens have expired when one is added
        (the connection's reactor): the process's clock, as for L{valid}'s
        C{now}, not Redis's.
    """

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self.clock: IReactorTime = connection.reactor
        self._add = connection.script("tokens_add.lua")

    def _key(self, user: str) -> str:
        return self.connection.key(f"tokens:{user.lower()}")

    def start(self) -> Deferred[None]:
        return succeed(None)

    def close(self) -> None:
        """
        The connection is the backend's to close.
        """

    def add(self, user: str, digest: str, expires: float) -> Deferred[None]:
        now = int(self.clock.seconds())
        d = self.connection.call(self._add, user.lower(), digest, int(expires), now)
        return d.addCallback(lambda _: None)

    def valid(self, user: str, digest: str, now: float) -> Deferred[bool]:
        d: Deferred[str | None] = self.connection.execute("HGET", self._key(user), digest)

        def check(expires: str | bytes | None) -> bool:
            if expires is None:
                return False
            try:
                return now < int(expires)
            except ValueError:
                return False

        return d.addCallback(check)

    def revoke_all(self, user: str) -> Deferred[None]:
        d = self.connection.execute("DEL", self._key(user))
        return d.addCallback(lambda _: None)
