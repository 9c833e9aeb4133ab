"""
The seams of chatroom: where storage and accounts plug in.

A server keeps its rooms in an L{IChatBackend}.  The embedded default
(L{chat.service.LocalBackend} over an L{IChatStore}, files under the data
directory) serves one process; L{chat.cluster.RedisBackend} lets many
processes share rooms, history, presence and accounts through Redis.
Nothing above this layer knows which one it talks to.
"""

# test-case-name: tests.test_store

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import Attribute, Interface

from chat.errors import ErrorCode


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


class IRoomEvents(Interface):
    """
    What a backend tells the server (L{chat.service.ChatService}) about its
    rooms.  A backend calls these in the one order it keeps for each room,
    which is the order every member sees.
    """

    history = Attribute("How many past messages of each room the server keeps.")

    def room_created(name: str) -> object:
        """
        A room exists.  Nothing happens if the server knows it already.
        """

    def room_loaded(
        name: str, recent: Sequence[tuple[str, str, str]], users: Sequence[str]
    ) -> object:
        """
        A room as read whole from the store: its last messages as
        C{(timestamp, user, text)}, oldest first, and who is in it.  This
        replaces what the server knew, without a line to anyone.
        """

    def messages_stored(room: str, messages: Sequence[tuple[str, str, str]]) -> None:
        """
        These messages are durable, in this order: show them to the room.
        """

    def user_joined(room: str, user: str, timestamp: str) -> None:
        """
        A user entered the room (their first connection to it, on any
        server).
        """

    def user_parted(room: str, user: str, timestamp: str) -> None:
        """
        A user left the room (their last connection to it, on any server).
        """


class IChatBackend(Interface):
    """
    Where a server's rooms, history and presence live, and how it hears of
    changes to them: from one process (files) or from many (Redis).

    The server never changes its own view of a room directly: it asks the
    backend, and the backend calls back through L{IRoomEvents}, at once or
    after a round trip, in the room's order.
    """

    def start(events: IRoomEvents) -> object:
        """
        Read the rooms and their recent history into C{events}, and keep it
        up to date from now on.

        @return: A Deferred that fires once the rooms are loaded; the server
            listens only after that.
        """

    def create_room(name: str) -> object:
        """
        @return: A Deferred that fires with L{None} once the room is
            durable, or fails with L{NameTaken} or L{StoreUnavailable}.
        """

    def publish(room: str, messages: Sequence[tuple[str, str, str]]) -> object:
        """
        Store messages and have them shown (L{IRoomEvents.messages_stored}).

        @return: A Deferred that fires once they are durable, or fails with
            L{StoreUnavailable}: then none of them is stored or shown.
        """

    def entered(room: str, user: str, timestamp: str) -> None:
        """
        A user's first connection on this server entered the room.
        """

    def left(room: str, user: str, timestamp: str) -> None:
        """
        A user's last connection on this server left the room.
        """

    def stop() -> object:
        """
        Flush and let go, once every client has been told goodbye.

        @return: A Deferred that fires when done.
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
    The avatar a logged-in connection gets from the realm: every action a
    client can take.  A front door parses its input into a command and
    calls one of these; each does what was asked or raises
    L{chat.errors.ChatError} with what the client is to be told.
    """

    name = Attribute("The user's name, spelled as registered.")
    room = Attribute("The room the user is in, or None in the lobby.")

    def create(name: str) -> object:
        """
        Create a room and enter it.

        @return: A Deferred firing with the room.
        """

    def join(name: str) -> object:
        """
        Enter a room, leaving the one the user was in; returns the room.
        """

    def leave() -> object:
        """
        Go back to the lobby; returns the room left.
        """

    def say(text: str) -> None:
        """
        Post a message to the room.
        """

    def who() -> list[str]:
        """
        The names of the users in the room.
        """

    def rooms() -> list[tuple[str, int]]:
        """
        Every room and how many users are in it, sorted by name.
        """

    def logout() -> None:
        """
        Leave the room; the realm's logout.
        """


class IEventEncoder(Interface):
    """
    How one kind of front door (the line protocol, say) puts a room's
    events into bytes.  One encoder serves every connection of its kind,
    so that a room's event is encoded once per kind, however many members
    it has.
    """

    def messages(room: str, messages: Sequence[tuple[str, str, str]]) -> bytes:
        """
        A batch of messages, C{(timestamp, user, text)}, stored in this order.
        """

    def joined(room: str, timestamp: str, user: str) -> bytes:
        """
        A user entered the room.
        """

    def parted(room: str, timestamp: str, user: str) -> bytes:
        """
        A user left the room.
        """


class IChatClient(Interface):
    """
    The mind: what the domain tells a connection.  Events for a room come
    as bytes its L{encoder} made (once for every connection of the kind);
    events for this connection alone come as calls.
    """

    encoder = Attribute("The IEventEncoder of this kind of connection.")
    closing = Attribute("Whether the connection is closing: nothing more is sent to it.")

    def deliver(data: bytes) -> None:
        """
        Write what the encoder made of a room's events, in the room's order.
        """

    def error(code: ErrorCode, text: str) -> None:
        """
        Something this connection asked for failed.
        """

    def shutdown(reason: str) -> object:
        """
        Say goodbye and close.

        @return: A Deferred that fires once the connection is gone.
        """
