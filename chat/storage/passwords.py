"""
Passwords as every account store keeps them: bcrypt, run off the reactor.

Hashes are C{bcrypt-sha256$2b$...}: bcrypt over the base64 of the
password's SHA-256, because bcrypt alone reads only the first 72 bytes
and chatroom promises that every one of up to 128 characters counts.  Plain C{$2b$} hashes (made
by other tools) are accepted too, for passwords of up to 72 bytes.

bcrypt is slow on purpose (about 0.3 s at cost 12), so every hash runs in a
thread pool that belongs to the server and is sized for it: a storm of
logins queues there instead of freezing the chat.
"""

# test-case-name: tests.storage.test_files_accounts, tests.storage.test_accounts

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Any

import bcrypt
from twisted.cred.credentials import IUsernamePassword
from twisted.internet.defer import Deferred, maybeDeferred

__all__ = [
    "SCHEME",
    "check_password",
    "decode_credentials",
    "hash_password",
    "run_inline",
    "valid_hash",
]

SCHEME = "bcrypt-sha256"


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password: str, rounds: int) -> str:
    """
    Hash a password for the user file.  Blocks for as long as C{rounds}
    asks: call it in a thread.
    """
    hashed = bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds))
    return SCHEME + hashed.decode("ascii")


@functools.lru_cache(maxsize=4)
def _decoy(rounds: int) -> str:
    return hash_password("decoy password", rounds)


def check_password(password: str, stored: str | None, rounds: int = 12) -> bool:
    """
    Whether C{password} matches a hash from the user file.  Blocks like
    L{hash_password}.

    @param stored: The account's hash, or L{None} for a name with no
        account: the password is then checked against a decoy hash of the
        same cost (made once, in the calling thread) and does not match,
        so that a login takes as long whether or not the name exists.
    """
    if stored is None:
        check_password(password, _decoy(rounds))
        return False
    try:
        if stored.startswith(SCHEME + "$"):
            return bcrypt.checkpw(_prehash(password), stored[len(SCHEME) :].encode())
        if stored.startswith("$2"):
            raw = password.encode("utf-8")
            # Never let bcrypt truncate: a longer password cannot match.
            return len(raw) <= 72 and bcrypt.checkpw(raw, stored.encode())
    except ValueError:
        return False
    return False


def decode_credentials(credentials: IUsernamePassword) -> tuple[str, str]:
    """
    The name and password as text: Twisted's credentials may hold bytes.

    @raise UnicodeDecodeError: They are not UTF-8 (no such account can exist).
    """
    name, password = credentials.username, credentials.password
    return (
        name.decode() if isinstance(name, bytes) else name,
        password.decode() if isinstance(password, bytes) else password,
    )


def valid_hash(stored: str) -> bool:
    return stored.startswith(SCHEME + "$2") or stored.startswith("$2")


def run_inline(f: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
    return maybeDeferred(f, *args, **kwargs)
