"""
Session tokens as files under the data directory, for one process
(L{TokenFiles}).

Layout: C{DATA/tokens/<user>} (the account's name in lower case), one
line per token, C{<sha256-hex> <expires as integer POSIX seconds>}.  A
file is replaced whole on each change (a temporary file written, fsynced
and renamed, the directory fsynced), in a thread, one write at a time per
file, so that a later change is never overwritten by an earlier one
finishing late; the tokens that have expired are left out of each
rewrite.  An account with no token left has no file.

Every file is read into memory at start: checking a token (C{/resume},
thousands at once after a restart) is a dictionary lookup, with no disk
and no thread.
"""

# test-case-name: tests.storage.test_tokens

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chat.commands import valid_name
from chat.storage.common import Runner, StoreUnavailable
from chat.storage.files.logs import fsync_directory, replace_file
from chat.storage.tokens import ITokenStore

__all__ = ["TokenFiles"]

_TOKENS = "tokens"
_DIGEST = 64

#: One account's tokens: hash -> expiry (integer POSIX seconds).
Tokens = dict[str, int]


@implementer(ITokenStore)
class TokenFiles:
    """
    Session tokens of one process, in files, all of them in memory.

    @ivar dir: Where the files are (C{DATA/tokens}).
    @ivar clock: What says which tokens have expired when a file is
        rewritten or read (the server's reactor).
    """

    log = Logger()

    def __init__(self, data: Path, run: Runner, clock: IReactorTime) -> None:
        """
        @param run: Where blocking work goes (writes, fsync).
        """
        self.data = Path(data)
        self.dir = self.data / _TOKENS
        self._run = run
        self.clock = clock
        #: By lower-case name, the tokens as stored: what the next write of
        #: that account's file starts from.  Only durable changes are here.
        self._tokens: dict[str, Tokens] = {}
        #: The accounts whose file is being written, one write at a time.
        self._writes: dict[str, DeferredLock] = {}

    # Start and close

    def start(self) -> Deferred[None]:
        """
        Read every account's tokens (small files, one per account that has
        any), inside this call, as the rooms are loaded: before the server
        listens, failing it if they cannot be read.
        """
        if not self.dir.is_dir():
            self.dir.mkdir(parents=True)
            fsync_directory(self.data)
        self._tokens = _load(self.dir, self.clock.seconds())
        return succeed(None)

    def close(self) -> None:
        """
        Nothing is kept open: every write is fsynced before it is done.
        """

    # ITokenStore

    def add(self, user: str, digest: str, expires: float) -> Deferred[None]:
        stored = int(expires)

        def add(tokens: Tokens) -> None:
            tokens[digest] = stored

        return self._change(user.lower(), add)

    def valid(self, user: str, digest: str, now: float) -> Deferred[bool]:
        expires = self._tokens.get(user.lower(), {}).get(digest)
        return succeed(expires is not None and now < expires)

    def revoke_all(self, user: str) -> Deferred[None]:
        key = user.lower()
        if key not in self._tokens and key not in self._writes:
            # No file, and none on its way.
            return succeed(None)
        return self._change(key, lambda tokens: tokens.clear())

    # Writing

    def _change(self, key: str, change: Callable[[Tokens], None]) -> Deferred[None]:
        lock = self._writes.get(key)
        if lock is None:
            lock = self._writes[key] = DeferredLock()
        d = lock.run(self._write, key, change)

        def done(result: object) -> object:
            # The lock goes to the next write, if any, before this fires.
            if not lock.locked and self._writes.get(key) is lock:
                del self._writes[key]
            return result

        return d.addBoth(done)

    def _write(self, key: str, change: Callable[[Tokens], None]) -> Deferred[None]:
        """
        Write the account's file as stored, changed, without the expired
        tokens; remember it so once it is durable.  Should the write fail,
        what is stored (and remembered) is what was there before.
        """
        tokens = dict(self._tokens.get(key, {}))
        change(tokens)
        now = self.clock.seconds()
        tokens = {digest: expires for digest, expires in tokens.items() if now < expires}
        path = self.dir / key
        if tokens:
            text = "".join(f"{digest} {expires}\n" for digest, expires in tokens.items())
            d: Deferred[None] = self._run(replace_file, path, text)
        else:
            d = self._run(_remove, path)

        def written(_: object) -> None:
            if tokens:
                self._tokens[key] = tokens
            else:
                self._tokens.pop(key, None)

        def failed(f: Failure) -> Failure:
            self.log.failure("Could not store the session tokens of {user}", f, user=key)
            return Failure(StoreUnavailable(str(f.value)))

        return d.addCallbacks(written, failed)


def _load(directory: Path, now: float) -> dict[str, Tokens]:
    """
    Every account's tokens that have not expired at C{now}.  Damaged lines
    are skipped, and said; temporary files a crash left are not tokens.
    """
    found: dict[str, Tokens] = {}
    for path in directory.iterdir():
        if not valid_name(path.name) or path.name != path.name.lower():
            continue
        tokens: Tokens = {}
        text = path.read_bytes().decode("ascii", errors="replace")
        for number, line in enumerate(text.split("\n"), 1):
            if not line:
                continue
            digest, _, expires = line.partition(" ")
            if len(digest) != _DIGEST or not _is_hex(digest) or not expires.isdigit():
                TokenFiles.log.warn(
                    "{path}:{number}: skipping a damaged token line",
                    path=str(path),
                    number=number,
                )
                continue
            if now < int(expires):
                tokens[digest] = int(expires)
        if tokens:
            found[path.name] = tokens
    return found


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


# What runs in a thread.


def _remove(path: Path) -> None:
    """
    Remove a file, durably; gone already is done.
    """
    try:
        os.unlink(path)
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise
        return
    fsync_directory(path.parent)
