"""
Accounts in a bcrypt user file: the default credentials checker.

The file is C{DATA/users.txt}, one C{name:hash} per line (hashes as
L{chat.storage.passwords} makes them).  Every account is read into memory
at start-up; adding one appends a line and fsyncs it; changing a password
rewrites the file whole (a temporary file renamed over it).
"""

# test-case-name: tests.storage.test_accounts, tests.storage.test_files_accounts

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from chat.commands import valid_name
from chat.storage.accounts import AccountStore
from chat.storage.common import Runner, StoreUnavailable
from chat.storage.files.logs import fsync_directory
from chat.storage.passwords import SCHEME, hash_password, run_inline, valid_hash

__all__ = ["BcryptFileChecker"]


class BcryptFileChecker(AccountStore):
    """
    Checks C{IUsernamePassword} credentials against a bcrypt user file, and
    adds accounts to it.

    Names are unique without regard to case; the avatar ID is the name as
    registered, whatever case the login used.

    @ivar rounds: The bcrypt cost for new hashes.
    @ivar run: Where bcrypt runs; the server points it at its own pool.
    """

    log = Logger()
    run: Runner

    def __init__(self, path: Path | str, rounds: int = 12, run: Runner = run_inline) -> None:
        super().__init__()
        self.path = Path(path)
        self.rounds = rounds
        self.run = run
        self._users: dict[str, bytes] = {}
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
            if not sep or not valid_name(name) or not valid_hash(stored):
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
        if stored.startswith(SCHEME + "$"):
            # "2b$...": no "$" first, unlike a plain bcrypt hash.
            stored = stored[len(SCHEME) + 1 :]
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
            stored = SCHEME + "$" + stored
        return name or key, stored

    def _has(self, key: str) -> bool:
        return key in self._users

    def _spelled(self, key: str) -> str | None:
        record = self._users.get(key)
        if record is None:
            return None
        return record[: record.index(b":")].decode() or key

    def _stored(self, key: str) -> Deferred[tuple[str, str] | None]:
        return succeed(self._recall(key))

    def _store(self, key: str, name: str, password: str) -> Deferred[None]:
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
            self._remember(name, stored)

        def failed(f: Any) -> Any:
            self.log.failure("Could not store the account {name}", f, name=name)
            raise StoreUnavailable(str(f.value))

        d: Deferred[str] = self.run(write)
        return d.addCallbacks(added, failed)

    def _replace(self, key: str, password: str) -> Deferred[None]:
        """
        Rewrite the user file whole with the account's new hash, from the
        file as it is, not from memory: a registration whose line is
        written, but not yet remembered, must not be lost.  Under the write
        lock, so that no line is appended meanwhile; the old hash stands
        in memory (and logs in) until the new file is durable.
        """

        def write() -> tuple[str, str]:
            stored = hash_password(password, self.rounds)
            with self._write_lock:
                try:
                    data = self.path.read_bytes()
                except FileNotFoundError:
                    data = b""
                replaced = _with_hash(data, key, stored)
                if replaced is None:
                    raise KeyError(f"no account {key} in {self.path}")
                name, data = replaced
                _rewrite(self.path, data)
            return name, stored

        def replaced(found: tuple[str, str]) -> None:
            name, stored = found
            self._remember(name, stored)
            self.log.info("Changed the password of {name}", name=name)

        def failed(f: Any) -> Any:
            self.log.failure("Could not change the password of {name}", f, name=key)
            raise StoreUnavailable(str(f.value))

        d: Deferred[tuple[str, str]] = self.run(write)
        return d.addCallbacks(replaced, failed)


def _with_hash(data: bytes, key: str, stored: str) -> tuple[str, bytes] | None:
    """
    The user file C{data} with the hash of the account C{key} replaced
    (its line as L{BcryptFileChecker._load} finds it: the first sound one
    of that name), and the name as registered; L{None} if it has none.
    Every other line is kept byte for byte, damaged ones too.
    """
    lines = data.split(b"\n")
    for number, raw in enumerate(lines):
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        name, sep, old = line.partition(":")
        if sep and name.lower() == key and valid_name(name) and valid_hash(old):
            lines[number] = f"{name}:{stored}".encode()
            text = b"\n".join(lines)
            if not text.endswith(b"\n"):
                # A torn last line (or none): end it, as an append would.
                text += b"\n"
            return name, text
    return None


def _rewrite(path: Path, data: bytes) -> None:
    """
    Make C{path} hold C{data}, whole or not at all, durably, readable by
    its owner only (it holds password hashes): a temporary file written,
    fsynced, renamed over it, the directory fsynced.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            if not written:
                raise OSError(errno.ENOSPC, "short write")
            view = view[written:]
        os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)
