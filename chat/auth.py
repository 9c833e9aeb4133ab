"""
Accounts: the default credentials checker, a bcrypt user file.

The file is C{DATA/users.txt}, one C{name:hash} per line.  Hashes are
C{bcrypt-sha256$2b$...}: bcrypt over the base64 of the password's SHA-256,
because bcrypt alone reads only the first 72 bytes and chatroom promises
that every one of up to 128 characters counts.  Plain C{$2b$} hashes (made
by other tools) are accepted too, for passwords of up to 72 bytes.

bcrypt is slow on purpose (about 0.3 s at cost 12), so every hash runs in a
thread pool that belongs to the server and is sized for it: a storm of
logins queues there instead of freezing the chat.
"""

# test-case-name: tests.test_auth

from __future__ import annotations

import base64
import functools
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import bcrypt
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.logger import Logger
from zope.interface import implementer

from chat.commands import valid_name
from chat.interfaces import IAccountStore, NameTaken, StoreUnavailable
from chat.store import Runner

__all__ = ["BcryptFileChecker", "check_password", "decode_credentials", "hash_password"]

_SCHEME = "bcrypt-sha256"


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password: str, rounds: int) -> str:
    """
    Hash a password for the user file.  Blocks for as long as C{rounds}
    asks: call it in a thread.
    """
    hashed = bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds))
    return _SCHEME + hashed.decode("ascii")


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
        if stored.startswith(_SCHEME + "$"):
            return bcrypt.checkpw(_prehash(password), stored[len(_SCHEME) :].encode())
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


def _valid_hash(stored: str) -> bool:
    return stored.startswith(_SCHEME + "$2") or stored.startswith("$2")


def _run_inline(f: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
    return maybeDeferred(f, *args, **kwargs)


@implementer(ICredentialsChecker, IAccountStore)
class BcryptFileChecker:
    """
    Checks C{IUsernamePassword} credentials against a bcrypt user file, and
    adds accounts to it.

    Names are unique without regard to case; the avatar ID is the name as
    registered, whatever case the login used.

    @ivar rounds: The bcrypt cost for new hashes.
    @ivar run: Where bcrypt runs; the server points it at its own pool.
    """

    credentialInterfaces = (IUsernamePassword,)
    log = Logger()

    def __init__(self, path: Path | str, rounds: int = 12, run: Runner = _run_inline) -> None:
        self.path = Path(path)
        self.rounds = rounds
        self.run = run
        self._users: dict[str, bytes] = {}
        self._pending: set[str] = set()
        self._write_lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        """
        Read the user file.  Runs once at start-up, before the server
        listens, so it cannot delay anyone.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            name, sep, stored = line.rstrip("\r").partition(":")
            if not sep or not valid_name(name) or not _valid_hash(stored):
                self.log.warn(
                    "{path}:{number}: skipping a damaged account line",
                    path=str(self.path),
                    number=number,
                )
                continue
            if name.lower() in self._users:
                self.log.warn(
                    "{path}:{number}: skipping a second account named {name}",
                    path=str(self.path),
                    number=number,
                    name=name,
                )
                continue
            self._remember(name, stored)

    def _remember(self, name: str, stored: str) -> None:
        """
        Keep an account in memory as one short C{bytes} (see L{_recall}), at
        tens of thousands of them: C{name:hash} with the name left out when
        it is its own key (already lower case) and the hash without its
        scheme's name.  For a C{bcrypt-sha256} hash that is 96 bytes an
        account where the file's line as a C{str} took 160.
        """
        key = name.lower()
        if stored.startswith(_SCHEME + "$"):
            # "2b$...": no "$" first, unlike a plain bcrypt hash.
            stored = stored[len(_SCHEME) + 1 :]
        self._users[name if key == name else key] = (
            f"{'' if key == name else name}:{stored}".encode()
        )

    def _recall(self, key: str) -> tuple[str, str] | None:
        """
        The name as registered and the stored hash of the account whose
        lower-case name is C{key}, as L{_remember} kept them.
        """
        record = self._users.get(key)
        if record is None:
            return None
        # Names have no ":", so the first one ends the name.
        name, _, stored = record.decode().partition(":")
        if not stored.startswith("$"):
            stored = _SCHEME + "$" + stored
        return name or key, stored

    def user_exists(self, name: str) -> bool:
        key = name.lower()
        return key in self._users or key in self._pending

    # Twisted types avatar IDs as bytes; chatroom's are the str names.
    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[str]:  # type: ignore[override]
        try:
            name, password = decode_credentials(credentials)
        except UnicodeDecodeError:
            return fail(UnauthorizedLogin())
        entry = self._recall(name.lower())
        known, stored = entry if entry is not None else ("", None)

        def checked(ok: bool) -> str:
            if ok and entry is not None:
                return known
            raise UnauthorizedLogin()

        d: Deferred[bool] = self.run(check_password, password, stored, self.rounds)
        return d.addCallback(checked)

    def add_user(self, name: str, password: str) -> Deferred[None]:
        key = name.lower()
        if self.user_exists(name):
            return fail(NameTaken(name))
        self._pending.add(key)

        def write() -> str:
            stored = hash_password(password, self.rounds)
            line = f"{name}:{stored}\n".encode()
            with self._write_lock:
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    size = os.fstat(fd).st_size
                    try:
                        if size and os.pread(fd, 1, size - 1) != b"\n":
                            # A torn line from a crash: end it so ours stands alone.
                            line = b"\n" + line
                    except OSError:
                        pass
                    if os.write(fd, line) != len(line):
                        os.ftruncate(fd, size)
                        raise OSError("short write")
                    os.fsync(fd)
                finally:
                    os.close(fd)
            return stored

        def added(stored: str) -> None:
            self._pending.discard(key)
            self._remember(name, stored)
            self.log.info("Registered account {name}", name=name)

        def failed(f: Any) -> Any:
            self._pending.discard(key)
            self.log.failure("Could not store the account {name}", f, name=name)
            raise StoreUnavailable(str(f.value))

        d: Deferred[str] = self.run(write)
        return d.addCallbacks(added, failed)
