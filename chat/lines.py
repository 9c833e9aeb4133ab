"""
The server's line format, shared by the server (which writes it) and the
bundled client (which reads it).

Every server line is C{TAG [arg ...] [:trailing text]}.  Keeping the
formatter and the parser side by side is what keeps the two ends of the
wire honest: a test that round-trips one through the other covers both.
"""

# test-case-name: tests.test_lines

from __future__ import annotations

import calendar
import enum
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ErrorCode",
    "ServerLine",
    "format_line",
    "format_timestamp",
    "parse_line",
    "parse_timestamp",
]


class ErrorCode(enum.Enum):
    """
    Every code an C{ERR} line can carry.  Clients switch on these, so a code
    is never renamed or reused for another meaning.
    """

    UNKNOWN_COMMAND = "unknown-command"
    BAD_SYNTAX = "bad-syntax"
    BAD_STATE = "bad-state"
    BAD_CREDENTIALS = "bad-credentials"
    NAME_TAKEN = "name-taken"
    BAD_NAME = "bad-name"
    WEAK_PASSWORD = "weak-password"
    NO_SUCH_ROOM = "no-such-room"
    ROOM_EXISTS = "room-exists"
    LINE_TOO_LONG = "line-too-long"
    BAD_ENCODING = "bad-encoding"
    RATE_LIMITED = "rate-limited"
    REGISTRATION_CLOSED = "registration-closed"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class ServerLine:
    """
    One parsed server line.

    @ivar tag: The upper-case first word (C{MSG}, C{OK}, C{ERR}, ...).
    @ivar args: The space-separated words between the tag and the text.
    @ivar text: What followed C{" :"}, or L{None} when the line had none.
    """

    tag: str
    args: tuple[str, ...]
    text: str | None = None


def format_line(tag: str, *args: str, text: str | None = None) -> bytes:
    """
    Encode one server line, LF included.

    Callers pass arguments that cannot hold a space (names, timestamps,
    codes), so this does not check them on the hot path; the text is the
    only free-form part and the protocol never lets a CR or LF into it.

    @return: The UTF-8 bytes to write, ending with C{b"\\n"}.
    """
    line = " ".join((tag, *args)) if args else tag
    if text is not None:
        line = f"{line} :{text}"
    return (line + "\n").encode("utf-8")


def parse_line(line: bytes | str) -> ServerLine:
    """
    Decode one server line (with or without its line end).

    @raise ValueError: The line is empty or its tag is not an upper-case
        word, i.e. it did not come from a chatroom server.
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.rstrip("\r\n")
    head, sep, text = line.partition(" :")
    words = head.split(" ")
    tag = words[0]
    if not tag or not tag.isalpha() or not tag.isupper():
        raise ValueError(f"not a server line: {line!r}")
    return ServerLine(tag, tuple(w for w in words[1:] if w), text if sep else None)


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
