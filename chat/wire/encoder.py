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

__all__ = ["LINES", "LineEncoder"]

END_ROOMS = format_line("END", "rooms")


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

    def entered(self, room: str, recent: Iterable[Message]) -> bytes:
        """
        The answer to a join: the room's recent history between C{OK join}
        and C{END history}.
        """
        out = [format_line("OK", "join", room)]
        out.extend(format_line("HISTORY", room, ts, user, text=text) for ts, user, text in recent)
        out.append(format_line("END", "history", room))
        return b"".join(out)

    def members(self, room: str, names: Iterable[str]) -> bytes:
        out = [format_line("MEMBER", room, name) for name in names]
        out.append(format_line("END", "members", room))
        return b"".join(out)

    def error(self, code: ErrorCode, text: str) -> bytes:
        return format_line("ERR", code.value, text=text)


#: The one encoder all line connections share.
LINES = LineEncoder()

#: The answer to C{/help}, from the command table.
HELP = b"".join([format_line("INFO", text=line) for line in help_lines()]) + format_line(
    "END", "help"
)
