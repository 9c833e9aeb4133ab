"""
The seams of chatroom: where storage and accounts plug in, and the avatar.

Storage is by feature, in L{chat.storage}: L{chat.storage.rooms} (rooms,
history, presence: L{IChatBackend}, L{IRoomEvents}) and
L{chat.storage.accounts} (L{IAccountStore}), each with a file and a Redis
implementation.  They are named here too, for the code that imports them
from here.
"""

# test-case-name: tests.storage.test_rooms, tests.storage.test_accounts

from __future__ import annotations

from zope.interface import Attribute, Interface

from chat.storage.accounts import IAccountStore
from chat.storage.common import NameTaken, StoreUnavailable
from chat.storage.files.rooms import IChatStore
from chat.storage.rooms import IChatBackend, IRoomEvents

__all__ = [
    "IAccountStore",
    "IChatBackend",
    "IChatStore",
    "IChatUser",
    "IRoomEvents",
    "NameTaken",
    "StoreUnavailable",
]


class IChatUser(Interface):
    """
    The avatar a logged-in connection gets from the realm.
    """

    name = Attribute("The user's name, spelled as registered.")

    def deliver(line: bytes) -> None:
        """
        Send one already-formatted server line to this connection.
        """
