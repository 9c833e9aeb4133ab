"""
The avatar: what a logged-in connection can do, and the realm that hands
it out.

A L{ChatUser} is the avatar of one logged-in connection (one account may
have several) and carries every action a client can take: a front door
parses its input into a command and calls the avatar.  What happens is
told back as events, to the avatar's mind (the connection) for what
concerns it alone, and to a whole room through L{chat.rooms.Room.broadcast}.
"""

# test-case-name: tests.test_service

from __future__ import annotations

from typing import Any

from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from chat.errors import ChatError, ErrorCode
from chat.guard import has_visible, minutes
from chat.interfaces import IChatUser, NameTaken, StoreUnavailable
from chat.message import Message
from chat.moderation import Moderator
from chat.rooms import Mind, Room
from chat.service import ChatService

#: How many users one account may ignore.
MAX_IGNORES = 1000

__all__ = ["ChatRealm", "ChatUser"]


@implementer(IChatUser)
class ChatUser(Moderator):
    """
    A logged-in connection, as the realm hands it out: the actions a
    client can take.  Each one either does what was asked or raises
    L{ChatError} with what the client is to be told.
    """

    __slots__ = ("key", "mind", "name", "room", "service")

    service: ChatService

    def __init__(self, name: str, service: ChatService, mind: Mind) -> None:
        self.name = name
        key = name.lower()
        # Share the name's string when it is already lower case.
        self.key = name if key == name else key
        self.service = service
        self.mind = mind
        self.room: Room | None = None

    def create(self, name: str) -> Deferred[Room]:
        """
        Create a room and enter it.

        @return: A Deferred firing with the room, entered unless the
            connection is closing by then, or failing with L{ChatError}.
        @raise ChatError: At once, when the room exists or a limit is
            reached.
        """
        service = self.service
        if service.room_exists(name):
            raise ChatError(ErrorCode.ROOM_EXISTS, f"{name} exists; /join it")
        limit = service.max_rooms
        if limit and service.room_count() >= limit:
            raise ChatError(
                ErrorCode.RATE_LIMITED,
                f"this server has {limit} rooms, its limit; join one of them (/rooms lists them)",
            )
        key = self.key
        quota = service.room_quota
        wait = quota.wait(key)
        if wait:
            raise ChatError(
                ErrorCode.RATE_LIMITED,
                f"you may create {quota.limit} rooms an hour; try again in {minutes(wait)}",
            )
        # Counted now, so that rooms still being created count too.
        quota.spend(key)

        def created(room: Room) -> Room:
            if not self.mind.closing:
                service.join(self, room)
            return room

        def failed(failure: Failure) -> Room:
            quota.refund(key)
            if failure.check(NameTaken):
                raise ChatError(ErrorCode.ROOM_EXISTS, f"{name} exists; /join it")
            raise ChatError(ErrorCode.UNAVAILABLE, "cannot create rooms right now; try again")

        return service.create(name, self.name).addCallbacks(created, failed)

    def join(self, name: str) -> Room:
        """
        Enter a room, leaving the one the user was in.
        """
        service = self.service
        room = service.find(name)
        if room is None:
            raise ChatError(
                ErrorCode.NO_SUCH_ROOM, f"no room named {name}; /create {name} makes one"
            )
        if service.banned(room.name, self.key):
            raise ChatError(ErrorCode.BANNED, f"you are banned from {room.name}")
        service.join(self, room)
        return room

    def leave(self) -> Room:
        """
        Go back to the lobby.

        @return: The room left.
        """
        room = self.service.leave(self)
        if room is None:
            raise ChatError(ErrorCode.BAD_STATE, "you are not in a room")
        return room

    def say(self, text: str) -> None:
        """
        Post C{text} (cleaned by the front door) to the room, unless
        nothing of it would show.
        """
        if has_visible(text):
            service = self.service
            room = self.room
            if room is not None and service.muted(room.name, self.key):
                raise ChatError(ErrorCode.MUTED, f"you are muted in {room.name}; nobody sees that")
            service.say(self, text)

    def who(self) -> list[str]:
        """
        The names of the users in the room, in the order they came.
        """
        room = self.room
        if room is None:
            raise ChatError(ErrorCode.BAD_STATE, "you are not in a room")
        return room.users()

    def rooms(self) -> list[tuple[str, int]]:
        """
        Every room and how many are in it, sorted by name.  (The line
        front door sends its cached L{RoomListing} instead.)
        """
        return self.service.room_list()

    def message(self, name: str, text: str) -> None:
        """
        Send a private message (C{text} cleaned by the front door); the
        sender's own copy, on each of its connections, is the answer.
        """
        recipient = self._user(name)
        if not has_visible(text):
            raise ChatError(ErrorCode.BAD_SYNTAX, f"nothing to send; usage: /msg {name} <text>")
        self.service.send_direct(self, recipient, text)

    def conversations(self) -> Deferred[list[tuple[str, str]]]:
        """
        Whom the user has talked with in private, and when last, the most
        recent first; names as registered.
        """
        service = self.service

        def spelled(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
            return [(service.spelling(name) or name, stamp) for name, stamp in rows]

        service.flush_direct()
        d = service.direct.conversations(self.name)
        return d.addCallbacks(spelled, _unavailable)

    def history(self, target: str, before: str, count: int) -> Deferred[tuple[str, list[Message]]]:
        """
        A page of a room's history (C{target} its name) or of the user's
        conversation with another (C{@name}), older than C{before} (the
        newest when empty).

        @return: A Deferred firing with what the page is called in its
            lines (the room's name, or C{@name}, as registered) and its
            messages, oldest first.
        @raise ChatError: At once, for a room or a user that does not exist.
        """
        service = self.service
        direct = service.direct
        # What was said this turn is stored before the page is read.
        service.flush_direct()
        if target.startswith("@"):
            partner = self._user(target[1:])
            d = direct.history(self.name, partner, before or None, count)
            label = "@" + partner
        else:
            room = service.find(target)
            if room is None:
                raise ChatError(
                    ErrorCode.NO_SUCH_ROOM, f"no room named {target}; /rooms lists them"
                )
            service.flush_room(room)
            d = direct.room_history(room.name, before or None, count)
            label = room.name
        return d.addCallbacks(lambda page: (label, page), _unavailable)

    def ignore(self, name: str) -> Deferred[str]:
        """
        Stop receiving C{name}'s private messages.

        @return: A Deferred firing with the name as registered.
        """
        other = self._user(name)

        def done(added: bool) -> str:
            if not added:
                raise ChatError(
                    ErrorCode.RATE_LIMITED,
                    f"you ignore {MAX_IGNORES} users, the limit; /unignore some first",
                )
            return other

        d = self.service.direct.ignore(self.name, other, MAX_IGNORES)
        return d.addCallbacks(done, _unavailable)

    def unignore(self, name: str) -> Deferred[str]:
        other = self._user(name)
        d = self.service.direct.unignore(self.name, other)
        return d.addCallbacks(lambda _: other, _unavailable)

    def ignored(self) -> Deferred[list[str]]:
        """
        Whom the user ignores, as registered, sorted.
        """
        service = self.service

        def spelled(names: list[str]) -> list[str]:
            return sorted((service.spelling(name) or name for name in names), key=str.lower)

        return service.direct.ignored(self.name).addCallbacks(spelled, _unavailable)

    def _user(self, name: str) -> str:
        """
        A user's name as registered.

        @raise ChatError: There is no such account.
        """
        spelled = self.service.spelling(name)
        if spelled is None:
            raise ChatError(ErrorCode.NO_SUCH_USER, f"no user named {name}")
        return spelled

    def logout(self) -> None:
        """
        Leave the current room, telling its members; the realm's logout.
        """
        if self.room is not None:
            self.service.leave(self)
        self.service.logged_out(self)


def _unavailable(failure: Failure) -> Any:
    """
    A store that cannot answer, in the words a client is told.
    """
    if failure.check(StoreUnavailable):
        raise ChatError(ErrorCode.UNAVAILABLE, "cannot read or store that right now; try again")
    return failure


@implementer(IRealm)
class ChatRealm:
    """
    Turns an authenticated name into a L{ChatUser} bound to its connection
    (the mind, an L{chat.interfaces.IChatClient}).
    """

    def __init__(self, service: ChatService) -> None:
        self.service = service

    def requestAvatar(  # type: ignore[override]
        self, avatarId: bytes | str, mind: Any, *interfaces: Any
    ) -> tuple[Any, ChatUser, Any]:
        if IChatUser not in interfaces:
            raise NotImplementedError("chatroom only hands out IChatUser avatars")
        name = avatarId.decode("utf-8") if isinstance(avatarId, bytes) else avatarId
        user = ChatUser(name, self.service, mind)
        return IChatUser, user, user.logout
