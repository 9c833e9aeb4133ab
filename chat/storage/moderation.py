"""
Moderation and administration as stored: the keepers of each room, its
bans, mutes and topic, the locked accounts, and the audit log of every
act that changed them.

An L{Act} is one moderation or admin action, as the audit log records it
and as every process hears it.  The server keeps the rules (L{Rules}) in
memory, so that rights are checked without a round trip, and changes them
only when the backend says an act is durable (L{IModerationEvents.acted}),
as it does with messages.  The file store keeps its own L{Rules} to write
them; Redis applies each act in a script.

Implementations: L{chat.storage.files.moderation} and
L{chat.storage.redis.moderation}.  Contract: L{tests.storage.test_moderation}.
"""

# test-case-name: tests.storage.test_moderation

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from zope.interface import Interface

from chat.message import Message

__all__ = [
    "AUDITED",
    "Act",
    "Ban",
    "IModeration",
    "IModerationEvents",
    "RoomRules",
    "Rules",
    "Topic",
]

#: The actions the audit log records, by the verb of their command.
AUDITED = frozenset(
    {
        "op",
        "deop",
        "topic",
        "kick",
        "ban",
        "unban",
        "mute",
        "unmute",
        "delete",
        "lock",
        "unlock",
        "wall",
        "drop",
    }
)

#: Not a command: a room's creator becomes its owner.  Stored and heard
#: like the others, so that every process knows the owner, but not audited.
OWN = "own"


@dataclass(frozen=True, slots=True)
class Act:
    """
    One moderation or admin action.

    @ivar stamp: When it was done (the server's stamp format).
    @ivar actor: Who did it, as registered.
    @ivar action: One of L{AUDITED}, or L{OWN}.
    @ivar room: The room it acts on, as created; L{None} for C{lock},
        C{unlock} and C{wall}.
    @ivar target: The user it acts on, as registered; L{None} for C{topic},
        C{wall} and C{drop}.  For C{delete}, the message's sender.
    @ivar reason: The reason given, or L{None}.  For C{topic} and C{wall}
        the text (C{""} clears a topic); for C{delete} the deleted
        message's stamp (its text is never kept).
    """

    stamp: str
    actor: str
    action: str
    room: str | None = None
    target: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Topic:
    text: str
    stamp: str
    by: str


@dataclass(frozen=True, slots=True)
class Ban:
    user: str
    stamp: str
    by: str
    reason: str | None = None


@dataclass(slots=True)
class RoomRules:
    """
    What a room's keepers decided.  Keys are lower-case names; values
    are spelled as registered.

    @ivar operators: The room's operators but its owner, in the order
        named.
    """

    owner: str | None = None
    operators: dict[str, str] = field(default_factory=dict)
    bans: dict[str, Ban] = field(default_factory=dict)
    mutes: dict[str, str] = field(default_factory=dict)
    topic: Topic | None = None

    def empty(self) -> bool:
        """
        Whether there is nothing to keep (a room nobody ever moderated).
        """
        return not (self.owner or self.operators or self.bans or self.mutes or self.topic)


@dataclass(slots=True)
class Rules:
    """
    The rules of every room (by lower-case room name) and the locked
    accounts (lower-case name to the lock's reason, C{""} for none).
    """

    rooms: dict[str, RoomRules] = field(default_factory=dict)
    locks: dict[str, str] = field(default_factory=dict)

    def room(self, name: str) -> RoomRules | None:
        return self.rooms.get(name.lower())

    def apply(self, act: Act) -> None:
        """
        Change the rules as C{act} says: the one definition of what each
        act does to them, for the server's memory and the file store
        alike.  Acts that change no rule (C{kick}, C{delete}, C{wall})
        change nothing here.
        """
        action = act.action
        if action in ("lock", "unlock"):
            assert act.target is not None
            if action == "lock":
                self.locks[act.target.lower()] = act.reason or ""
            else:
                self.locks.pop(act.target.lower(), None)
            return
        if act.room is None:
            return
        key = act.room.lower()
        if action == "drop":
            self.rooms.pop(key, None)
            return
        rules = self.rooms.get(key)
        if rules is None:
            rules = self.rooms[key] = RoomRules()
        target = act.target
        who = target.lower() if target is not None else ""
        if action == OWN:
            rules.owner = target
        elif action == "op":
            assert target is not None
            rules.operators[who] = target
        elif action == "deop":
            rules.operators.pop(who, None)
        elif action == "ban":
            assert target is not None
            rules.bans[who] = Ban(target, act.stamp, act.actor, act.reason)
        elif action == "unban":
            rules.bans.pop(who, None)
        elif action == "mute":
            assert target is not None
            rules.mutes[who] = target
        elif action == "unmute":
            rules.mutes.pop(who, None)
        elif action == "topic":
            text = act.reason or ""
            rules.topic = Topic(text, act.stamp, act.actor) if text else None
        if rules.empty():
            del self.rooms[key]


class IModerationEvents(Interface):
    """
    What the moderation store tells the server
    (L{chat.service.ChatService}).
    """

    def rules_loaded(rules: Rules) -> None:
        """
        The rules as read whole from the store (at start, and again when
        a process may have missed acts): they replace what the server knew.
        """

    def acted(act: Act) -> None:
        """
        An act is durable (its rules, its erasure, its audit entry): show
        it and apply it.  Called on every process, in the one order the
        store keeps, this one's included.
        """


class IModeration(Interface):
    """
    Where rules, erasures and the audit log are kept.  A backend's
    C{moderation} attribute; its C{start} is called by the backend's, with
    the same events object (the server provides L{IModerationEvents}).

    Every method that changes something fires only once the change is
    durable: the server answers and broadcasts right after.  Failures are
    L{chat.storage.common.StoreUnavailable}, with nothing half-done.
    """

    def start(events: IModerationEvents) -> Deferred[None]:
        """
        Read the rules (L{IModerationEvents.rules_loaded}, before this
        fires) and hear every act from now on.
        """

    def act(act: Act) -> Deferred[None]:
        """
        Make an act durable and have every process hear it
        (L{IModerationEvents.acted}).  What each action does:
          - C{own}, C{op}, C{deop}, C{ban}, C{unban}, C{mute}, C{unmute},
            C{topic}, C{lock}, C{unlock}: the rules change as
            L{Rules.apply} says;
          - C{delete}: the message of C{act.room} stamped C{act.reason} is
            erased from the store: no later history shows it, and its
            text is gone from every copy the store keeps (the room's file,
            Redis's streams), not just hidden;
          - C{drop}: the room, its history and its rules are deleted; its
            name is free for a new room (and a new room of that name starts
            with no rules and no history);
          - C{kick}, C{wall}: nothing is stored but the audit entry.
        Every action but C{own} is appended to the audit log, with the
        act's fields, before this fires.
        """

    def find(room: str, stamp: str) -> Deferred[Message | None]:
        """
        The room's stored message with this stamp, or L{None}: what a
        C{delete} must name (its sender decides who may delete it).
        """

    def audit(count: int) -> Deferred[list[Act]]:
        """
        The last C{count} audit entries, oldest first.
        """

    def close() -> None:
        """
        Let go of files (a no-op where there are none).
        """


def sorted_bans(bans: Iterable[Ban]) -> list[Ban]:
    """
    Bans in the order they were made: what C{/bans} lists.
    """
    return sorted(bans, key=lambda ban: (ban.stamp, ban.user.lower()))
