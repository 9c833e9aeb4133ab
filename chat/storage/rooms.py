"""
Rooms, their history and who is in them: what the server
(L{chat.service.ChatService}) asks of a backend, and what it hears back.

Implementations: L{chat.storage.files.rooms.LocalBackend} (one process,
files under the data directory) and L{chat.storage.redis.rooms} (many
processes sharing rooms through Redis).  Contract: L{tests.storage.test_rooms}.
"""

# test-case-name: tests.storage.test_rooms

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from chat.message import Message

__all__ = ["IChatBackend", "IRoomEvents"]


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

    def room_loaded(name: str, recent: Sequence[Message], users: Sequence[str]) -> object:
        """
        A room as read whole from the store: its last messages, oldest
        first, and who is in it.  This
        replaces what the server knew, without a line to anyone.
        """

    def messages_stored(room: str, messages: Sequence[Message]) -> None:
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

    label = Attribute("What the log calls this backend when it is unavailable.")
    direct = Attribute(
        "The private messages kept with these rooms "
        "(L{chat.storage.direct.IDirectMessages}); its C{start} is called by this "
        "backend's, with the same events object."
    )

    def start(events: IRoomEvents) -> Deferred[None]:
        """
        Read the rooms and their recent history into C{events}, and keep it
        up to date from now on; start L{direct} with C{events} too (the
        server's events object provides L{chat.storage.direct.IDirectEvents}
        as well).

        @return: A Deferred that fires once the rooms are loaded; the server
            listens only after that.
        """

    def create_room(name: str) -> Deferred[None]:
        """
        @return: A Deferred that fires with L{None} once the room is
            durable, or fails with L{NameTaken} or L{StoreUnavailable}.
        """

    def publish(room: str, messages: Sequence[Message]) -> Deferred[None]:
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

    def stop() -> Deferred[None]:
        """
        Flush and let go, once every client has been told goodbye.

        @return: A Deferred that fires when done.
        """
