"""
The seams of chatroom: where storage and accounts plug in.

The embedded default keeps everything in files under the data directory;
a Redis-backed store for running several server processes will implement
the same interfaces.  Nothing above this layer knows which one it talks to.
"""

# test-case-name: tests.test_store

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import Attribute, Interface


class StoreUnavailable(Exception):
    """
    The store could not do what was asked (disk full, unwritable directory,
    backend gone) and left nothing half-done.  Clients see C{ERR unavailable}.
    """


class NameTaken(Exception):
    """
    The name (of an account or a room) already exists, in some spelling.
    """


class IChatStore(Interface):
    """
    Durable rooms and their history.

    Every method that changes state fires its Deferred only once the change
    is durable, because the server acknowledges to clients right after.
    """

    def load(history: int) -> dict[str, list[tuple[str, str, str]]]:
        """
        Open the store and read what the server needs in memory: every room,
        spelled as created, with its last C{history} messages as
        C{(timestamp, user, text)} tuples, oldest first.  A fresh store is
        seeded with the room C{general}.

        Called once, from C{startService}, before any port listens.
        """

    def create_room(name: str) -> object:
        """
        Create a room.

        @return: A Deferred that fires with L{None} once the room is durable,
            or fails with L{NameTaken} or L{StoreUnavailable}.
        """

    def append(room: str, messages: Sequence[tuple[str, str, str]]) -> None:
        """
        Append messages, C{(timestamp, user, text)}, to a room's history,
        durably enough that a crash of the server process right after this
        returns cannot lose them.

        Synchronous on purpose: it sits on the hot path of every message and
        the embedded store does one C{write(2)} for the whole batch.

        @raise StoreUnavailable: Nothing was stored; the room's history is as
            it was before the call.
        """

    def sync() -> object:
        """
        Make every message appended so far safe from a crash of the whole
        machine (fsync), off the reactor thread.  Called every few seconds.

        @return: A Deferred that fires when done.
        """

    def close() -> None:
        """
        Flush everything to stable storage and release the files.
        """


class IAccountStore(Interface):
    """
    A place where accounts can be added.  A credentials checker that also
    provides this lets users C{/register}; one that does not closes
    registration.
    """

    def add_user(name: str, password: str) -> object:
        """
        Create an account.

        @return: A Deferred that fires with L{None} once the account is on
            stable storage, or fails with L{NameTaken} or
            L{StoreUnavailable}.
        """

    def user_exists(name: str) -> bool:
        """
        Whether an account of that name exists, in any case.
        """


class IChatUser(Interface):
    """
    The avatar a logged-in connection gets from the realm.
    """

    name = Attribute("The user's name, spelled as registered.")

    def deliver(line: bytes) -> None:
        """
        Send one already-formatted server line to this connection.
        """
