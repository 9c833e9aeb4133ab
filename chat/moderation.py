"""
Moderation and administration: who may do what to whom, and what each
act does to the rooms and the connections.

Two halves, each a part of a class that lives elsewhere:
L{Moderator} is the avatar's side (L{chat.avatar.ChatUser}): it checks the
actor's rights against the rules the server keeps in memory and asks the
store to make the act durable; L{Keeper} is the server's side
(L{chat.service.ChatService}): it hears each durable act, from this
process or another (L{chat.storage.moderation.IModerationEvents}), changes
the rules and tells the rooms.  Rights are always checked here, on the
server, whatever a client's menus offer.

Roles: admins (C{--admin}) may do everything everywhere; a room's owner
(its creator) is an operator nobody but an admin may act on; operators
are named by the owner or an admin.  Operators cannot act on the owner or
on admins, and only admins act on admins.
"""

# test-case-name: tests.test_moderation

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from chat.errors import ChatError, ErrorCode
from chat.message import Message, format_timestamp
from chat.rooms import Encoder, Member, Room
from chat.storage.common import StoreUnavailable
from chat.storage.moderation import (
    OWN,
    Act,
    Ban,
    IModeration,
    IModerationEvents,
    RoomRules,
    Rules,
    sorted_bans,
)

__all__ = ["LOCKED", "Keeper", "Moderator"]

#: What a locked account's connections are told when no reason was given.
LOCKED = "your account is locked"

#: The acts a room's members are shown as a line.
_SHOWN = frozenset(
    {"op", "deop", "topic", "kick", "ban", "unban", "mute", "unmute", "delete", "drop"}
)


def _forbidden(text: str) -> ChatError:
    return ChatError(ErrorCode.FORBIDDEN, text)


def _failed(failure: Any) -> Any:
    if failure.check(StoreUnavailable):
        raise ChatError(ErrorCode.UNAVAILABLE, "cannot store that right now; try again")
    return failure


class Moderator:
    """
    The moderation and admin actions of an avatar.  Each checks the
    actor's rights, then returns a Deferred that fires once the act is
    durable (the room hears it through L{Keeper.acted}), or raises
    L{ChatError} with what the client is to be told.
    """

    __slots__ = ()

    if TYPE_CHECKING:
        name: str
        key: str
        #: The server (L{chat.service.ChatService}), as far as moderation
        #: knows it.
        service: Keeper
        room: Room | None

        def _user(self, name: str) -> str: ...

    # Who the actor is

    def _here(self) -> Room:
        room = self.room
        if room is None:
            raise ChatError(ErrorCode.BAD_STATE, "you are not in a room")
        return room

    def _admin(self) -> None:
        if not self.service.is_admin(self.name):
            raise _forbidden("only admins may do that")

    def _operator(self, room: Room) -> None:
        if not self.service.is_operator(room.name, self.name):
            raise _forbidden(f"only operators of {room.name} may do that")

    def _owner(self, room: Room) -> None:
        service = self.service
        if not (service.is_admin(self.name) or service.owner(room.name) == self.key):
            raise _forbidden(f"only the owner of {room.name} and admins may do that")

    # Whom it acts on

    def _target(self, room: Room, name: str) -> str:
        """
        The user an operator acts on, as registered.

        @raise ChatError: C{no-such-user}, or C{forbidden} for the owner or
            an admin acted on by someone who is not an admin.
        """
        target = self._user(name)
        service = self.service
        if service.is_admin(self.name):
            return target
        if service.is_admin(target):
            raise _forbidden(f"{target} is an admin; only admins act on admins")
        if service.owner(room.name) == target.lower():
            raise _forbidden(f"{target} owns {room.name}")
        return target

    def _present(self, room: Room, target: str) -> None:
        key = target.lower()
        if key not in room.present and key not in room.counts:
            raise ChatError(ErrorCode.NOT_HERE, f"{target} is not in {room.name}")

    def _act(
        self,
        action: str,
        room: Room | None = None,
        target: str | None = None,
        reason: str | None = None,
    ) -> Deferred[Act]:
        """
        Have the store make an act durable.

        @return: A Deferred firing with the act once it is durable.
        """
        service = self.service
        if room is not None:
            # What was said before the act is shown before it.
            service.flush_room(room)
        act = Act(
            format_timestamp(service.clock.seconds()),
            self.name,
            action,
            room.name if room is not None else None,
            target,
            reason or None,
        )
        return service.moderation.act(act).addCallbacks(service.applied, _failed, (act,))

    # In a room

    def set_topic(self, text: str) -> Deferred[Act]:
        room = self._here()
        self._operator(room)
        act = self._act("topic", room, reason=text)
        return act

    def op(self, name: str) -> Deferred[Act]:
        room = self._here()
        self._owner(room)
        target = self._target(room, name)
        self._present(room, target)
        return self._act("op", room, target)

    def deop(self, name: str) -> Deferred[Act]:
        room = self._here()
        self._owner(room)
        target = self._target(room, name)
        if self.service.owner(room.name) == target.lower():
            raise _forbidden(f"{target} owns {room.name}, and owners are always operators")
        return self._act("deop", room, target)

    def operators(self) -> tuple[str, list[tuple[str, str]]]:
        """
        The room's keepers, its owner first, then its operators in the
        order they were named, as C{(name, role)}.
        """
        room = self._here()
        rules = self.service.rules.room(room.name)
        keepers: list[tuple[str, str]] = []
        if rules is not None:
            if rules.owner:
                keepers.append((rules.owner, "owner"))
            owner = (rules.owner or "").lower()
            keepers.extend(
                (name, "operator") for key, name in rules.operators.items() if key != owner
            )
        return room.name, keepers

    def kick(self, name: str, reason: str) -> Deferred[Act]:
        room = self._here()
        self._operator(room)
        target = self._target(room, name)
        self._present(room, target)
        return self._act("kick", room, target, reason)

    def ban(self, name: str, reason: str) -> Deferred[Act]:
        room = self._here()
        self._operator(room)
        target = self._target(room, name)
        return self._act("ban", room, target, reason)

    def unban(self, name: str) -> Deferred[Act]:
        room = self._here()
        self._operator(room)
        target = self._target(room, name)
        return self._act("unban", room, target)

    def bans(self) -> tuple[str, list[Ban]]:
        room = self._here()
        self._operator(room)
        rules = self.service.rules.room(room.name)
        return room.name, sorted_bans(rules.bans.values()) if rules is not None else []

    def mute(self, name: str) -> Deferred[Act]:
        room = self._here()
        self._operator(room)
        target = self._target(room, name)
        self._present(room, target)
        return self._act("mute", room, target)

    def unmute(self, name: str) -> Deferred[Act]:
        room = self._here()
        self._operator(room)
        target = self._target(room, name)
        return self._act("unmute", room, target)

    def delete(self, stamp: str) -> Deferred[Act]:
        """
        Delete a message of the room: its sender may, and the room's
        operators (but not the owner's or an admin's, unless an admin).
        """
        room = self._here()
        service = self.service
        service.flush_room(room)
        for message in room.recent:
            if message.timestamp == stamp:
                found: Deferred[Message | None] = succeed(message)
                break
        else:
            found = service.moderation.find(room.name, stamp)

        def check(message: Message | None) -> Deferred[Act]:
            if message is None or self.room is not room:
                raise ChatError(ErrorCode.NO_SUCH_MESSAGE, f"no message of {room.name} at {stamp}")
            sender = message.sender
            if sender.lower() != self.key:
                self._operator(room)
                sender = self._target(room, sender)
            return self._act("delete", room, sender, stamp)

        return found.addErrback(_failed).addCallback(check)

    # Admins, anywhere

    def lock(self, name: str, reason: str) -> Deferred[Act]:
        self._admin()
        target = self._user(name)
        if target.lower() == self.key:
            raise _forbidden("you cannot lock your own account")
        service = self.service
        d = self._act("lock", target=target, reason=reason)

        def revoke(act: Act) -> Deferred[Act]:
            # No session token of the account lets it back in either.
            revoked: Deferred[None] = service.tokens.revoke_all(target.lower())
            return revoked.addCallback(lambda _: act)

        return d.addCallback(revoke).addErrback(_failed)

    def unlock(self, name: str) -> Deferred[Act]:
        self._admin()
        return self._act("unlock", target=self._user(name))

    def wall(self, text: str) -> Deferred[Act]:
        self._admin()
        return self._act("wall", reason=text)

    def drop(self, name: str, reason: str) -> Deferred[Act]:
        self._admin()
        service = self.service
        room = service.find(name)
        if room is None:
            raise ChatError(ErrorCode.NO_SUCH_ROOM, f"no room named {name}; /rooms lists them")
        return self._act("drop", room, reason=reason)

    def audit(self, count: int) -> Deferred[list[Act]]:
        self._admin()
        return self.service.moderation.audit(count).addErrback(_failed)


@implementer(IModerationEvents)
class Keeper:
    """
    The server's side: the rules in memory, and what each durable act
    does to the rooms and connections of this process.
    """

    log = Logger()

    if TYPE_CHECKING:
        rules: Rules
        admins: frozenset[str]
        clock: IReactorTime
        rooms: dict[str, Room]
        users: dict[str, Member | list[Member]]
        backend: Any
        tokens: Any

        def flush_room(self, room: Room) -> None: ...
        def find(self, name: str) -> Room | None: ...
        def _changed(self, room: Room) -> None: ...
        def _forget(self, room: Room) -> None: ...

    @property
    def moderation(self) -> IModeration:
        """
        The backend's rules, erasures and audit log.
        """
        return self.backend.moderation  # type: ignore[no-any-return]

    # What the server asks

    def is_admin(self, name: str) -> bool:
        return name.lower() in self.admins

    def owner(self, room: str) -> str | None:
        """
        The lower-case name of the room's owner, if it has one.
        """
        rules = self.rules.room(room)
        owner = rules.owner if rules is not None else None
        return owner.lower() if owner else None

    def is_operator(self, room: str, name: str) -> bool:
        """
        Whether C{name} may moderate the room: an admin, its owner, or
        one of its operators.
        """
        key = name.lower()
        if key in self.admins:
            return True
        rules = self.rules.room(room)
        return rules is not None and (key in rules.operators or (rules.owner or "").lower() == key)

    def room_rules(self, room: str) -> RoomRules | None:
        return self.rules.room(room)

    def banned(self, room: str, name: str) -> bool:
        rules = self.rules.room(room)
        return rules is not None and name.lower() in rules.bans

    def muted(self, room: str, name: str) -> bool:
        rules = self.rules.room(room)
        return rules is not None and name.lower() in rules.mutes

    def locked(self, name: str) -> bool:
        return name.lower() in self.rules.locks

    def claim(self, room: str, owner: str) -> Deferred[None]:
        """
        Make a new room's creator its owner, durably.
        """
        act = Act(format_timestamp(self.clock.seconds()), owner, OWN, room, owner)
        return self.moderation.act(act).addCallback(self.applied, act).addCallback(lambda _: None)

    def applied(self, _: object, act: Act) -> Act:
        """
        An act of this process is durable: its rules hold here from now on,
        even before the store's event comes back (from Redis, a moment
        later), so that its actor's next command finds them.  Applying it
        again then changes nothing.
        """
        self.rules.apply(act)
        return act

    # What the store says (IModerationEvents)

    def rules_loaded(self, rules: Rules) -> None:
        self.rules = rules

    def acted(self, act: Act) -> None:
        self.rules.apply(act)
        action = act.action
        if action == "lock":
            assert act.target is not None
            self._lock_out(act.target, act.reason or LOCKED)
            return
        if action == "wall":
            self._tell_everyone(lambda encoder: encoder.act(act))
            return
        if action not in _SHOWN or act.room is None:
            return
        room = self.find(act.room)
        if room is None:
            return
        self.flush_room(room)
        if action == "delete":
            self._erase(room, act.reason or "")
        room.broadcast(lambda encoder: encoder.act(act))
        if action in ("kick", "ban"):
            assert act.target is not None
            self._send_out(room, act.target)
        elif action == "drop":
            self._drop(room)

    def _erase(self, room: Room, stamp: str) -> None:
        """
        Take a deleted message out of the room's recent history, which
        joins are served from.
        """
        recent = room.recent
        for i, message in enumerate(recent):
            if message.timestamp == stamp:
                del recent[i]
                return

    def _send_out(self, room: Room, name: str) -> None:
        """
        Move every connection of a kicked or banned user out of the room,
        to the lobby, without a C{PART}: the room saw why they left.
        """
        key = name.lower()
        # Gone from the room on every process, before any PART could come.
        if room.present.pop(key, None) is not None:
            self._changed(room)
        leaving = [member for member in room.members if member.key == key]
        for member in leaving:
            self._out(room, member)

    def _out(self, room: Room, member: Member) -> None:
        del room.members[member]
        member.room = None
        count = room.counts.get(member.key, 0) - 1
        if count > 0:
            room.counts[member.key] = count
            return
        room.counts.pop(member.key, None)
        if room.name.lower() in self.rooms:
            self._changed(room)
        # Presence forgets them (on Redis, for every process); the room is
        # told nothing more.
        self.backend.left(room.name, member.name, format_timestamp(self.clock.seconds()))

    def _drop(self, room: Room) -> None:
        """
        The room is gone: its members are in the lobby, without a
        C{PART}, and its name is free.
        """
        room.pending.clear()
        room.senders.clear()
        self._forget(room)
        room.present.clear()
        for member in list(room.members):
            self._out(room, member)

    def _lock_out(self, name: str, reason: str) -> None:
        found = self.users.get(name.lower())
        if found is None:
            return
        for member in list(found) if isinstance(found, list) else [found]:
            member.mind.shutdown(reason)

    def _tell_everyone(self, event: Callable[[Encoder], bytes]) -> None:
        made: dict[Encoder, bytes] = {}
        for found in list(self.users.values()):
            for member in found if isinstance(found, list) else (found,):
                mind = member.mind
                if mind.closing:
                    continue
                encoder = mind.encoder
                data = made.get(encoder)
                if data is None:
                    data = made[encoder] = event(encoder)
                mind.deliver(data)
