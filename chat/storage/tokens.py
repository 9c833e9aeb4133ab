"""
Session tokens: what lets a client log in again without its password
(C{/resume}), cheap to check where a bcrypt hash is not.

A token is shown to its owner once (C{OK token <token>}) and stored only as
its SHA-256 (L{token_hash}), with its expiry: a copy of the data directory
or of Redis does not let anyone log in.  Revoking is per account, all its
tokens at once (C{/logout-all}, a password change, an admin's C{/lock}).

Implementations: L{chat.storage.files.tokens} and
L{chat.storage.redis.tokens}, as the backends' C{tokens} attribute.
Contract: L{tests.storage.test_tokens}.
"""

# test-case-name: tests.storage.test_tokens

from __future__ import annotations

import hashlib
import secrets

from twisted.internet.defer import Deferred
from zope.interface import Interface

__all__ = ["ITokenStore", "new_token", "token_hash"]

#: How long a token lasts unless C{--token-ttl} says otherwise: 30 days.
DEFAULT_TTL = 30 * 24 * 3600


def new_token() -> str:
    """
    A new token: 256 random bits, URL-safe base64 (no spaces, no C{:}).
    """
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """
    What is stored of a token: its SHA-256, in hex.  A token has 256 bits of
    randomness, so a fast hash is enough (no salt, no bcrypt): nobody can
    guess one from its hash.
    """
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


class ITokenStore(Interface):
    """
    Where session tokens are kept, by account (lower-case names).  Every
    change fires only once durable; failures are
    L{chat.storage.common.StoreUnavailable}, with nothing half-done.
    """

    def start() -> Deferred[None]:
        """
        Read what is needed (files), or nothing (Redis).
        """

    def add(user: str, digest: str, expires: float) -> Deferred[None]:
        """
        Keep a token of C{user}, by its hash (L{token_hash}), valid until
        C{expires} (POSIX seconds).  Expired tokens of the account may be
        forgotten meanwhile.
        """

    def valid(user: str, digest: str, now: float) -> Deferred[bool]:
        """
        Whether C{user} has this token, not expired at C{now} and not
        revoked.  On Redis, what any process revoked counts at once.
        """

    def revoke_all(user: str) -> Deferred[None]:
        """
        Forget every token of C{user}, on every process.
        """

    def close() -> None:
        """
        Let go of files (a no-op where there are none).
        """
