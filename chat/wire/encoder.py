"""
The domain's events as protocol lines (L{chat.interfaces.IEventEncoder}),
and the answers only the line protocol gives.

One L{LineEncoder} serves every line connection, so a room's batch of
messages becomes bytes once, whatever the size of the room.
"""

# test-case-name: tests.test_protocol

from __future__ import annotations

from collections.abc import Iterable, Sequence

from zope.interface import implementer

from chat.commands import help_lines
from chat.errors import ErrorCode
from chat.interfaces import IEventEncoder
from chat.lines import format_line
from chat.message import Message
from chat.storage.direct import DirectMessage
from chat.storage.moderation import Act, Ban, Topic

__all__ = ["LINES", "LineEncoder"]

END_ROOMS = format_line("END", "rooms")
END_UNREAD = format_line("END", "unread")
END_AUDIT = format_line("END", "audit")


@implementer(IEventEncoder)
class LineEncoder:
    """
    Events to lines.
    """

    def messages(self, room: str, messages: Sequence[Message]) -> bytes:
        return b"".join(
            [format_line("MSG", room, ts, user, text=text) for ts, user, text in messages]
        )

    def joined(self, room: str, timestamp: str, user: str) -> bytes:
        return format_line("JOIN", room, timestamp, user)

    def parted(self, room: str, timestamp: str, user: str) -> bytes:
        return format_line("PART", room, timestamp, user)

    def room_row(self, name: str, population: int) -> bytes:
        """
        One room's line in the room list.
        """
        return format_line("ROOM", name, str(population))

    def entered(self, room: str, recent: Iterable[Message], topic: Topic | None = None) -> bytes:
        """
        The answer to a join: the room's recent history between C{OK join}
        and C{END history}, then its topic if it has one.
        """
        out = [format_line("OK", "join", room)]
        out.extend(format_line("HISTORY", room, ts, user, text=text) for ts, user, text in recent)
        out.append(format_line("END", "history", room))
        if topic is not None:
            out.append(format_line("TOPIC", room, topic.stamp, topic.by, text=topic.text))
        return b"".join(out)

    def members(self, room: str, names: Iterable[str]) -> bytes:
        out = [format_line("MEMBER", room, name) for name in names]
        out.append(format_line("END", "members", room))
        return b"".join(out)

    def direct(self, viewer: str, message: DirectMessage) -> bytes:
        """
        A private message as the user whose lower-case name is C{viewer}
        sees it: named by the other party (by itself, to itself).
        """
        stamp, sender, recipient, text = message
        partner = recipient if sender.lower() == viewer else sender
        return format_line("DM", partner, stamp, sender, text=text)

    def unread(self, viewer: str, messages: Sequence[DirectMessage], older: int) -> bytes:
        """
        What a user missed while away, after C{END rooms} of a login; the
        count of older ones points to where they are.
        """
        out = []
        if older:
            partner = messages[0].sender if messages else "?"
            out.append(
                format_line("INFO", text=f"{older} older unread messages: /history @{partner}")
            )
        out.extend(self.direct(viewer, message) for message in messages)
        out.append(END_UNREAD)
        return b"".join(out)

    def conversations(self, rows: Iterable[tuple[str, str]]) -> bytes:
        out = [format_line("CONVERSATION", partner, stamp) for partner, stamp in rows]
        out.append(format_line("END", "dms"))
        return b"".join(out)

    def page(self, label: str, messages: Iterable[Message]) -> bytes:
        """
        A page of older history, of a room or (C{@name}) a conversation.
        """
        out = [format_line("HISTORY", label, ts, user, text=text) for ts, user, text in messages]
        out.append(format_line("END", "history", label))
        return b"".join(out)

    def ignores(self, names: Iterable[str]) -> bytes:
        out = [format_line("IGNORED", name) for name in names]
        out.append(format_line("END", "ignores"))
        return b"".join(out)

    def act(self, act: Act) -> bytes:
        """
        A moderation or admin act, as the room (or, for C{wall}, everyone)
        sees it.  A reason ends the line only when one was given.
        """
        action = act.action
        room = act.room or "-"
        if action == "topic":
            return format_line("TOPIC", room, act.stamp, act.actor, text=act.reason or "")
        if action == "delete":
            # Named by the deleted message's stamp.
            return format_line("DELETE", room, act.reason or "-", act.actor)
        if action == "wall":
            return format_line("NOTICE", act.stamp, act.actor, text=act.reason or "")
        if action == "drop":
            return format_line("DROPPED", room, act.stamp, act.actor, text=act.reason)
        target = act.target or "-"
        if action in ("kick", "ban"):
            return format_line(action.upper(), room, act.stamp, act.actor, target, text=act.reason)
        return format_line(action.upper(), room, act.stamp, act.actor, target)

    def operators(self, room: str, keepers: Iterable[tuple[str, str]]) -> bytes:
        out = [format_line("OPERATOR", room, name, role) for name, role in keepers]
        out.append(format_line("END", "ops", room))
        return b"".join(out)

    def bans(self, room: str, bans: Iterable[Ban]) -> bytes:
        out = [
            format_line("BANNED", room, ban.user, ban.stamp, ban.by, text=ban.reason)
            for ban in bans
        ]
        out.append(format_line("END", "bans", room))
        return b"".join(out)

    def audit(self, acts: Iterable[Act]) -> bytes:
        out = [
            format_line(
                "AUDIT",
                act.stamp,
                act.actor,
                act.action,
                act.room or "-",
                act.target or "-",
                text=act.reason,
            )
            for act in acts
        ]
        out.append(END_AUDIT)
        return b"".join(out)

    def error(self, code: ErrorCode, text: str) -> bytes:
        return format_line("ERR", code.value, text=text)


#: The one encoder all line connections share.
LINES = LineEncoder()

#: The answer to C{/help}, from the command table.
HELP = b"".join([format_line("INFO", text=line) for line in help_lines()]) + format_line(
    "END", "help"
)
