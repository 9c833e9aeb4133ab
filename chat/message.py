"""
A chat message as a value, and the protocol's timestamps.

The storage interfaces (L{chat.storage.rooms.IChatBackend},
L{chat.storage.rooms.IRoomEvents}) speak in L{Message}s: both backends
build them where they read history back (files, Redis replies and
events).  It is a C{NamedTuple}, so it is still a C{(timestamp, user,
text)} tuple: the hot path unpacks and formats it as before, and what is
on disk and in Redis does not change.  The room is not a field because
every place a message travels already knows its room.
"""

# test-case-name: tests.test_lines

from __future__ import annotations

import calendar
import time
from typing import Any, NamedTuple

__all__ = ["Message", "format_timestamp", "next_timestamp", "parse_timestamp", "stamp_after"]


class Message(NamedTuple):
    """
    One message said in a room or a private conversation.

    @ivar timestamp: When the server stamped it (L{format_timestamp}).
    @ivar sender: Who said it, spelled as registered.
    @ivar text: What was said, cleaned.
    """

    timestamp: str
    sender: str
    text: str


def format_timestamp(seconds: float) -> str:
    """
    Render a POSIX time as the protocol's UTC ISO 8601 stamp with
    milliseconds, e.g. C{2026-11-25T04:50:05.123Z}.

    Written by hand rather than with C{datetime.isoformat}, with the
    seconds part cached, because every message pays for it.
    """
    # Truncated to the millisecond, as clocks are; the extra microsecond
    # keeps float error from losing one (524.165 * 1000 is 524164.99999999994).
    millis = int(seconds * 1000 + 0.001)
    whole, ms = divmod(millis, 1000)
    cached = _second_cache
    if cached[0] != whole:
        cached[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole))]
    return f"{cached[1]}{ms:03d}Z"


#: The last second formatted, and its text: messages come many a second.
_second_cache: list[Any] = [None, ""]


def parse_timestamp(stamp: str) -> float:
    """
    Invert L{format_timestamp}.

    @raise ValueError: C{stamp} is not in the protocol's format.
    """
    if len(stamp) != 24 or stamp[19] != "." or stamp[23] != "Z":
        raise ValueError(f"bad timestamp: {stamp!r}")
    whole = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return whole + int(stamp[20:23]) / 1000


def next_timestamp(stamp: str) -> str:
    """
    The stamp one millisecond after C{stamp}: what a message gets when
    another in its room or conversation already has its stamp or a later
    one, so that a room's name and a stamp name one message.

    Cheap in the common case (only the milliseconds change), because a
    busy room takes this path for nearly every message.
    """
    ms = int(stamp[20:23])
    if ms < 999:
        return f"{stamp[:20]}{ms + 1:03d}Z"
    whole = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + 1
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(whole))


def stamp_after(stamp: str, last: str | None) -> str:
    """
    C{stamp}, or one millisecond after C{last} when C{stamp} is not later:
    stamps in the protocol's format compare as strings.
    """
    if last is None or stamp > last:
        return stamp
    return next_timestamp(last)
